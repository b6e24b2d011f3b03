//! Presence and voice state of chat users.
//!
//! Every gateway session is one device of its user. While its connection lives, this
//! node refreshes the device's entry every third of `ttl`; when the connection drops
//! without a clean close the entry is left to expire after `grace` (a client that
//! reconnects and resumes in time never shows offline), and a clean close removes it at
//! once. A node that dies stops refreshing, so its users go offline within `ttl`. The
//! entries live in this process for a single node and in Redis for a cluster
//! ([`redis_store`]), with the same rules ([`crate::model::presence`]).
//!
//! Changes are coalesced: what changed for each user is announced once per
//! [`FLUSH`], as a delta (`presence_update` for that user) to the guilds they are in.
//! Voice state changes go out at once, to the members who can see the channel.

mod memory;
pub mod redis_store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::warn;

use crate::ChatState;
use crate::error::ChatError;
use crate::model::presence::{Pref, PresenceView, VoiceFlags, VoiceState, VoiceStateView};
use crate::model::{ChannelId, GuildId, UserId};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::store::guilds::Channel;

/// How often coalesced presence changes are announced.
pub const FLUSH: Duration = Duration::from_millis(250);

/// How long entries live.
#[derive(Debug, Clone, Copy)]
pub struct PresenceLimits {
    /// Without a refresh from its node (a node that died).
    pub ttl: Duration,
    /// After its connection dropped without a clean close.
    pub grace: Duration,
}

impl Default for PresenceLimits {
    fn default() -> PresenceLimits {
        PresenceLimits {
            ttl: Duration::from_secs(30),
            grace: Duration::from_secs(15),
        }
    }
}

enum Backend {
    Memory(memory::Memory),
    Redis(redis_store::RedisPresence),
}

/// A session connected to this node.
#[derive(Debug, Clone, Copy)]
struct Device {
    user: UserId,
    idle: bool,
}

pub struct Presence {
    backend: Backend,
    limits: PresenceLimits,
    /// This node's connected sessions, refreshed while connected.
    devices: Mutex<HashMap<String, Device>>,
    /// Changes waiting for the next flush, newest per user.
    pending: Mutex<HashMap<UserId, PresenceView>>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("limits", &self.limits)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> i64 {
    d.as_millis() as i64
}

/// Redis being away costs presence accuracy, never a request: log and go on.
fn soft<T: Default>(r: Result<T, redis::RedisError>) -> T {
    r.unwrap_or_else(|e| {
        warn!(error = %e, "presence store");
        T::default()
    })
}

impl Presence {
    pub fn in_memory(limits: PresenceLimits) -> Presence {
        Presence::with(Backend::Memory(memory::Memory::default()), limits)
    }

    pub fn in_redis(
        conn: redis::aio::ConnectionManager,
        cluster: &str,
        limits: PresenceLimits,
    ) -> Presence {
        Presence::with(
            Backend::Redis(redis_store::RedisPresence::new(conn, cluster)),
            limits,
        )
    }

    fn with(backend: Backend, limits: PresenceLimits) -> Presence {
        Presence {
            backend,
            limits,
            devices: Mutex::default(),
            pending: Mutex::default(),
        }
    }

    async fn put(&self, user: UserId, session: &str, idle: bool, expires: i64) {
        match &self.backend {
            Backend::Memory(m) => m.put_session(user, session, idle, expires),
            Backend::Redis(r) => soft(r.put_session(user, session, idle, expires).await),
        }
    }

    async fn recompute(&self, user: UserId) {
        let changed = match &self.backend {
            Backend::Memory(m) => m.recompute(user),
            Backend::Redis(r) => soft(r.recompute(user).await),
        };
        if let Some(v) = changed {
            lock(&self.pending).insert(user, v);
        }
    }

    /// What others see of these users, leaving out those offline.
    pub async fn views(&self, users: &[UserId]) -> Vec<PresenceView> {
        match &self.backend {
            Backend::Memory(m) => m.views(users),
            Backend::Redis(r) => soft(r.views(users).await),
        }
    }

