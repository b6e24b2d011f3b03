//! A worker thread: one UDP socket, the rooms placed on it, and every participant `Rtc` in
//! those rooms. Nothing here is shared with other threads, so forwarding takes no lock.
//!
//! The loop: wait for a command, a datagram batch or the next timeout; feed inputs to the
//! `Rtc`s; let the core decide what to forward; write the forwards into the subscribers'
//! `Rtc`s; poll every touched `Rtc` once; send everything in one flush.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use str0m::bwe::BweKind;
use str0m::change::{SdpAnswer, SdpOffer};
use str0m::config::DtlsCert;
use str0m::format::Codec as StrCodec;
use str0m::media::{Direction, KeyframeRequestKind, MediaKind as StrKind, Mid, Rid};
use str0m::net::{DatagramRecv, Protocol, Receive};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite};
use str0m::{Candidate, Event, IceConnectionState, IceCreds, Input, Output, RtcConfig};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use parlor_proto::signal::{MidTrack, ParticipantInfo, PublishTrack, Speaker, TrackInfo};
use parlor_proto::{MediaKind, RoomCaps, RoomId, Source, TrackId};

use crate::control::{
    CloseReason, JoinRequest, Joined, ParticipantHandle, Reply, Request, RoomEvent, RoomStatus,
    SfuError,
};
use crate::core::codec::{self, Codec};
use crate::core::{
    Action, CapsConfig, JoinError, PacketIn, PeerKey, PublishError, Room, SubscribeError, TrackKey,
    transport_expired,
};
use crate::metrics::{Metrics, Tally};
use crate::peer::{Out, OutState, Peer, Pending, Published};
use crate::sdp_scan;
use crate::udp::Udp;

const TICK: Duration = Duration::from_millis(50);
const METRICS_INTERVAL: Duration = Duration::from_secs(1);

