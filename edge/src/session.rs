//! The session layer under both WebSocket gateways (signaling's `/ws` and chat's
//! `/api/v1/gateway`): one set of close codes, numbered frames with a replay buffer,
//! resume, the slow-consumer policy and heartbeat deadlines.
//!
//! A session outlives its connection. It numbers what it sends and keeps the recent
//! frames, so a client that reconnects with its session id and the last number it saw
//! gets exactly what it missed. The connection *pulls* frames ([`Outbox::next`]) as fast
//! as its socket takes them; a producer never blocks and never holds a per-socket queue.
//!
//! **Slow consumers.** Ephemeral frames (heartbeat acks, typing, active speakers) are not
//! queued while `shed_after` frames already wait, nor while no connection is attached, and
//! are never replayed. A kept frame that would fall out of the replay buffer before it
//! was written ends the session's resumability: the connection closes with
//! [`CloseCode::SessionTimeout`] (`too slow`) and a resume is refused as too old.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Close codes of both gateways. A code means the same thing on either socket;
/// `docs/protocol.md` §8 and `docs/chat-api.md` list the same table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the server is shutting down.
    GoingAway,
    /// 1009: a frame over the size limit.
    TooLarge,
    /// 1011: the server failed while opening the session.
    InternalError,
    /// 1012: this node restarts; the session lives on: resume it (on a cluster, through
    /// the same address, on another node).
    Restarting,
    /// 4000: the session was resumed on another connection; this one is stale.
    ResumedElsewhere,
    /// 4001: the token was refused, or the protocol version is not spoken.
    AuthenticationFailed,
    /// 4002: a frame that cannot be decoded.
    DecodeError,
    /// 4003: no identify or resume in time.
    NotIdentified,
    /// 4004: the sign-in session behind the socket ended (logout, password change).
    SessionEnded,
    /// 4008: more frames than the rate limit allows.
    RateLimited,
    /// 4009: no heartbeat in time, or too slow to keep up with the session's frames.
    SessionTimeout,
}

impl CloseCode {
    pub const fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::TooLarge => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Restarting => 1012,
            CloseCode::ResumedElsewhere => 4000,
            CloseCode::AuthenticationFailed => 4001,
            CloseCode::DecodeError => 4002,
            CloseCode::NotIdentified => 4003,
            CloseCode::SessionEnded => 4004,
            CloseCode::RateLimited => 4008,
            CloseCode::SessionTimeout => 4009,
        }
    }
}

/// Why a resume was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResumeError {
    /// Unknown, expired, another user's, or a `seq` the session never sent.
    Invalid,
    /// The frames after `seq` are no longer all kept.
    TooOld,
}

/// Sizes of one session's buffer.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Frames kept for resume.
    pub replay: usize,
    /// Unwritten frames beyond which ephemeral ones are no longer queued.
    pub shed_after: usize,
    /// Whether ephemeral frames take a number of their own. Chat numbers every dispatch;
    /// signaling gives an ephemeral frame the number of the last kept one.
    pub number_ephemeral: bool,
}

/// A frame many sessions send, built once and numbered by each as it is written. The
/// sessions' queues and replay buffers share it instead of each keeping a copy with its
/// number in.
pub trait Numbered: Send + Sync + std::fmt::Debug {
    /// The frame's text with this session's number for it.
    fn render(&self, seq: u64) -> String;
}

/// A queued frame: its text, or a shared frame that gets its number when written.
#[derive(Debug, Clone)]
enum Body {
    Text(Arc<str>),
    Shared(Arc<dyn Numbered>),
}

/// What a connection should do next.
#[derive(Debug)]
pub enum Next {
    /// Frames to write, in order.
    Frames(Vec<String>),
    /// Nothing to write yet.
    Idle,
    /// A kept frame fell out of the buffer unwritten: the session cannot go on.
    Overflowed,
    /// Another connection resumed the session.
    Replaced,
    /// The session was ended.
    Ended,
}

#[derive(Debug)]
struct Queued {
    /// Position in the queue, counting every frame (ephemeral ones included).
    pos: u64,
    /// The number the client sees.
    seq: u64,
    body: Body,
    ephemeral: bool,
}

#[derive(Debug, Default)]
struct State {
    /// The last number given out.
    seq: u64,
    /// The last position given out, and the last one written to the connection.
    pos: u64,
    written: u64,
    queue: VecDeque<Queued>,
    /// The highest number no longer kept: a resume must come after it.
    floor: u64,
    attached: bool,
    detached_at: Option<Instant>,
    /// Bumped by each attach; an older connection sees [`Next::Replaced`].
    generation: u64,
    overflowed: bool,
    ended: bool,
}

