//! An SFU node in a cluster: serves its SFU's control interface on NATS and keeps its
//! entry in the registry alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use parlor_proto::RoomId;
use parlor_proto::control::{
    Cascade, CloseReason, ParticipantHandle, RoomEvent, RoomEvents, SfuControl, SfuError,
};

use crate::registry::{NodeInfo, Registry};
use crate::wire::{Answer, Call, Routed, control_subject, encode};

/// Reads a counter of forwarded packets (the SFU's metric), for the load it announces.
pub type Counter = Arc<dyn Fn() -> f64 + Send + Sync>;

#[derive(Debug, Clone)]
struct Member {
    handle: ParticipantHandle,
    events_to: String,
    route: u64,
    /// To the task forwarding its events: send them elsewhere from now on.
    reroute: mpsc::UnboundedSender<Reroute>,
}

/// Another signaling node takes a participant's events over, after number `after`.
#[derive(Debug)]
struct Reroute {
    events_to: String,
    route: u64,
    after: u64,
    done: oneshot::Sender<Result<(), SfuError>>,
}

/// Events kept per participant for a signaling node that takes its session over.
const EVENT_LOG: usize = 512;

/// Serves one SFU on NATS for the cluster.
pub struct NodeServer {
    pub(crate) nats: async_nats::Client,
    pub(crate) registry: Registry,
    sfu: Arc<dyn SfuControl>,
    /// The media plane's side of rooms that span nodes; `None`: rooms stay on one node.
    pub(crate) cascade: Option<Arc<dyn Cascade>>,
    /// Per room, the other nodes this one pipes media with, and the address their pipe
    /// comes from (once set up).
    links: Mutex<HashMap<RoomId, HashMap<String, Option<std::net::SocketAddr>>>>,
    info: Mutex<NodeInfo>,
    /// Participants per open room, to release a room's placement when it empties.
    rooms: Mutex<HashMap<RoomId, u32>>,
    /// Each participant here, and where its events go, to move them when draining.
    members: Mutex<HashMap<u64, Member>>,
    draining: AtomicBool,
    forwarded: Option<Counter>,
}