pub(crate) enum Command {
    /// A participant to admit, and where its events go.
    Join(
        JoinRequest,
        mpsc::Sender<RoomEvent>,
        oneshot::Sender<Result<Joined, SfuError>>,
    ),
    Request(PeerKey, Request, oneshot::Sender<Result<Reply, SfuError>>),
    Leave(PeerKey, CloseReason),
    /// Set (Some) or read (None) a room's caps.
    SetCaps(RoomId, Option<RoomCaps>, oneshot::Sender<RoomStatus>),
    Shutdown(oneshot::Sender<()>),
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
    rx: (Vec<u8>, Vec<quinn_udp::RecvMeta>),
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
    next_tick: Instant,
    next_metrics: Instant,
    shutting_down: bool,
    /// Set by whatever can change a peer's m-lines (commands, removals); checked once per
    /// loop turn, so the packet path never scans for negotiations.
    negotiate_due: bool,
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
            next_tick: now,
            next_metrics: now + METRICS_INTERVAL,
            shutting_down: false,
            negotiate_due: false,
        }
    }

    /// Runs until shutdown. Call on the worker's own current-thread runtime.
    pub(crate) async fn run(mut self) {
        info!(worker = self.index, addr = %self.udp.local, "SFU worker running");
        let mut shutdown_ack: Option<oneshot::Sender<()>> = None;
        loop {
            let deadline = self
                .peers
                .values()
                .map(|p| p.next_timeout)
                .min()
                .unwrap_or(self.next_tick)
                .min(self.next_tick);
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
            if now >= self.next_tick {
                self.tick(now);
            }
            self.reap();
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

    // ---------------------------------------------------------------- network input

    fn receive(&mut self) {
        let (mut rx, mut metas) = std::mem::take(&mut self.rx);
        if rx.is_empty() {
            (rx, metas) = self.udp.recv_buffers();
        }
        let slot = rx.len() / metas.len();
        // Bounded so commands and timers are served under a flood.
        for _ in 0..8 {
            let Ok(n) = self.udp.recv_batch(&mut rx, &mut metas) else {
                break;
            };
            if n == 0 {
                break;
            }
            let now = Instant::now();
            for (i, meta) in metas.iter().take(n).enumerate() {
                let buf = &rx[i * slot..i * slot + meta.len];
                // A GRO batch holds several datagrams of `stride` bytes from one source.
                for seg in buf.chunks(meta.stride.max(1)) {
                    self.datagram(now, meta.addr, meta.dst_ip, seg);
                }
            }
            // Subscribers written to by this batch are polled once, together.
            self.drive(now);
            self.flush();
        }
        self.rx = (rx, metas);
    }

    fn datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        dst_ip: Option<std::net::IpAddr>,
        data: &[u8],
    ) {
        self.tally.packets_in += 1;
        self.tally.bytes_in += data.len() as u64;
        let Ok(contents) = DatagramRecv::try_from(data) else {
            self.tally.dropped_unknown += 1;
            return;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                // The candidate the packet was sent to (when several are announced).
                destination: self
                    .advertised
                    .iter()
                    .find(|a| Some(a.ip()) == dst_ip)
                    .unwrap_or(&self.advertised[0])
                    .to_owned(),
                contents,
            },
        );
        let key = match self.by_addr.get(&source) {
            Some(k) => Some(*k),
            None => crate::udp::stun_local_ufrag(data).and_then(|u| self.by_ufrag.get(u).copied()),
        };
        let Some(key) = key else {
            self.tally.dropped_unknown += 1;
            return;
        };
        let Some(p) = self.peers.get_mut(&key) else {
            return;
        };
        if !p.rtc.accepts(&input) {
            self.tally.dropped_unknown += 1;
            return;
        }
        if let std::collections::hash_map::Entry::Vacant(e) = self.by_addr.entry(source) {
            e.insert(key);
            p.addrs.push(source);
        }
        if let Err(e) = p.rtc.handle_input(input) {
            debug!(peer = %p.identity, error = %e, "rtc input failed");
            p.closing.get_or_insert(CloseReason::MediaError);
            return;
        }
        // RTP mode holds one received packet until the next poll: drain it now.
        self.poll_peer(now, key);
    }

    fn timeouts(&mut self, now: Instant) {
        for p in self.peers.values_mut().filter(|p| p.next_timeout <= now) {
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                debug!(peer = %p.identity, error = %e, "rtc timeout failed");
                p.closing.get_or_insert(CloseReason::MediaError);
            }
            // Pushed forward until poll_output reports the real next timeout.
            p.next_timeout = now + Duration::from_secs(1);
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(p.key);
            }
        }
    }

    /// Polls every dirty peer until it has nothing more; events may dirty further peers.
    fn drive(&mut self, now: Instant) {
        while let Some(k) = self.dirty.pop() {
            if let Some(p) = self.peers.get_mut(&k) {
                p.dirty = false;
            }
            self.poll_peer(now, k);
        }
    }

    fn poll_peer(&mut self, now: Instant, k: PeerKey) {
        loop {
            let Some(p) = self.peers.get_mut(&k) else {
                return;
            };
            if p.closing.is_some() && !self.shutting_down {
                return;
            }
            let out = match p.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => {
                    debug!(peer = %p.identity, error = %e, "rtc poll failed");
                    p.closing.get_or_insert(CloseReason::MediaError);
                    return;
                }
            };
            match out {
                Output::Timeout(t) => {
                    p.next_timeout = t;
                    return;
                }
                Output::Transmit(t) => self.udp.queue(t.destination, t.source.ip(), &t.contents),
                Output::Event(e) => self.event(now, k, e),
            }
        }
    }

    // ---------------------------------------------------------------- rtc events

    fn event(&mut self, now: Instant, k: PeerKey, e: Event) {
        match e {
            Event::RtpPacket(pkt) => self.rtp(now, k, pkt),
            Event::KeyframeRequest(req) => {
                self.tally.plis_rx += 1;
                let Some(p) = self.peers.get(&k) else { return };
                let Some(track) = p
                    .out_by_mid(req.mid)
                    .and_then(|s| p.outs[s as usize].as_ref())
                    .map(|o| o.track)
                else {
                    return;
                };
                let room = p.room.clone();
                self.in_room(&room, |r, out| {
                    r.subscriber_keyframe_request(now, k, track, out)
                });
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                let bps = estimate.as_u64();
                let Some(room) = self.peers.get(&k).map(|p| p.room.clone()) else {
                    return;
                };
                self.in_room(&room, |r, out| r.set_bandwidth(now, k, bps, out));
            }
            Event::IceConnectionStateChange(s) => {
                let Some(p) = self.peers.get_mut(&k) else {
                    return;
                };
                debug!(peer = %p.identity, state = ?s, "ice state");
                match s {
                    IceConnectionState::Disconnected => {
                        p.disconnected_since.get_or_insert(now);
                    }
                    IceConnectionState::Connected | IceConnectionState::Completed => {
                        p.disconnected_since = None;
                    }
                    _ => {}
                }
            }
            Event::Connected => {
                if let Some(p) = self.peers.get_mut(&k) {
                    p.disconnected_since = None;
                    debug!(peer = %p.identity, "dtls connected");
                }
            }
            Event::MediaEgressStats(s) => {
                let Some(p) = self.peers.get_mut(&k) else {
                    return;
                };
                let Some(slot) = p.out_by_mid(s.mid) else {
                    return;
                };
                let Some(Some(o)) = p.outs.get_mut(slot as usize) else {
                    return;
                };
                let sent = s.packets.saturating_sub(o.stat_packets);
                let written = o.written - o.stat_written;
                self.tally.rtx += sent.saturating_sub(written);
                self.tally.nacks_rx += s.nacks.saturating_sub(o.stat_nacks);
                (o.stat_packets, o.stat_nacks, o.stat_written) = (s.packets, s.nacks, o.written);
            }
            Event::MediaIngressStats(s) => {
                let Some(p) = self.peers.get_mut(&k) else {
                    return;
                };
                if let Some(pb) = p.published.iter_mut().find(|pb| pb.mid == s.mid) {
                    self.tally.nacks_tx += s.nacks.saturating_sub(pb.stat_nacks);
                    pb.stat_nacks = s.nacks;
                }
            }
            Event::PeerStats(_) => {}
            _ => {}
        }
    }

    /// The forwarding hot path for one received RTP packet.
    fn rtp(&mut self, now: Instant, k: PeerKey, pkt: RtpPacket) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        let ssrc = pkt.header.ssrc;
        let entry = match p.ssrc_map.iter().find(|e| e.0 == ssrc) {
            Some(e) => Some((e.1, e.2, e.3)),
            None => resolve_ssrc(p, &pkt),
        };
        let Some((track, layer, codec)) = entry else {
            tracing::trace!(peer = %p.identity, %ssrc, "rtp on unknown stream");
            self.tally.dropped_unknown += 1;
            return;
        };
        let keyframe = codec::is_keyframe_start(codec, &pkt.payload);
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        if let Some(level) = pkt.header.ext_vals.audio_level {
            room.core.on_audio_level(now, k, level.unsigned_abs());
        }
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        room.core.on_rtp(
            now,
            track,
            layer,
            PacketIn {
                seq: *pkt.seq_no,
                ts: pkt.header.timestamp,
                keyframe,
                len: pkt.payload.len(),
            },
            &mut actions,
        );
        let ext = ExtensionValues {
            audio_level: pkt.header.ext_vals.audio_level,
            voice_activity: pkt.header.ext_vals.voice_activity,
            video_orientation: pkt.header.ext_vals.video_orientation,
            ..Default::default()
        };
        let video = codec.is_video();
        for a in &actions {
            let Action::Forward(f) = a else { continue };
            let Some(s) = self.peers.get_mut(&f.sub) else {
                continue;
            };
            let Some(Some(out)) = s.outs.get_mut(f.slot as usize) else {
                continue;
            };
            if out.ssrc.is_none() {
                out.ssrc = out.mid.and_then(|m| {
                    let mut api = s.rtc.direct_api();
                    let tx = api.stream_tx_by_mid(m, None)?;
                    // Forwarded media leaves in bursts, as it came: the pacer would spread
                    // it over timer wake-ups and defeat send batching. BWE still runs.
                    tx.set_unpaced(true);
                    Some(tx.ssrc())
                });
            }
            let (Some(ssrc), Some(pt)) = (out.ssrc, out.pt(codec, &s.rtc)) else {
                continue;
            };
            let mut api = s.rtc.direct_api();
            let Some(tx) = api.stream_tx(&ssrc) else {
                continue;
            };
            tx.write_rtp(
                RtpWrite::new(pt, f.seq.into(), f.ts, now, pkt.payload.clone())
                    .marker(pkt.header.marker)
                    .nackable(video)
                    .ext_vals(ext.clone()),
            );
            out.written += 1;
            self.tally.forwarded += 1;
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(f.sub);
            }
        }
        if actions
            .iter()
            .any(|a| matches!(a, Action::KeyframeRequest { .. }))
        {
            self.keyframe_actions(&actions);
        }
        self.actions = actions;
    }

    /// Runs `f` on a room's core with the scratch action list, then sends the keyframe
    /// requests it produced. `None` if the room is not open here.
    fn in_room<R>(
        &mut self,
        room: &RoomId,
        f: impl FnOnce(&mut Room, &mut Vec<Action>) -> R,
    ) -> Option<R> {
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        let r = self
            .rooms
            .get_mut(room)
            .map(|r| f(&mut r.core, &mut actions));
        self.keyframe_actions(&actions);
        self.actions = actions;
        r
    }

    /// Sends the keyframe requests among `actions` to their publishers.
    fn keyframe_actions(&mut self, actions: &[Action]) {
        for a in actions {
            let Action::KeyframeRequest {
                owner,
                track,
                layer,
            } = a
            else {
                continue;
            };
            let Some(p) = self.peers.get_mut(owner) else {
                continue;
            };
            let Some(pubd) = p.published_track(*track) else {
                continue;
            };
            let (mid, rid) = (pubd.mid, pubd.rids.get(*layer).copied());
            if let Some(rx) = p.rtc.direct_api().stream_rx_by_mid(mid, rid) {
                rx.request_keyframe(KeyframeRequestKind::Pli);
                self.tally.plis_tx += 1;
                self.mark_dirty(*owner);
            }
        }
    }

    // ---------------------------------------------------------------- periodic

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
            self.keyframe_actions(&actions);
            if let Some(list) = speakers {
                let speakers = list
                    .iter()
                    .filter_map(|(k, level)| {
                        self.peers.get(k).map(|p| Speaker {
                            identity: p.identity.clone(),
                            level: *level,
                        })
                    })
                    .collect();
                self.broadcast(&id, None, RoomEvent::ActiveSpeakers(speakers));
            }
        }
        self.actions = actions;
        for p in self.peers.values_mut() {
            if transport_expired(p.disconnected_since, now) || !p.rtc.is_alive() {
                p.closing.get_or_insert(CloseReason::MediaTimeout);
            }
        }
        if now >= self.next_metrics {
            self.next_metrics = now + METRICS_INTERVAL;
            self.tally.publish(&self.metrics, &self.label);
            self.publish_gauges();
        }
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

    // ---------------------------------------------------------------- commands

    fn command(&mut self, cmd: Command) {
        self.negotiate_due = true;
        match cmd {
            Command::Join(req, events, reply) => {
                let r = self.join(req, events);
                let _ = reply.send(r);
            }
            Command::Request(k, req, reply) => {
                let r = if self.peers.contains_key(&k) {
                    self.request(k, req)
                } else {
                    Err(SfuError::NotJoined)
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
            Command::Shutdown(_) => {}
        }
    }

    fn join(
        &mut self,
        req: JoinRequest,
        events: mpsc::Sender<RoomEvent>,
    ) -> Result<Joined, SfuError> {
        if self.shutting_down {
            return Err(SfuError::Unavailable);
        }
        let default_caps = self
            .default_caps
            .with(self.preset_caps.get(&req.room).copied());
        let track_base = self.next_track_base;
        let entry = self.rooms.entry(req.room.clone()).or_insert_with(|| {
            let caps = default_caps.with(req.caps);
            RoomEntry {
                core: Room::new(caps, track_base),
                peers: Vec::new(),
            }
        });
        // Caps in a token are its issuer's word about the room: they apply whoever holds
        // it (chat puts a voice channel's cap in every member's token).
        if req.caps.is_some() {
            entry.core.caps = entry.core.caps.with(req.caps);
        }
        let key = PeerKey(self.next_peer);
        let result = entry.core.admit(
            key,
            req.identity.clone(),
            req.name.clone(),
            req.grants.clone(),
            req.hidden,
        );
        let replaced = match result {
            Ok(replaced) => replaced,
            Err(e) => {
                if entry.core.is_empty() {
                    self.rooms.remove(&req.room);
                }
                return Err(match e {
                    JoinError::RoomFull(_) => SfuError::RoomFull(e.to_string()),
                    JoinError::AlreadyJoined => SfuError::BadRequest(e.to_string()),
                });
            }
        };
        entry.core.set_auto_subscribe(key, req.auto_subscribe);
        self.next_track_base += 1_000_000;
        self.next_peer += 1;
        // The core decided that this session replaces an older one of the same identity.
        if let Some(old) = replaced {
            self.remove_peer(old, CloseReason::Replaced, true);
        }
        if let Some(entry) = self.rooms.get_mut(&req.room) {
            entry.peers.push(key);
        }

        let creds = IceCreds::new();
        let mut rtc = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .enable_bwe(Some(str0m::bwe::Bitrate::kbps(1_500)))
            .set_stats_interval(Some(Duration::from_secs(1)))
            .build(Instant::now());
        for addr in &self.advertised {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(error = %e, "bad local candidate"),
            }
        }
        let peer = Peer {
            key,
            room: req.room.clone(),
            identity: req.identity.clone(),
            hidden: req.hidden,
            whep: false,
            unpublished: Vec::new(),
            rtc,
            ufrag: creds.ufrag.clone(),
            events,
            next_timeout: Instant::now(),
            dirty: false,
            published: Vec::new(),
            ssrc_map: Vec::new(),
            outs: Vec::new(),
            pending: None,
            next_offer_id: 1,
            ice_restart: false,
            addrs: Vec::new(),
            disconnected_since: None,
            closing: None,
        };
        self.by_ufrag.insert(creds.ufrag, key);
        self.peers.insert(key, peer);

        let me = self.participant_info(&req.room, key);
        let participants = self.participants_except(&req.room, key);
        if !req.hidden
            && let Some(me) = me.clone()
        {
            self.broadcast(&req.room, Some(key), RoomEvent::ParticipantJoined(me));
        }
        // Everything already published flows to an auto-subscribing newcomer.
        let tracks: Vec<TrackKey> = self
            .rooms
            .get(&req.room)
            .map(|r| r.core.auto_subscriptions(key))
            .unwrap_or_default();
        for t in tracks {
            let _ = self.subscribe(key, t);
        }
        info!(room = %req.room, identity = %req.identity, worker = self.index, "joined");
        Ok(Joined {
            handle: ParticipantHandle {
                node: crate::LOCAL_NODE.into(),
                room: req.room,
                identity: req.identity,
                key: u64::from(key.0),
            },
            me: me.ok_or(SfuError::NotJoined)?,
            participants,
        })
    }

    fn request(&mut self, k: PeerKey, req: Request) -> Result<Reply, SfuError> {
        let now = Instant::now();
        let room = self
            .peers
            .get(&k)
            .map(|p| p.room.clone())
            .ok_or(SfuError::NotJoined)?;
        match req {
            Request::Offer {
                sdp,
                tracks,
                infer_sources,
            } => self.client_offer(k, &room, &sdp, tracks, infer_sources),
            Request::Answer { offer_id, sdp } => self.client_answer(now, k, &room, offer_id, &sdp),
            Request::WhepOffer { sdp, target } => self.whep_offer(now, k, &room, &sdp, &target),
            Request::Unpublish(id) => {
                let t = self.own_track(k, &room, &id)?;
                self.unpublish(&room, t);
                Ok(Reply::Ok)
            }
            Request::Mute(id, muted) => {
                let t = self.own_track(k, &room, &id)?;
                let changed = self
                    .rooms
                    .get_mut(&room)
                    .is_some_and(|r| r.core.set_muted(t, muted));
                if changed {
                    let identity = self.peers[&k].identity.clone();
                    self.broadcast(
                        &room,
                        Some(k),
                        RoomEvent::TrackMuted {
                            track_id: id,
                            participant: identity,
                            muted,
                        },
                    );
                }
                Ok(Reply::Ok)
            }
            Request::Subscribe(id) => {
                let t = self.track_key(&room, &id)?;
                self.subscribe(k, t)?;
                Ok(Reply::Ok)
            }
            Request::Unsubscribe(id) => {
                let t = self.track_key(&room, &id)?;
                self.rooms
                    .get_mut(&room)
                    .and_then(|r| r.core.unsubscribe(k, t))
                    .ok_or(SfuError::UnknownTrack)?;
                // Negotiated or not, its m-line goes.
                if let Some(p) = self.peers.get_mut(&k)
                    && let Some(slot) = p.out_for_track(t)
                {
                    p.stop_out(slot);
                }
                Ok(Reply::Ok)
            }
            Request::Pause(id, paused) => {
                let t = self.track_key(&room, &id)?;
                self.in_room(&room, |r, out| r.set_paused(now, k, t, paused, out))
                    .filter(|ok| *ok)
                    .map(|_| Reply::Ok)
                    .ok_or(SfuError::UnknownTrack)
            }
            Request::Quality(id, q) => {
                let t = self.track_key(&room, &id)?;
                self.in_room(&room, |r, out| r.set_quality(now, k, t, q, out))
                    .filter(|ok| *ok)
                    .map(|_| Reply::Ok)
                    .ok_or(SfuError::UnknownTrack)
            }
            Request::IceRestart => {
                if let Some(p) = self.peers.get_mut(&k) {
                    p.ice_restart = true;
                }
                Ok(Reply::Ok)
            }
        }
    }

    fn room_status(&self, room: &RoomId) -> RoomStatus {
        let Some(r) = self.rooms.get(room) else {
            return RoomStatus {
                caps: self.default_caps.with(self.preset_caps.get(room).copied()),
                open: false,
                participants: 0,
                video_publishers: 0,
                screen_shares: 0,
            };
        };
        let o = r.core.occupancy();
        RoomStatus {
            caps: r.core.caps,
            open: true,
            participants: o.participants,
            video_publishers: o.video_publishers,
            screen_shares: o.screen_shares,
        }
    }

    fn track_key(&self, room: &RoomId, id: &TrackId) -> Result<TrackKey, SfuError> {
        self.rooms
            .get(room)
            .and_then(|r| r.core.find_track(id))
            .ok_or(SfuError::UnknownTrack)
    }

    fn own_track(&self, k: PeerKey, room: &RoomId, id: &TrackId) -> Result<TrackKey, SfuError> {
        let t = self.track_key(room, id)?;
        let owner = self
            .rooms
            .get(room)
            .and_then(|r| r.core.track(t))
            .map(|t| t.owner);
        if owner != Some(k) {
            return Err(SfuError::Forbidden("not your track".into()));
        }
        Ok(t)
    }

    /// A client's SDP offer: label and check what it publishes, apply it, answer.
    fn client_offer(
        &mut self,
        k: PeerKey,
        room: &RoomId,
        sdp: &str,
        labels: Vec<PublishTrack>,
        infer: bool,
    ) -> Result<Reply, SfuError> {
        // Any client offer, even one refused below, means the client ignored an offer of
        // ours that crossed it (we are the polite side): ours is redone afterwards.
        if let Some(p) = self.peers.get_mut(&k) {
            p.roll_back_pending();
        }
        self.mark_dirty(k);
        let sections = sdp_scan::scan(sdp).map_err(SfuError::InvalidSdp)?;
        let offer = SdpOffer::from_sdp_string(&sdp_scan::normalize_bundle(sdp))
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let p = self.peers.get(&k).ok_or(SfuError::NotJoined)?;
        // New m-lines the client sends on, with their labels.
        let mut new_tracks: Vec<(Mid, Source, Vec<String>, bool)> = Vec::new();
        for s in sections.iter().filter(|s| s.sends) {
            let Some(kind) = s.kind else { continue };
            let mid = Mid::from(s.mid.as_str());
            if p.published_by_mid(mid).is_some() {
                continue;
            }
            let label = labels.iter().find(|l| l.mid == s.mid);
            if label.is_none() && p.unpublished.contains(&mid) {
                // Unpublished; the client has not stopped the m-line yet.
                continue;
            }
            let (source, layers, muted) = match (label, infer) {
                (Some(l), _) => (l.source, l.layers.clone(), l.muted),
                (None, true) => (
                    if kind == MediaKind::Audio {
                        Source::Microphone
                    } else {
                        Source::Camera
                    },
                    Vec::new(),
                    false,
                ),
                (None, false) => {
                    return Err(SfuError::BadRequest(format!(
                        "m-line {} sends {kind:?} but has no entry in tracks",
                        s.mid
                    )));
                }
            };
            if source.kind() != kind {
                return Err(SfuError::BadRequest(format!(
                    "m-line {} is {kind:?} but is labelled {}",
                    s.mid,
                    source.as_str()
                )));
            }
            let layers = if layers.is_empty() {
                s.rids.clone()
            } else {
                layers
            };
            if layers.iter().any(|l| !s.rids.contains(l)) && !s.rids.is_empty() {
                return Err(SfuError::BadRequest(format!(
                    "m-line {} layers do not match its a=rid lines",
                    s.mid
                )));
            }
            Room::check_layers(&layers).map_err(|e| SfuError::BadRequest(e.to_string()))?;
            new_tracks.push((mid, source, layers, muted));
        }
        // Published m-lines that stopped sending.
        let stopped: Vec<TrackKey> = p
            .published
            .iter()
            .filter(|pb| {
                !sections
                    .iter()
                    .any(|s| s.sends && Mid::from(s.mid.as_str()) == pb.mid)
            })
            .map(|pb| pb.track)
            .collect();

        // Check grants and caps for everything before changing anything.
        let r = self.rooms.get_mut(room).ok_or(SfuError::NotJoined)?;
        let mut created: Vec<(Mid, TrackKey, Vec<String>)> = Vec::new();
        for (mid, source, layers, muted) in &new_tracks {
            match r.core.publish(k, *source, layers.clone(), *muted) {
                Ok(t) => created.push((*mid, t, layers.clone())),
                Err(e) => {
                    for (_, t, _) in &created {
                        r.core.unpublish(*t);
                    }
                    return Err(match e {
                        PublishError::NotGranted(_) => SfuError::Forbidden(e.to_string()),
                        PublishError::VideoPublishersFull(_) => {
                            SfuError::VideoPublishersFull(e.to_string())
                        }
                        PublishError::ScreenSharesFull(_) => {
                            SfuError::ScreenSharesFull(e.to_string())
                        }
                        PublishError::NotJoined => SfuError::NotJoined,
                        PublishError::TooManyLayers(_) => SfuError::BadRequest(e.to_string()),
                    });
                }
            }
        }

        let Some(p) = self.peers.get_mut(&k) else {
            return Err(SfuError::NotJoined);
        };
        let answer = match p.rtc.sdp_api().accept_offer(offer) {
            Ok(a) => a,
            Err(e) => {
                if let Some(r) = self.rooms.get_mut(room) {
                    for (_, t, _) in &created {
                        r.core.unpublish(*t);
                    }
                }
                return Err(SfuError::InvalidSdp(e.to_string()));
            }
        };
        // A client-side ICE restart changes our credentials too: keep demultiplexing.
        let ufrag = p.rtc.direct_api().local_ice_credentials().ufrag;
        if ufrag != p.ufrag {
            self.by_ufrag.remove(&p.ufrag);
            self.by_ufrag.insert(ufrag.clone(), k);
            p.ufrag = ufrag;
        }
        p.unpublished.retain(|m| {
            sections
                .iter()
                .any(|s| s.sends && Mid::from(s.mid.as_str()) == *m)
        });
        self.mark_dirty(k);
        for t in stopped {
            self.unpublish(room, t);
        }
        let mut reply_tracks = Vec::new();
        for (mid, track, layers) in created {
            let Some(p) = self.peers.get_mut(&k) else {
                break;
            };
            p.published.push(Published {
                mid,
                track,
                rids: layers.iter().map(|l| Rid::from(l.as_str())).collect(),
                stat_nacks: 0,
            });
            let Some(info) = self.track_info(room, track) else {
                continue;
            };
            reply_tracks.push(MidTrack {
                mid: mid.to_string(),
                track_id: info.track_id.clone(),
            });
            self.announce_track(room, k, track, info);
        }
        Ok(Reply::Answer {
            sdp: answer.to_sdp_string(),
            tracks: reply_tracks,
        })
    }

    fn announce_track(&mut self, room: &RoomId, owner: PeerKey, track: TrackKey, info: TrackInfo) {
        self.broadcast(room, Some(owner), RoomEvent::TrackPublished(info));
        let subscribers: Vec<PeerKey> = self
            .rooms
            .get(room)
            .map(|r| r.core.auto_subscribers(track))
            .unwrap_or_default();
        for s in subscribers {
            let _ = self.subscribe(s, track);
        }
    }

    fn client_answer(
        &mut self,
        now: Instant,
        k: PeerKey,
        room: &RoomId,
        offer_id: u64,
        sdp: &str,
    ) -> Result<Reply, SfuError> {
        let answer = SdpAnswer::from_sdp_string(&sdp_scan::normalize_bundle(sdp))
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let p = self.peers.get_mut(&k).ok_or(SfuError::NotJoined)?;
        let Some(pending) = p.pending.take_if(|pd| pd.offer_id == offer_id) else {
            return Err(SfuError::BadRequest(format!(
                "offer {offer_id} is not the pending offer (it was superseded)"
            )));
        };
        let restart = pending.ice_restart;
        if let Err(e) = p.rtc.sdp_api().accept_answer(pending.offer, answer) {
            // The offer is gone either way: put its changes back and offer again.
            p.redo_offer(restart);
            self.mark_dirty(k);
            return Err(SfuError::InvalidSdp(e.to_string()));
        }
        debug!(peer = %p.identity, offer_id, "answer accepted");
        let mut ready = Vec::new();
        for (slot, entry) in p.outs.iter_mut().enumerate() {
            let Some(o) = entry else { continue };
            match o.state {
                OutState::Negotiating => {
                    o.state = OutState::Open;
                    ready.push((slot as u32, o.track));
                }
                OutState::NegotiatingStop => *entry = None,
                _ => {}
            }
        }
        self.mark_dirty(k);
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        if let Some(r) = self.rooms.get_mut(room) {
            for (slot, track) in ready {
                r.core.downtrack_ready(now, k, track, slot, &mut actions);
            }
        }
        self.keyframe_actions(&actions);
        self.actions = actions;
        Ok(Reply::Ok)
    }

    /// WHEP: the viewer offers receive-only m-lines; bind them to the target's microphone
    /// and camera.
    fn whep_offer(
        &mut self,
        now: Instant,
        k: PeerKey,
        room: &RoomId,
        sdp: &str,
        target: &parlor_proto::ParticipantId,
    ) -> Result<Reply, SfuError> {
        let sections = sdp_scan::scan(sdp).map_err(SfuError::InvalidSdp)?;
        let offer =
            SdpOffer::from_sdp_string(sdp).map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let r = self.rooms.get(room).ok_or(SfuError::NotJoined)?;
        let owner = r
            .core
            .find_member(target)
            .filter(|o| r.core.member(*o).is_some_and(|m| !m.hidden))
            .ok_or_else(|| SfuError::UnknownParticipant(target.to_string()))?;
        let pick = |src: Source| {
            r.core
                .tracks()
                .filter(|t| t.owner == owner && t.source == src)
                .map(|t| t.key)
                .min()
        };
        let audio = pick(Source::Microphone);
        let video = pick(Source::Camera).or_else(|| pick(Source::Screen));
        let p = self.peers.get_mut(&k).ok_or(SfuError::NotJoined)?;
        p.whep = true;
        let answer = p
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| SfuError::InvalidSdp(e.to_string()))?;
        let mut bound = Vec::new();
        for s in sections.iter().filter(|s| s.receives) {
            let track = match s.kind {
                Some(MediaKind::Audio) => audio,
                Some(MediaKind::Video) => video,
                None => None,
            };
            let Some(track) = track else { continue };
            if bound.iter().any(|(_, t)| *t == track) {
                continue;
            }
            bound.push((Mid::from(s.mid.as_str()), track));
        }
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        for (mid, track) in bound {
            let Some(r) = self.rooms.get_mut(room) else {
                break;
            };
            if r.core.subscribe(k, track).is_err() {
                continue;
            }
            let Some(t) = r.core.track(track) else {
                continue;
            };
            let (track_id, kind) = (t.id.clone(), t.kind());
            let Some(p) = self.peers.get_mut(&k) else {
                break;
            };
            let mut out = Out::new(track, track_id, target.clone(), kind);
            out.state = OutState::Open;
            out.mid = Some(mid);
            let slot = p.add_out(out);
            r.core.downtrack_ready(now, k, track, slot, &mut actions);
        }
        self.keyframe_actions(&actions);
        self.actions = actions;
        self.mark_dirty(k);
        Ok(Reply::Answer {
            sdp: answer.to_sdp_string(),
            tracks: Vec::new(),
        })
    }

    fn subscribe(&mut self, k: PeerKey, track: TrackKey) -> Result<(), SfuError> {
        let room = self
            .peers
            .get(&k)
            .map(|p| p.room.clone())
            .ok_or(SfuError::NotJoined)?;
        let r = self.rooms.get_mut(&room).ok_or(SfuError::NotJoined)?;
        match r.core.subscribe(k, track) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(SubscribeError::NotGranted) => {
                return Err(SfuError::Forbidden(
                    "the token does not grant subscribing".into(),
                ));
            }
            Err(SubscribeError::OwnTrack) => {
                return Err(SfuError::BadRequest(
                    "cannot subscribe to your own track".into(),
                ));
            }
            Err(SubscribeError::UnknownTrack) => return Err(SfuError::UnknownTrack),
        }
        let Some(t) = r.core.track(track) else {
            return Err(SfuError::UnknownTrack);
        };
        let (id, kind, owner) = (t.id.clone(), t.kind(), t.owner);
        let owner_identity = self
            .peers
            .get(&owner)
            .map(|p| p.identity.clone())
            .ok_or(SfuError::UnknownTrack)?;
        if let Some(p) = self.peers.get_mut(&k) {
            p.add_out(Out::new(track, id, owner_identity, kind));
        }
        Ok(())
    }

    fn unpublish(&mut self, room: &RoomId, track: TrackKey) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(t) = r.core.unpublish(track) else {
            return;
        };
        if let Some(p) = self.peers.get_mut(&t.owner) {
            if let Some(pb) = p.published.iter().find(|pb| pb.track == track) {
                p.unpublished.push(pb.mid);
            }
            p.published.retain(|pb| pb.track != track);
            p.ssrc_map.retain(|e| e.1 != track);
        }
        for d in &t.downtracks {
            if let Some(s) = self.peers.get_mut(&d.sub)
                && let Some(slot) = s.out_for_track(track)
            {
                s.stop_out(slot);
            }
        }
        let owner = self.peers.get(&t.owner).map(|p| p.identity.clone());
        if let Some(owner) = owner {
            self.broadcast(
                room,
                Some(t.owner),
                RoomEvent::TrackUnpublished {
                    track_id: t.id.clone(),
                    participant: owner,
                },
            );
        }
    }

    /// Removes a participant, its tracks and its subscriptions, and tells the room.
    fn remove_peer(&mut self, k: PeerKey, reason: CloseReason, notify_self: bool) {
        let Some(mut p) = self.peers.remove(&k) else {
            return;
        };
        self.negotiate_due = true;
        for a in &p.addrs {
            self.by_addr.remove(a);
        }
        self.by_ufrag.remove(&p.ufrag);
        if notify_self {
            let _ = p.events.try_send(RoomEvent::Closed(reason));
        }
        // Flush a goodbye to the client (RTCP BYE, DTLS close_notify) where possible.
        let _ = p.rtc.close();
        while let Ok(Output::Transmit(t)) = p.rtc.poll_output() {
            self.udp.queue(t.destination, t.source.ip(), &t.contents);
        }
        let room = p.room.clone();
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        r.peers.retain(|x| *x != k);
        let gone = r.core.remove(k);
        let empty = r.core.is_empty();
        for t in &gone {
            for d in &t.downtracks {
                if let Some(s) = self.peers.get_mut(&d.sub)
                    && let Some(slot) = s.out_for_track(t.key)
                {
                    s.stop_out(slot);
                }
            }
        }
        if empty {
            self.rooms.remove(&room);
        } else if !p.hidden {
            self.broadcast(
                &room,
                Some(k),
                RoomEvent::ParticipantLeft {
                    identity: p.identity.clone(),
                    reason,
                },
            );
        }
        info!(room = %room, identity = %p.identity, reason = reason.as_str(), "left");
    }

    // ---------------------------------------------------------------- negotiation

    /// Sends a server offer to every participant with m-lines to add or stop and no offer
    /// already in flight.
    fn negotiate_all(&mut self) {
        let keys: Vec<PeerKey> = self
            .peers
            .values()
            .filter(|p| p.pending.is_none() && p.closing.is_none() && p.needs_negotiation())
            .map(|p| p.key)
            .collect();
        for k in keys {
            self.negotiate(k);
        }
    }

    fn negotiate(&mut self, k: PeerKey) {
        let Some(p) = self.peers.get_mut(&k) else {
            return;
        };
        let mut api = p.rtc.sdp_api();
        let mut new_ufrag = None;
        if p.ice_restart {
            p.ice_restart = false;
            new_ufrag = Some(api.ice_restart(true).ufrag);
        }
        for o in p.outs.iter_mut().flatten() {
            match o.state {
                OutState::ToOpen => {
                    let kind = match o.kind {
                        MediaKind::Audio => StrKind::Audio,
                        MediaKind::Video => StrKind::Video,
                    };
                    let mid = api.add_media(
                        kind,
                        Direction::SendOnly,
                        Some(o.owner.to_string()),
                        Some(o.track_id.to_string()),
                        None,
                    );
                    o.mid = Some(mid);
                    o.ssrc = None;
                    o.state = OutState::Negotiating;
                }
                OutState::ToStop => {
                    if let Some(mid) = o.mid {
                        api.stop_media(mid);
                    }
                    o.state = OutState::NegotiatingStop;
                }
                _ => {}
            }
        }
        let Some((offer, pending)) = api.apply() else {
            return;
        };
        let restarting = new_ufrag.is_some();
        if let Some(u) = new_ufrag {
            self.by_ufrag.remove(&p.ufrag);
            p.ufrag = u.clone();
            self.by_ufrag.insert(u, k);
        }
        let offer_id = p.next_offer_id;
        p.next_offer_id += 1;
        p.pending = Some(Pending {
            offer_id,
            offer: pending,
            ice_restart: restarting,
        });
        let tracks = p
            .outs
            .iter()
            .flatten()
            .filter(|o| matches!(o.state, OutState::Open | OutState::Negotiating))
            .filter_map(|o| {
                o.mid.map(|m| MidTrack {
                    mid: m.to_string(),
                    track_id: o.track_id.clone(),
                })
            })
            .collect();
        debug!(peer = %p.identity, offer_id, "server offer");
        p.send(RoomEvent::Offer {
            offer_id,
            sdp: offer.to_sdp_string(),
            tracks,
        });
        self.mark_dirty(k);
    }

    // ---------------------------------------------------------------- room views

    fn track_info(&self, room: &RoomId, t: TrackKey) -> Option<TrackInfo> {
        let r = self.rooms.get(room)?;
        let t = r.core.track(t)?;
        let owner = self.peers.get(&t.owner)?;
        Some(TrackInfo {
            track_id: t.id.clone(),
            participant: owner.identity.clone(),
            kind: t.kind(),
            source: t.source,
            muted: t.muted,
            layers: t.rids.clone(),
        })
    }

    fn participant_info(&self, room: &RoomId, k: PeerKey) -> Option<ParticipantInfo> {
        let r = self.rooms.get(room)?;
        let m = r.core.member(k)?;
        Some(ParticipantInfo {
            identity: m.identity.clone(),
            name: m.name.clone(),
            tracks: m
                .tracks
                .iter()
                .filter_map(|t| self.track_info(room, *t))
                .collect(),
        })
    }

    fn participants_except(&self, room: &RoomId, k: PeerKey) -> Vec<ParticipantInfo> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.core
            .members()
            .filter(|(key, m)| *key != k && !m.hidden)
            .filter_map(|(key, _)| self.participant_info(room, key))
            .collect()
    }

    /// Sends a room event to every visible participant except `except`.
    fn broadcast(&mut self, room: &RoomId, except: Option<PeerKey>, msg: RoomEvent) {
        let Some(r) = self.rooms.get(room) else {
            return;
        };
        let ephemeral = msg.is_ephemeral();
        for k in &r.peers {
            if Some(*k) == except {
                continue;
            }
            let Some(p) = self.peers.get_mut(k) else {
                continue;
            };
            if p.hidden {
                continue;
            }
            if ephemeral {
                // Dropped for a slow consumer rather than closing it.
                let _ = p.events.try_send(msg.clone());
            } else {
                p.send(msg.clone());
            }
        }
    }
}

