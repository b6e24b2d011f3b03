//! Rooms that span SFU nodes: pipes between this worker and the workers of other nodes.
//!
//! A pipe out is a member of the room ([`Origin::Pipe`]) that subscribes to every track of
//! this node's own participants and sends every layer of them, as received, as RTP
//! (RFC 3550) to the other node's socket for the room, one SSRC per track and layer. The
//! far node picks layers for each of its subscribers as if the publisher were its own.
//! Keyframe requests come back as RTCP PLI (RFC 4585) on the same addresses, per layer.
//!
//! Pipes are SRTP (RFC 3711) with AEAD_AES_128_GCM (RFC 7714), from `rtc-srtp`: the
//! sending node makes a fresh key for each pipe and hands it to the receiving node with
//! its answer to the pipe call; the receiver's PLIs go back as SRTCP under the same key.
//!
//! A pipe in mirrors the other node's participants as [`Origin::Remote`] members and
//! publishes their tracks here; their packets enter the core like a publisher's, so local
//! subscribers get them with one extra hop. Each track's pipe SSRC is a hash of the room
//! and the sending node's track id, so both ends name it without asking.

use super::*;

use std::cell::RefCell;
use std::rc::Rc;

use crate::core::Origin;

use super::pipe_wire::{
    PipeCrypto, PipePacket, codec_of, extend_seq, is_rtcp, new_pipe_key, pipe_ssrc, pli, plis,
    pt_of,
};

/// A pipe carrying a room's local tracks to another node.
pub(super) struct PipeOut {
    pub room: RoomId,
    pub to: SocketAddr,
    pub events: EventSender,
    /// The pipe SSRC of each track layer it carries.
    pub ssrcs: HashMap<(TrackKey, usize), u32>,
    pub crypto: PipeCrypto,
}

/// Another node's participants of a room, mirrored here from its pipe.
pub(super) struct PipeIn {
    /// Mirrored member of each remote identity.
    pub members: HashMap<ParticipantId, PeerKey>,
    /// The local track of each remote track id.
    pub tracks: HashMap<TrackId, TrackKey>,
    pub crypto: Rc<RefCell<PipeCrypto>>,
}

/// A remote track arriving on a pipe.
pub(super) struct PipeTrack {
    pub room: RoomId,
    /// Its pipe's SRTP, shared with the pipe's other tracks.
    pub crypto: Rc<RefCell<PipeCrypto>>,
    pub track: TrackKey,
    pub layer: usize,
    pub owner: PeerKey,
    /// The last extended sequence number, or none before the first packet.
    pub last_seq: Option<u64>,
}

/// Pipes of this worker.
#[derive(Default)]
pub(super) struct Pipes {
    pub out: HashMap<PeerKey, PipeOut>,
    /// Pipe out, track and layer of each (other node, pipe SSRC), for its PLIs.
    pub out_ssrcs: HashMap<(SocketAddr, u32), (PeerKey, TrackKey, usize)>,
    /// Mirrors, per (other node, room).
    pub inbound: HashMap<(SocketAddr, RoomId), PipeIn>,
    /// Remote tracks per (other node, pipe SSRC).
    pub in_tracks: HashMap<(SocketAddr, u32), PipeTrack>,
    /// The other node and pipe SSRC of each remote track layer, for keyframe requests.
    pub in_by_track: HashMap<(TrackKey, usize), (SocketAddr, u32)>,
    /// How many pipes (either way) each other node's address has here.
    pub peers: HashMap<SocketAddr, usize>,
    /// Scratch buffer for writing pipe packets.
    pub buf: Vec<u8>,
}

impl Worker {
    /// Whether a datagram comes from another node's pipe (RTP or RTCP).
    pub(super) fn is_pipe_peer(&self, source: SocketAddr) -> bool {
        self.pipes.peers.contains_key(&source)
    }

