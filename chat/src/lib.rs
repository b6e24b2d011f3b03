//! Parlor's chat service: accounts now; guilds, channels, messages and the rest of the
//! text side as they land. REST under `/api/v1`, persisted in SQLite (embedded) or
//! Postgres (at scale) through one [`store::Store`].

pub mod error;
pub mod model;
pub mod routes;
pub mod service;
pub mod store;

use axum::serve::ListenerExt;
use routes::{
    api, attachments, bots, channels, dms, events, gateway, guilds, invites, members, messages,
    oidc, presence, push, reactions, reads, recovery, relationships, search, voice,
    voice_moderation,
};
use service::{auth, hub, outgoing, sessions};
use store::blobs;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use tokio::net::TcpListener;

pub use error::ChatError;
pub use store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// Signs access tokens.
    pub secret: Vec<u8>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    /// How often chat WebSocket clients heartbeat.
    pub heartbeat_interval: Duration,
    /// Replay buffers and session lifetimes of the chat WebSocket.
    pub hub: hub::HubLimits,
    /// How long a device stays online without its node, or after its connection drops.
    pub presence: service::presence::PresenceLimits,
    /// The key room tokens are signed with (shared with signaling). Without it, voice
    /// channels cannot be joined.
    pub room_key: Option<Vec<u8>>,
    /// The signaling WebSocket handed out with voice tokens; by default `ws://<the
    /// request's Host>/ws`, which is right when chat and signaling share a server.
    pub signaling_url: Option<String>,
    /// Signaling's HTTP base for the room admin API (moderators' server-mute, move and
    /// disconnect); by default the host of `signaling_url`.
    pub signaling_api_url: Option<String>,
    /// Where attachments are stored; without it, uploads are refused.
    pub attachments_dir: Option<std::path::PathBuf>,
    /// An S3-compatible bucket to store attachments in instead of the directory.
    pub s3: Option<blobs::S3Config>,
    /// Largest upload, in bytes.
    pub max_upload_bytes: usize,
    /// Requests per user per route: (burst, per second). `None` turns the limit off
    /// (for load tests).
    pub user_rate: Option<(f64, f64)>,
    /// Requests per IP on the auth routes: (burst, per second). `None`: off.
    pub auth_rate: Option<(f64, f64)>,
    /// Proxies whose `X-Forwarded-For` names the client (for rate limits and the login
    /// allowlist). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<auth::Cidr>,
    /// Which addresses requests to user-named URLs (bot webhooks) may reach.
    pub outgoing: outgoing::OutgoingPolicy,
    /// Several chat nodes: the Redis that carries their events to each other. `None`:
    /// this process is the only chat node.
    pub bus: Option<service::bus::BusConfig>,
    /// Web Push: the contact VAPID names to push services (RFC 8292 `sub`, a `mailto:` or
    /// `https:` URL).
    pub push_subject: String,
    /// The SMTP relay password-reset codes go out through; without it, resets are refused.
    pub smtp: Option<service::mail::SmtpConfig>,
    /// OpenID Connect providers people may sign in with.
    pub oidc: Vec<service::oidc::OidcProvider>,
    /// Where people reach this server (`https://chat.example.com`): sign-in redirects
    /// name it. Without it, the request's host over http.
    pub public_url: Option<String>,
}

