//! Chat across several processes: what one chat node does that the WebSocket sessions of
//! the others must see goes through one Redis stream per cluster
//! (`<cluster>:chat:stream`). Each process appends in order from one task and reads the
//! stream from one task, handing every entry to its own hub, so a message posted on one
//! node reaches clients connected to every node.
//!
//! Dispatches reach the sessions of the node that sent them through the stream too, so
//! every node delivers them in stream order, each frame carrying its entry id as `p`. A
//! client whose node dies resumes on another with the last `p` it saw
//! ([`Bus::adopt`]): that node replays the stream after it, so nothing is lost or
//! repeated. The stream keeps entries for as long as a session may wait for a resume.
//!
//! Messages stay in Postgres, which all nodes share; the stream carries only the live
//! events and the session state derived from the store (who sees which channel, which
//! sign-in sessions ended). While Redis is away a node delivers its own dispatches
//! directly and the others miss them: their clients catch up by id over REST, as after
//! any resume that cannot replay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::ChatState;
use crate::model::{ChannelId, EventKind, GuildId, UserId};
use crate::service::hub::{Audience, Event, Hub, ResumeError, Session};

/// Where the bus is, and who this node is on it.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub redis_url: String,
    /// Prefix of the Redis keys, shared by the cluster's nodes.
    pub cluster: String,
    /// This node's name, so it skips its own messages.
    pub node: String,
}

/// What crosses between chat nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "m", rename_all = "snake_case")]
pub enum BusMsg {
    /// A dispatch to deliver to the audience's sessions on every node.
    Dispatch {
        audience: Audience,
        kind: EventKind,
        /// The JSON of `d`.
        data: String,
    },
    /// A user's sessions now see these channels of a guild (`None`: not in it).
    Visible {
        user: UserId,
        guild: GuildId,
        channels: Option<HashSet<ChannelId>>,
    },
    /// Channels, roles or members of a guild changed: every node recomputes what its
    /// sessions in it may see.
    Refresh { guild: GuildId },
    /// Sign-in sessions ended (logout, password change): their tokens stop working and
    /// their sockets close, on every node.
    Ended {
        user: UserId,
        sessions: Vec<String>,
        until: i64,
    },
    /// A gateway session was resumed on the sending node: wherever else it is, it ends.
    Moved { session: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: String,
    /// The sender delivered this dispatch itself (Redis was away when it was sent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    delivered: bool,
    msg: BusMsg,
}

/// One field per entry.
const FIELD: &str = "e";
/// Entries read or replayed per call.
const BATCH: usize = 512;
/// How long a read waits for new entries; a resume waits at most this long to be
/// adopted.
const BLOCK_MS: u64 = 100;

/// What the appending task does next.
enum Outgoing {
    /// Appends an entry; for a dispatch, with what to deliver here if Redis is away.
    Entry {
        envelope: Envelope,
        local: Option<(Audience, Event)>,
    },
    /// Says when everything sent before has been appended (or given up on).
    Flush(oneshot::Sender<()>),
}

/// A session resumed here that another node held, waiting for the stream after `from`.
struct Adoption {
    session: Arc<Session>,
    from: String,
    done: oneshot::Sender<Result<(), ResumeError>>,
}

/// This node's end of the bus.
pub struct Bus {
    node: String,
    cluster: String,
    out: mpsc::UnboundedSender<Outgoing>,
    adopt: mpsc::UnboundedSender<Adoption>,
    adoptions: std::sync::Mutex<Option<mpsc::UnboundedReceiver<Adoption>>>,
    conn: redis::aio::ConnectionManager,
    /// The last entry the reader has handed out.
    cursor: std::sync::Mutex<Option<Arc<str>>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("node", &self.node)
            .field("cluster", &self.cluster)
            .finish()
    }
}

fn stream(cluster: &str) -> String {
    format!("{cluster}:chat:stream")
}

fn session_key(cluster: &str, id: &str) -> String {
    format!("{cluster}:chat:session:{id}")
}

/// How long a session's record lives without being refreshed: its connection's
/// heartbeats refresh it every quarter of this.
pub const SESSION_RECORD_TTL: Duration = Duration::from_secs(3600);

/// A stream id, `<ms>-<n>`, as numbers that order like the ids.
fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (ms, n) = id.split_once('-')?;
    Some((ms.parse().ok()?, n.parse().ok()?))
}

