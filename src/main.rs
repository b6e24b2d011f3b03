//! `parlor`: composes the services into one binary.
//!
//! `parlor serve` (the default) runs the SFU, signaling and the web app in one process on
//! one HTTP port; `parlor token` mints a room token with the same key.

mod cluster;
mod web;

/// mimalloc hands freed memory back to the system: glibc's arenas keep it, so bursts
/// (password hashes are 19 MiB each, sign-up storms, join storms) would stay resident.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use parlor_proto::{
    Claims, Grants, ParticipantId, PublishSource, RoomCaps, RoomId, RoomNamespace, TokenKey,
};
use parlor_sfu::{CapsConfig, Sfu};

#[derive(Parser, Debug)]
#[command(
    name = "parlor",
    version,
    about = "Voice, video and screen-share rooms for the browser: an SFU, signaling and the web app in one binary.",
    long_about = "Voice, video and screen-share rooms for the browser.\n\n\
        Without a subcommand, `parlor` runs `parlor serve` with its defaults: open the printed URL \
        in two browser windows and join the same room.\n\n\
        Room tokens are HS256 JWTs signed with PARLOR_TOKEN_SECRET, or, when that is unset, with a \
        key generated once and kept in the data directory."
)]
struct Cli {
    /// A file of `key = value` lines, one per flag (`guest-tokens = false`); flags and
    /// PARLOR_* variables override it.
    #[arg(long, global = true, env = "PARLOR_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the SFU, signaling and the web app on one machine.
    Serve(ServeArgs),
    /// Mint a room token (printed on the last line).
    Token(TokenArgs),
    /// Run the chat service alone (accounts and chat REST under /api/v1).
    Chat(ChatArgs),
    /// Run one SFU node of a cluster (NATS for control, Redis for the registry).
    Sfu(cluster::SfuArgs),
    /// Run one signaling node of a cluster, driving SFU nodes over NATS.
    Signaling(cluster::SignalingArgs),
}

#[derive(clap::Args, Debug)]
struct ChatArgs {
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// `postgres://...` at scale; defaults to SQLite in the data directory.
    #[arg(long, env = "PARLOR_DATABASE_URL")]
    database_url: Option<String>,
    /// Several chat nodes on one Postgres: the Redis that carries their live events to
    /// each other (`docs/deploy.md`). Unset: this is the only chat node.
    #[arg(long, env = "PARLOR_REDIS_URL")]
    redis_url: Option<String>,
    /// The cluster's name, the prefix of its Redis keys.
    #[arg(long, env = "PARLOR_CLUSTER", default_value = "parlor")]
    cluster: String,
    /// This chat node's name; a random one by default.
    #[arg(long, env = "PARLOR_NODE_ID")]
    node_id: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// HTTP address for the page, /ws, WHIP/WHEP and /metrics.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the token key (and later, chat data) is kept.
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    #[command(flatten)]
    media: MediaArgs,
    /// Hand out guest tokens to the page (`--guest-tokens=false` for production).
    #[arg(long, env = "PARLOR_GUEST_TOKENS", default_value_t = true, action = ArgAction::Set)]
    guest_tokens: bool,
    /// The chat store: `postgres://...` at scale; defaults to SQLite in the data directory.
    #[arg(long, env = "PARLOR_DATABASE_URL")]
    database_url: Option<String>,
}

/// The SFU's media sockets, workers and default room caps (`parlor serve`, `parlor sfu`).
#[derive(clap::Args, Debug)]
pub(crate) struct MediaArgs {
    /// First UDP port for media; worker i uses PORT+i. 0 picks free ports.
    #[arg(long, env = "PARLOR_MEDIA_PORT", default_value_t = 7880)]
    media_port: u16,
    /// Address announced to browsers for media. Defaults to 127.0.0.1 plus this machine's
    /// primary LAN address; set it to the public address behind NAT.
    #[arg(long, env = "PARLOR_PUBLIC_IP")]
    public_ip: Option<IpAddr>,
    /// Address the media sockets bind to.
    #[arg(long, env = "PARLOR_MEDIA_BIND", default_value = "0.0.0.0")]
    media_bind: IpAddr,
    /// SFU worker threads; 0 means one per core.
    #[arg(long, env = "PARLOR_WORKERS", default_value_t = 0)]
    workers: usize,
    /// Default participant cap per room.
    #[arg(long, env = "PARLOR_MAX_PARTICIPANTS", default_value_t = 100)]
    max_participants: u32,
    /// Default cap on participants publishing camera video per room.
    #[arg(long, env = "PARLOR_MAX_VIDEO_PUBLISHERS", default_value_t = 25)]
    max_video_publishers: u32,
    /// Default cap on concurrent screen shares per room.
    #[arg(long, env = "PARLOR_MAX_SCREEN_SHARES", default_value_t = 1)]
    max_screen_shares: u32,
}

