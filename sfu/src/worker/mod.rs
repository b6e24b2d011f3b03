//! A worker thread: one UDP socket, the rooms placed on it, and every participant `Rtc` in
//! those rooms. Nothing here is shared with other threads, so forwarding takes no lock.
//!
//! The loop: wait for a command, a datagram batch or the next timeout; feed inputs to the
//! `Rtc`s; let the core decide what to forward; write the forwards into the subscribers'
//! `Rtc`s; poll every touched `Rtc` once; send everything in one flush.

mod cascade;
mod input;
mod members;
mod moderation;
mod negotiation;
mod pipe_wire;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec as StrCodec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind as StrKind, Mid, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{Extension, ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, RtcConfig};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use parlor_proto::signal::{MidTrack, ParticipantInfo, PublishTrack, Speaker, TrackInfo};
use parlor_proto::{MediaKind, ParticipantId, RoomCaps, RoomId, Source, TrackId};

use crate::control::{
    CloseReason, EventSender, JoinRequest, Joined, Moderation, ParticipantHandle, Replied, Reply,
    Request, RoomEvent, RoomStatus, SfuError,
};
use crate::core::codec::{self, Codec};
use crate::core::{
    Action, CapsConfig, Forward, JoinError, PacketIn, PeerKey, PublishError, Room, SubscribeError,
    TrackKey,
};
use crate::metrics::{Metrics, Tally};
use crate::peer::{Out, OutState, Peer, Pending, Published};
use crate::sdp_scan;
use crate::udp::Udp;