    /// Whether any device of the user is connected (or dropped less than `grace` ago).
    pub async fn has_device(&self, user: UserId) -> bool {
        match &self.backend {
            Backend::Memory(m) => m.has_device(user),
            Backend::Redis(r) => soft(r.has_device(user).await),
        }
    }

    /// The voice states of a guild's voice channels.
    pub async fn voice_in(&self, guild: GuildId) -> Vec<VoiceState> {
        match &self.backend {
            Backend::Memory(m) => m.voice_in(guild),
            Backend::Redis(r) => soft(r.voice_in(guild).await),
        }
    }

    pub async fn voice_of(&self, user: UserId) -> Option<VoiceState> {
        match &self.backend {
            Backend::Memory(m) => m.voice_of(user),
            Backend::Redis(r) => soft(r.voice_of(user).await),
        }
    }

    async fn set_voice_state(&self, v: &VoiceState) -> Option<VoiceState> {
        match &self.backend {
            Backend::Memory(m) => m.set_voice(v.clone()),
            Backend::Redis(r) => soft(r.set_voice(v).await),
        }
    }

    pub async fn clear_voice(&self, user: UserId, session: &str) -> Option<VoiceState> {
        match &self.backend {
            Backend::Memory(m) => m.clear_voice(user, session),
            Backend::Redis(r) => soft(r.clear_voice(user, session).await),
        }
    }

    /// The session stops being this node's (it was resumed on another): no refresh from
    /// here, and nothing changes for others.
    pub fn forget(&self, session: &str) {
        lock(&self.devices).remove(session);
    }