impl std::fmt::Debug for NodeServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeServer")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Held for a map update, never across an await.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl NodeServer {
    pub fn new(
        nats: async_nats::Client,
        registry: Registry,
        info: NodeInfo,
        sfu: Arc<dyn SfuControl>,
        cascade: Option<Arc<dyn Cascade>>,
        forwarded: Option<Counter>,
    ) -> Arc<NodeServer> {
        Arc::new(NodeServer {
            nats,
            registry,
            sfu,
            cascade,
            links: Mutex::new(HashMap::new()),
            info: Mutex::new(info),
            rooms: Mutex::new(HashMap::new()),
            members: Mutex::new(HashMap::new()),
            draining: AtomicBool::new(false),
            forwarded,
        })
    }

    pub fn id(&self) -> String {
        lock(&self.info).id.clone()
    }

    pub(crate) fn region(&self) -> String {
        lock(&self.info).region.clone()
    }

    pub(crate) fn links(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<RoomId, HashMap<String, Option<std::net::SocketAddr>>>>
    {
        lock(&self.links)
    }

    /// Participants on this node now.
    pub fn participants(&self) -> u32 {
        lock(&self.rooms).values().sum()
    }

    /// Answers control calls and heartbeats until `stop` resolves; then withdraws from
    /// the registry.
    pub async fn run(
        self: Arc<Self>,
        heartbeat: Duration,
        stop: impl Future<Output = ()>,
    ) -> Result<(), async_nats::SubscribeError> {
        let subject = control_subject(self.registry.cluster(), &self.id());
        let mut calls = self.nats.subscribe(subject).await?;
        let beat = tokio::spawn(self.clone().heartbeats(heartbeat));
        let mirror = tokio::spawn(self.clone().mirror_events());
        info!(node = %self.id(), "SFU node serving control calls");
        tokio::pin!(stop);
        loop {
            tokio::select! {
                msg = calls.next() => {
                    let Some(msg) = msg else { break };
                    tokio::spawn(self.clone().answer(msg));
                }
                () = &mut stop => break,
            }
        }
        beat.abort();
        mirror.abort();
        if let Err(e) = self.registry.withdraw(&self.id()).await {
            warn!(error = %e, "could not withdraw from the registry");
        }
        Ok(())
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Takes no new rooms from now on, announces it at once, and tells every participant
    /// here to move (`moved`): they join again and land on other nodes.
    pub async fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        let info = {
            let mut info = lock(&self.info);
            info.draining = true;
            info.clone()
        };
        if let Err(e) = self.registry.heartbeat(&info).await {
            warn!(error = %e, "could not announce the drain");
        }
        let members: Vec<Member> = lock(&self.members).values().cloned().collect();
        info!(node = %info.id, participants = members.len(), "draining: moving participants");
        for m in members {
            let moved = Routed {
                route: m.route,
                n: 0,
                event: RoomEvent::Closed(CloseReason::Moved),
            };
            if let Err(e) = self.nats.publish(m.events_to, encode(&moved).into()).await {
                debug!(error = %e, "could not tell a participant to move");
            }
            self.sfu.leave(&m.handle, CloseReason::Moved).await;
        }
    }

    /// Carries out a call and answers it, if it came with a reply subject (a `leave`
    /// for a slow consumer is sent without one).
    async fn answer(self: Arc<Self>, msg: async_nats::Message) {
        let answer = match serde_json::from_slice::<Call>(&msg.payload) {
            Ok(call) => self.call(call).await,
            Err(e) => Answer::Error(SfuError::BadRequest(format!("malformed call: {e}"))),
        };
        let Some(reply) = msg.reply else {
            return;
        };
        if let Err(e) = self.nats.publish(reply, encode(&answer).into()).await {
            debug!(error = %e, "could not answer a control call");
        }
    }

    async fn call(self: &Arc<Self>, call: Call) -> Answer {
        let result = match call {
            Call::Join {
                req,
                events_to,
                route,
            } => {
                if self.draining.load(Ordering::Relaxed) {
                    return Answer::Error(SfuError::Unavailable);
                }
                let room = req.room.clone();
                let identity = req.identity.to_string();
                if let Err(e) = self.seat(&req).await {
                    return Answer::Error(e);
                }
                // Counted from now, so that the room's placement is not released while
                // this join is on its way.
                *lock(&self.rooms).entry(room.clone()).or_default() += 1;
                let joined = self.sfu.join(req).await;
                if joined.is_err() {
                    self.free_seat(&room, &identity).await;
                    let mut rooms = lock(&self.rooms);
                    let n = rooms.entry(room.clone()).or_default();
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        rooms.remove(&room);
                    }
                }
                let moved = match &joined {
                    Ok(_) => self.placed_elsewhere(&room).await,
                    Err(_) => false,
                };
                joined.map(|(joined, events)| {
                    let key = joined.handle.key;
                    let (reroute, reroutes) = mpsc::unbounded_channel();
                    lock(&self.members).insert(
                        key,
                        Member {
                            handle: joined.handle.clone(),
                            events_to: events_to.clone(),
                            route,
                            reroute,
                        },
                    );
                    let to = (events_to, route);
                    tokio::spawn(
                        self.clone()
                            .forward(events, reroutes, to, key, room.clone()),
                    );
                    if !moved {
                        tokio::spawn(self.clone().link(room));
                    }
                    if moved {
                        let (sfu, handle) = (self.sfu.clone(), joined.handle.clone());
                        tokio::spawn(async move { sfu.leave(&handle, CloseReason::Moved).await });
                    }
                    Answer::Joined(joined)
                })
            }
            Call::Request { who, req } => Ok(Answer::Replied(self.sfu.request(&who, req).await)),
            Call::Attach {
                who,
                events_to,
                route,
                after,
            } => self.attach(&who, events_to, route, after).await,
            Call::Leave { who, reason } => {
                self.sfu.leave(&who, reason).await;
                Ok(Answer::Done)
            }
            Call::SetCaps { room, caps } => {
                self.sfu.set_caps(&room, caps).await.map(Answer::Status)
            }
            Call::RoomStatus { room } => self.sfu.room_status(&room).await.map(Answer::Status),
            Call::CheckOffer { sdp } => self.sfu.check_offer(&sdp).await.map(|()| Answer::Done),
            Call::Moderate {
                room,
                identity,
                action,
            } => self
                .sfu
                .moderate(&room, &identity, action)
                .await
                .map(|()| Answer::Done),
            Call::Pipe {
                room,
                to,
                from_node,
            } => self.pipe_to(room, to, from_node).await,
            Call::Unpipe { room, peer } => {
                self.unpipe_from(&room, peer).await;
                Ok(Answer::Done)
            }
        };
        result.unwrap_or_else(Answer::Error)
    }

    /// Takes the joining participant's seat in the room, across the cluster: a room that
    /// spans nodes admits no more than its cap even when joins arrive at several at once.
    /// Without Redis the room's core here still checks the cap, for this node alone.
    async fn seat(&self, req: &parlor_proto::control::JoinRequest) -> Result<(), SfuError> {
        let cap = match req.caps.and_then(|c| c.max_participants) {
            Some(cap) => cap,
            None => self.sfu.room_status(&req.room).await?.caps.max_participants,
        };
        match self
            .registry
            .take_seat(req.room.as_str(), req.identity.as_str(), cap)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(SfuError::RoomFull(format!(
                "the room is full ({cap} participants)"
            ))),
            Err(e) => {
                warn!(error = %e, "could not take a seat in the registry; the node's cap applies");
                Ok(())
            }
        }
    }

    async fn free_seat(&self, room: &RoomId, identity: &str) {
        if let Err(e) = self.registry.free_seat(room.as_str(), identity).await {
            debug!(error = %e, "could not give a seat back");
        }
    }

    /// After a join here: claims the room's placement if it is gone (it was released here
    /// as the room emptied, with this join on its way). Whether the participant must move:
    /// when the room has meanwhile been placed on another node and this node cannot pipe
    /// media with it, so the room would split; with pipes, it spans both nodes instead.
    async fn placed_elsewhere(&self, room: &RoomId) -> bool {
        let me = self.id();
        match self.registry.claim(room.as_str(), &me).await {
            // With pipes between nodes a room may span several: this node pipes with the
            // others, and nobody moves.
            Ok(_) if self.cascade.is_some() => false,
            Ok(owner) if owner != me => {
                warn!(room = %room, %owner, "the room is placed on another node; moving the participant");
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(error = %e, room = %room, "could not confirm the room's placement");
                false
            }
        }
    }

    /// Sends a participant's events to another signaling node from now on, after
    /// replaying those after number `after`.
    async fn attach(
        &self,
        who: &ParticipantHandle,
        events_to: String,
        route: u64,
        after: u64,
    ) -> Result<Answer, SfuError> {
        let reroute = lock(&self.members)
            .get(&who.key)
            .filter(|m| m.handle == *who)
            .map(|m| m.reroute.clone())
            .ok_or(SfuError::NotJoined)?;
        let (done, answer) = oneshot::channel();
        reroute
            .send(Reroute {
                events_to,
                route,
                after,
                done,
            })
            .map_err(|_| SfuError::NotJoined)?;
        answer.await.map_err(|_| SfuError::NotJoined)??;
        Ok(Answer::Done)
    }

    async fn publish_event(&self, to: &str, route: u64, n: u64, event: RoomEvent) {
        let routed = Routed { route, n, event };
        if let Err(e) = self
            .nats
            .publish(to.to_owned(), encode(&routed).into())
            .await
        {
            debug!(error = %e, "could not publish a room event");
        }
    }

    /// Publishes a participant's events to its signaling node until it leaves, keeping
    /// the last [`EVENT_LOG`] for a node that takes its session over; the room's
    /// placement is released when its last participant has gone.
    async fn forward(
        self: Arc<Self>,
        mut events: RoomEvents,
        mut reroutes: mpsc::UnboundedReceiver<Reroute>,
        (mut to, mut route): (String, u64),
        key: u64,
        room: RoomId,
    ) {
        let mut log: std::collections::VecDeque<(u64, RoomEvent)> = Default::default();
        // The highest number no longer in the log.
        let mut floor = 0u64;
        loop {
            tokio::select! {
                next = events.recv_numbered() => {
                    let Some((n, event)) = next else { break };
                    let closed = matches!(event, RoomEvent::Closed(_));
                    if !event.is_ephemeral() {
                        log.push_back((n, event.clone()));
                        if log.len() > EVENT_LOG && let Some((gone, _)) = log.pop_front() {
                            floor = gone;
                        }
                    }
                    self.publish_event(&to, route, n, event).await;
                    if closed {
                        break;
                    }
                }
                Some(r) = reroutes.recv() => {
                    if r.after < floor {
                        let _ = r.done.send(Err(SfuError::Unavailable));
                        continue;
                    }
                    // The node that had the session, if it lives, lets it go.
                    self.publish_event(&to, route, 0, RoomEvent::Closed(CloseReason::Moved)).await;
                    (to, route) = (r.events_to, r.route);
                    if let Some(m) = lock(&self.members).get_mut(&key) {
                        (m.events_to, m.route) = (to.clone(), route);
                    }
                    for (n, event) in log.iter().filter(|(n, _)| *n > r.after) {
                        self.publish_event(&to, route, *n, event.clone()).await;
                    }
                    let _ = r.done.send(Ok(()));
                }
            }
        }
        let gone = lock(&self.members).remove(&key);
        if let Some(m) = gone {
            self.free_seat(&room, m.handle.identity.as_str()).await;
        }
        let empty = {
            let mut rooms = lock(&self.rooms);
            let n = rooms.entry(room.clone()).or_default();
            *n = n.saturating_sub(1);
            let empty = *n == 0;
            if empty {
                rooms.remove(&room);
            }
            empty
        };
        if empty {
            self.clone().unlink(room.clone()).await;
        }
        if empty && let Err(e) = self.registry.release(room.as_str(), &self.id()).await {
            warn!(error = %e, room = %room, "could not release the room's placement");
        }
    }

    /// Refreshes the registry entry with the load measured since the last beat.
    async fn heartbeats(self: Arc<Self>, every: Duration) {
        let mut cpu = CpuClock::new();
        let mut last_forwarded = self.forwarded.as_ref().map_or(0.0, |f| f());
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let info = {
                let rooms = lock(&self.rooms);
                let mut info = lock(&self.info);
                info.load.participants = rooms.values().sum();
                info.load.rooms = rooms.len() as u32;
                info.load.cpu = cpu.share();
                if let Some(f) = &self.forwarded {
                    let now = f();
                    info.load.forwarded_pps = (now - last_forwarded) / every.as_secs_f64();
                    last_forwarded = now;
                }
                info.clone()
            };
            if let Err(e) = self.registry.heartbeat(&info).await {
                warn!(error = %e, "heartbeat to the registry failed");
            }
            let seats: Vec<(String, String)> = lock(&self.members)
                .values()
                .map(|m| (m.handle.room.to_string(), m.handle.identity.to_string()))
                .collect();
            if let Err(e) = self.registry.refresh_seats(&seats).await {
                debug!(error = %e, "could not refresh seats");
            }
            self.drop_dead_pipes().await;
        }
    }
}