/// First packet on an SSRC: find its m-line, layer and codec.
fn resolve_ssrc(p: &mut Peer, pkt: &RtpPacket) -> Option<(TrackKey, usize, Codec)> {
    let ssrc = pkt.header.ssrc;
    let (mid, rid) = {
        let mut api = p.rtc.direct_api();
        let rx = api.stream_rx(&ssrc)?;
        (rx.mid(), rx.rid())
    };
    let pubd = p.published_by_mid(mid)?;
    let layer = match rid {
        // A layer the client did not declare is not forwarded.
        Some(r) => pubd.rids.iter().position(|x| *x == r)?,
        None => 0,
    };
    let track = pubd.track;
    let params = p
        .rtc
        .codec_config()
        .params()
        .iter()
        .find(|x| x.pt() == pkt.header.payload_type)?;
    let codec = match params.spec().codec {
        StrCodec::Opus => Codec::Opus,
        StrCodec::Vp8 => Codec::Vp8,
        StrCodec::Vp9 => Codec::Vp9,
        StrCodec::H264 => Codec::H264,
        _ => return None,
    };
    debug!(peer = %p.identity, %ssrc, %mid, ?rid, ?codec, layer, "new incoming stream");
    p.ssrc_map.push((ssrc, track, layer, codec));
    Some((track, layer, codec))
}