    /// A datagram from another node: RTP of a remote track, or PLIs for a pipe out.
    pub(super) fn pipe_datagram(&mut self, now: Instant, source: SocketAddr, data: &[u8]) {
        // The SSRC stays readable under SRTP and SRTCP: it names the pipe and its key.
        let Some(ssrc) = data.get(4..12).map(|b| {
            let at = if is_rtcp(data) { 0 } else { 4 };
            u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
        }) else {
            self.tally.dropped_unknown += 1;
            return;
        };
        if is_rtcp(data) {
            let plain = self
                .pipes
                .out_ssrcs
                .get(&(source, ssrc))
                .and_then(|(pipe, _, _)| self.pipes.out.get_mut(pipe))
                .and_then(|p| p.crypto.open_rtcp(data));
            let Some(plain) = plain else {
                self.tally.dropped_unknown += 1;
                return;
            };
            for ssrc in plis(&plain) {
                let Some(&(pipe, track, layer)) = self.pipes.out_ssrcs.get(&(source, ssrc)) else {
                    continue;
                };
                self.tally.plis_rx += 1;
                let Some(room) = self.pipes.out.get(&pipe).map(|p| p.room.clone()) else {
                    continue;
                };
                self.in_room(&room, |r, out| {
                    r.layer_keyframe_request(now, track, layer, out)
                });
            }
            return;
        }
        // One lookup per packet: the track knows its pipe's SRTP and its room.
        let Some(pt) = self.pipes.in_tracks.get_mut(&(source, ssrc)) else {
            self.tally.dropped_unknown += 1;
            return;
        };
        let plain = pt.crypto.borrow_mut().open_rtp(data);
        let parsed = plain.as_deref().and_then(PipePacket::parse);
        let Some((codec, pkt)) = parsed.and_then(|p| Some((codec_of(p.pt)?, p))) else {
            self.tally.dropped_unknown += 1;
            return;
        };
        let seq = extend_seq(pt.last_seq, pkt.seq);
        pt.last_seq = Some(pt.last_seq.map_or(seq, |l| l.max(seq)));
        let (track, layer, owner) = (pt.track, pt.layer, pt.owner);
        let Some(r) = self.rooms.get_mut(&pt.room) else {
            return;
        };
        if r.core.track(track).is_some_and(|t| t.codec.is_none()) {
            r.core.set_codec(track, codec);
        }
        if self.late {
            self.tally.dropped_late += 1;
            return;
        }
        let packet = Packet {
            codec,
            track,
            payload: pkt.payload,
            marker: pkt.marker,
            ext: ExtensionValues {
                audio_level: pkt.audio_level,
                ..Default::default()
            },
        };
        let mut actions = std::mem::take(&mut self.actions);
        super::input::decide(
            now,
            &mut r.core,
            owner,
            layer,
            (seq, pkt.ts),
            &packet,
            &mut actions,
        );
        self.carry_out(now, packet, actions);
    }

    /// Sends one forwarded packet down a pipe.
    pub(super) fn pipe_forward(&mut self, pipe: PeerKey, f: &Forward, p: &Packet<'_>) {
        let Some(out) = self.pipes.out.get_mut(&pipe) else {
            return;
        };
        let Some(&ssrc) = out.ssrcs.get(&(p.track, f.slot as usize)) else {
            return;
        };
        let to = out.to;
        let buf = &mut self.pipes.buf;
        PipePacket {
            pt: pt_of(p.codec),
            marker: p.marker,
            seq: f.seq as u16,
            ts: f.ts,
            ssrc,
            audio_level: p.ext.audio_level,
            payload: p.payload,
        }
        .write(buf);
        let Some(sealed) = out.crypto.seal_rtp(buf) else {
            self.tally.dropped_send += 1;
            return;
        };
        let src = self.advertised[0].ip();
        self.udp.queue(to, src, &sealed);
        self.tally.forwarded += 1;
    }

    /// Asks the node a remote track comes from for a keyframe on one layer. False if it
    /// is not remote.
    pub(super) fn pipe_keyframe_request(&mut self, track: TrackKey, layer: usize) -> bool {
        let Some(&(from, ssrc)) = self.pipes.in_by_track.get(&(track, layer)) else {
            return false;
        };
        let sealed = self
            .pipes
            .in_tracks
            .get(&(from, ssrc))
            .and_then(|t| t.crypto.borrow_mut().seal_rtcp(&pli(ssrc)));
        if let Some(sealed) = sealed {
            let src = self.advertised[0].ip();
            self.udp.queue(from, src, &sealed);
            self.tally.plis_tx += 1;
        }
        true
    }

