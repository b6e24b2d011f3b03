//! Routes dispatch events to chat WebSocket sessions, and keeps each session's replay
//! buffer so a client that reconnects can resume without losing or repeating an event.
//!
//! A session outlives its connection: while detached it keeps collecting events, up to
//! the replay capacity, for `session_timeout`. Each session numbers its events; the
//! connection writes them in that order. Ephemeral events (typing, presence) are the
//! only ones ever shed: when a consumer falls behind they are not queued at all, and
//! they are never replayed. A session whose unsent backlog would push a message out of
//! its replay buffer is closed instead and cannot be resumed; its client catches up over
//! REST with `after=<last id>`.
//!
//! The numbering, replay, shedding and resume are the shared session layer's
//! ([`parlor_edge::session`]); this module adds who receives what.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use parlor_edge::{Numbered, Outbox, OutboxLimits};
use serde::{Deserialize, Serialize};

use crate::model::{ChannelId, EventKind, GuildId, UserId};
use crate::store::guilds::Channel;

pub use parlor_edge::{Next, ResumeError};

/// Who receives an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Audience {
    /// Members of the guild who can view the channel.
    Channel {
        guild_id: GuildId,
        channel_id: ChannelId,
    },
    /// Every member of the guild.
    Guild(GuildId),
    /// These users (DM recipients, or one user's own sessions).
    Users(Vec<UserId>),
    /// One session (its ready event).
    Session(String),
}

/// Who receives the events of a channel.
pub fn channel_audience(c: &Channel) -> Audience {
    if c.is_dm() {
        return Audience::Users(c.recipients.clone());
    }
    Audience::Channel {
        guild_id: c.guild_id,
        channel_id: c.id,
    }
}

/// One dispatch, serialized once for every recipient.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    /// The JSON of `d`.
    pub data: Arc<str>,
    /// Typing and presence: dropped first for slow consumers, never replayed.
    pub ephemeral: bool,
    /// Its entry in the cluster's event stream (`p` in the frame), when it came through
    /// one: a client resuming on another node says the last it saw.
    pub position: Option<Arc<str>>,
}

impl Event {
    pub fn new(kind: EventKind, data: &impl Serialize) -> Event {
        Event {
            kind,
            data: serde_json::to_string(data)
                .unwrap_or_else(|_| "null".into())
                .into(),
            ephemeral: kind.is_ephemeral(),
            position: None,
        }
    }

    /// An event whose `d` is already JSON (from another node).
    pub fn raw(kind: EventKind, data: Arc<str>, position: Option<Arc<str>>) -> Event {
        Event {
            kind,
            data,
            ephemeral: kind.is_ephemeral(),
            position,
        }
    }

    /// This event shared by the sessions it goes to, each numbering it as it writes it.
    fn shared(&self) -> Arc<dyn Numbered> {
        Arc::new(self.clone())
    }

    fn frame(&self, seq: u64) -> String {
        // Positions are stream ids (`<ms>-<n>`): nothing in them needs escaping.
        match &self.position {
            Some(p) => format!(
                "{{\"op\":\"dispatch\",\"t\":\"{}\",\"s\":{seq},\"p\":\"{p}\",\"d\":{}}}",
                self.kind.as_str(),
                self.data
            ),
            None => format!(
                "{{\"op\":\"dispatch\",\"t\":\"{}\",\"s\":{seq},\"d\":{}}}",
                self.kind.as_str(),
                self.data
            ),
        }
    }
}

impl Numbered for Event {
    fn render(&self, seq: u64) -> String {
        self.frame(seq)
    }
}

/// Sizes and timeouts of sessions.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    /// Events kept for resume, per session.
    pub replay: usize,
    /// Unsent events beyond which ephemeral ones are no longer queued.
    pub shed_after: usize,
    /// How long a detached session waits for its client to resume.
    pub session_timeout: Duration,
}

impl Default for HubLimits {
    fn default() -> HubLimits {
        HubLimits {
            replay: 4096,
            shed_after: 256,
            session_timeout: Duration::from_secs(120),
        }
    }
}

