//! Sessions that ended while access tokens issued in them are still unexpired.
//!
//! A session is a refresh-token family: it starts at login (or sign-up) and ends at
//! logout, at a password change (every session of the account), or when a spent refresh
//! token comes back (a sign that it was copied). Access tokens name their session, and
//! every request checks it against this set: a hash lookup in memory, no database read.
//! The set is written through to the store and loaded from it at start, so a restart
//! does not bring an ended session back; entries go once every token they could stop
//! has expired anyway.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::ChatState;
use crate::error::ChatError;
use crate::model::UserId;
use crate::service::hub::Hub;

#[derive(Debug, Default)]
pub struct EndedSessions {
    /// Session id → until when (ms) its access tokens could still pass their expiry.
    ended: RwLock<HashMap<String, i64>>,
}

impl EndedSessions {
    pub fn new(ended: impl IntoIterator<Item = (String, i64)>) -> EndedSessions {
        EndedSessions {
            ended: RwLock::new(ended.into_iter().collect()),
        }
    }

    pub fn is_ended(&self, session: &str) -> bool {
        self.ended
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(session)
    }

    fn add(&self, sessions: &[String], until: i64) {
        let mut ended = self.ended.write().unwrap_or_else(|p| p.into_inner());
        for s in sessions {
            ended.insert(s.clone(), until);
        }
    }

    /// Forgets sessions whose every access token has expired by `now` (ms).
    pub fn sweep(&self, now: i64) {
        let mut ended = self.ended.write().unwrap_or_else(|p| p.into_inner());
        if ended.values().any(|&until| until <= now) {
            ended.retain(|_, until| *until > now);
        }
    }

    pub fn len(&self) -> usize {
        self.ended.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Until when (ms) an access token issued now could still be accepted.
fn tokens_valid_until(state: &ChatState) -> i64 {
    crate::now_ms()
        + state.config.access_ttl.as_millis() as i64
        + crate::service::auth::ACCESS_LEEWAY_SECS as i64 * 1000
}

/// Ends one session of a user: no refresh token of it works again, its access tokens stop
/// authorising at once, and its chat WebSockets close with 4004.
pub async fn end(state: &ChatState, user_id: UserId, session: &str) -> Result<(), ChatError> {
    let until = tokens_valid_until(state);
    state.store.end_session(user_id, session, until).await?;
    ended(state, user_id, &[session.to_owned()], until).await;
    Ok(())
}

/// Ends every session of a user (a password change).
pub async fn end_all(state: &ChatState, user_id: UserId) -> Result<(), ChatError> {
    let until = tokens_valid_until(state);
    let sessions = state.store.end_user_sessions(user_id, until).await?;
    ended(state, user_id, &sessions, until).await;
    Ok(())
}

async fn ended(state: &ChatState, user_id: UserId, sessions: &[String], until: i64) {
    state.sessions_ended(user_id, sessions, until).await;
}

/// Ends sessions on this node: their tokens stop here, their sockets here close.
pub(crate) async fn ended_here(
    state: &ChatState,
    user_id: UserId,
    sessions: &[String],
    until: i64,
) {
    state.ended.add(sessions, until);
    for gateway in close_gateways(&state.hub, user_id, sessions) {
        crate::service::presence::ended(state, user_id, &gateway).await;
    }
}

/// Ends the user's chat WebSocket sessions opened with these sessions' tokens.
fn close_gateways(hub: &Hub, user_id: UserId, sessions: &[String]) -> Vec<String> {
    hub.end_sessions_of(user_id, |auth| sessions.iter().any(|s| s == auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_sessions_are_kept_until_their_tokens_expire() {
        let e = EndedSessions::new([("old".to_owned(), 1_000)]);
        e.add(&["a".into(), "b".into()], 5_000);
        assert!(e.is_ended("old") && e.is_ended("a") && e.is_ended("b"));
        assert!(!e.is_ended("c"));
        e.sweep(1_000);
        assert!(!e.is_ended("old"), "every token of it has expired");
        assert!(e.is_ended("a"));
        e.sweep(5_001);
        assert!(e.is_empty());
    }
}
