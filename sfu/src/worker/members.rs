//! Membership in a worker's rooms: joining, the requests a participant makes, leaving,
//! and the room events the others are sent.

use super::*;

impl Worker {
    pub(super) fn join(
        &mut self,
        req: JoinRequest,
        events: EventSender,
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
                server_muted: HashMap::new(),
            }
        });
        // Caps in a token are its issuer's word about the room: they apply whoever holds
        // it (chat puts a voice channel's cap in every member's token).
        if req.caps.is_some() {
            entry.core.caps = entry.core.caps.with(req.caps);
        }
        let key = PeerKey(self.next_peer);
        // A moderator's latest word on this identity while the room is open outranks its
        // token, which may be older than that word.
        let mut grants = req.grants.clone();
        if let Some(muted) = entry.server_muted.get(&req.identity) {
            grants.muted = *muted;
        }
        let result = entry.core.admit(
            key,
            req.identity.clone(),
            req.name.clone(),
            grants,
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
        let voice_only = !entry.core.caps.carries_video();
        self.next_track_base += 1_000_000;
        self.next_peer += 1;
        // The core decided that this session replaces an older one of the same identity.
        if let Some(old) = replaced {
            self.remove_peer(old, CloseReason::Replaced, true);
        }
        if let Some(entry) = self.rooms.get_mut(&req.room) {
            entry.peers.push(key);
        }

        let peer = self.new_peer(key, &req, events, voice_only);
        self.by_ufrag.insert(peer.ufrag.clone(), key);
        self.timers.push(Reverse((peer.next_timeout, key)));
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

    /// A participant's media session: an ICE-lite `Rtc` in RTP mode with this worker's
    /// certificate and candidates.
    ///
    /// In a voice-only room (caps that allow no camera and no screen share) nothing needs
    /// a bandwidth estimate, which only picks video layers: the session runs no estimator
    /// (nor its pacer) and negotiates no transport-wide sequence numbers, so clients send
    /// no transport-wide feedback to process. It keeps audio levels (active speakers) and
    /// the mid (BUNDLE). Caps raised later apply to sessions that start after.
    fn new_peer(
        &self,
        key: PeerKey,
        req: &JoinRequest,
        events: EventSender,
        voice_only: bool,
    ) -> Peer {
        let creds = IceCreds::new();
        let config = RtcConfig::new()
            .set_ice_lite(true)
            .set_rtp_mode(true)
            .set_dtls_cert(self.cert.clone())
            .set_local_ice_credentials(creds.clone())
            .clear_codecs()
            .enable_opus(true, false)
            .enable_vp8(true)
            .enable_h264(true)
            .enable_vp9(true)
            .set_stats_interval(Some(Duration::from_secs(1)));
        let config = if voice_only {
            config
                .clear_extension_map()
                .set_extension(1, Extension::AudioLevel)
                .set_extension(4, Extension::RtpMid)
        } else {
            config.enable_bwe(Some(str0m::bwe::Bitrate::kbps(1_500)))
        };
        let mut rtc = config.build(Instant::now());
        for addr in &self.advertised {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => warn!(error = %e, "bad local candidate"),
            }
        }
        Peer {
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
            closing: None,
            bwe_desired: 0,
        }
    }

    pub(super) fn request(&mut self, k: PeerKey, req: Request) -> Result<Reply, SfuError> {
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
                // A server-muted microphone stays muted to the room whatever its
                // publisher says, so a change is always the publisher's own.
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

    pub(super) fn room_status(&self, room: &RoomId) -> RoomStatus {
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

    pub(super) fn track_key(&self, room: &RoomId, id: &TrackId) -> Result<TrackKey, SfuError> {
        self.rooms
            .get(room)
            .and_then(|r| r.core.find_track(id))
            .ok_or(SfuError::UnknownTrack)
    }

    pub(super) fn own_track(
        &self,
        k: PeerKey,
        room: &RoomId,
        id: &TrackId,
    ) -> Result<TrackKey, SfuError> {
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

    pub(super) fn announce_track(
        &mut self,
        room: &RoomId,
        owner: PeerKey,
        track: TrackKey,
        info: TrackInfo,
    ) {
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

    pub(super) fn subscribe(&mut self, k: PeerKey, track: TrackKey) -> Result<(), SfuError> {
        if self.is_pipe(k) {
            self.pipe_subscribe(k, track);
            return Ok(());
        }
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
        let owner_identity = r
            .core
            .member(owner)
            .map(|m| m.identity.clone())
            .ok_or(SfuError::UnknownTrack)?;
        if let Some(p) = self.peers.get_mut(&k) {
            p.add_out(Out::new(track, id, owner_identity, kind));
        }
        Ok(())
    }

    pub(super) fn unpublish(&mut self, room: &RoomId, track: TrackKey) {
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
        let owner = self
            .rooms
            .get(room)
            .and_then(|r| r.core.member(t.owner))
            .map(|m| m.identity.clone());
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
    pub(super) fn remove_peer(&mut self, k: PeerKey, reason: CloseReason, notify_self: bool) {
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
            let left = RoomEvent::ParticipantLeft {
                identity: p.identity.clone(),
                reason,
            };
            // Gone from the core already, so `broadcast` cannot tell it was local.
            self.tell_all_pipes(&room, &left);
            self.broadcast(&room, Some(k), left);
        }
        info!(room = %room, identity = %p.identity, reason = reason.as_str(), "left");
    }

    pub(super) fn track_info(&self, room: &RoomId, t: TrackKey) -> Option<TrackInfo> {
        let r = self.rooms.get(room)?;
        let t = r.core.track(t)?;
        let owner = r.core.member(t.owner)?;
        Some(TrackInfo {
            track_id: t.id.clone(),
            participant: owner.identity.clone(),
            kind: t.kind(),
            source: t.source,
            muted: t.is_muted(),
            layers: t.rids.clone(),
        })
    }

    pub(super) fn participant_info(&self, room: &RoomId, k: PeerKey) -> Option<ParticipantInfo> {
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

    pub(super) fn participants_except(&self, room: &RoomId, k: PeerKey) -> Vec<ParticipantInfo> {
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
    /// Events about a participant of this node also go down the room's pipes.
    pub(super) fn broadcast(&mut self, room: &RoomId, except: Option<PeerKey>, msg: RoomEvent) {
        if let Some(subject) = except {
            self.tell_pipes(room, subject, &msg);
        }
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