impl MediaArgs {
    /// The SFU's configuration, for the node named `node` in participant handles.
    pub(crate) fn sfu_config(&self, node: &str) -> parlor_sfu::Config {
        parlor_sfu::Config {
            workers: self.workers,
            bind_ip: self.media_bind,
            media_port: self.media_port,
            public_ip: self.public_ip,
            caps: CapsConfig {
                max_participants: self.max_participants,
                max_video_publishers: self.max_video_publishers,
                max_screen_shares: self.max_screen_shares,
            },
            node: node.to_owned(),
        }
    }
}

#[derive(clap::Args, Debug)]
struct TokenArgs {
    #[arg(long)]
    room: String,
    #[arg(long)]
    identity: String,
    /// Display name; defaults to the identity.
    #[arg(long)]
    name: Option<String>,
    /// Sources the participant may publish: any of audio, video, screen.
    #[arg(long, value_delimiter = ',', default_value = "audio,video,screen")]
    publish: Vec<String>,
    /// The participant may not receive others' tracks.
    #[arg(long)]
    no_subscribe: bool,
    /// Room admin: may use the room admin API (`/admin/rooms/{room}`).
    #[arg(long)]
    admin: bool,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,
    /// Room caps carried by the token, applied when its holder joins.
    #[arg(long)]
    max_participants: Option<u32>,
    #[arg(long)]
    max_video_publishers: Option<u32>,
    #[arg(long)]
    max_screen_shares: Option<u32>,
    #[arg(long, env = "PARLOR_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

/// Reads `--config FILE` (or `PARLOR_CONFIG`): lines of `key = value`, where each key is a
/// flag's long name (`guest-tokens = false`, `listen = "0.0.0.0:8080"`). Each entry becomes
/// the flag's `PARLOR_*` environment variable unless that is already set, so the command
/// line wins over the environment, which wins over the file.
fn load_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let from_args = args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--config=").map(str::to_owned).or_else(|| {
            (a == "--config")
                .then(|| args.get(i + 1).cloned())
                .flatten()
        })
    });
    let Some(path) = from_args.or_else(|| std::env::var("PARLOR_CONFIG").ok()) else {
        return Ok(());
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with('[') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .with_context(|| format!("{path}:{}: expected key = value", n + 1))?;
        let var = format!(
            "PARLOR_{}",
            key.trim().replace(['-', '.'], "_").to_ascii_uppercase()
        );
        let value = value.trim().trim_matches('"');
        if std::env::var_os(&var).is_none() {
            set_env(&var, value);
        }
    }
    Ok(())
}

#[allow(unsafe_code)]
fn set_env(key: &str, value: &str) {
    // SAFETY: called from `main` before the runtime or any other thread exists.
    unsafe { std::env::set_var(key, value) }
}

fn main() -> anyhow::Result<()> {
    load_config_file()?;
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,str0m=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Token(t)) => token(t),
        Some(Command::Serve(s)) => serve(s),
        Some(Command::Chat(c)) => chat(c),
        Some(Command::Sfu(a)) => cluster::sfu(a),
        Some(Command::Signaling(a)) => cluster::signaling(a),
        None => match Cli::parse_from(["parlor", "serve"]).command {
            Some(Command::Serve(s)) => serve(s),
            _ => unreachable!("`parlor serve` parses as serve"),
        },
    }
}

/// The server secret: PARLOR_TOKEN_SECRET, else one generated once into the data directory.
fn secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Ok(s) = std::env::var("PARLOR_TOKEN_SECRET")
        && !s.is_empty()
    {
        return Ok(s.into_bytes());
    }
    let path = data_dir.join("token-secret");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let s = s.trim();
        if s.len() >= 32 {
            return Ok(s.as_bytes().to_vec());
        }
        bail!("{} is too short to be a key", path.display());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let secret = parlor_signaling::random_id() + &parlor_signaling::random_id();
    write_private(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    Ok(secret.into_bytes())
}

/// The room-token key.
pub(crate) fn token_key(data_dir: &Path) -> anyhow::Result<TokenKey> {
    Ok(TokenKey::new(&secret(data_dir)?))
}

