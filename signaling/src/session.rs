//! Signaling sessions: what survives a dropped WebSocket for the resume window.
//!
//! The numbering, replay buffer, resume and slow-consumer policy are the shared session
//! layer's ([`parlor_edge::session`]). This module adds what is particular to rooms: the
//! participant handle, and holding room events while a request is with the SFU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parlor_edge::{Outbox, OutboxLimits};

use parlor_proto::Claims;
use parlor_proto::control::ParticipantHandle;
use parlor_proto::signal::{ServerFrame, ServerMessage};

/// Frames kept for replay per session.
pub const REPLAY_FRAMES: usize = 1024;
/// Unwritten frames beyond which ephemeral ones (active speakers, acks) are dropped.
pub const SHED_AFTER: usize = 256;
/// How long a reply waits for room events the SFU sent before it that have not arrived
/// (they travel apart from it: a separate channel, or NATS subject). Locally they are
/// microseconds behind; past this the reply goes without them.
pub const REPLY_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub claims: Claims,
    /// Numbered frames, the replay buffer and the connection writing them.
    pub outbox: Outbox,
    inner: Mutex<Inner>,
    /// Wakes a connection whose reply waited for earlier events.
    released: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Inner {
    handle: Option<ParticipantHandle>,
    /// While a request is with the SFU, its events wait here, so that the reply goes out
    /// before anything the request caused (such as the follow-up server offer).
    holding: bool,
    held: Vec<(ServerMessage, Option<u64>)>,
    /// The highest room event number seen.
    last_event: u64,
    /// A reply that waits for the room events the SFU sent before it (up to `after`)
    /// and that have not reached this node yet.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    after: u64,
    msg: ServerMessage,
    id: Option<u64>,
}

impl Session {
    /// A session attached to its first connection (generation 1).
    pub fn new(id: String, claims: Claims) -> Session {
        Session {
            id,
            claims,
            outbox: Outbox::new(OutboxLimits {
                replay: REPLAY_FRAMES,
                shed_after: SHED_AFTER,
                number_ephemeral: false,
            }),
            inner: Mutex::new(Inner::default()),
            released: tokio::sync::Notify::new(),
        }
    }

