//! Network input of a worker: datagrams to their participants' `Rtc`s, the `Rtc`s'
//! events, and each received RTP packet through the core to its subscribers.

use super::*;

use std::sync::Arc;

/// A subscriber stream's resend cache: packets kept to answer NACKs, by count and by age.
const RTX_CACHE_PACKETS: usize = 1024;
const RTX_CACHE_AGE: Duration = Duration::from_secs(1);
/// Due timeouts one poll of a peer handles before leaving the rest to the timer heap.
const IMMEDIATE_TIMEOUTS: u32 = 64;

impl Worker {
    pub(super) fn receive(&mut self) {
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
            let wall = crate::udp_sys::realtime_ns();
            for (i, meta) in metas.iter().take(n).enumerate() {
                let buf = &rx[i * slot..i * slot + meta.len];
                // Media that waited in the socket too long is no longer worth sending:
                // under overload the worker sheds it instead of queueing.
                self.late = meta
                    .received_ns
                    .is_some_and(|t| wall.saturating_sub(t) > LATE_AFTER.as_nanos() as u64);
                // A GRO batch holds several datagrams of `stride` bytes from one source.
                for seg in buf.chunks(meta.stride.max(1)) {
                    self.datagram(now, meta.addr, meta.dst_ip, seg);
                }
            }
            self.late = false;
            // Subscribers written to by this batch are polled once, together.
            self.drive(now);
            self.flush();
        }
        self.rx = (rx, metas);
    }

    pub(super) fn datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        dst_ip: Option<std::net::IpAddr>,
        data: &[u8],
    ) {
        self.tally.packets_in += 1;
        self.tally.bytes_in += data.len() as u64;
        if self.is_pipe_peer(source) {
            self.pipe_datagram(now, source, data);
            return;
        }
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

    pub(super) fn timeouts(&mut self, now: Instant) {
        while let Some(&Reverse((t, k))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let Some(p) = self.peers.get_mut(&k) else {
                continue;
            };
            if p.next_timeout != t {
                continue;
            }
            if let Err(e) = p.rtc.handle_input(Input::Timeout(now)) {
                debug!(peer = %p.identity, error = %e, "rtc timeout failed");
                p.closing.get_or_insert(CloseReason::MediaError);
            }
            // Until poll_output reports the real next timeout.
            set_timeout(&mut self.timers, p, now + Duration::from_secs(1));
            if !p.dirty {
                p.dirty = true;
                self.dirty.push(p.key);
            }
        }
        // Stale entries pile up while timeouts move later; rebuild once they dominate.
        if self.timers.len() > 4 * self.peers.len() + 1024 {
            self.timers = self
                .peers
                .values()
                .map(|p| Reverse((p.next_timeout, p.key)))
                .collect();
        }
    }

    /// Polls every dirty peer until it has nothing more; events may dirty further peers.
    pub(super) fn drive(&mut self, now: Instant) {
        while let Some(k) = self.dirty.pop() {
            if let Some(p) = self.peers.get_mut(&k) {
                p.dirty = false;
            }
            self.poll_peer(now, k);
            // Send as soon as one system call's worth is ready: the first subscribers of a
            // large fan-out do not wait for the last.
            if self.udp.queued() >= crate::udp_sys::SEND_CHUNK {
                self.flush();
            }
        }
    }

    pub(super) fn poll_peer(&mut self, now: Instant, k: PeerKey) {
        // Timeouts already due are handled here, not by a later turn of the loop: a
        // write queues its packet behind an immediate pacer timeout, and serving it now
        // sends the packet in this batch's flush. Bounded, so a timeout str0m keeps
        // reporting as due cannot spin the worker.
        let mut due_now = 0;
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
                    // The pacer asks for its next turn 1 µs after its last one, once per
                    // queued packet: compare with the clock, not the batch's instant.
                    let real = if t <= now { now } else { Instant::now() };
                    if t <= real && due_now < IMMEDIATE_TIMEOUTS {
                        due_now += 1;
                        if let Err(e) = p.rtc.handle_input(Input::Timeout(real)) {
                            debug!(peer = %p.identity, error = %e, "rtc timeout failed");
                            p.closing.get_or_insert(CloseReason::MediaError);
                            return;
                        }
                        continue;
                    }
                    set_timeout(&mut self.timers, p, t);
                    return;
                }
                Output::Transmit(t) => self.udp.queue(t.destination, t.source.ip(), &t.contents),
                Output::Event(e) => self.event(now, k, e),
            }
        }
    }

    pub(super) fn event(&mut self, now: Instant, k: PeerKey, e: Event) {
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
                let Some(p) = self.peers.get(&k) else {
                    return;
                };
                debug!(peer = %p.identity, state = ?s, "ice state");
                let up = match s {
                    IceConnectionState::Disconnected => false,
                    IceConnectionState::Connected | IceConnectionState::Completed => true,
                    _ => return,
                };
                let room = p.room.clone();
                self.in_room(&room, |r, _| r.transport(k, up, now));
            }
            Event::Connected => {
                if let Some(p) = self.peers.get(&k) {
                    debug!(peer = %p.identity, "dtls connected");
                    let room = p.room.clone();
                    self.in_room(&room, |r, _| r.transport(k, true, now));
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
                if let Some(r) = &s.remote {
                    // RTP timestamp units: Opus runs at 48 kHz, video at 90 kHz.
                    let (kind, clock) = match o.kind {
                        MediaKind::Audio => ("audio", 48_000.0),
                        _ => ("video", 90_000.0),
                    };
                    self.metrics
                        .jitter
                        .with_label_values(&[kind])
                        .observe(f64::from(r.jitter) / clock);
                }
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
            Event::PeerStats(s) => {
                let m = &self.metrics;
                if let Some(rtt) = s.rtt {
                    m.rtt.observe(rtt.as_secs_f64());
                }
                if let Some(l) = s.ingress_loss_fraction {
                    m.loss.with_label_values(&["ingress"]).observe(f64::from(l));
                }
                if let Some(l) = s.egress_loss_fraction {
                    m.loss.with_label_values(&["egress"]).observe(f64::from(l));
                }
                if let Some(b) = s.bwe_tx {
                    m.bandwidth.observe(b.as_f64() / 8.0);
                }
            }
            _ => {}
        }
    }

    /// The forwarding hot path for one received RTP packet.
    pub(super) fn rtp(&mut self, now: Instant, k: PeerKey, pkt: RtpPacket) {
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
        if self.late {
            // Received and acknowledged upstream (no NACK), but not forwarded.
            self.tally.dropped_late += 1;
            return;
        }
        let Some(room) = self.rooms.get_mut(&p.room) else {
            return;
        };
        let packet = Packet {
            codec,
            track,
            payload: &pkt.payload,
            marker: pkt.header.marker,
            ext: ExtensionValues {
                audio_level: pkt.header.ext_vals.audio_level,
                voice_activity: pkt.header.ext_vals.voice_activity,
                video_orientation: pkt.header.ext_vals.video_orientation,
                ..Default::default()
            },
        };
        let mut actions = std::mem::take(&mut self.actions);
        let seq = (*pkt.seq_no, pkt.header.timestamp);
        decide(now, &mut room.core, k, layer, seq, &packet, &mut actions);
        self.carry_out(now, packet, actions);
    }

    /// Writes the forwards the core decided for one packet, then sends the keyframe
    /// requests it made; gives the action list back for reuse.
    pub(super) fn carry_out(&mut self, now: Instant, packet: Packet<'_>, actions: Vec<Action>) {
        self.write_forwards(now, packet, &actions);
        if actions
            .iter()
            .any(|a| matches!(a, Action::KeyframeRequest { .. }))
        {
            self.apply_actions(&actions);
        }
        self.actions = actions;
    }

    /// Writes each forward the core decided into its subscriber's `Rtc` (or down a pipe to
    /// another node); each touched subscriber is polled once per batch.
    pub(super) fn write_forwards(&mut self, now: Instant, p: Packet<'_>, actions: &[Action]) {
        let codec = p.codec;
        let video = codec.is_video();
        // One copy of the payload, shared by every subscriber's send stream and resend
        // cache.
        let mut shared: Option<Arc<[u8]>> = None;
        for a in actions {
            let Action::Forward(f) = a else { continue };
            let Some(s) = self.peers.get_mut(&f.sub) else {
                if self.is_pipe(f.sub) {
                    self.pipe_forward(f.sub, f, &p);
                }
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
                    // Resends answer NACKs for a second: older packets would arrive after
                    // the receiver gave up on them, and the cache is most of a
                    // subscriber's memory.
                    tx.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(0.15));
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
                RtpWrite::new(
                    pt,
                    f.seq.into(),
                    f.ts,
                    now,
                    shared.get_or_insert_with(|| Arc::from(p.payload)).clone(),
                )
                .marker(p.marker)
                .nackable(video)
                .ext_vals(p.ext.clone()),
            );
            out.written += 1;
            self.tally.forwarded += 1;
            if !s.dirty {
                s.dirty = true;
                self.dirty.push(f.sub);
            }
        }
    }

    /// Runs `f` on a room's core with the scratch action list, then sends the keyframe
    /// requests it produced. `None` if the room is not open here.
    pub(super) fn in_room<R>(
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
        self.apply_actions(&actions);
        self.actions = actions;
        r
    }

    /// Carries out the core's decisions other than forwarding: keyframe requests to
    /// publishers, and closes (the member is removed at the next periodic pass).
    pub(super) fn apply_actions(&mut self, actions: &[Action]) {
        for a in actions {
            let (owner, track, layer) = match a {
                Action::KeyframeRequest {
                    owner,
                    track,
                    layer,
                } => (owner, track, layer),
                Action::Close { peer, reason } => {
                    if let Some(p) = self.peers.get_mut(peer) {
                        p.closing.get_or_insert(*reason);
                    }
                    continue;
                }
                Action::Forward(_) => continue,
            };
            let Some(p) = self.peers.get_mut(owner) else {
                // A remote track: ask its node through the pipe.
                self.pipe_keyframe_request(*track, *layer);
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
}

/// Runs one received packet of a track's layer through the room's core: its audio level
/// for the owner, then what to forward. `seq` is the extended sequence number and the
/// RTP timestamp.
pub(super) fn decide(
    now: Instant,
    core: &mut Room,
    owner: PeerKey,
    layer: usize,
    (seq, ts): (u64, u32),
    p: &Packet<'_>,
    actions: &mut Vec<Action>,
) {
    if let Some(level) = p.ext.audio_level {
        core.on_audio_level(now, owner, level.unsigned_abs());
    }
    actions.clear();
    core.on_rtp(
        now,
        p.track,
        layer,
        PacketIn {
            seq,
            ts,
            keyframe: codec::is_keyframe_start(p.codec, p.payload),
            len: p.payload.len(),
        },
        actions,
    );
}

/// Sets a peer's next timeout, scheduling it when it changed.
fn set_timeout(timers: &mut BinaryHeap<Reverse<(Instant, PeerKey)>>, p: &mut Peer, t: Instant) {
    if p.next_timeout != t {
        p.next_timeout = t;
        timers.push(Reverse((t, p.key)));
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