/// The chat service's configuration: its own access-token key, derived from the secret.
fn chat_config(
    data_dir: &Path,
    database_url: Option<String>,
) -> anyhow::Result<parlor_chat::Config> {
    let url = match database_url {
        Some(u) => u,
        None => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            format!("sqlite://{}?mode=rwc", data_dir.join("chat.db").display())
        }
    };
    let room_key = secret(data_dir)?;
    let mut key = room_key.clone();
    key.extend_from_slice(b"/chat-access");
    let mut config = parlor_chat::Config::new(url, &key);
    // Voice channels hand out room tokens signed with the key signaling checks.
    config.room_key = Some(room_key);
    config.signaling_url = std::env::var("PARLOR_SIGNALING_URL").ok();
    // The room admin API that moderators' actions in voice channels go to.
    config.signaling_api_url = std::env::var("PARLOR_SIGNALING_API_URL").ok();
    config.attachments_dir = Some(data_dir.join("attachments"));
    // An S3-compatible bucket instead of the data directory, when one is configured.
    if let Ok(bucket) = std::env::var("PARLOR_S3_BUCKET") {
        let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
        config.s3 = Some(parlor_chat::store::blobs::S3Config {
            endpoint: var(&["PARLOR_S3_ENDPOINT"])
                .context("PARLOR_S3_ENDPOINT is needed with PARLOR_S3_BUCKET")?,
            bucket,
            region: var(&["PARLOR_S3_REGION", "AWS_REGION"]).unwrap_or_else(|| "us-east-1".into()),
            access_key: var(&["PARLOR_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
                .context("PARLOR_S3_ACCESS_KEY (or AWS_ACCESS_KEY_ID) is needed")?,
            secret_key: var(&["PARLOR_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"])
                .context("PARLOR_S3_SECRET_KEY (or AWS_SECRET_ACCESS_KEY) is needed")?,
            prefix: var(&["PARLOR_S3_PREFIX"]).unwrap_or_default(),
        });
    }
    // A reverse proxy in front: its X-Forwarded-For names the client.
    if let Ok(v) = std::env::var("PARLOR_TRUSTED_PROXIES") {
        config.trusted_proxies = parlor_chat::service::auth::Cidr::parse_list(&v)
            .map_err(|e| anyhow::anyhow!("PARLOR_TRUSTED_PROXIES: {e}"))?;
    }
    // Bots' webhooks on this machine or network, for development: internal addresses
    // outgoing requests may reach.
    if let Ok(v) = std::env::var("PARLOR_OUTGOING_ALLOW") {
        config.outgoing.allow = parlor_chat::service::outgoing::OutgoingPolicy::parse_allow(&v)
            .map_err(|e| anyhow::anyhow!("PARLOR_OUTGOING_ALLOW: {e}"))?;
    }
    // How long a device stays online without its node's refresh (a node that died), and
    // after its connection dropped without a clean close.
    let ms = |name: &str| -> anyhow::Result<Option<Duration>> {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse::<u64>()
                    .map(Duration::from_millis)
                    .map_err(|e| anyhow::anyhow!("{name}: {e}"))
            })
            .transpose()
    };
    if let Some(d) = ms("PARLOR_PRESENCE_TTL_MS")? {
        config.presence.ttl = d;
    }
    if let Some(d) = ms("PARLOR_PRESENCE_GRACE_MS")? {
        config.presence.grace = d;
    }
    // OpenID Connect providers: a JSON list of {id, name, issuer, client_id, client_secret}.
    if let Ok(v) = std::env::var("PARLOR_OIDC") {
        config.oidc = parlor_chat::service::oidc::parse_providers(&v)
            .map_err(|e| anyhow::anyhow!("PARLOR_OIDC: {e}"))?;
    }
    if let Ok(v) = std::env::var("PARLOR_PUBLIC_URL") {
        config.public_url = Some(v);
    }
    // The SMTP relay password-reset codes go out through.
    if let Ok(url) = std::env::var("PARLOR_SMTP_URL") {
        config.smtp = Some(parlor_chat::service::mail::SmtpConfig {
            url,
            from: std::env::var("PARLOR_SMTP_FROM")
                .unwrap_or_else(|_| "Parlor <no-reply@localhost>".to_owned()),
        });
    }
    // The contact Web Push services see in VAPID tokens (RFC 8292): an operator's address.
    if let Ok(v) = std::env::var("PARLOR_VAPID_SUBJECT") {
        if !(v.starts_with("mailto:") || v.starts_with("https://")) {
            anyhow::bail!("PARLOR_VAPID_SUBJECT is a mailto: or https: URL");
        }
        config.push_subject = v;
    }
    // Load tests lift the per-user and per-IP request limits.
    if std::env::var("PARLOR_CHAT_RATE_LIMITS").as_deref() == Ok("off") {
        config.user_rate = None;
        config.auth_rate = None;
    }
    Ok(config)
}