    fn take_pending(&self) -> Vec<(UserId, PresenceView)> {
        lock(&self.pending).drain().collect()
    }
}

/// A session was opened or resumed on this node: its device is connected.
pub async fn connected(state: &ChatState, user: UserId, session: &str) {
    let p = &state.presence;
    let idle = {
        let mut d = lock(&p.devices);
        let dev = d
            .entry(session.to_owned())
            .or_insert(Device { user, idle: false });
        dev.idle
    };
    // The choice lives in the database; the store keeps a copy for its rules.
    match state.store.presence_pref(user).await {
        Ok(pref) => match &p.backend {
            Backend::Memory(m) => m.put_pref(user, pref),
            Backend::Redis(r) => soft(r.put_pref(user, &pref).await),
        },
        Err(e) => warn!(error = %e, "loading a presence choice"),
    }
    p.put(user, session, idle, crate::now_ms() + ms(p.limits.ttl))
        .await;
    p.recompute(user).await;
}

/// The device went idle (no input for a while) or came back.
pub async fn set_idle(state: &ChatState, user: UserId, session: &str, idle: bool) {
    let p = &state.presence;
    if let Some(d) = lock(&p.devices).get_mut(session) {
        d.idle = idle;
    }
    p.put(user, session, idle, crate::now_ms() + ms(p.limits.ttl))
        .await;
    p.recompute(user).await;
}

/// The user chose a status or custom status: kept, and shown on every device.
pub async fn set_pref(state: &ChatState, user: UserId, pref: Pref) -> Result<(), ChatError> {
    state.store.set_presence_pref(user, &pref).await?;
    let p = &state.presence;
    match &p.backend {
        Backend::Memory(m) => m.put_pref(user, pref),
        Backend::Redis(r) => soft(r.put_pref(user, &pref).await),
    }
    p.recompute(user).await;
    Ok(())
}

/// The connection dropped without a clean close: the device counts until `grace` has
/// passed without a resume.
pub async fn disconnected(state: &ChatState, user: UserId, session: &str) {
    let p = &state.presence;
    let Some(dev) = lock(&p.devices).remove(session) else {
        return;
    };
    p.put(
        user,
        session,
        dev.idle,
        crate::now_ms() + ms(p.limits.grace),
    )
    .await;
}

/// The session ended (a clean close, a logout): the device is gone now, with its voice
/// state.
pub async fn ended(state: &ChatState, user: UserId, session: &str) {
    let p = &state.presence;
    lock(&p.devices).remove(session);
    match &p.backend {
        Backend::Memory(m) => m.drop_session(user, session),
        Backend::Redis(r) => soft(r.drop_session(user, session).await),
    }
    gone(state, user, session).await;
}

/// After a device went: its voice state ends and others hear what changed.
async fn gone(state: &ChatState, user: UserId, session: &str) {
    if let Some(v) = state.presence.clear_voice(user, session).await {
        announce_left(state, &v);
    }
    state.presence.recompute(user).await;
}

/// Keeps this node's devices alive, expires those of connections that dropped and of
/// nodes that died, and announces coalesced changes. Stops when nothing but this task
/// holds the chat state.
async fn run(chat: ChatState) {
    let mut tick = tokio::time::interval(FLUSH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut refreshed = tokio::time::Instant::now();
    loop {
        tick.tick().await;
        if Arc::strong_count(&chat.presence) == 1 {
            return;
        }
        let p = chat.presence.clone();
        let now = crate::now_ms();
        if refreshed.elapsed() >= p.limits.ttl / 3 {
            refreshed = tokio::time::Instant::now();
            let devices: Vec<(UserId, String, bool, i64)> = lock(&p.devices)
                .iter()
                .map(|(s, d)| (d.user, s.clone(), d.idle, now + ms(p.limits.ttl)))
                .collect();
            match &p.backend {
                Backend::Memory(m) => {
                    for (u, s, idle, at) in &devices {
                        m.put_session(*u, s, *idle, *at);
                    }
                }
                Backend::Redis(r) => soft(r.put_sessions(&devices).await),
            }
        }
        let expired = match &p.backend {
            Backend::Memory(m) => m.pop_expired(now),
            Backend::Redis(r) => soft(r.pop_expired(now).await),
        };
        for (user, session) in expired {
            let still_here = lock(&p.devices).get(&session).copied();
            if let Some(d) = still_here {
                // This node's own connection outlived a stall: it stays.
                p.put(user, &session, d.idle, now + ms(p.limits.ttl)).await;
                continue;
            }
            gone(&chat, user, &session).await;
        }
        for (user, view) in p.take_pending() {
            announce(&chat, user, view).await;
        }
    }
}

/// Tells the user's guilds what others now see of them; the user's own sessions, which
/// are in those guilds, hear it with them (or alone, for a user in no guild).
async fn announce(state: &ChatState, user: UserId, view: PresenceView) {
    let guilds = match state.store.user_guilds(user).await {
        Ok(g) => g,
        Err(e) => {
            warn!(error = %e, "presence: the user's guilds");
            return;
        }
    };
    if guilds.is_empty() {
        state.dispatch(Audience::Users(vec![user]), Dispatch::PresenceUpdate(&view));
    }
    for g in guilds {
        state.dispatch(Audience::Guild(g), Dispatch::PresenceUpdate(&view));
    }
    // Friends hear it too (those who share a guild may hear it twice; it is idempotent).
    match state.store.friends(user).await {
        Ok(f) if !f.is_empty() => {
            state.dispatch(Audience::Users(f), Dispatch::PresenceUpdate(&view));
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "presence: the user's friends"),
    }
}

/// Two users became friends or stopped being: each hears how the other is now.
pub async fn relations_changed(state: &ChatState, a: UserId, b: UserId) {
    let views = state.presence.views(&[a, b]).await;
    for (to, about) in [(a, b), (b, a)] {
        let view = views
            .iter()
            .find(|v| v.user_id == about.to_string())
            .cloned()
            .unwrap_or(PresenceView {
                user_id: about.to_string(),
                status: crate::model::presence::Status::Offline,
                custom_status: None,
            });
        state.dispatch(Audience::Users(vec![to]), Dispatch::PresenceUpdate(&view));
    }
}

/// A user joined a guild: its members hear how the user is (a client asks the guild's
/// presences for the other way round).
pub async fn joined_guild(state: &ChatState, user: UserId, guild: GuildId) {
    for view in state.presence.views(&[user]).await {
        state.dispatch(Audience::Guild(guild), Dispatch::PresenceUpdate(&view));
    }
}

pub fn announce_left(state: &ChatState, v: &VoiceState) {
    state.dispatch(
        Audience::Channel {
            guild_id: v.guild_id,
            channel_id: v.channel_id,
        },
        Dispatch::VoiceStateUpdate(&VoiceStateView::left(v)),
    );
}

/// Joins a voice channel, changes what the user does there, or (with `None`) leaves
/// it. The caller has checked that the channel is a voice channel the user may connect
/// to; this refuses it when its cap is reached.
pub async fn set_voice(
    state: &ChatState,
    user: UserId,
    session: &str,
    to: Option<(&Channel, VoiceFlags)>,
) -> Result<(), ChatError> {
    let p = &state.presence;
    let Some((c, flags)) = to else {
        if let Some(v) = p.clear_voice(user, session).await {
            announce_left(state, &v);
        }
        return Ok(());
    };
    let before = p.voice_of(user).await;
    let moving = before.as_ref().is_none_or(|b| b.channel_id != c.id);
    if moving {
        check_room(state, c.guild_id, c.id, c.user_limit, user).await?;
    }
    // A moderator's mute is the member's standing in the guild: looked up on joining,
    // kept while the user stays (and changed by the moderator).
    let mute = match &before {
        Some(b) if !moving => b.mute,
        _ => state
            .store
            .member(c.guild_id, user)
            .await?
            .is_some_and(|m| m.server_mute),
    };
    let v = VoiceState {
        guild_id: c.guild_id,
        channel_id: c.id,
        user_id: user,
        session_id: session.to_owned(),
        mute,
        flags,
    };
    put_voice(state, &v).await;
    Ok(())
}

/// Stores a voice state and tells who can see the channel; if it replaced one in another
/// channel, that channel's viewers hear that the user left.
pub async fn put_voice(state: &ChatState, v: &VoiceState) {
    let replaced = state.presence.set_voice_state(v).await;
    if let Some(old) = replaced.filter(|o| o.channel_id != v.channel_id) {
        announce_left(state, &old);
    }
    state.dispatch(
        Audience::Channel {
            guild_id: v.guild_id,
            channel_id: v.channel_id,
        },
        Dispatch::VoiceStateUpdate(&VoiceStateView::of(v)),
    );
}

/// Refuses a voice channel whose cap its occupants (other than `user`) already fill.
pub async fn check_room(
    state: &ChatState,
    guild: GuildId,
    channel: ChannelId,
    limit: Option<i64>,
    user: UserId,
) -> Result<(), ChatError> {
    let Some(limit) = limit else { return Ok(()) };
    let inside = state
        .presence
        .voice_in(guild)
        .await
        .iter()
        .filter(|v| v.channel_id == channel && v.user_id != user)
        .count() as i64;
    if inside >= limit {
        return Err(ChatError::new(
            axum::http::StatusCode::FORBIDDEN,
            "channel_full",
            format!("this voice channel is full ({inside} of {limit})"),
        ));
    }
    Ok(())
}

/// The voice states in the guild's channels that `visible` contains.
pub async fn voice_views(
    state: &ChatState,
    guild: GuildId,
    visible: &std::collections::HashSet<ChannelId>,
) -> Vec<VoiceStateView> {
    state
        .presence
        .voice_in(guild)
        .await
        .iter()
        .filter(|v| visible.contains(&v.channel_id))
        .map(VoiceStateView::of)
        .collect()
}

/// Starts the task behind [`run`].
pub fn spawn(state: &ChatState) {
    tokio::spawn(run(state.clone()));
}