impl Bus {
    /// Connects; appends and reads once [`subscribe`] runs. Reconnects by itself when
    /// Redis comes back. The stream keeps entries for `retention`.
    pub async fn start(
        config: &BusConfig,
        hub: Arc<Hub>,
        retention: Duration,
    ) -> Result<Arc<Bus>, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        let (out, rx) = mpsc::unbounded_channel();
        let (adopt, adoptions) = mpsc::unbounded_channel();
        tokio::spawn(append(
            conn.clone(),
            stream(&config.cluster),
            retention,
            hub,
            rx,
        ));
        Ok(Arc::new(Bus {
            node: config.node.clone(),
            cluster: config.cluster.clone(),
            out,
            adopt,
            adoptions: std::sync::Mutex::new(Some(adoptions)),
            conn,
            cursor: std::sync::Mutex::new(None),
        }))
    }

    fn envelope(&self, msg: BusMsg) -> Envelope {
        Envelope {
            from: self.node.clone(),
            delivered: false,
            msg,
        }
    }

    /// Sends a message to the other nodes, after those sent before it.
    pub fn send(&self, msg: BusMsg) {
        let _ = self.out.send(Outgoing::Entry {
            envelope: self.envelope(msg),
            local: None,
        });
    }

    /// Sends a dispatch to its audience on every node, this one included: here too it is
    /// delivered when read back from the stream, in stream order.
    pub fn dispatch(&self, audience: Audience, ev: Event) {
        let msg = BusMsg::Dispatch {
            audience: audience.clone(),
            kind: ev.kind,
            data: ev.data.to_string(),
        };
        let _ = self.out.send(Outgoing::Entry {
            envelope: self.envelope(msg),
            local: Some((audience, ev)),
        });
    }

    /// Waits until everything sent so far is in the stream (or given up on), so that a
    /// node stopping cleanly takes no event with it: a message it stored is dispatched.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.out.send(Outgoing::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The last stream entry handed out to this node's sessions: a session opened now
    /// receives what comes after it.
    pub fn position(&self) -> Option<Arc<str>> {
        self.cursor.lock().ok().and_then(|c| c.clone())
    }

    fn set_position(&self, id: &str) {
        if let Ok(mut c) = self.cursor.lock() {
            *c = Some(id.into());
        }
    }

    /// Records which user a gateway session belongs to, so that another node may take
    /// it over. Best effort: without the record the session can only be resumed here.
    pub async fn record_session(&self, id: &str, user: UserId) {
        let mut conn = self.conn.clone();
        let r = redis::cmd("SET")
            .arg(session_key(&self.cluster, id))
            .arg(user.0)
            .arg("PX")
            .arg(SESSION_RECORD_TTL.as_millis() as u64)
            .query_async::<()>(&mut conn)
            .await;
        if let Err(e) = r {
            warn!(error = %e, "chat bus: recording a session");
        }
    }

    /// Takes over a session another node held: checks that it was `user`'s and that the
    /// stream still holds everything after `from`, then, once the reader has replayed
    /// those entries into it, routes events to it from there on. Other nodes drop their
    /// copy.
    pub async fn adopt(
        &self,
        session: Arc<Session>,
        user: UserId,
        from: &str,
    ) -> Result<(), ResumeError> {
        parse_id(from).ok_or(ResumeError::Invalid)?;
        let mut conn = self.conn.clone();
        let owner: Option<i64> = redis::cmd("GET")
            .arg(session_key(&self.cluster, &session.id))
            .query_async(&mut conn)
            .await
            .map_err(|_| ResumeError::Invalid)?;
        if owner != Some(user.0) {
            return Err(ResumeError::Invalid);
        }
        let id = session.id.clone();
        let (done, wait) = oneshot::channel();
        self.adopt
            .send(Adoption {
                session,
                from: from.to_owned(),
                done,
            })
            .map_err(|_| ResumeError::Invalid)?;
        wait.await.map_err(|_| ResumeError::Invalid)??;
        self.send(BusMsg::Moved { session: id });
        Ok(())
    }
}