impl Config {
    pub fn new(database_url: impl Into<String>, secret: &[u8]) -> Config {
        Config {
            database_url: database_url.into(),
            secret: secret.to_vec(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            heartbeat_interval: Duration::from_secs(30),
            hub: hub::HubLimits::default(),
            presence: service::presence::PresenceLimits::default(),
            room_key: None,
            signaling_url: None,
            signaling_api_url: None,
            attachments_dir: None,
            s3: None,
            max_upload_bytes: 25 * 1024 * 1024,
            user_rate: Some((30.0, 10.0)),
            // Bursts of 20, then 20 a minute.
            auth_rate: Some((20.0, 20.0 / 60.0)),
            trusted_proxies: Vec::new(),
            outgoing: outgoing::OutgoingPolicy::default(),
            bus: None,
            push_subject: "mailto:admin@localhost".to_owned(),
            smtp: None,
            oidc: Vec::new(),
            public_url: None,
        }
    }
}

/// Everything the routes share.
#[derive(Debug, Clone)]
pub struct ChatState {
    pub store: Store,
    pub keys: auth::AccessKeys,
    /// Sessions signed out while their access tokens may be unexpired.
    pub ended: Arc<sessions::EndedSessions>,
    pub config: Arc<Config>,
    pub ids: Arc<IdGen>,
    pub auth_limit: Option<Arc<parlor_edge::KeyedLimit<std::net::IpAddr>>>,
    /// Per user per route (`None`: off).
    pub user_limit: Option<Arc<parlor_edge::KeyedLimit<(model::UserId, String)>>>,
    /// Per user, on invite lookups: codes cannot be guessed by brute force.
    pub invite_limit: Arc<parlor_edge::KeyedLimit<model::UserId>>,
    /// Per incoming webhook.
    pub webhook_limit: Arc<parlor_edge::KeyedLimit<i64>>,
    pub hub: Arc<hub::Hub>,
    pub blobs: Option<Arc<blobs::Blobs>>,
    /// For requests to URLs users name: only to addresses `config.outgoing` permits.
    pub outgoing: reqwest::Client,
    /// The other chat nodes, when there are any.
    pub bus: Option<Arc<service::bus::Bus>>,
    pub metrics: Arc<service::metrics::ChatMetrics>,
    /// Who is online and who is in which voice channel: in this process, or in the
    /// cluster's Redis.
    pub presence: Arc<service::presence::Presence>,
    /// The VAPID key Web Push requests are signed with, derived from `config.secret`.
    pub push_key: Option<Arc<service::push::crypto::VapidKey>>,
    /// Sends password-reset codes (`config.smtp`).
    pub mailer: Option<Arc<service::mail::Mailer>>,
    /// Password-reset requests and attempts per address.
    pub reset_limit: Arc<parlor_edge::KeyedLimit<String>>,
    /// OpenID Connect providers, with their discovery documents and keys.
    pub oidc: Arc<service::oidc::Oidc>,
    /// Signaling's room admin API, for moderating voice channels.
    pub rooms: Arc<service::room_admin::RoomAdmin>,
    /// Serializes taking an id and queueing the message per channel (striped), so
    /// messages are written and their events leave in id order and a client catching up
    /// by id misses nothing.
    channel_locks: Arc<[tokio::sync::Mutex<()>]>,
    /// Writes new messages in batches (group commit).
    pub(crate) writer: Arc<service::message_writer::MessageWriter>,
}

impl ChatState {
    pub async fn open(config: Config) -> Result<ChatState, store::StoreError> {
        let store = Store::open(&config.database_url).await?;
        let hub = Arc::new(hub::Hub::new(config.hub));
        let ended = Arc::new(sessions::EndedSessions::new(
            store.ended_sessions(now_ms()).await?,
        ));
        let blobs = match (&config.s3, &config.attachments_dir) {
            (Some(s3), _) => Some(blobs::Blobs::s3(s3.clone())),
            (None, Some(dir)) => Some(blobs::Blobs::local(dir.clone())),
            (None, None) => None,
        }
        .transpose()
        .map_err(|e| store::StoreError::Files(e.to_string()))?
        .map(Arc::new);
        tokio::spawn(sweep(Arc::downgrade(&hub), Arc::downgrade(&ended)));
        if let Some(b) = &blobs {
            tokio::spawn(sweep_uploads(Arc::downgrade(b), store.clone()));
        }
        let outgoing = config.outgoing.client(Duration::from_secs(5));
        let (bus, id_node) = match &config.bus {
            Some(b) => {
                let retention = config.hub.session_timeout;
                let bus = service::bus::Bus::start(b, hub.clone(), retention)
                    .await
                    .map_err(|e| store::StoreError::Files(format!("chat bus: {e}")))?;
                let node = service::bus::claim_id_node(b)
                    .await
                    .map_err(|e| store::StoreError::Files(format!("chat bus: {e}")))?;
                (Some(bus), node)
            }
            None => (None, 0),
        };
        let presence = match &config.bus {
            Some(b) => {
                let failed =
                    |e: redis::RedisError| store::StoreError::Files(format!("presence: {e}"));
                let client = redis::Client::open(b.redis_url.as_str()).map_err(failed)?;
                let conn = redis::aio::ConnectionManager::new(client)
                    .await
                    .map_err(failed)?;
                service::presence::Presence::in_redis(conn, &b.cluster, config.presence)
            }
            None => service::presence::Presence::in_memory(config.presence),
        };
        let config_secret = config.secret.clone();
        let config_oidc = config.oidc.clone();
        let rooms = service::room_admin::RoomAdmin::new(&config);
        let mailer = match &config.smtp {
            Some(s) => Some(Arc::new(
                service::mail::Mailer::new(s).map_err(store::StoreError::Files)?,
            )),
            None => None,
        };
        let metrics: Arc<service::metrics::ChatMetrics> = Arc::default();
        let ids = Arc::new(IdGen::new(id_node));
        let writer = Arc::new(service::message_writer::MessageWriter::start(
            store.clone(),
            ids.clone(),
            metrics.clone(),
        ));
        let state = ChatState {
            writer,
            store,
            keys: auth::AccessKeys::new(&config.secret),
            ended,
            auth_limit: parlor_edge::KeyedLimit::maybe(config.auth_rate),
            user_limit: parlor_edge::KeyedLimit::maybe(config.user_rate),
            config: Arc::new(config),
            ids,
            invite_limit: Arc::new(parlor_edge::KeyedLimit::new(10.0, 10.0 / 60.0)),
            // Bursts of 30, then 5 a second.
            webhook_limit: Arc::new(parlor_edge::KeyedLimit::new(30.0, 5.0)),
            hub,
            blobs,
            outgoing,
            channel_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            bus,
            metrics,
            presence: Arc::new(presence),
            push_key: service::push::crypto::VapidKey::derive(&config_secret)
                .ok()
                .map(Arc::new),
            mailer,
            oidc: Arc::new(service::oidc::Oidc::new(config_oidc)),
            rooms: Arc::new(rooms),
            // Bursts of 5, then 5 an hour.
            reset_limit: Arc::new(parlor_edge::KeyedLimit::new(5.0, 5.0 / 3600.0)),
        };
        service::presence::spawn(&state);
        if let Some(b) = state.config.bus.clone() {
            tokio::spawn(service::bus::subscribe(state.clone(), b));
        }
        Ok(state)
    }