    fn room_entry(&mut self, room: &RoomId) -> &mut RoomEntry {
        let caps = self.default_caps.with(self.preset_caps.get(room).copied());
        let base = self.next_track_base;
        let entry = self.rooms.entry(room.clone()).or_insert_with(|| RoomEntry {
            core: Room::new(caps, base),
            peers: Vec::new(),
            server_muted: HashMap::new(),
        });
        if entry.core.is_empty() {
            self.next_track_base += 1_000_000;
        }
        entry
    }

    /// Starts a pipe out of a room to `to`; the room's local participants and the pipe's
    /// SRTP key.
    pub(super) fn pipe_out(
        &mut self,
        room: &RoomId,
        to: SocketAddr,
        events: EventSender,
    ) -> Result<(Vec<ParticipantInfo>, Vec<u8>), SfuError> {
        let secret = new_pipe_key();
        let crypto = PipeCrypto::new(&secret).ok_or(SfuError::Unavailable)?;
        let key = PeerKey(self.next_peer);
        self.next_peer += 1;
        let identity = ParticipantId::parse(&format!("pipe:{to}"))
            .unwrap_or_else(|| ParticipantId::parse("pipe").unwrap_or_else(|| unreachable!()));
        let r = self.room_entry(room);
        r.core.admit_pipe(key, identity);
        self.pipes.out.insert(
            key,
            PipeOut {
                room: room.clone(),
                to,
                events,
                ssrcs: HashMap::new(),
                crypto,
            },
        );
        *self.pipes.peers.entry(to).or_default() += 1;
        let tracks = self
            .rooms
            .get(room)
            .map(|r| r.core.auto_subscriptions(key))
            .unwrap_or_default();
        for t in tracks {
            self.pipe_subscribe(key, t);
        }
        info!(room = %room, %to, worker = self.index, "pipe out");
        Ok((self.local_participants(room), secret))
    }

    /// The room's participants connected here.
    fn local_participants(&self, room: &RoomId) -> Vec<ParticipantInfo> {
        let Some(r) = self.rooms.get(room) else {
            return Vec::new();
        };
        r.core
            .members()
            .filter(|(_, m)| m.origin == Origin::Local && !m.hidden)
            .filter_map(|(k, _)| self.participant_info(room, k))
            .collect()
    }

    /// Subscribes a pipe out to a track: every layer goes down the pipe from now on.
    pub(super) fn pipe_subscribe(&mut self, pipe: PeerKey, track: TrackKey) {
        let Some(room) = self.pipes.out.get(&pipe).map(|p| p.room.clone()) else {
            return;
        };
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if !matches!(r.core.subscribe(pipe, track), Ok(true)) {
            return;
        }
        let Some((id, layers)) = r.core.track(track).map(|t| (t.id.clone(), t.layer_count()))
        else {
            return;
        };
        if let Some(p) = self.pipes.out.get_mut(&pipe) {
            for layer in 0..layers {
                let ssrc = pipe_ssrc(&room, &id, layer);
                p.ssrcs.insert((track, layer), ssrc);
                self.pipes
                    .out_ssrcs
                    .insert((p.to, ssrc), (pipe, track, layer));
            }
        }
        // The far node's subscribers start at a keyframe of each layer.
        let now = Instant::now();
        self.in_room(&room, |r, out| {
            for layer in 0..layers {
                r.layer_keyframe_request(now, track, layer, out);
            }
        });
    }

    /// Whether a member is a pipe out.
    pub(super) fn is_pipe(&self, k: PeerKey) -> bool {
        self.pipes.out.contains_key(&k)
    }

    /// Sends an event about a local participant down the room's pipes.
    pub(super) fn tell_pipes(&self, room: &RoomId, subject: PeerKey, msg: &RoomEvent) {
        let local = self
            .rooms
            .get(room)
            .and_then(|r| r.core.member(subject))
            .is_some_and(|m| m.origin == Origin::Local && !m.hidden);
        if !local || msg.is_ephemeral() {
            return;
        }
        for p in self.pipes.out.values().filter(|p| &p.room == room) {
            let _ = p.events.try_send(msg.clone());
        }
    }