const TICK: Duration = Duration::from_millis(50);
/// Media that waited longer than this in the socket's receive queue (by the kernel's
/// receive time) is not forwarded: past saturation latency stays bounded and the load
/// sheds instead of queueing.
pub(crate) const LATE_AFTER: Duration = Duration::from_millis(20);
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) enum Command {
    /// A participant to admit, and where its events go.
    Join(
        JoinRequest,
        EventSender,
        oneshot::Sender<Result<Joined, SfuError>>,
    ),
    Request(PeerKey, Request, oneshot::Sender<Replied>),
    Leave(PeerKey, CloseReason),
    /// Set (Some) or read (None) a room's caps.
    SetCaps(RoomId, Option<RoomCaps>, oneshot::Sender<RoomStatus>),
    /// A pipe of a room's local tracks to another node's address ([`cascade`]); replies
    /// with the room's local participants and the pipe's SRTP key.
    PipeOut(
        RoomId,
        SocketAddr,
        EventSender,
        oneshot::Sender<Result<PipeOpened, SfuError>>,
    ),
    /// Mirrors another node's participants, whose media comes from that address under
    /// that SRTP key.
    PipeIn(
        RoomId,
        SocketAddr,
        Vec<ParticipantInfo>,
        Vec<u8>,
        oneshot::Sender<Result<(), SfuError>>,
    ),
    /// An event of another node's pipe.
    Mirror(RoomId, SocketAddr, RoomEvent),
    /// Ends the pipes with another node's address for a room.
    Unpipe(RoomId, SocketAddr),
    /// How many participants of a room are connected here.
    LocalMembers(RoomId, oneshot::Sender<u32>),
    /// A moderator's action on a participant connected here.
    Moderate(
        RoomId,
        ParticipantId,
        Moderation,
        oneshot::Sender<Result<(), SfuError>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

/// A pipe out started: the room's local participants and the pipe's SRTP key.
pub(crate) type PipeOpened = (Vec<ParticipantInfo>, Vec<u8>);

/// One packet on its way to subscribers: what every forward of it shares.
pub(super) struct Packet<'a> {
    pub codec: Codec,
    pub track: TrackKey,
    pub payload: &'a [u8],
    pub marker: bool,
    pub ext: ExtensionValues,
}

pub(crate) struct WorkerConfig {
    pub index: usize,
    pub udp: Udp,
    /// The addresses put in our ICE candidates, the preferred first.
    pub advertised: Vec<SocketAddr>,
    pub caps: CapsConfig,
    pub cert: DtlsCert,
    pub metrics: Metrics,
    pub commands: mpsc::Receiver<Command>,
}

struct RoomEntry {
    core: Room,
    peers: Vec<PeerKey>,
    /// Moderators' server-mutes (and unmutes) of identities while the room is open here.
    server_muted: HashMap<ParticipantId, bool>,
}

pub(crate) struct Worker {
    index: usize,
    label: String,
    udp: Udp,
    advertised: Vec<SocketAddr>,
    default_caps: CapsConfig,
    cert: DtlsCert,
    metrics: Metrics,
    tally: Tally,
    commands: mpsc::Receiver<Command>,
    /// Receive buffer and its per-datagram metadata.
    rx: (Vec<u8>, Vec<crate::udp::RecvMeta>),
    rooms: HashMap<RoomId, RoomEntry>,
    /// Caps set through the admin API, applied whenever the room opens.
    preset_caps: HashMap<RoomId, RoomCaps>,
    peers: HashMap<PeerKey, Peer>,
    by_addr: HashMap<SocketAddr, PeerKey>,
    by_ufrag: HashMap<String, PeerKey>,
    next_peer: u32,
    next_track_base: u32,
    /// Scratch space for the core's actions; reused so the hot path does not allocate.
    actions: Vec<Action>,
    dirty: Vec<PeerKey>,
    /// Each peer's next `Rtc` timeout, soonest first. An entry whose instant is no longer
    /// its peer's `next_timeout` is stale and skipped when it comes up.
    timers: BinaryHeap<Reverse<(Instant, PeerKey)>>,
    next_tick: Instant,
    next_metrics: Instant,
    shutting_down: bool,
    /// Set by whatever can change a peer's m-lines (commands, removals); checked once per
    /// loop turn, so the packet path never scans for negotiations.
    negotiate_due: bool,
    /// Pipes to and from other SFU nodes, for rooms that span them.
    pipes: cascade::Pipes,
    /// Whether the datagram being handled waited past [`LATE_AFTER`].
    late: bool,
}

impl Worker {
    pub(crate) fn new(c: WorkerConfig) -> Worker {
        let now = Instant::now();
        Worker {
            index: c.index,
            label: c.index.to_string(),
            udp: c.udp,
            advertised: c.advertised,
            default_caps: c.caps,
            cert: c.cert,
            metrics: c.metrics,
            tally: Tally::default(),
            commands: c.commands,
            rx: (Vec::new(), Vec::new()),
            rooms: HashMap::new(),
            preset_caps: HashMap::new(),
            peers: HashMap::new(),
            by_addr: HashMap::new(),
            by_ufrag: HashMap::new(),
            next_peer: 1,
            next_track_base: 1,
            actions: Vec::with_capacity(256),
            dirty: Vec::with_capacity(256),
            timers: BinaryHeap::new(),
            next_tick: now,
            next_metrics: now + METRICS_INTERVAL,
            shutting_down: false,
            negotiate_due: false,
            pipes: cascade::Pipes::default(),
            late: false,
        }
    }

    /// Runs until shutdown. Call on the worker's own current-thread runtime.
    pub(crate) async fn run(mut self) {
        info!(worker = self.index, addr = %self.udp.local, "SFU worker running");
        let mut shutdown_ack: Option<oneshot::Sender<()>> = None;
        loop {
            let deadline = self
                .timers
                .peek()
                .map_or(self.next_tick, |t| t.0.0.min(self.next_tick));
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(Command::Shutdown(ack)) => {
                        shutdown_ack = Some(ack);
                        self.shutdown();
                    }
                    Some(cmd) => self.command(cmd),
                    None => self.shutdown(),
                },
                r = self.udp.sock.readable() => {
                    if r.is_ok() {
                        self.receive();
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {}
            }
            // Take any further queued commands without waiting.
            while let Ok(cmd) = self.commands.try_recv() {
                match cmd {
                    Command::Shutdown(ack) => {
                        shutdown_ack = Some(ack);
                        self.shutdown();
                    }
                    cmd => self.command(cmd),
                }
            }
            let now = Instant::now();
            self.timeouts(now);
            // Peers marked closing go at the next tick (or right after a command).
            if now >= self.next_tick {
                self.tick(now);
                self.reap();
            } else if self.negotiate_due {
                self.reap();
            }
            if std::mem::take(&mut self.negotiate_due) {
                self.negotiate_all();
            }
            self.drive(now);
            self.flush();
            if self.shutting_down && self.peers.is_empty() {
                break;
            }
        }
        self.tally.publish(&self.metrics, &self.label);
        if let Some(ack) = shutdown_ack {
            let _ = ack.send(());
        }
        info!(worker = self.index, "SFU worker stopped");
    }

    fn shutdown(&mut self) {
        self.shutting_down = true;
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for k in keys {
            self.remove_peer(k, CloseReason::ServerShutdown, true);
        }
    }

    fn flush(&mut self) {
        if self.udp.has_queued() {
            let f = self.udp.flush();
            self.tally.packets_out += f.packets;
            self.tally.bytes_out += f.bytes;
            self.tally.dropped_send += f.dropped;
            self.tally.syscalls += f.syscalls;
        }
    }

    fn mark_dirty(&mut self, k: PeerKey) {
        if let Some(p) = self.peers.get_mut(&k)
            && !p.dirty
        {
            p.dirty = true;
            self.dirty.push(k);
        }
    }

    fn tick(&mut self, now: Instant) {
        self.next_tick = now + TICK;
        let mut actions = std::mem::take(&mut self.actions);
        let room_ids: Vec<RoomId> = self.rooms.keys().cloned().collect();
        for id in room_ids {
            actions.clear();
            let Some(r) = self.rooms.get_mut(&id) else {
                continue;
            };
            r.core.tick(now, &mut actions);
            let speakers = r.core.poll_speakers(now);
            self.apply_actions(&actions);
            if let Some(list) = speakers {
                let speakers = list
                    .iter()
                    .filter_map(|(k, level)| {
                        let r = self.rooms.get(&id)?;
                        r.core.member(*k).map(|m| Speaker {
                            identity: m.identity.clone(),
                            level: *level,
                        })
                    })
                    .collect();
                self.broadcast(&id, None, RoomEvent::ActiveSpeakers(speakers));
            }
        }
        self.actions = actions;
        for p in self.peers.values_mut() {
            if !p.rtc.is_alive() {
                p.closing.get_or_insert(CloseReason::MediaTimeout);
            }
        }
        if now >= self.next_metrics {
            self.next_metrics = now + METRICS_INTERVAL;
            self.publish_metrics();
            self.set_bandwidth_targets(now);
        }
    }

    /// Once a second: tells each subscriber's bandwidth estimator the rate it would take
    /// to send what the subscriber asked for (plus a quarter for headers and headroom),
    /// when that moved by more than 10%. A rise above the estimate makes str0m probe
    /// for it, so a simulcast subscriber can climb to a layer above its starting
    /// estimate; layers still follow the estimate that results (`Room::set_bandwidth`).
    fn set_bandwidth_targets(&mut self, now: Instant) {
        let mut changed = Vec::new();
        for r in self.rooms.values() {
            let wanted = r.core.wanted_bitrates(now);
            for k in &r.peers {
                let Some(p) = self.peers.get_mut(k) else {
                    continue;
                };
                let wanted = wanted.get(k).copied().unwrap_or(0);
                let desired = wanted + wanted / 4;
                if desired.abs_diff(p.bwe_desired) * 10 <= p.bwe_desired {
                    continue;
                }
                p.bwe_desired = desired;
                tracing::debug!(peer = %p.identity, desired, "bandwidth target");
                p.rtc
                    .bwe()
                    .set_bitrate(Bitrate::ZERO, Bitrate::bps(desired));
                changed.push(*k);
            }
        }
        for k in changed {
            self.mark_dirty(k);
        }
    }

    /// Publishes the tallies since the last time, and the gauges.
    pub(crate) fn publish_metrics(&mut self) {
        self.tally.publish(&self.metrics, &self.label);
        self.publish_gauges();
    }

    fn publish_gauges(&self) {
        let m = &self.metrics;
        m.rooms
            .with_label_values(&[&self.label])
            .set(self.rooms.len() as i64);
        m.participants
            .with_label_values(&[&self.label])
            .set(self.peers.len() as i64);
        for s in [
            Source::Microphone,
            Source::Camera,
            Source::Screen,
            Source::ScreenAudio,
        ] {
            let n = self
                .rooms
                .values()
                .flat_map(|r| r.core.tracks())
                .filter(|t| t.source == s)
                .count();
            m.tracks
                .with_label_values(&[&self.label, s.as_str()])
                .set(n as i64);
        }
    }

    /// Removes peers marked as closing.
    fn reap(&mut self) {
        let closing: Vec<(PeerKey, CloseReason)> = self
            .peers
            .values()
            .filter_map(|p| p.closing.map(|r| (p.key, r)))
            .collect();
        for (k, reason) in closing {
            self.remove_peer(k, reason, true);
        }
    }

    fn command(&mut self, cmd: Command) {
        self.negotiate_due = true;
        match cmd {
            Command::Join(req, events, reply) => {
                let r = self.join(req, events);
                let _ = reply.send(r);
            }
            Command::Request(k, req, reply) => {
                // The events sent before this request (a server offer it may roll back
                // among them) go to the client before the reply.
                let r = match self.peers.get(&k) {
                    Some(p) => Replied {
                        after_event: p.events.numbered(),
                        result: self.request(k, req),
                    },
                    None => Replied::failed(SfuError::NotJoined),
                };
                let _ = reply.send(r);
            }
            Command::Leave(k, reason) => self.remove_peer(k, reason, false),
            Command::SetCaps(room, caps, reply) => {
                if let Some(c) = caps {
                    let preset = self.preset_caps.entry(room.clone()).or_default();
                    *preset = RoomCaps {
                        max_participants: c.max_participants.or(preset.max_participants),
                        max_video_publishers: c
                            .max_video_publishers
                            .or(preset.max_video_publishers),
                        max_screen_shares: c.max_screen_shares.or(preset.max_screen_shares),
                    };
                    if let Some(r) = self.rooms.get_mut(&room) {
                        r.core.caps = r.core.caps.with(Some(c));
                    }
                }
                let _ = reply.send(self.room_status(&room));
            }
            Command::PipeOut(room, to, events, reply) => {
                let _ = reply.send(self.pipe_out(&room, to, events));
            }
            Command::PipeIn(room, from, people, key, reply) => {
                let _ = reply.send(self.pipe_in(&room, from, people, &key));
            }
            Command::Mirror(room, from, event) => self.mirror(&room, from, event),
            Command::Unpipe(room, peer) => self.unpipe(&room, peer),
            Command::LocalMembers(room, reply) => {
                let _ = reply.send(self.local_members(&room));
            }
            Command::Moderate(room, identity, action, reply) => {
                let _ = reply.send(self.moderate(&room, &identity, action));
            }
            Command::Shutdown(_) => {}
        }
    }
}