    /// Holds the channel's write order (see `channel_locks`).
    pub async fn lock_channel(
        &self,
        channel_id: model::ChannelId,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        let i = (channel_id.0 as u64 % self.channel_locks.len() as u64) as usize;
        self.channel_locks[i].lock().await
    }

    /// Sends an event (a [`service::dispatch::Dispatch`], usually) to its audience, on
    /// every chat node.
    pub fn dispatch(&self, audience: hub::Audience, ev: impl Into<hub::Event>) {
        let ev = ev.into();
        match &self.bus {
            Some(bus) if !matches!(audience, hub::Audience::Session(_)) => {
                self.metrics.bus_out.inc();
                bus.dispatch(audience, ev);
            }
            _ => self.hub.publish(&audience, &ev),
        }
    }

    /// The user's sessions, on every node, now see these channels of the guild (`None`:
    /// no longer in it).
    pub fn set_visible(
        &self,
        user: model::UserId,
        guild: model::GuildId,
        channels: Option<std::collections::HashSet<model::ChannelId>>,
    ) {
        self.hub.set_visible(user, guild, channels.clone());
        if let Some(bus) = &self.bus {
            bus.send(service::bus::BusMsg::Visible {
                user,
                guild,
                channels,
            });
        }
    }

    /// Sign-in sessions ended: their tokens stop and their sockets close, on every node.
    pub async fn sessions_ended(&self, user: model::UserId, sessions: &[String], until: i64) {
        self.sessions_ended_here(user, sessions, until).await;
        if let Some(bus) = &self.bus {
            bus.send(service::bus::BusMsg::Ended {
                user,
                sessions: sessions.to_vec(),
                until,
            });
        }
    }