/// This process's CPU time since the last reading, as a share of the cores it may use
/// (0 to 1, as the placement score expects).
struct CpuClock {
    at: Instant,
    cpu: Duration,
    cores: f64,
    /// The last share measured over a long enough window.
    last: f64,
}

/// CPU time is counted in 10 ms ticks: over a shorter window than this a reading is
/// mostly rounding (one tick over 2 ms reads as five cores), so the last share stands.
const CPU_WINDOW: Duration = Duration::from_secs(1);

impl CpuClock {
    fn new() -> CpuClock {
        CpuClock {
            at: Instant::now(),
            cpu: process_cpu(),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            last: 0.0,
        }
    }

    fn share(&mut self) -> f64 {
        let now = Instant::now();
        let wall = now.saturating_duration_since(self.at);
        if wall < CPU_WINDOW {
            return self.last;
        }
        let cpu = process_cpu();
        let used = cpu.saturating_sub(self.cpu).as_secs_f64();
        self.at = now;
        self.cpu = cpu;
        self.last = (used / wall.as_secs_f64() / self.cores).min(1.0);
        self.last
    }
}

/// User and system time of this process, from `/proc/self/stat` (zero elsewhere).
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15, the 12th and 13th after the name; in clock
    // ticks of 1/100 s on Linux.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work done just before a heartbeat does not make a node look busy: a reading over
    /// a window shorter than the CPU clock's resolution keeps the last share (0 at
    /// first), and a full window is a share of the cores, never above 1.
    #[test]
    fn a_short_window_does_not_read_as_a_busy_node() {
        let mut clock = CpuClock::new();
        let spin = Instant::now();
        let mut x = 0u64;
        while spin.elapsed() < Duration::from_millis(40) {
            x = x.wrapping_mul(31).wrapping_add(1);
        }
        assert!(x != 1);
        assert_eq!(clock.share(), 0.0, "40 ms of work over a 40 ms window");
        std::thread::sleep(CPU_WINDOW);
        let share = clock.share();
        assert!((0.0..=1.0).contains(&share), "{share}");
    }
}