/// A chat session: a user's subscription to events, across reconnects.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub user_id: UserId,
    /// The sign-in session whose access token opened it; `None` for a bot token.
    pub auth: Option<String>,
    /// Channels this user can view, per guild.
    visible: Mutex<HashMap<GuildId, HashSet<ChannelId>>>,
    /// Numbered events, the replay buffer and the connection writing them.
    pub outbox: Outbox,
    /// The number of the session's `ready` until it is written; 0 after.
    ready_seq: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Held for a lookup or an update, never across an await.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Session {
    /// Frames not yet written to the connection of `generation`.
    pub fn take(&self, generation: u64) -> Next {
        self.outbox.take(generation)
    }

    /// Queues the session's `ready`.
    pub fn push_ready(&self, ev: &Event) {
        if let Some(seq) = self.outbox.push(false, |seq| ev.frame(seq)) {
            self.ready_seq.store(seq, Ordering::Relaxed);
        }
    }

    /// Once the frames taken last are written: `ready` and what came before it leave the
    /// replay buffer. No resume can ask for them (the session's id is in `ready`), and a
    /// `ready` holds the user's guilds and presences: tens of kilobytes per idle session.
    pub fn forget_ready(&self) {
        let seq = self.ready_seq.load(Ordering::Relaxed);
        if seq > 0 && self.outbox.ack(seq) {
            self.ready_seq.store(0, Ordering::Relaxed);
        }
    }

    /// Queues one event (shared by its recipients: [`Event::shared`]), if the session
    /// can see its channel.
    fn push(
        &self,
        ev: &Arc<dyn Numbered>,
        ephemeral: bool,
        audience_channel: Option<(GuildId, ChannelId)>,
    ) {
        if let Some((guild, channel)) = audience_channel
            && !lock(&self.visible)
                .get(&guild)
                .is_some_and(|v| v.contains(&channel))
        {
            return;
        }
        self.outbox.push_shared(ephemeral, ev);
    }

    /// Which guilds the session receives events of.
    pub fn guilds(&self) -> Vec<GuildId> {
        lock(&self.visible).keys().copied().collect()
    }

    pub fn seq(&self) -> u64 {
        self.outbox.seq()
    }
}

#[derive(Debug, Default)]
struct Registry {
    sessions: HashMap<String, Arc<Session>>,
    by_guild: HashMap<GuildId, HashSet<String>>,
    by_user: HashMap<UserId, HashSet<String>>,
}

#[derive(Debug)]
pub struct Hub {
    reg: RwLock<Registry>,
    pub limits: HubLimits,
}

fn read(r: &RwLock<Registry>) -> std::sync::RwLockReadGuard<'_, Registry> {
    r.read().unwrap_or_else(|p| p.into_inner())
}