    /// Sign-in sessions ended, on this node only (another node said so).
    pub async fn sessions_ended_here(&self, user: model::UserId, sessions: &[String], until: i64) {
        service::sessions::ended_here(self, user, sessions, until).await;
    }

    /// Recomputes what the guild's connected members may see, on every node.
    pub async fn refresh_guild(&self, guild: model::GuildId) -> Result<(), ChatError> {
        service::visibility::refresh_guild(self, guild).await?;
        if let Some(bus) = &self.bus {
            bus.send(service::bus::BusMsg::Refresh { guild });
        }
        Ok(())
    }
}

/// Uploads no message claims within a day are removed, rows and files. Stops with the
/// store of files.
async fn sweep_uploads(blobs: std::sync::Weak<blobs::Blobs>, store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let Some(b) = blobs.upgrade() else { return };
        match store.take_stale_uploads(now_ms() - 24 * 3600 * 1000).await {
            Ok(ids) => b.delete_all(&ids).await,
            Err(e) => tracing::warn!(error = %e, "sweeping stale uploads"),
        }
    }
}

/// Ends chat sessions whose clients did not come back (presence let their devices go
/// earlier); forgets ended sign-in sessions whose tokens have all expired. Stops with
/// the hub.
async fn sweep(hub: std::sync::Weak<hub::Hub>, ended: std::sync::Weak<sessions::EndedSessions>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(h) = hub.upgrade() else { return };
        if let Some(e) = ended.upgrade() {
            e.sweep(now_ms());
        }
        h.sweep(std::time::Instant::now());
    }
}

/// The chat routes, under `/api/v1`.
pub fn router(state: ChatState) -> Router {
    // JSON bodies are small; uploads have their own limit.
    let json = api::router(state.clone())
        .merge(guilds::router(state.clone()))
        .merge(members::router(state.clone()))
        .merge(channels::router(state.clone()))
        .merge(invites::router(state.clone()))
        .merge(messages::router(state.clone()))
        .merge(reactions::router(state.clone()))
        .merge(voice::router(state.clone()))
        .merge(voice_moderation::router(state.clone()))
        .merge(presence::router(state.clone()))
        .merge(push::router(state.clone()))
        .merge(recovery::router(state.clone()))
        .merge(oidc::router(state.clone()))
        .merge(relationships::router(state.clone()))
        .merge(reads::router(state.clone()))
        .merge(search::router(state.clone()))
        .merge(dms::router(state.clone()))
        .merge(bots::router(state.clone()))
        .merge(events::router(state.clone()))
        .layer(axum::extract::DefaultBodyLimit::max(api::MAX_BODY_BYTES));
    let metrics = state.metrics.clone();
    json.merge(attachments::router(state.clone()))
        .route(
            "/api/v1/gateway",
            axum::routing::get(gateway::handler).with_state(state),
        )
        .route("/api/v1/openapi.json", axum::routing::get(openapi))
        // Every answer of the chat API, by status class.
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let metrics = metrics.clone();
                async move {
                    let res = next.run(req).await;
                    metrics.response(res.status().as_u16());
                    res
                }
            },
        ))
}