    // A std Mutex is right here: it is held for a few field updates and never across an
    // `.await`.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn handle(&self) -> Option<ParticipantHandle> {
        self.lock().handle.clone()
    }

    pub fn set_handle(&self, h: Option<ParticipantHandle>) -> Option<ParticipantHandle> {
        std::mem::replace(&mut self.lock().handle, h)
    }

    /// A session another signaling node held, taken over here: its client has every frame
    /// up to `after`, so numbering goes on from there.
    pub fn continuing(id: String, claims: Claims, after: u64) -> Session {
        Session {
            id,
            claims,
            outbox: Outbox::continuing(
                OutboxLimits {
                    replay: REPLAY_FRAMES,
                    shed_after: SHED_AFTER,
                    number_ephemeral: false,
                },
                after,
            ),
            inner: Mutex::new(Inner::default()),
            released: tokio::sync::Notify::new(),
        }
    }

    /// Holds events until [`Session::reply`]: call before handing a request to the SFU.
    pub fn hold(&self) {
        self.lock().holding = true;
    }

    /// Sends the reply to the request in flight, then the events held meanwhile.
    pub fn reply(&self, msg: ServerMessage, id: Option<u64>) {
        let mut g = self.lock();
        if let Some(p) = g.pending.take() {
            self.send(p.msg, p.id, None);
        }
        self.release_locked(&mut g, msg, id);
    }

    /// Sends the reply to the request in flight in its place among the room events: the
    /// held events numbered up to `after` (sent by the SFU before it took the request up)
    /// first, then the reply, then the rest. If some of those earlier events have not
    /// arrived yet, the reply waits for them; returns true when it does (see
    /// [`Session::release`]).
    pub fn reply_after(&self, after: u64, msg: ServerMessage, id: Option<u64>) -> bool {
        let mut g = self.lock();
        let (before, later): (Vec<_>, Vec<_>) = std::mem::take(&mut g.held)
            .into_iter()
            .partition(|(_, ev)| ev.is_some_and(|e| e <= after));
        for (m, ev) in before {
            self.send(m, None, ev);
        }
        g.held = later;
        if g.last_event >= after {
            self.release_locked(&mut g, msg, id);
            return false;
        }
        g.pending = Some(Pending { after, msg, id });
        true
    }

    /// Sends a reply that waited for earlier events, if it still waits for the events
    /// up to `after`: for when they never come (the participant's event stream ended, or
    /// a cluster message was lost).
    pub fn release(&self, after: u64) {
        let mut g = self.lock();
        if g.pending.as_ref().is_some_and(|p| p.after == after)
            && let Some(p) = g.pending.take()
        {
            self.release_locked(&mut g, p.msg, p.id);
        }
    }

    /// Sends the reply, then every held event, and stops holding.
    fn release_locked(&self, g: &mut Inner, msg: ServerMessage, id: Option<u64>) {
        g.holding = false;
        self.send(msg, id, None);
        for (m, ev) in std::mem::take(&mut g.held) {
            self.send(m, None, ev);
        }
        self.released.notify_waiters();
    }

    /// Sends `msg`, the reply to the request in flight, after the events the SFU sent
    /// before it took the request up ([`Session::reply_after`]), waiting at most
    /// [`REPLY_WAIT`] for those still on their way. The connection reads its next request
    /// only after this, so replies never overtake each other.
    pub async fn reply_in_order(&self, after: u64, msg: ServerMessage, id: Option<u64>) {
        let released = self.released.notified();
        tokio::pin!(released);
        released.as_mut().enable();
        if self.reply_after(after, msg, id) {
            let _ = tokio::time::timeout(REPLY_WAIT, released).await;
            self.release(after);
        }
    }

    /// Sends a room event (not a reply) to the client, with its number among the
    /// participant's events.
    pub fn event(&self, msg: ServerMessage, ev: Option<u64>) {
        let mut g = self.lock();
        if let Some(n) = ev {
            g.last_event = g.last_event.max(n);
        }
        if let Some(after) = g.pending.as_ref().map(|p| p.after) {
            if ev.is_some_and(|n| n <= after) {
                // Sent before the request was taken up: it precedes the reply.
                self.send(msg, None, ev);
                if g.last_event >= after
                    && let Some(p) = g.pending.take()
                {
                    self.release_locked(&mut g, p.msg, p.id);
                }
                return;
            }
            // A later event (an earlier one was lost): the reply goes first.
            if let Some(p) = g.pending.take() {
                self.release_locked(&mut g, p.msg, p.id);
            }
        }
        if g.holding {
            g.held.push((msg, ev));
        } else {
            self.send(msg, None, ev);
        }
    }

    /// Sends a frame outside any request (acks, errors, ready).
    pub fn emit(&self, msg: ServerMessage, id: Option<u64>) {
        self.send(msg, id, None);
    }

    /// Numbers the frame (unless it is ephemeral) and queues it for the connection.
    fn send(&self, msg: ServerMessage, id: Option<u64>, ev: Option<u64>) {
        self.outbox.push(msg.is_ephemeral(), |seq| {
            serde_json::to_string(&ServerFrame { seq, id, ev, msg }).unwrap_or_default()
        });
    }
}