fn write(r: &RwLock<Registry>) -> std::sync::RwLockWriteGuard<'_, Registry> {
    r.write().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    pub fn new(limits: HubLimits) -> Hub {
        Hub {
            reg: RwLock::default(),
            limits,
        }
    }

    /// Opens a session attached to a new connection; returns it with its generation.
    pub fn open(
        &self,
        id: String,
        user_id: UserId,
        auth: Option<String>,
        visible: HashMap<GuildId, HashSet<ChannelId>>,
    ) -> (Arc<Session>, u64) {
        let session = self.detached_session(id, user_id, auth, visible, None);
        self.register(session.clone());
        (session, 1)
    }

    fn outbox_limits(&self) -> OutboxLimits {
        OutboxLimits {
            replay: self.limits.replay,
            shed_after: self.limits.shed_after,
            number_ephemeral: true,
        }
    }

    /// A session not yet registered: it receives nothing until [`Hub::register`]. With
    /// `after`, it goes on from a session of another node whose client has every frame up
    /// to that number. Its connection has generation 1.
    pub fn detached_session(
        &self,
        id: String,
        user_id: UserId,
        auth: Option<String>,
        visible: HashMap<GuildId, HashSet<ChannelId>>,
        after: Option<u64>,
    ) -> Arc<Session> {
        let limits = self.outbox_limits();
        Arc::new(Session {
            id,
            user_id,
            auth,
            visible: Mutex::new(visible),
            outbox: match after {
                Some(seq) => Outbox::continuing(limits, seq),
                None => Outbox::new(limits),
            },
            ready_seq: AtomicU64::new(0),
        })
    }

    /// Whether a session is registered here.
    pub fn has(&self, id: &str) -> bool {
        read(&self.reg).sessions.contains_key(id)
    }

    /// Routes events to a session from now on.
    pub fn register(&self, session: Arc<Session>) {
        let id = session.id.clone();
        let user_id = session.user_id;
        let guilds = session.guilds();
        let mut reg = write(&self.reg);
        for g in guilds {
            reg.by_guild.entry(g).or_default().insert(id.clone());
        }
        reg.by_user.entry(user_id).or_default().insert(id.clone());
        if let Some(old) = reg.sessions.insert(id, session) {
            old.outbox.end();
        }
    }

    /// The session moved to another node: its connection here, if any, is told so
    /// ([`Next::Replaced`]) and it is forgotten.
    pub fn moved_away(&self, id: &str) {
        let mut reg = write(&self.reg);
        if let Some(s) = reg.sessions.get(id).cloned() {
            drop_session(&mut reg, id);
            s.outbox.replace();
        }
    }

    /// Attaches a new connection to a detached (or dying) session, to write every event
    /// after `seq`.
    pub fn resume(
        &self,
        id: &str,
        user_id: UserId,
        seq: u64,
    ) -> Result<(Arc<Session>, u64), ResumeError> {
        let session = read(&self.reg)
            .sessions
            .get(id)
            .cloned()
            .ok_or(ResumeError::Invalid)?;
        if session.user_id != user_id {
            return Err(ResumeError::Invalid);
        }
        let (generation, _) = session.outbox.resume(seq)?;
        Ok((session, generation))
    }

    /// The connection of `generation` is gone; the session waits for a resume.
    pub fn detach(&self, session: &Session, generation: u64) {
        session.outbox.detach(generation);
    }

    /// Ends a session for good on a clean close by the connection of `generation`, unless
    /// another connection has resumed it since. True if it ended.
    pub fn close(&self, session: &Session, generation: u64) -> bool {
        if !session.outbox.is_current(generation) {
            return false;
        }
        let mut reg = write(&self.reg);
        drop_session(&mut reg, &session.id);
        session.outbox.end();
        true
    }

    /// Ends the user's sessions whose sign-in session matches: they are removed at once,
    /// and a connection writing one closes. Returns the ids of those that ended.
    pub fn end_sessions_of(&self, user_id: UserId, matches: impl Fn(&str) -> bool) -> Vec<String> {
        let mut reg = write(&self.reg);
        let ids: Vec<String> = user_sessions(&reg, user_id)
            .into_iter()
            .filter(|id| {
                reg.sessions
                    .get(id)
                    .and_then(|s| s.auth.as_deref())
                    .is_some_and(&matches)
            })
            .collect();
        for id in &ids {
            if let Some(s) = reg.sessions.get(id) {
                s.outbox.end();
            }
            drop_session(&mut reg, id);
        }
        ids
    }

    /// Ends sessions detached for longer than the timeout; returns the users who have
    /// no session left.
    pub fn sweep(&self, now: Instant) -> Vec<UserId> {
        let expired: Vec<String> = read(&self.reg)
            .sessions
            .values()
            .filter(|s| {
                s.outbox
                    .detached_longer_than(now, self.limits.session_timeout)
            })
            .map(|s| s.id.clone())
            .collect();
        if expired.is_empty() {
            return Vec::new();
        }
        let mut reg = write(&self.reg);
        let mut gone = Vec::new();
        for id in expired {
            if let Some(user) = drop_session(&mut reg, &id)
                && !reg.by_user.contains_key(&user)
            {
                gone.push(user);
            }
        }
        gone
    }

    /// Whether the user has any session (for presence).
    pub fn online(&self, user_id: UserId) -> bool {
        read(&self.reg).by_user.contains_key(&user_id)
    }

    pub fn session_count(&self) -> usize {
        read(&self.reg).sessions.len()
    }

    /// Sends an event to one unregistered session, if it is in the audience.
    pub fn publish_to(session: &Session, audience: &Audience, ev: &Event) {
        let (shared, eph) = (ev.shared(), ev.ephemeral);
        match audience {
            Audience::Channel {
                guild_id,
                channel_id,
            } => {
                if lock(&session.visible).contains_key(guild_id) {
                    session.push(&shared, eph, Some((*guild_id, *channel_id)));
                }
            }
            Audience::Guild(g) => {
                if lock(&session.visible).contains_key(g) {
                    session.push(&shared, eph, None);
                }
            }
            Audience::Users(users) => {
                if users.contains(&session.user_id) {
                    session.push(&shared, eph, None);
                }
            }
            Audience::Session(id) => {
                if *id == session.id {
                    session.push(&shared, eph, None);
                }
            }
        }
    }

    /// Sends an event to its audience.
    pub fn publish(&self, audience: &Audience, ev: &Event) {
        // Built once for every recipient: each session numbers it as it writes it.
        let (shared, eph) = (ev.shared(), ev.ephemeral);
        let reg = read(&self.reg);
        let each = |ids: Option<&HashSet<String>>, filter: Option<(GuildId, ChannelId)>| {
            for id in ids.into_iter().flatten() {
                if let Some(s) = reg.sessions.get(id) {
                    s.push(&shared, eph, filter);
                }
            }
        };
        match audience {
            Audience::Channel {
                guild_id,
                channel_id,
            } => each(reg.by_guild.get(guild_id), Some((*guild_id, *channel_id))),
            Audience::Guild(g) => each(reg.by_guild.get(g), None),
            Audience::Users(users) => {
                for u in users {
                    each(reg.by_user.get(u), None);
                }
            }
            Audience::Session(id) => {
                if let Some(s) = reg.sessions.get(id) {
                    s.push(&shared, eph, None);
                }
            }
        }
    }

    /// The user's sessions now see these channels of the guild (or, with `None`, are no
    /// longer in it). Returns what they saw before.
    pub fn set_visible(
        &self,
        user_id: UserId,
        guild_id: GuildId,
        channels: Option<HashSet<ChannelId>>,
    ) -> Option<HashSet<ChannelId>> {
        let mut before = None;
        let mut reg = write(&self.reg);
        for id in user_sessions(&reg, user_id) {
            let Some(s) = reg.sessions.get(&id).cloned() else {
                continue;
            };
            let mut visible = lock(&s.visible);
            match &channels {
                Some(c) => {
                    let old = visible.insert(guild_id, c.clone());
                    before = before.or(old);
                    reg.by_guild.entry(guild_id).or_default().insert(id);
                }
                None => {
                    let old = visible.remove(&guild_id);
                    before = before.or(old);
                    if let Some(set) = reg.by_guild.get_mut(&guild_id) {
                        set.remove(&id);
                        if set.is_empty() {
                            reg.by_guild.remove(&guild_id);
                        }
                    }
                }
            }
        }
        before
    }

    /// Users with a session in the guild.
    pub fn users_in_guild(&self, guild_id: GuildId) -> Vec<UserId> {
        let reg = read(&self.reg);
        let mut users: Vec<UserId> = reg
            .by_guild
            .get(&guild_id)
            .into_iter()
            .flatten()
            .filter_map(|id| reg.sessions.get(id).map(|s| s.user_id))
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }
}

/// The ids of a user's sessions.
fn user_sessions(reg: &Registry, user_id: UserId) -> Vec<String> {
    reg.by_user
        .get(&user_id)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

/// Removes a session from the registry; its user.
fn drop_session(reg: &mut Registry, id: &str) -> Option<UserId> {
    let s = reg.sessions.remove(id)?;
    for g in s.guilds() {
        if let Some(set) = reg.by_guild.get_mut(&g) {
            set.remove(id);
            if set.is_empty() {
                reg.by_guild.remove(&g);
            }
        }
    }
    if let Some(set) = reg.by_user.get_mut(&s.user_id) {
        set.remove(id);
        if set.is_empty() {
            reg.by_user.remove(&s.user_id);
        }
    }
    Some(s.user_id)
}

#[cfg(test)]
#[path = "hub_tests.rs"]
mod tests;