    /// Sends an event down every pipe of the room.
    pub(super) fn tell_all_pipes(&self, room: &RoomId, msg: &RoomEvent) {
        for p in self.pipes.out.values().filter(|p| &p.room == room) {
            let _ = p.events.try_send(msg.clone());
        }
    }

    /// Mirrors another node's participants of a room, whose tracks come from `from`.
    pub(super) fn pipe_in(
        &mut self,
        room: &RoomId,
        from: SocketAddr,
        people: Vec<ParticipantInfo>,
        secret: &[u8],
    ) -> Result<(), SfuError> {
        if !self.pipes.inbound.contains_key(&(from, room.clone())) {
            let crypto = PipeCrypto::new(secret)
                .ok_or_else(|| SfuError::BadRequest("a pipe key of 28 bytes".into()))?;
            self.room_entry(room);
            self.pipes.inbound.insert(
                (from, room.clone()),
                PipeIn {
                    members: HashMap::new(),
                    tracks: HashMap::new(),
                    crypto: Rc::new(RefCell::new(crypto)),
                },
            );
            *self.pipes.peers.entry(from).or_default() += 1;
            info!(room = %room, %from, worker = self.index, "pipe in");
        }
        for p in people {
            self.mirror(room, from, RoomEvent::ParticipantJoined(p));
        }
        Ok(())
    }

    /// Applies an event of another node's pipe to its mirror here.
    pub(super) fn mirror(&mut self, room: &RoomId, from: SocketAddr, event: RoomEvent) {
        if !self.pipes.inbound.contains_key(&(from, room.clone())) {
            return;
        }
        match event {
            RoomEvent::ParticipantJoined(info) => self.mirror_join(room, from, info),
            RoomEvent::ParticipantLeft { identity, reason } => {
                let key = self
                    .pipes
                    .inbound
                    .get_mut(&(from, room.clone()))
                    .and_then(|p| p.members.remove(&identity));
                if let Some(k) = key {
                    self.remove_mirrored(room, k, reason);
                }
            }
            RoomEvent::TrackPublished(info) => {
                let owner = self
                    .pipes
                    .inbound
                    .get(&(from, room.clone()))
                    .and_then(|p| p.members.get(&info.participant).copied());
                if let Some(owner) = owner {
                    self.mirror_track(room, from, owner, info);
                }
            }
            RoomEvent::TrackUnpublished { track_id, .. } => {
                let track = self
                    .pipes
                    .inbound
                    .get_mut(&(from, room.clone()))
                    .and_then(|p| p.tracks.remove(&track_id));
                if let Some(t) = track {
                    self.forget_remote_track(t);
                    self.unpublish(room, t);
                }
            }
            RoomEvent::TrackMuted {
                track_id,
                participant,
                muted,
            } => {
                let Some(t) = self
                    .pipes
                    .inbound
                    .get(&(from, room.clone()))
                    .and_then(|p| p.tracks.get(&track_id).copied())
                else {
                    return;
                };
                let Some(r) = self.rooms.get_mut(room) else {
                    return;
                };
                let Some(owner) = r.core.track(t).map(|t| t.owner) else {
                    return;
                };
                if r.core.set_muted(t, muted) {
                    let Some(id) = r.core.track(t).map(|t| t.id.clone()) else {
                        return;
                    };
                    self.broadcast(
                        room,
                        Some(owner),
                        RoomEvent::TrackMuted {
                            track_id: id,
                            participant,
                            muted,
                        },
                    );
                }
            }
            // Speakers are measured here, from the audio levels the pipe carries; offers
            // and closes are between a node and its own clients.
            _ => {}
        }
    }

    fn mirror_join(&mut self, room: &RoomId, from: SocketAddr, info: ParticipantInfo) {
        let pipe = (from, room.clone());
        if self
            .pipes
            .inbound
            .get(&pipe)
            .is_some_and(|p| p.members.contains_key(&info.identity))
        {
            return;
        }
        let key = PeerKey(self.next_peer);
        self.next_peer += 1;
        let r = self.room_entry(room);
        r.core
            .admit_remote(key, info.identity.clone(), info.name.clone());
        if let Some(p) = self.pipes.inbound.get_mut(&pipe) {
            p.members.insert(info.identity.clone(), key);
        }
        if let Some(me) = self.participant_info(room, key) {
            self.broadcast(room, Some(key), RoomEvent::ParticipantJoined(me));
        }
        for t in info.tracks {
            self.mirror_track(room, from, key, t);
        }
    }

