//! `parlor-bench`: load and cost measurements against real Parlor processes.
//!
//! `parlor-bench media` starts the server (one SFU worker), connects R rooms of P
//! publishers and S subscribers over `/ws` and real UDP, and reports forwarded packets/s,
//! loss, one-way latency, time to first frame, and the server's CPU time per forwarded
//! packet and memory, read from `/proc` and `/metrics`. With `--cluster` it starts one
//! `parlor sfu` node and two `parlor signaling` nodes instead (publishers and subscribers
//! on different signaling nodes) and measures the SFU node's process alone; with
//! `--cluster --span`, two SFU nodes in two regions that the room spans through a pipe.
//! `--sweep` raises the subscribers until loss or latency passes its limit.
//!
//! The load clients use str0m in RTP mode: they are cheap enough that hundreds of them
//! share a core. The interoperability tests use webrtc-rs instead.

use anyhow::bail;
mod chat;
mod chat_clients;
mod chat_load;
mod deploy;
mod media;
mod media_client;
mod media_sender;
mod procfs;
mod progress;
mod report;
mod search;
mod signaling;

use clap::{Parser, Subcommand};
use deploy::Layout;

#[derive(Parser)]
#[command(name = "parlor-bench", about = "Parlor load and cost measurements")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Media through the SFU: R rooms × P publishers × S subscribers over real WebRTC
    /// clients; forwarded packets/s, loss, latency, time to first frame, the SFU's CPU per
    /// forwarded packet and its memory.
    #[command(alias = "forward")]
    Media(Box<MediaArgs>),
    /// Join storms through signaling: participants join rooms of a size at a rate, stay,
    /// and leave; time to `joined`, errors, and presence fan-out.
    Signaling {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        /// Participants in all.
        #[arg(long, default_value_t = 400)]
        joins: usize,
        /// Joins per second.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        room_size: usize,
        /// Seconds each participant stays; longer than room-size / rate, so everyone in
        /// a room sees the room fill.
        #[arg(long, default_value_t = 10)]
        hold: u64,
        /// A deployment that runs elsewhere (its signaling base URL), as for `media`.
        #[arg(long)]
        url: Option<String>,
        #[arg(long, env = "PARLOR_BENCH_TOKEN_SECRET", requires = "url")]
        token_secret: Option<String>,
    },
    /// Chat load: C gateway clients across K channels connect at a rate, then messages
    /// are posted at a rate; delivery latency, deliveries per second and per server
    /// CPU-second, loss, time to `ready`, server memory per idle connection.
    Chat(Box<ChatArgs>),
    /// Chat messages persisted per second: concurrent writers post for a while.
    ChatWrite {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 16)]
        writers: usize,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// `postgres://...`; SQLite in a temporary directory by default.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Search latency over one guild of N messages, by kind of query (no match, rare,
    /// common, Korean, two characters), each checked for its number of results.
    Search {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// Timed queries per kind, after two untimed ones.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// `postgres://...` (an empty database); SQLite in a temporary directory by
        /// default.
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Chat fan-out: latency from one message to N connected clients in one channel,
    /// and server memory per idle WebSocket.
    ChatFanout {
        #[arg(long, default_value = "target/release/parlor")]
        parlor: String,
        #[arg(long, default_value_t = 1000)]
        clients: usize,
        #[arg(long, default_value_t = 50)]
        messages: usize,
        /// Messages per second.
        #[arg(long, default_value_t = 5.0)]
        rate: f64,
    },
}

#[derive(clap::Args)]
struct ChatArgs {
    /// The parlor binary to start `parlor chat` from (build it with --release).
    #[arg(long, default_value = "target/release/parlor")]
    parlor: String,
    /// Gateway connections in all.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Accounts the connections belong to (connection c is a session of user c % U):
    /// each costs the server a password hash to register. Default: the clients, at most
    /// 1,000.
    #[arg(long)]
    users: Option<usize>,
    /// Channels, each in a guild of its own; user u is a member of channel u % K only.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Messages per second over all channels (round-robin); with --sweep, the first step.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Seconds of posting per run (per sweep step).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections opened per second (the connection storm).
    #[arg(long, default_value_t = 500.0)]
    connect_rate: f64,
    /// Raise the rate by this many messages/s after each step until loss passes 1% or
    /// p99 delivery latency passes 50 ms.
    #[arg(long)]
    sweep: Option<f64>,
    /// With --sweep: stop at this rate.
    #[arg(long, default_value_t = 100_000.0)]
    max_rate: f64,
    /// `postgres://...` for the started server; SQLite in a temporary directory by
    /// default.
    #[arg(long, conflicts_with = "url")]
    database_url: Option<String>,
    /// Load a deployment that runs elsewhere: its chat base URL (registration open and
    /// rate limits raised for the bench's users; see docs/benchmarks.md).
    #[arg(long)]
    url: Option<String>,
    /// With --url: the `/metrics` base of the chat node to measure (CPU and memory).
    #[arg(long, requires = "url")]
    metrics_url: Option<String>,
    /// Write the JSON report here (`-`: standard output, instead of the table).
    #[arg(long)]
    json: Option<String>,
    /// With --sweep: draw p99 delivery latency and deliveries per CPU-second against the
    /// rate as an SVG here.
    #[arg(long)]
    svg: Option<String>,
}

