//! SDP negotiation: a client's offers (publishing, WHEP), its answers to the server's
//! offers, and the server's offers when a participant's m-lines change.

use super::*;

impl Worker {
    /// A client's SDP offer: label and check what it publishes, apply it, answer.
    pub(super) fn client_offer(
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
        let new_tracks = new_tracks(p, &sections, &labels, infer)?;
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
        let created = publish_all(&mut r.core, k, &new_tracks)?;

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

    pub(super) fn client_answer(
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
        self.apply_actions(&actions);
        self.actions = actions;
        Ok(Reply::Ok)
    }

    /// WHEP: the viewer offers receive-only m-lines; bind them to the target's microphone
    /// and camera.
    pub(super) fn whep_offer(
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
        self.apply_actions(&actions);
        self.actions = actions;
        self.mark_dirty(k);
        Ok(Reply::Answer {
            sdp: answer.to_sdp_string(),
            tracks: Vec::new(),
        })
    }

    /// Sends a server offer to every participant with m-lines to add or stop and no offer
    /// already in flight.
    pub(super) fn negotiate_all(&mut self) {
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

    pub(super) fn negotiate(&mut self, k: PeerKey) {
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
}

/// A new m-line a client offers to send on: its mid, source, simulcast layers and
/// whether it starts muted.
type NewTrack = (Mid, Source, Vec<String>, bool);

/// The m-lines of an offer that the participant newly sends on, with their labels
/// checked: the source matches the m-line's kind, layers match its `a=rid` lines, and
/// there are at most three. With `infer` (WHIP) unlabelled audio is the microphone and
/// video the camera.
fn new_tracks(
    p: &Peer,
    sections: &[sdp_scan::Section],
    labels: &[PublishTrack],
    infer: bool,
) -> Result<Vec<NewTrack>, SfuError> {
    let mut out: Vec<NewTrack> = Vec::new();
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
        out.push((mid, source, layers, muted));
    }
    Ok(out)
}

/// Publishes the new tracks in the room's core, all or none: a refusal (grants, caps)
/// takes back those already published.
fn publish_all(
    core: &mut Room,
    k: PeerKey,
    new_tracks: &[NewTrack],
) -> Result<Vec<(Mid, TrackKey, Vec<String>)>, SfuError> {
    let mut created: Vec<(Mid, TrackKey, Vec<String>)> = Vec::new();
    for (mid, source, layers, muted) in new_tracks {
        match core.publish(k, *source, layers.clone(), *muted) {
            Ok(t) => created.push((*mid, t, layers.clone())),
            Err(e) => {
                for (_, t, _) in &created {
                    core.unpublish(*t);
                }
                return Err(publish_error(e));
            }
        }
    }
    Ok(created)
}

fn publish_error(e: PublishError) -> SfuError {
    match e {
        PublishError::NotGranted(_) => SfuError::Forbidden(e.to_string()),
        PublishError::VideoPublishersFull(_) => SfuError::VideoPublishersFull(e.to_string()),
        PublishError::ScreenSharesFull(_) => SfuError::ScreenSharesFull(e.to_string()),
        PublishError::NotJoined => SfuError::NotJoined,
        PublishError::TooManyLayers(_) => SfuError::BadRequest(e.to_string()),
    }
}