    fn mirror_track(&mut self, room: &RoomId, from: SocketAddr, owner: PeerKey, info: TrackInfo) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(track) =
            r.core
                .publish_remote(owner, info.source, info.muted, info.layers.clone())
        else {
            return;
        };
        let layers = r.core.track(track).map_or(1, |t| t.layer_count());
        let Some(p) = self.pipes.inbound.get_mut(&(from, room.clone())) else {
            return;
        };
        p.tracks.insert(info.track_id.clone(), track);
        let crypto = p.crypto.clone();
        for layer in 0..layers {
            let ssrc = pipe_ssrc(room, &info.track_id, layer);
            self.pipes.in_tracks.insert(
                (from, ssrc),
                PipeTrack {
                    room: room.clone(),
                    crypto: crypto.clone(),
                    track,
                    layer,
                    owner,
                    last_seq: None,
                },
            );
            self.pipes.in_by_track.insert((track, layer), (from, ssrc));
        }
        if let Some(local) = self.track_info(room, track) {
            self.announce_track(room, owner, track, local);
        }
    }

    fn forget_remote_track(&mut self, track: TrackKey) {
        for layer in 0..crate::core::MAX_LAYERS {
            if let Some(k) = self.pipes.in_by_track.remove(&(track, layer)) {
                self.pipes.in_tracks.remove(&k);
            }
        }
    }

    /// Removes a mirrored participant with its tracks, and tells the room.
    fn remove_mirrored(&mut self, room: &RoomId, k: PeerKey, reason: CloseReason) {
        let Some(r) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(identity) = r.core.member(k).map(|m| m.identity.clone()) else {
            return;
        };
        let gone = r.core.remove(k);
        for t in &gone {
            self.forget_remote_track(t.key);
            for d in &t.downtracks {
                if let Some(s) = self.peers.get_mut(&d.sub)
                    && let Some(slot) = s.out_for_track(t.key)
                {
                    s.stop_out(slot);
                }
            }
        }
        self.negotiate_due = true;
        self.broadcast(
            room,
            Some(k),
            RoomEvent::ParticipantLeft { identity, reason },
        );
        self.drop_room_if_empty(room);
    }

    fn drop_room_if_empty(&mut self, room: &RoomId) {
        if self.rooms.get(room).is_some_and(|r| r.core.is_empty()) {
            self.rooms.remove(room);
        }
    }

    /// Ends the pipes between this worker and `peer` for a room, both ways.
    pub(super) fn unpipe(&mut self, room: &RoomId, peer: SocketAddr) {
        let outs: Vec<PeerKey> = self
            .pipes
            .out
            .iter()
            .filter(|(_, p)| &p.room == room && p.to == peer)
            .map(|(k, _)| *k)
            .collect();
        for k in outs {
            if let Some(p) = self.pipes.out.remove(&k) {
                for ssrc in p.ssrcs.values() {
                    self.pipes.out_ssrcs.remove(&(peer, *ssrc));
                }
                self.release_peer(peer);
            }
            if let Some(r) = self.rooms.get_mut(room) {
                r.core.remove(k);
            }
        }
        if let Some(p) = self.pipes.inbound.remove(&(peer, room.clone())) {
            self.release_peer(peer);
            for k in p.members.into_values() {
                self.remove_mirrored(room, k, CloseReason::Moved);
            }
        }
        self.drop_room_if_empty(room);
        info!(room = %room, %peer, worker = self.index, "unpiped");
    }

    fn release_peer(&mut self, peer: SocketAddr) {
        if let Some(n) = self.pipes.peers.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.pipes.peers.remove(&peer);
            }
        }
    }

    /// How many participants of a room are connected here.
    pub(super) fn local_members(&self, room: &RoomId) -> u32 {
        self.rooms.get(room).map_or(0, |r| {
            r.core
                .members()
                .filter(|(_, m)| m.origin == Origin::Local)
                .count() as u32
        })
    }
}