/// One session's outgoing frames: numbering, the replay buffer and the connection that
/// writes them. Producers push from any thread; the connection of the current
/// generation takes.
#[derive(Debug)]
pub struct Outbox {
    limits: OutboxLimits,
    state: Mutex<State>,
    wake: Notify,
}

impl Outbox {
    /// A session attached to its first connection, which has generation 1.
    pub fn new(limits: OutboxLimits) -> Outbox {
        Outbox {
            limits,
            state: Mutex::new(State {
                attached: true,
                generation: 1,
                ..State::default()
            }),
            wake: Notify::new(),
        }
    }

    /// A session taken over from a process that is gone, attached to its first
    /// connection here: its client has every frame up to `after`, so numbering goes on
    /// from there and nothing below can be resumed.
    pub fn continuing(limits: OutboxLimits, after: u64) -> Outbox {
        Outbox {
            limits,
            state: Mutex::new(State {
                attached: true,
                generation: 1,
                seq: after,
                floor: after,
                ..State::default()
            }),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Held for queue operations only, never across an await.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Numbers a frame, builds it with its number and queues it. Returns the number, or
    /// `None` if an ephemeral frame was shed (or the session is over).
    pub fn push(&self, ephemeral: bool, frame: impl FnOnce(u64) -> String) -> Option<u64> {
        self.enqueue(ephemeral, |seq| Body::Text(frame(seq).into()))
    }

    /// Numbers a shared frame and queues it; it is built with the number when written.
    /// Returns as [`Outbox::push`] does.
    pub fn push_shared(&self, ephemeral: bool, frame: &Arc<dyn Numbered>) -> Option<u64> {
        self.enqueue(ephemeral, |_| Body::Shared(frame.clone()))
    }

    fn enqueue(&self, ephemeral: bool, body: impl FnOnce(u64) -> Body) -> Option<u64> {
        let mut s = self.lock();
        if s.overflowed || s.ended {
            return None;
        }
        let backlog = (s.pos - s.written) as usize;
        if ephemeral && (backlog >= self.limits.shed_after || !s.attached) {
            return None;
        }
        if !ephemeral || self.limits.number_ephemeral {
            s.seq += 1;
        }
        s.pos += 1;
        let (pos, seq) = (s.pos, s.seq);
        s.queue.push_back(Queued {
            pos,
            seq,
            body: body(seq),
            ephemeral,
        });
        while s.queue.len() > self.limits.replay {
            let Some(f) = s.queue.pop_front() else { break };
            if f.ephemeral {
                continue;
            }
            s.floor = s.floor.max(f.seq);
            if f.pos > s.written {
                // Unwritten and no longer kept: it can never be delivered. Keep a
                // tombstone, not the buffer, so a resume is told it came too late.
                s.overflowed = true;
                s.queue = VecDeque::new();
            }
        }
        drop(s);
        self.wake.notify_one();
        Some(seq)
    }

    /// The frames the connection of `generation` has not written yet.
    pub fn take(&self, generation: u64) -> Next {
        let mut s = self.lock();
        if s.ended {
            return Next::Ended;
        }
        if s.generation != generation {
            return Next::Replaced;
        }
        if s.overflowed {
            return Next::Overflowed;
        }
        if s.written == s.pos {
            return Next::Idle;
        }
        let written = s.written;
        let out: Vec<(u64, Body)> = s
            .queue
            .iter()
            .filter(|f| f.pos > written)
            .map(|f| (f.seq, f.body.clone()))
            .collect();
        s.written = s.pos;
        // Written ephemeral frames are never replayed.
        s.queue.retain(|f| !f.ephemeral);
        drop(s);
        Next::Frames(
            out.into_iter()
                .map(|(seq, body)| match body {
                    Body::Text(t) => t.to_string(),
                    Body::Shared(f) => f.render(seq),
                })
                .collect(),
        )
    }

    /// Like [`Outbox::take`], but waits while there is nothing to write. Cancel-safe:
    /// frames are taken only in the poll that returns them.
    pub async fn next(&self, generation: u64) -> Next {
        loop {
            let wake = self.wake.notified();
            tokio::pin!(wake);
            wake.as_mut().enable();
            match self.take(generation) {
                Next::Idle => wake.await,
                next => return next,
            }
        }
    }

    /// Attaches a new connection that has seen every frame up to `after`. Returns its
    /// generation and how many frames it will be replayed.
    pub fn resume(&self, after: u64) -> Result<(u64, u64), ResumeError> {
        let mut s = self.lock();
        if s.ended || after > s.seq {
            return Err(ResumeError::Invalid);
        }
        if s.overflowed || after < s.floor {
            return Err(ResumeError::TooOld);
        }
        // Stale ephemeral frames are not replayed.
        s.queue.retain(|f| !f.ephemeral);
        let replayed = s.queue.iter().filter(|f| f.seq > after).count() as u64;
        s.written = s
            .queue
            .iter()
            .find(|f| f.seq > after)
            .map_or(s.pos, |f| f.pos - 1);
        s.attached = true;
        s.detached_at = None;
        s.generation += 1;
        let generation = s.generation;
        drop(s);
        // The old connection, if any, wakes and sees it was replaced; the new one has
        // frames to write.
        self.wake.notify_waiters();
        self.wake.notify_one();
        Ok((generation, replayed))
    }

    /// The connection of `generation` is gone; the session waits for a resume.
    pub fn detach(&self, generation: u64) {
        let mut s = self.lock();
        if s.generation == generation && s.attached {
            s.attached = false;
            s.detached_at = Some(Instant::now());
        }
    }

    /// The session went on elsewhere: the connection writing it stops with
    /// [`Next::Replaced`].
    pub fn replace(&self) {
        let mut s = self.lock();
        s.generation += 1;
        s.attached = false;
        drop(s);
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Ends the session: the connection writing it stops with [`Next::Ended`].
    pub fn end(&self) {
        self.lock().ended = true;
        self.wake.notify_waiters();
        self.wake.notify_one();
    }

    /// Whether the connection of `generation` is the one attached.
    pub fn is_current(&self, generation: u64) -> bool {
        let s = self.lock();
        s.generation == generation && s.attached
    }

    /// The client has every frame up to `seq`: written frames up to it need not be kept.
    /// Returns whether none up to it is kept now (false while some are unwritten).
    pub fn ack(&self, seq: u64) -> bool {
        let mut s = self.lock();
        let written = s.written;
        while let Some(f) = s.queue.front() {
            if f.seq > seq || f.pos > written {
                break;
            }
            let f = f.seq;
            s.floor = s.floor.max(f);
            s.queue.pop_front();
        }
        s.queue.front().is_none_or(|f| f.seq > seq)
    }

    /// Whether no connection has been attached for longer than `timeout`.
    pub fn detached_longer_than(&self, now: Instant, timeout: Duration) -> bool {
        self.lock()
            .detached_at
            .is_some_and(|t| now.saturating_duration_since(t) >= timeout)
    }

    /// The last number given out.
    pub fn seq(&self) -> u64 {
        self.lock().seq
    }
}

/// When a connection counts as gone for want of heartbeats.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat {
    timeout: Duration,
    deadline: tokio::time::Instant,
}

impl Heartbeat {
    /// A connection that must send a heartbeat at least every `timeout`.
    pub fn new(timeout: Duration) -> Heartbeat {
        Heartbeat {
            timeout,
            deadline: tokio::time::Instant::now() + timeout,
        }
    }

    /// A heartbeat arrived.
    pub fn beat(&mut self) {
        self.deadline = tokio::time::Instant::now() + self.timeout;
    }

    /// Resolves when the deadline passes without a heartbeat.
    pub fn missed(&self) -> tokio::time::Sleep {
        tokio::time::sleep_until(self.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(replay: usize, shed_after: usize, number_ephemeral: bool) -> Outbox {
        Outbox::new(OutboxLimits {
            replay,
            shed_after,
            number_ephemeral,
        })
    }

    fn texts(n: Next) -> Vec<String> {
        match n {
            Next::Frames(f) => f.iter().map(|t| t.to_string()).collect(),
            other => panic!("expected frames, got {other:?}"),
        }
    }

    fn push(o: &Outbox, ephemeral: bool, name: &str) -> Option<u64> {
        o.push(ephemeral, |seq| format!("{name}{seq}"))
    }

    #[test]
    fn unnumbered_ephemeral_frames_carry_the_last_number_and_are_not_replayed() {
        let o = outbox(100, 10, false);
        push(&o, false, "a");
        push(&o, true, "ack");
        push(&o, false, "b");
        assert_eq!(texts(o.take(1)), ["a1", "ack1", "b2"]);
        o.detach(1);
        push(&o, false, "c");
        assert_eq!(push(&o, true, "ack"), None, "shed while detached");
        let (g, replayed) = o.resume(1).unwrap();
        assert_eq!((g, replayed), (2, 2));
        assert_eq!(texts(o.take(g)), ["b2", "c3"]);
        assert!(matches!(o.take(1), Next::Replaced));
        assert_eq!(o.resume(9), Err(ResumeError::Invalid), "a seq never sent");
    }

    #[derive(Debug)]
    struct Dispatch(&'static str);

    impl Numbered for Dispatch {
        fn render(&self, seq: u64) -> String {
            format!("{}{seq}", self.0)
        }
    }

    #[test]
    fn a_shared_frame_is_kept_once_and_numbered_by_each_session() {
        let (a, b) = (outbox(8, 8, false), outbox(8, 8, false));
        push(&a, false, "x");
        let frame: Arc<dyn Numbered> = Arc::new(Dispatch("d"));
        assert_eq!(a.push_shared(false, &frame), Some(2));
        assert_eq!(b.push_shared(false, &frame), Some(1));
        // Queued in both, and not copied: the two queues hold the one frame.
        assert_eq!(Arc::strong_count(&frame), 3);
        assert_eq!(texts(a.take(1)), ["x1", "d2"]);
        assert_eq!(texts(b.take(1)), ["d1"]);
        // Written but kept for a resume, still shared; replayed with the same number.
        assert_eq!(Arc::strong_count(&frame), 3);
        let (g, replayed) = a.resume(1).unwrap();
        assert_eq!(replayed, 1);
        assert_eq!(texts(a.take(g)), ["d2"]);
        // Acknowledged, it leaves the buffer.
        a.ack(2);
        b.ack(1);
        assert_eq!(Arc::strong_count(&frame), 1);
    }

    #[test]
    fn acknowledged_frames_are_dropped_and_cannot_be_resumed_from_below() {
        let o = outbox(100, 10, false);
        for n in 0..5 {
            push(&o, false, &n.to_string());
        }
        let _ = o.take(1);
        o.ack(3);
        // Unwritten frames are never dropped by an ack, even one from the future.
        push(&o, false, "x");
        o.ack(99);
        o.detach(1);
        assert_eq!(o.resume(2), Err(ResumeError::TooOld));
        let (g, replayed) = o.resume(5).unwrap();
        assert_eq!(replayed, 1);
        assert_eq!(texts(o.take(g)), ["x6"]);
    }

    #[test]
    fn a_backlog_sheds_ephemeral_frames_then_overflows() {
        let o = outbox(4, 2, true);
        push(&o, false, "m");
        push(&o, false, "m");
        assert_eq!(push(&o, true, "t"), None, "two frames wait");
        let _ = o.take(1);
        for _ in 0..4 {
            push(&o, false, "m");
        }
        assert!(matches!(o.take(1), Next::Frames(_)), "four unwritten fit");
        for _ in 0..5 {
            push(&o, false, "m");
        }
        assert!(matches!(o.take(1), Next::Overflowed));
        assert_eq!(o.resume(6), Err(ResumeError::TooOld));
    }

    #[test]
    fn ended_sessions_stop_their_connection_and_refuse_resume() {
        let o = outbox(4, 2, true);
        o.end();
        assert!(matches!(o.take(1), Next::Ended));
        assert_eq!(o.resume(0), Err(ResumeError::Invalid));
        assert_eq!(push(&o, false, "m"), None);
    }

    #[test]
    fn a_continued_session_numbers_on_from_where_its_client_was() {
        let o = Outbox::continuing(
            OutboxLimits {
                replay: 8,
                shed_after: 8,
                number_ephemeral: true,
            },
            41,
        );
        assert_eq!(push(&o, false, "a"), Some(42));
        assert_eq!(texts(o.take(1)), ["a42"]);
        assert_eq!(o.resume(40).unwrap_err(), ResumeError::TooOld);
        assert_eq!(o.resume(41).unwrap().1, 1);
    }

    #[test]
    fn detached_sessions_time_out() {
        let o = outbox(4, 2, true);
        let now = Instant::now();
        assert!(!o.detached_longer_than(now, Duration::ZERO));
        o.detach(1);
        assert!(!o.is_current(1));
        assert!(o.detached_longer_than(Instant::now(), Duration::ZERO));
        assert!(!o.detached_longer_than(Instant::now(), Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn next_waits_for_a_frame() {
        let o = Arc::new(outbox(4, 2, true));
        let o2 = o.clone();
        let writer = tokio::spawn(async move { texts(o2.next(1).await) });
        tokio::task::yield_now().await;
        push(&o, false, "m");
        assert_eq!(writer.await.unwrap(), ["m1"]);
    }
}
