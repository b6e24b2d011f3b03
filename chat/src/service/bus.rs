//! Chat across several processes: what one chat node does that the WebSocket sessions of
//! the others must see goes through Redis pub/sub, on one channel per cluster
//! (`<cluster>:chat:bus`). Each process publishes in order from one task and subscribes
//! once, handing what the others published to its own hub, so a message posted on one
//! node reaches clients connected to every node.
//!
//! Messages stay in Postgres, which all nodes share; the bus carries only the live events
//! and the session state derived from the store (who sees which channel, which sign-in
//! sessions ended). A node that misses bus traffic (Redis restarting) loses live events
//! only: its clients catch up by id over REST, as after any resume that cannot replay.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::ChatState;
use crate::model::{ChannelId, EventKind, GuildId, UserId};
use crate::service::hub::{Audience, Event};

/// Where the bus is, and who this node is on it.
#[derive(Debug, Clone)]
pub struct BusConfig {
    pub redis_url: String,
    /// Prefix of the Redis keys and channel, shared by the cluster's nodes.
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
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    from: String,
    msg: BusMsg,
}

/// This node's end of the bus.
#[derive(Debug)]
pub struct Bus {
    node: String,
    out: mpsc::UnboundedSender<String>,
}

fn channel(cluster: &str) -> String {
    format!("{cluster}:chat:bus")
}

impl Bus {
    /// Starts publishing and subscribing. Reconnects by itself when Redis comes back.
    pub async fn start(config: &BusConfig) -> Result<Arc<Bus>, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let conn = redis::aio::ConnectionManager::new(client).await?;
        let (out, rx) = mpsc::unbounded_channel();
        tokio::spawn(publish(conn, channel(&config.cluster), rx));
        Ok(Arc::new(Bus {
            node: config.node.clone(),
            out,
        }))
    }

    /// Publishes a message to the other nodes, after those sent before it.
    pub fn send(&self, msg: BusMsg) {
        let env = Envelope {
            from: self.node.clone(),
            msg,
        };
        if let Ok(text) = serde_json::to_string(&env) {
            let _ = self.out.send(text);
        }
    }
}

/// Publishes in order, one at a time; waits and retries while Redis is away.
async fn publish(
    mut conn: redis::aio::ConnectionManager,
    channel: String,
    mut rx: mpsc::UnboundedReceiver<String>,
) {
    while let Some(text) = rx.recv().await {
        for attempt in 0..5u32 {
            match redis::cmd("PUBLISH")
                .arg(&channel)
                .arg(&text)
                .query_async::<i64>(&mut conn)
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    warn!(error = %e, attempt, "chat bus: publish failed");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
    }
}

/// Hands what other nodes publish to this node's hub, for as long as the process runs;
/// subscribes again after Redis restarts.
pub async fn subscribe(state: ChatState, config: BusConfig) {
    let channel = channel(&config.cluster);
    loop {
        match listen(&state, &config, &channel).await {
            Ok(()) => warn!("chat bus: subscription ended; subscribing again"),
            Err(e) => warn!(error = %e, "chat bus: subscription failed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen(state: &ChatState, config: &BusConfig, channel: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(config.redis_url.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    info!(channel, "chat bus: subscribed");
    let mut messages = pubsub.on_message();
    while let Some(m) = messages.next().await {
        let Ok(text) = m.get_payload::<String>() else {
            continue;
        };
        let Ok(env) = serde_json::from_str::<Envelope>(&text) else {
            warn!("chat bus: malformed message");
            continue;
        };
        if env.from != config.node {
            state.metrics.bus_in.inc();
            apply(state, env.msg).await;
        }
    }
    Ok(())
}

/// Does here what another node did there.
async fn apply(state: &ChatState, msg: BusMsg) {
    match msg {
        BusMsg::Dispatch {
            audience,
            kind,
            data,
        } => state.hub.publish(&audience, &Event::raw(kind, data.into())),
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