/// The OpenAPI 3.1 document of the routes above.
pub const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// Serves chat alone (`parlor chat`) until `shutdown` resolves: its routes, and `/healthz`,
/// `/readyz`, `/metrics`.
pub async fn run(
    listener: TcpListener,
    state: ChatState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let bus = state.bus.clone();
    axum::serve(
        listener.tap_io(parlor_edge::no_delay),
        parlor_edge::with_request_spans(router(state.clone()).merge(routes::ops::router(state)))
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    // Requests are done: their events go out before the process does.
    if let Some(bus) = bus {
        let _ = tokio::time::timeout(Duration::from_secs(5), bus.flush()).await;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Milliseconds since 2025-01-01, the epoch of Parlor ids.
pub(crate) const ID_EPOCH_MS: i64 = 1_735_689_600_000;

/// Time-ordered ids, like snowflakes: 41 bits of milliseconds, 10 of node, 12 of
/// sequence. Later ids compare greater, so they double as pagination cursors.
#[derive(Debug)]
pub struct IdGen {
    last: AtomicU64,
    /// This node's bits: ten, so up to 1,024 chat nodes make ids that never collide.
    node: u64,
}

/// Bits of an id: 41 of milliseconds since the epoch, 10 of node, 12 of sequence.
const ID_NODE_BITS: u64 = 10;
const ID_SEQ_BITS: u64 = 12;

impl IdGen {
    /// Ids for node `node` (taken modulo 1,024); a lone node is 0.
    pub fn new(node: u16) -> IdGen {
        IdGen {
            last: AtomicU64::new(0),
            node: u64::from(node) % (1 << ID_NODE_BITS),
        }
    }

    /// A new id, as whichever id type it is for (`MessageId`, `ChannelId`, ..., `i64`):
    /// time-ordered, and increasing on this node even if the clock steps back.
    pub fn next<T: From<i64>>(&self) -> T {
        let shift = ID_NODE_BITS + ID_SEQ_BITS;
        let seq_mask = (1u64 << ID_SEQ_BITS) - 1;
        let now = ((now_ms() - ID_EPOCH_MS).max(0) as u64) << shift;
        let mut prev = self.last.load(Ordering::Relaxed);
        loop {
            let prev_ms = prev >> shift << shift;
            let (ms, seq) = if now > prev_ms {
                (now, 0)
            } else if prev & seq_mask < seq_mask {
                (prev_ms, (prev & seq_mask) + 1)
            } else {
                // 4,096 ids in one millisecond: borrow the next one.
                (prev_ms + (1 << shift), 0)
            };
            let next = ms | (self.node << ID_SEQ_BITS) | seq;
            match self
                .last
                .compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return T::from(next as i64),
                Err(p) => prev = p,
            }
        }
    }
}

impl IdGen {
    /// A new id above `floor` (an id another node made), in a later millisecond than
    /// `floor`'s if need be; ids from this node stay above it from then on.
    pub fn after<T: From<i64>>(&self, floor: impl Into<i64>) -> T {
        let shift = ID_NODE_BITS + ID_SEQ_BITS;
        let floor = floor.into() as u64;
        // The last id of `floor`'s millisecond: the next one is in the millisecond after.
        let past = (floor >> shift << shift) | ((1 << shift) - 1);
        self.last.fetch_max(past, Ordering::Relaxed);
        self.next()
    }
}

impl Default for IdGen {
    fn default() -> IdGen {
        IdGen::new(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase() {
        let g = IdGen::default();
        let ids: Vec<i64> = (0..10_000).map(|_| g.next()).collect();
        assert!(ids.windows(2).all(|w| w[1] > w[0]));
        assert!(ids[0] > 0);
    }

    #[test]
    fn an_id_after_another_nodes_is_above_it() {
        let behind = IdGen::new(1);
        // An id from a node whose clock runs 5 s ahead, with the highest node bits.
        let ahead = ((now_ms() - ID_EPOCH_MS + 5_000) << 22) | (1023 << 12) | 7;
        let id: i64 = behind.after(ahead);
        assert!(id > ahead);
        assert!(behind.next::<i64>() > id, "and later ids stay above");
    }

    #[test]
    fn two_nodes_never_make_the_same_id() {
        let (a, b) = (IdGen::new(1), IdGen::new(2));
        let mut ids: Vec<i64> = (0..20_000)
            .flat_map(|_| [a.next::<i64>(), b.next::<i64>()])
            .collect();
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n);
    }
}