/// Appends in order, one at a time; waits and retries while Redis is away. A dispatch
/// that cannot be appended at once is delivered here directly.
async fn append(
    mut conn: redis::aio::ConnectionManager,
    key: String,
    retention: Duration,
    hub: Arc<Hub>,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(next) = rx.recv().await {
        let (mut envelope, mut local) = match next {
            Outgoing::Entry { envelope, local } => (envelope, local),
            Outgoing::Flush(done) => {
                let _ = done.send(());
                continue;
            }
        };
        for attempt in 0..5u32 {
            let Ok(text) = serde_json::to_string(&envelope) else {
                break;
            };
            let min_id =
                (crate::now_ms().max(0) as u64).saturating_sub(retention.as_millis() as u64);
            match redis::cmd("XADD")
                .arg(&key)
                .arg("MINID")
                .arg("~")
                .arg(min_id)
                .arg("*")
                .arg(FIELD)
                .arg(&text)
                .query_async::<String>(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, attempt, "chat bus: append failed");
                    if let Some((audience, ev)) = local.take() {
                        hub.publish(&audience, &ev);
                        envelope.delivered = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }
}

/// Hands every stream entry to this node's hub, for as long as the process runs; reads
/// on after Redis restarts.
pub async fn subscribe(state: ChatState, config: BusConfig) {
    let Some(bus) = state.bus.clone() else { return };
    let Some(mut adoptions) = bus.adoptions.lock().ok().and_then(|mut a| a.take()) else {
        return;
    };
    let key = stream(&config.cluster);
    let mut cursor: Option<String> = None;
    loop {
        if let Err(e) = read(&state, &bus, &config, &key, &mut cursor, &mut adoptions).await {
            warn!(error = %e, "chat bus: reading the stream failed; retrying");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Reads from `cursor` (the end of the stream the first time), taking in adoptions
/// between reads, until Redis fails.
async fn read(
    state: &ChatState,
    bus: &Bus,
    config: &BusConfig,
    key: &str,
    cursor: &mut Option<String>,
    adoptions: &mut mpsc::UnboundedReceiver<Adoption>,
) -> redis::RedisResult<()> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    if cursor.is_none() {
        let last: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut conn)
            .await?;
        let last = last.ids.first().map_or("0-0".into(), |e| e.id.clone());
        bus.set_position(&last);
        *cursor = Some(last);
        info!(stream = key, "chat bus: reading");
    }
    loop {
        while let Ok(a) = adoptions.try_recv() {
            let r = replay(&mut conn, key, cursor.as_deref().unwrap_or("0-0"), &a).await;
            if r.is_ok() {
                state.hub.register(a.session.clone());
            }
            let _ = a.done.send(r);
        }
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK_MS)
            .arg("STREAMS")
            .arg(key)
            .arg(cursor.as_deref().unwrap_or("0-0"))
            .query_async(&mut conn)
            .await?;
        for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
            *cursor = Some(entry.id.clone());
            if let Some(env) = envelope(&entry) {
                apply(state, &config.node, &entry.id, env).await;
            }
            bus.set_position(&entry.id);
        }
    }
}

fn envelope(entry: &StreamId) -> Option<Envelope> {
    let text: String = entry.get(FIELD)?;
    match serde_json::from_str(&text) {
        Ok(env) => Some(env),
        Err(e) => {
            warn!(error = %e, "chat bus: malformed entry");
            None
        }
    }
}

/// Replays into an adopted session the dispatches after `from` up to `until` (what the
/// reader has handed out so far). Ephemeral events are stale and not replayed.
async fn replay(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    until: &str,
    a: &Adoption,
) -> Result<(), ResumeError> {
    let failed = |e: redis::RedisError| {
        warn!(error = %e, "chat bus: replaying for a resume");
        ResumeError::Invalid
    };
    // Entries after `from` that were trimmed (or a stream that is gone, Redis having
    // restarted empty) cannot be replayed.
    let info: std::collections::HashMap<String, redis::Value> = match redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query_async(conn)
        .await
    {
        Ok(info) => info,
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError) => {
            return Err(ResumeError::TooOld);
        }
        Err(e) => return Err(failed(e)),
    };
    let deleted = info
        .get("max-deleted-entry-id")
        .and_then(|v| redis::from_redis_value_ref::<String>(v).ok())
        .and_then(|id| parse_id(&id));
    if deleted.is_none_or(|d| Some(d) > parse_id(&a.from)) {
        return Err(ResumeError::TooOld);
    }
    let mut from = a.from.clone();
    loop {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(format!("({from}"))
            .arg(until)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(conn)
            .await
            .map_err(failed)?;
        let n = page.ids.len();
        for entry in &page.ids {
            if let Some(Envelope {
                msg:
                    BusMsg::Dispatch {
                        audience,
                        kind,
                        data,
                    },
                ..
            }) = envelope(entry)
                && !kind.is_ephemeral()
            {
                let ev = Event::raw(kind, data.into(), Some(entry.id.as_str().into()));
                Hub::publish_to(&a.session, &audience, &ev);
            }
        }
        match page.ids.last() {
            Some(last) if n == BATCH => from = last.id.clone(),
            _ => return Ok(()),
        }
    }
}

/// Does here what a node (this one, for its dispatches) did.
async fn apply(state: &ChatState, node: &str, id: &str, env: Envelope) {
    let own = env.from == node;
    if !own {
        state.metrics.bus_in.inc();
    }
    match env.msg {
        BusMsg::Dispatch {
            audience,
            kind,
            data,
        } => {
            if !(own && env.delivered) {
                let ev = Event::raw(kind, data.into(), Some(id.into()));
                state.hub.publish(&audience, &ev);
            }
        }
        // The sender applied the rest itself when it sent them.
        _ if own => {}
        BusMsg::Visible {
            user,
            guild,
            channels,
        } => {
            state.hub.set_visible(user, guild, channels);
        }
        BusMsg::Refresh { guild } => {
            if let Err(e) = crate::service::visibility::refresh_guild(state, guild).await {
                warn!(error = ?e, "chat bus: refreshing a guild");
            }
        }
        BusMsg::Ended {
            user,
            sessions,
            until,
        } => state.sessions_ended_here(user, &sessions, until).await,
        BusMsg::Moved { session } => {
            state.hub.moved_away(&session);
            state.presence.forget(&session);
        }
    }
}

/// Claims this node's id bits: a counter in Redis, so the chat nodes of a cluster take
/// different ones (1,024 starts go by before one comes round again).
pub async fn claim_id_node(config: &BusConfig) -> Result<u16, redis::RedisError> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let n: i64 = redis::cmd("INCR")
        .arg(format!("{}:chat:id-node", config.cluster))
        .query_async(&mut conn)
        .await?;
    Ok((n.rem_euclid(1024)) as u16)
}