#[derive(clap::Args)]
struct MediaArgs {
    /// The parlor binary to measure (build it with --release).
    #[arg(long, default_value = "target/release/parlor")]
    parlor: String,
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Publishers per room (audio, and video unless --audio-only).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Subscribers per room; with --sweep, the first step.
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Measurement window, after everyone joined and a warm-up of 3 s.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Video bitrate of each publisher, kbit/s (1200-byte packets at 50 frames/s).
    #[arg(long, default_value_t = 1200)]
    video_kbps: u64,
    /// Publishers send audio only (one 100-byte Opus-sized packet per 20 ms).
    #[arg(long)]
    audio_only: bool,
    /// Publishers send video as three simulcast layers (rids l, m, h at 10%, a third and
    /// all of --video-kbps); each subscriber gets the layer its bandwidth estimate allows.
    #[arg(long, conflicts_with = "audio_only")]
    simulcast: bool,
    /// Publishers send as a browser does: audio 10 ms after each video frame, and a
    /// frame's video packets spread at 2.5 times the video bitrate (libwebrtc's pacer),
    /// instead of a 20 ms frame's audio and video packets all at once.
    #[arg(long)]
    paced: bool,
    /// Rooms whose caps allow no camera and no screen share (voice-only rooms), where the
    /// SFU runs no bandwidth estimation. Needs --audio-only; against a deployment
    /// elsewhere, --token-secret (the caps go in the tokens).
    #[arg(long, requires = "audio_only")]
    voice_rooms: bool,
    /// Subscribers connecting per second.
    #[arg(long, default_value_t = 20.0)]
    join_rate: f64,
    /// Run against a cluster on this machine instead of `parlor serve`: one `parlor sfu`
    /// node and two `parlor signaling` nodes (publishers on one, subscribers on the
    /// other), through the NATS and Redis at their default addresses.
    #[arg(long)]
    cluster: bool,
    /// With `--cluster`: two SFU nodes in two regions, the publishers' signaling node in
    /// one and the subscribers' in the other, so the rooms span both through a pipe. The
    /// subscribers' node is measured.
    #[arg(long, requires = "cluster")]
    span: bool,
    /// Load a deployment that runs elsewhere instead of starting one: its signaling
    /// base URL (`https://parlor.example.com`). Media goes wherever its SFU nodes
    /// announce; rooms get names of their own.
    #[arg(long, conflicts_with_all = ["cluster", "pin_server"])]
    url: Option<String>,
    /// With --url: the `/metrics` base URL of the SFU node to measure (its CPU, memory
    /// and counters). Rooms must all land on that node for the per-packet figure to
    /// hold: use one room, or a deployment with one SFU node.
    #[arg(long, requires = "url")]
    metrics_url: Option<String>,
    /// With --url: the deployment's token secret, to sign room tokens here. Without it
    /// the bench asks the deployment's guest-token endpoint (`PARLOR_GUEST_TOKENS`).
    #[arg(long, env = "PARLOR_BENCH_TOKEN_SECRET", requires = "url")]
    token_secret: Option<String>,
    /// Pin the measured SFU process to these CPUs (`0`, `0,2`, `1-3`).
    #[arg(long)]
    pin_server: Option<String>,
    /// Pin this process (the load clients) to these CPUs.
    #[arg(long)]
    pin_load: Option<String>,
    /// Raise subscribers per room by this step after each run until loss passes 1% or
    /// p99 latency passes 50 ms, and report the largest load within both.
    #[arg(long)]
    sweep: Option<usize>,
    /// With --sweep: stop at this many subscribers per room.
    #[arg(long, default_value_t = 1000)]
    max_subscribers: usize,
    /// Write the JSON report here (`-`: standard output, instead of the table).
    #[arg(long)]
    json: Option<String>,
    /// With --sweep: draw latency and CPU per packet against subscribers as an SVG here.
    #[arg(long)]
    svg: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Media(a) = &cli.command
        && let Some(cpus) = &a.pin_load
    {
        // Before the runtime starts, so its threads inherit the mask.
        procfs::pin(0, &procfs::parse_cpus(cpus).map_err(anyhow::Error::msg)?)?;
    }
    // The media bench leaves the second core to the server; the chat bench has many
    // clients to drive and uses both.
    let threads = if matches!(cli.command, Command::Media(_)) {
        1
    } else {
        2
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    match cli.command {
        Command::ChatWrite {
            parlor,
            writers,
            seconds,
            database_url,
        } => rt.block_on(chat::write(
            &parlor,
            writers,
            seconds,
            database_url.as_deref(),
        )),
        Command::ChatFanout {
            parlor,
            clients,
            messages,
            rate,
        } => rt.block_on(chat::fanout(&parlor, clients, messages, rate)),
        Command::Search {
            parlor,
            messages,
            runs,
            database_url,
        } => rt.block_on(search::run(
            &parlor,
            messages,
            runs,
            database_url.as_deref(),
        )),
        Command::Media(a) => rt.block_on(media_scenario(*a)),
        Command::Chat(a) => {
            let load = chat_load::ChatLoad {
                clients: a.clients,
                users: a.users.unwrap_or(a.clients.min(1000)),
                channels: a.channels,
                rate: a.rate,
                seconds: a.seconds,
                connect_rate: a.connect_rate,
                sweep: a.sweep,
                max_rate: a.max_rate,
                database_url: a.database_url.clone(),
                remote: a.url.as_ref().map(|u| {
                    (
                        u.clone(),
                        a.metrics_url.clone().unwrap_or_else(|| u.clone()),
                    )
                }),
            };
            procfs::raise_fd_limit();
            let report = rt.block_on(chat_load::run(&a.parlor, &load))?;
            chat_load::emit(&report, a.json.as_deref(), a.svg.as_deref())
        }
        Command::Signaling {
            parlor,
            joins,
            rate,
            room_size,
            hold,
            url,
            token_secret,
        } => {
            let storm = signaling::Storm {
                joins,
                rate,
                room_size,
                hold: std::time::Duration::from_secs(hold),
                remote: url.map(|url| deploy::Remote {
                    metrics: url.clone(),
                    url,
                    token_secret,
                }),
            };
            let r = rt.block_on(signaling::run(&parlor, &storm))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
    }
}

async fn media_scenario(a: MediaArgs) -> anyhow::Result<()> {
    let layout = match (a.cluster, a.span) {
        (false, _) => Layout::Serve,
        (true, false) => Layout::Cluster,
        (true, true) => Layout::Span,
    };
    let mut load = media::Load {
        rooms: a.rooms,
        publishers: a.publishers,
        subscribers: a.subscribers,
        video_kbps: (!a.audio_only).then_some(a.video_kbps),
        simulcast: a.simulcast,
        paced: a.paced,
        voice_rooms: a.voice_rooms,
        seconds: a.seconds,
        join_rate: a.join_rate,
        layout,
        remote: a.url.as_ref().map(|url| deploy::Remote {
            url: url.clone(),
            metrics: a.metrics_url.clone().unwrap_or_else(|| url.clone()),
            token_secret: a.token_secret.clone(),
        }),
        pin_server: a
            .pin_server
            .as_deref()
            .map(procfs::parse_cpus)
            .transpose()
            .map_err(anyhow::Error::msg)?,
    };
    if load.rooms == 0 || load.publishers == 0 {
        bail!("--rooms and --publishers must be at least 1");
    }
    let Some(step) = a.sweep else {
        let r = media::run(&a.parlor, &load).await?;
        return report::emit(&[r], a.json.as_deref(), None, None);
    };
    if step == 0 {
        bail!("--sweep needs a step of at least 1");
    }
    let mut runs = Vec::new();
    let mut best = None;
    while load.subscribers <= a.max_subscribers {
        let r = media::run(&a.parlor, &load).await?;
        let within = report::within_limits(&r);
        eprintln!("{}", report::row(&r));
        if within {
            best = Some(load.subscribers);
        }
        runs.push(r);
        if !within {
            break;
        }
        load.subscribers += step;
    }
    report::emit(&runs, a.json.as_deref(), a.svg.as_deref(), Some(best))
}