fn chat(c: ChatArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let mut config = chat_config(&c.data_dir, c.database_url)?;
        config.bus = c
            .redis_url
            .map(|redis_url| parlor_chat::service::bus::BusConfig {
                redis_url,
                cluster: c.cluster,
                node: c.node_id.unwrap_or_else(parlor_signaling::random_id),
            });
        let state = parlor_chat::ChatState::open(config)
            .await
            .context("opening the chat store")?;
        parlor_edge::process::ProcessMetrics::register(&state.metrics.registry)?;
        let listener = tokio::net::TcpListener::bind(c.listen)
            .await
            .with_context(|| format!("binding {}", c.listen))?;
        println!(
            "Parlor chat is running at http://{}",
            listener.local_addr()?
        );
        parlor_chat::run(listener, state, shutdown_signal()).await?;
        Ok(())
    })
}

#[cfg(unix)]
fn write_private(path: &Path, s: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(s.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, s: &str) -> std::io::Result<()> {
    std::fs::write(path, s)
}

fn token(t: TokenArgs) -> anyhow::Result<()> {
    let room = RoomId::parse(&t.room).context("--room: 1-64 letters, digits and -_.:@")?;
    let identity =
        ParticipantId::parse(&t.identity).context("--identity: 1-128 letters, digits and -_.:@")?;
    let publish = t
        .publish
        .iter()
        .filter(|s| !s.trim().is_empty() && s.trim() != "none")
        .map(|s| {
            PublishSource::parse(s).with_context(|| format!("--publish: unknown source {s:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // The operator holds the key and may mint for any room, a chat voice channel's
    // included: such a token carries the room's namespace, as chat's own do.
    let ns = RoomNamespace::of(&room);
    let mut claims = Claims::new(room, identity, t.ttl.into());
    claims.ns = ns;
    claims.name = t.name;
    claims.grants = Grants {
        publish,
        subscribe: !t.no_subscribe,
        admin: t.admin,
        muted: false,
    };
    if t.max_participants.is_some()
        || t.max_video_publishers.is_some()
        || t.max_screen_shares.is_some()
    {
        claims.caps = Some(RoomCaps {
            max_participants: t.max_participants,
            max_video_publishers: t.max_video_publishers,
            max_screen_shares: t.max_screen_shares,
        });
    }
    let key = token_key(&t.data_dir)?;
    println!("{}", key.sign(&claims));
    Ok(())
}

fn serve(s: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(serve_async(s))
}

async fn serve_async(s: ServeArgs) -> anyhow::Result<()> {
    let key = token_key(&s.data_dir)?;
    let registry = prometheus::Registry::new();
    parlor_edge::process::ProcessMetrics::register(&registry)?;
    let sfu_config = s.media.sfu_config(parlor_sfu::LOCAL_NODE);
    let sfu = Arc::new(
        Sfu::start(&sfu_config, parlor_sfu::Metrics::new(&registry)?)
            .context("starting the SFU (is the media port free? try --media-port 0)")?,
    );
    let mut sig_config = parlor_signaling::Config::new(key);
    sig_config.guest_tokens = s.guest_tokens;
    let state = parlor_signaling::AppState::new(
        sig_config,
        sfu.clone(),
        parlor_signaling::Metrics::new(&registry)?,
    );
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("binding {}", s.listen))?;
    let addr = listener.local_addr()?;
    let mut chat_config = chat_config(&s.data_dir, s.database_url.clone())?;
    // Chat moderates voice rooms through signaling's admin API, here in this process.
    if chat_config.signaling_api_url.is_none() {
        let ip = match addr.ip() {
            ip if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
            ip => ip,
        };
        chat_config.signaling_api_url = Some(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, addr.port())
        ));
    }
    let chat = parlor_chat::ChatState::open(chat_config)
        .await
        .context("opening the chat store")?;
    // One /metrics for the process: signaling's and the SFU's registry, and chat's.
    let chat_metrics: parlor_signaling::ops::Gather = {
        let chat = chat.clone();
        Arc::new(move || parlor_chat::service::metrics::gather(&chat))
    };
    let app = parlor_signaling::router(state.clone())
        .merge(parlor_chat::router(chat))
        .merge(parlor_signaling::ops::router_with(
            registry,
            vec![chat_metrics],
            state.clone(),
        ))
        .merge(web::router())
        .layer(web::security_layer(
            std::env::var("PARLOR_SIGNALING_URL").ok().as_deref(),
        )?);
    let media: Vec<String> = sfu.media_addrs().iter().map(|a| a.to_string()).collect();
    tracing::info!(media = ?media, guest_tokens = s.guest_tokens, "parlor serving");
    println!("Parlor is running at http://{addr}");
    println!("Media (UDP): {}", media.join(", "));
    parlor_signaling::run(listener, app, state, shutdown_signal()).await?;
    // Participants were told; now close their media sessions, bounded to fit a pod's grace.
    if tokio::time::timeout(Duration::from_secs(10), sfu.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("SFU did not stop in time");
    }
    tracing::info!("stopped");
    Ok(())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
