//! Signaling sessions: what survives a dropped WebSocket for the resume window.
//!
//! A session numbers every frame it sends and keeps the recent ones, so a client that
//! reconnects with its session id and last `seq` gets exactly what it missed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use parlor_proto::Claims;
use parlor_proto::control::ParticipantHandle;
use parlor_proto::signal::{ServerFrame, ServerMessage};

/// Frames kept for replay per session.
pub const REPLAY_FRAMES: usize = 1024;
/// Frames queued toward one WebSocket before it counts as too slow.
pub const CONNECTION_QUEUE: usize = 512;

pub type Frame = Arc<str>;

#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub claims: Claims,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    seq: u64,
    buffer: VecDeque<(u64, Frame)>,
    conn: Option<(u64, mpsc::Sender<Frame>)>,
    handle: Option<ParticipantHandle>,
    detached_at: Option<Instant>,
    /// While a request is with the SFU, its events wait here, so that the reply goes out
    /// before anything the request caused (such as the follow-up server offer).
    holding: bool,
    held: Vec<ServerMessage>,
}

/// Why a resume was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum ResumeError {
    Unknown,
    TooOld,
}

impl Session {
    pub fn new(id: String, claims: Claims) -> Session {
        Session {
            id,
            claims,
            inner: Mutex::new(Inner {
                seq: 0,
                buffer: VecDeque::new(),
                conn: None,
                handle: None,
                detached_at: None,
                holding: false,
                held: Vec::new(),
            }),
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

    /// Holds events until [`Session::reply`]: call before handing a request to the SFU.
    pub fn hold(&self) {
        self.lock().holding = true;
    }

    /// Sends the reply to the request in flight, then the events held meanwhile.
    pub fn reply(&self, msg: ServerMessage, id: Option<u64>) {
        let mut g = self.lock();
        g.holding = false;
        Self::send(&mut g, msg, id);
        for m in std::mem::take(&mut g.held) {
            Self::send(&mut g, m, None);
        }
    }

    /// Sends an event (not a reply) to the client.
    pub fn event(&self, msg: ServerMessage) {
        let mut g = self.lock();
        if g.holding {
            g.held.push(msg);
        } else {
            Self::send(&mut g, msg, None);
        }
    }

    /// Sends a frame outside any request (errors before a session exists, acks).
    pub fn emit(&self, msg: ServerMessage, id: Option<u64>) {
        Self::send(&mut self.lock(), msg, id);
    }

    pub fn is_attached(&self, conn_id: u64) -> bool {
        self.lock()
            .conn
            .as_ref()
            .is_some_and(|(c, _)| *c == conn_id)
    }

    /// Numbers and keeps the frame unless it is ephemeral, and sends it to the attached
    /// connection. A connection that cannot keep up is detached; it may resume.
    fn send(g: &mut Inner, msg: ServerMessage, id: Option<u64>) {
        let ephemeral = msg.is_ephemeral();
        if !ephemeral {
            g.seq += 1;
        }
        let frame = ServerFrame {
            seq: g.seq,
            id,
            msg,
        };
        let Ok(text) = serde_json::to_string(&frame) else {
            return;
        };
        let text: Frame = text.into();
        if !ephemeral {
            if g.buffer.len() >= REPLAY_FRAMES {
                g.buffer.pop_front();
            }
            g.buffer.push_back((frame.seq, text.clone()));
        }
        if let Some((_, tx)) = &g.conn
            && let Err(mpsc::error::TrySendError::Full(_)) = tx.try_send(text)
            && !ephemeral
        {
            g.conn = None;
            g.detached_at = Some(Instant::now());
        }
    }

    /// Attaches a connection, replaying every kept frame after `after`.
    pub fn attach(
        &self,
        conn_id: u64,
        tx: mpsc::Sender<Frame>,
        after: Option<u64>,
    ) -> Result<u64, ResumeError> {
        let mut g = self.lock();
        let mut replayed = 0;
        if let Some(after) = after {
            if after > g.seq {
                return Err(ResumeError::Unknown);
            }
            let oldest = g.buffer.front().map_or(g.seq + 1, |(s, _)| *s);
            if after + 1 < oldest {
                return Err(ResumeError::TooOld);
            }
            for (s, f) in &g.buffer {
                if *s > after {
                    if tx.try_send(f.clone()).is_err() {
                        return Err(ResumeError::TooOld);
                    }
                    replayed += 1;
                }
            }
        }
        g.conn = Some((conn_id, tx));
        g.detached_at = None;
        Ok(replayed)
    }

    /// Detaches a connection if it is still the attached one.
    pub fn detach(&self, conn_id: u64) {
        let mut g = self.lock();
        if g.conn.as_ref().is_some_and(|(c, _)| *c == conn_id) {
            g.conn = None;
            g.detached_at = Some(Instant::now());
        }
    }

    /// The client confirmed frames up to `seq`: they need not be kept.
    pub fn ack(&self, seq: u64) {
        let mut g = self.lock();
        while g.buffer.front().is_some_and(|(s, _)| *s <= seq) {
            g.buffer.pop_front();
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.lock().seq
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        self.lock()
            .detached_at
            .is_some_and(|t| now.saturating_duration_since(t) > window)
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
            .filter(|s| s.expired(now, window))
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

    #[test]
    fn replays_exactly_what_was_missed() {
        let s = session();
        let (tx, mut rx) = mpsc::channel(100);
        s.attach(1, tx, None).unwrap();
        for n in 0..3 {
            s.emit(err(n), None);
        }
        s.detach(1);
        for n in 3..6 {
            s.emit(err(n), None);
        }
        // Ephemeral frames are not kept.
        s.emit(ServerMessage::HeartbeatAck(Empty {}), None);
        let mut seen = Vec::new();
        while let Ok(f) = rx.try_recv() {
            seen.push(f);
        }
        assert_eq!(seen.len(), 3);
        let (tx2, mut rx2) = mpsc::channel(100);
        assert_eq!(s.attach(2, tx2, Some(3)), Ok(3));
        let mut seqs = Vec::new();
        while let Ok(f) = rx2.try_recv() {
            let v: serde_json::Value = serde_json::from_str(&f).unwrap();
            seqs.push(v["seq"].as_u64().unwrap());
        }
        assert_eq!(seqs, vec![4, 5, 6]);
        // A seq from the future is refused.
        let (tx3, _rx3) = mpsc::channel(100);
        assert_eq!(s.attach(3, tx3, Some(99)), Err(ResumeError::Unknown));
    }

    #[test]
    fn too_old_to_resume_after_the_buffer_rolled() {
        let s = session();
        for n in 0..(REPLAY_FRAMES as u64 + 10) {
            s.emit(err(n), None);
        }
        let (tx, _rx) = mpsc::channel(2000);
        assert_eq!(s.attach(1, tx, Some(2)), Err(ResumeError::TooOld));
    }
}
