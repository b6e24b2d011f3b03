//! Presence and voice state kept in this process: for a chat server that is the only
//! node (`parlor serve`). The same rules as the Redis store, on plain maps.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use crate::model::presence::{Pref, PresenceView, Status, VoiceState, effective};
use crate::model::{GuildId, UserId};

#[derive(Debug, Default)]
struct User {
    pref: Pref,
    /// Session id → (idle, expires at, ms).
    sessions: HashMap<String, (bool, i64)>,
    /// What others saw last (absent: offline).
    shown: Option<(Status, Option<String>)>,
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<UserId, User>,
    /// (expires at, user, session), for popping in order.
    expiry: BTreeSet<(i64, UserId, String)>,
    voice: HashMap<UserId, VoiceState>,
}

#[derive(Debug, Default)]
pub struct Memory {
    state: Mutex<State>,
}

impl Memory {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    pub fn put_session(&self, user: UserId, session: &str, idle: bool, expires: i64) {
        self.with(|s| {
            let u = s.users.entry(user).or_default();
            if let Some((_, old)) = u.sessions.insert(session.to_owned(), (idle, expires)) {
                s.expiry.remove(&(old, user, session.to_owned()));
            }
            s.expiry.insert((expires, user, session.to_owned()));
        })
    }

    pub fn drop_session(&self, user: UserId, session: &str) {
        self.with(|s| {
            if let Some(u) = s.users.get_mut(&user)
                && let Some((_, at)) = u.sessions.remove(session)
            {
                s.expiry.remove(&(at, user, session.to_owned()));
            }
        })
    }

    pub fn put_pref(&self, user: UserId, pref: Pref) {
        self.with(|s| s.users.entry(user).or_default().pref = pref)
    }

    pub fn pop_expired(&self, now: i64) -> Vec<(UserId, String)> {
        self.with(|s| {
            let mut out = Vec::new();
            while let Some((at, user, session)) = s.expiry.first().cloned() {
                if at > now {
                    break;
                }
                s.expiry.pop_first();
                if let Some(u) = s.users.get_mut(&user) {
                    u.sessions.remove(&session);
                }
                out.push((user, session));
            }
            out
        })
    }

    pub fn recompute(&self, user: UserId) -> Option<PresenceView> {
        self.with(|s| {
            let u = s.users.entry(user).or_default();
            let status = effective(&u.pref, u.sessions.values().map(|(idle, _)| *idle));
            let view = PresenceView::of(user, &u.pref, status);
            let now = (status != Status::Offline).then(|| (status, view.custom_status.clone()));
            if now == u.shown {
                return None;
            }
            u.shown = now;
            if u.shown.is_none() && u.sessions.is_empty() && u.pref == Pref::default() {
                s.users.remove(&user);
            }
            Some(view)
        })
    }

    pub fn has_device(&self, user: UserId) -> bool {
        self.with(|s| s.users.get(&user).is_some_and(|u| !u.sessions.is_empty()))
    }

    pub fn views(&self, users: &[UserId]) -> Vec<PresenceView> {
        self.with(|s| {
            users
                .iter()
                .filter_map(|id| {
                    let u = s.users.get(id)?;
                    let (status, custom_status) = u.shown.clone()?;
                    Some(PresenceView {
                        user_id: id.to_string(),
                        status,
                        custom_status,
                    })
                })
                .collect()
        })
    }

    pub fn set_voice(&self, v: VoiceState) -> Option<VoiceState> {
        self.with(|s| s.voice.insert(v.user_id, v))
    }

    pub fn voice_of(&self, user: UserId) -> Option<VoiceState> {
        self.with(|s| s.voice.get(&user).cloned())
    }

    pub fn clear_voice(&self, user: UserId, session: &str) -> Option<VoiceState> {
        self.with(|s| {
            if s.voice.get(&user)?.session_id != session {
                return None;
            }
            s.voice.remove(&user)
        })
    }

    pub fn voice_in(&self, guild: GuildId) -> Vec<VoiceState> {
        self.with(|s| {
            s.voice
                .values()
                .filter(|v| v.guild_id == guild)
                .cloned()
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_in_order_and_take_presence_with_them() {
        let m = Memory::default();
        let u = UserId(7);
        m.put_session(u, "a", false, 100);
        m.put_session(u, "b", true, 200);
        assert_eq!(m.recompute(u).map(|v| v.status), Some(Status::Online));
        assert_eq!(m.recompute(u), None, "no change, no update");
        assert_eq!(m.pop_expired(150), vec![(u, "a".to_owned())]);
        assert_eq!(m.recompute(u).map(|v| v.status), Some(Status::Idle));
        // Refreshing moves the deadline.
        m.put_session(u, "b", true, 400);
        assert!(m.pop_expired(300).is_empty());
        assert_eq!(m.pop_expired(400).len(), 1);
        assert_eq!(m.recompute(u).map(|v| v.status), Some(Status::Offline));
        assert!(m.views(&[u]).is_empty());
    }

    #[test]
    fn a_voice_state_ends_only_with_its_own_session() {
        let m = Memory::default();
        let v = VoiceState {
            guild_id: GuildId(1),
            channel_id: crate::model::ChannelId(2),
            user_id: UserId(3),
            session_id: "s1".into(),
            mute: false,
            flags: Default::default(),
        };
        assert_eq!(m.set_voice(v.clone()), None);
        assert_eq!(m.clear_voice(UserId(3), "s2"), None);
        assert_eq!(m.voice_in(GuildId(1)).len(), 1);
        assert_eq!(m.clear_voice(UserId(3), "s1"), Some(v));
        assert!(m.voice_in(GuildId(1)).is_empty());
    }
}