/// All sessions of this signaling node.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().remove(id)
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes and returns sessions detached for longer than `window`.
    pub fn take_expired(&self, now: Instant, window: Duration) -> Vec<Arc<Session>> {
        let mut g = self.lock();
        let ids: Vec<String> = g
            .values()
            .filter(|s| s.outbox.detached_longer_than(now, window))
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter_map(|id| g.remove(id)).collect()
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_edge::Next;
    use parlor_proto::signal::{Empty, ErrorBody};
    use parlor_proto::{ParticipantId, RoomId};

    fn session() -> Session {
        Session::new(
            "s".into(),
            Claims::new(
                RoomId::parse("r").unwrap(),
                ParticipantId::parse("a").unwrap(),
                Duration::from_secs(60),
            ),
        )
    }

    fn err(n: u64) -> ServerMessage {
        ServerMessage::Error(ErrorBody {
            code: n.to_string(),
            message: String::new(),
        })
    }

    fn frames(n: Next) -> Vec<serde_json::Value> {
        match n {
            Next::Frames(f) => f.iter().map(|t| serde_json::from_str(t).unwrap()).collect(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    #[test]
    fn a_reply_precedes_the_events_its_request_caused() {
        let s = session();
        s.hold();
        s.event(err(1), Some(4));
        s.reply(ServerMessage::Ok(Empty {}), Some(7));
        s.event(err(2), Some(5));
        let f = frames(s.outbox.take(1));
        let ops: Vec<_> = f.iter().map(|v| v["op"].as_str().unwrap()).collect();
        assert_eq!(ops, ["ok", "error", "error"]);
        assert_eq!(f[0]["id"], 7);
        assert_eq!(f[1]["d"]["code"], "1");
        // Room events carry their number; replies do not.
        let evs: Vec<_> = f.iter().map(|v| v["ev"].as_u64()).collect();
        assert_eq!(evs, [None, Some(4), Some(5)]);
        let seqs: Vec<_> = f.iter().map(|v| v["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, [1, 2, 3]);
    }

    fn order(s: &Session) -> Vec<String> {
        frames(s.outbox.take(1))
            .iter()
            .map(|v| match v["ev"].as_u64() {
                Some(n) => format!("ev{n}"),
                None => v["op"].as_str().unwrap().to_owned(),
            })
            .collect()
    }

    #[test]
    fn events_sent_before_the_request_was_taken_up_precede_its_reply() {
        let s = session();
        s.event(err(1), Some(1));
        s.hold();
        // Event 2 (say, a server offer the request then rolled back) arrived while the
        // request was with the SFU; event 3 is what the request caused.
        s.event(err(2), Some(2));
        s.event(err(3), Some(3));
        assert!(!s.reply_after(2, ServerMessage::Ok(Empty {}), Some(9)));
        s.event(err(4), Some(4));
        assert_eq!(order(&s), ["ev1", "ev2", "ok", "ev3", "ev4"]);
    }

    #[test]
    fn a_reply_waits_for_earlier_events_still_on_their_way() {
        let s = session();
        s.hold();
        assert!(s.reply_after(2, ServerMessage::Ok(Empty {}), Some(9)));
        assert!(matches!(s.outbox.take(1), Next::Idle));
        s.event(err(1), Some(1));
        s.event(err(2), Some(2));
        s.event(err(3), Some(3));
        assert_eq!(order(&s), ["ev1", "ev2", "ok", "ev3"]);

        // An event lost on the way: the next one releases the reply ahead of itself.
        s.hold();
        assert!(s.reply_after(5, ServerMessage::Ok(Empty {}), Some(10)));
        s.event(err(6), Some(6));
        assert_eq!(order(&s), ["ok", "ev6"]);

        // No event at all: the timer's release sends it; a stale release does nothing.
        s.hold();
        assert!(s.reply_after(8, ServerMessage::Ok(Empty {}), Some(11)));
        s.release(7);
        assert!(matches!(s.outbox.take(1), Next::Idle));
        s.release(8);
        assert_eq!(order(&s), ["ok"]);
        s.event(err(9), Some(9));
        assert_eq!(order(&s), ["ev9"]);
    }

    #[test]
    fn ephemeral_frames_carry_the_last_number_and_are_not_replayed() {
        let s = session();
        s.emit(err(0), None);
        s.emit(ServerMessage::HeartbeatAck(Empty {}), None);
        let f = frames(s.outbox.take(1));
        assert_eq!(f[1]["seq"], 1);
        s.outbox.detach(1);
        s.emit(err(1), None);
        let (g, replayed) = s.outbox.resume(0).unwrap();
        assert_eq!(replayed, 2);
        let seqs: Vec<_> = frames(s.outbox.take(g))
            .iter()
            .map(|v| v["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, [1, 2]);
    }

    #[test]
    fn sessions_expire_after_the_window_detached() {
        let sessions = Sessions::default();
        let s = Arc::new(session());
        sessions.insert(s.clone());
        let later = Instant::now() + Duration::from_secs(61);
        assert!(
            sessions
                .take_expired(later, Duration::from_secs(60))
                .is_empty()
        );
        s.outbox.detach(1);
        assert_eq!(
            sessions.take_expired(later, Duration::from_secs(60)).len(),
            1
        );
        assert!(sessions.is_empty());
    }
}
