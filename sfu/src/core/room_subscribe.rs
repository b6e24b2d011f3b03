//! Subscriptions in a room: who receives which track, paused or not, at which quality
//! and within which bandwidth.

use super::*;

impl Room {
    /// Subscribes a member to a track. The downtrack forwards nothing until the runtime has
    /// negotiated an outgoing stream for it and called [`Room::downtrack_ready`].
    pub fn subscribe(&mut self, sub: PeerKey, track: TrackKey) -> Result<bool, SubscribeError> {
        let m = self.members.get(&sub).ok_or(SubscribeError::UnknownTrack)?;
        if !m.grants.subscribe {
            return Err(SubscribeError::NotGranted);
        }
        let t = self
            .tracks
            .get_mut(&track)
            .ok_or(SubscribeError::UnknownTrack)?;
        if t.owner == sub {
            return Err(SubscribeError::OwnTrack);
        }
        if m.origin == Origin::Pipe {
            if t.pipes.contains(&sub) {
                return Ok(false);
            }
            t.pipes.push(sub);
            return Ok(true);
        }
        if t.downtrack(sub).is_some() {
            return Ok(false);
        }
        let clock = if t.is_video() { 90_000 } else { 48_000 };
        // Each stream starts at its own sequence number, below 2^16 so SRTP's rollover
        // counter starts at zero on both ends.
        self.first_seq = (self.first_seq * 7919 + 13) % 30_000 + 1000;
        t.downtracks.push(DownTrack {
            sub,
            slot: None,
            state: DownState::Active,
            requested: Quality::High,
            current: None,
            target: None,
            munger: Munger::new(clock, self.first_seq),
        });
        Ok(true)
    }

    /// Stops forwarding a track to a member. Returns the slot it used, if negotiated.
    pub fn unsubscribe(&mut self, sub: PeerKey, track: TrackKey) -> Option<Option<u32>> {
        let (t, i) = self.downtrack_at(track, sub)?;
        Some(t.downtracks.remove(i).slot)
    }

    /// The outgoing stream for this downtrack is negotiated; start forwarding (after a
    /// keyframe, for video).
    pub fn downtrack_ready(
        &mut self,
        now: Instant,
        sub: PeerKey,
        track: TrackKey,
        slot: u32,
        out: &mut Vec<Action>,
    ) {
        let budget = self.budget(sub);
        let Some((t, i)) = self.downtrack_at(track, sub) else {
            return;
        };
        t.downtracks[i].slot = Some(slot);
        t.retarget(i, budget, now, out);
    }

    pub fn set_paused(
        &mut self,
        now: Instant,
        sub: PeerKey,
        track: TrackKey,
        paused: bool,
        out: &mut Vec<Action>,
    ) -> bool {
        let budget = self.budget(sub);
        let Some((t, i)) = self.downtrack_at(track, sub) else {
            return false;
        };
        let d = &mut t.downtracks[i];
        if paused {
            d.state = DownState::Paused;
            d.current = None;
            d.target = None;
        } else if d.state == DownState::Paused {
            d.state = DownState::Active;
            d.munger.start_new_run();
            t.retarget(i, budget, now, out);
        }
        true
    }

    pub fn set_quality(
        &mut self,
        now: Instant,
        sub: PeerKey,
        track: TrackKey,
        q: Quality,
        out: &mut Vec<Action>,
    ) -> bool {
        let budget = self.budget(sub);
        let Some((t, i)) = self.downtrack_at(track, sub) else {
            return false;
        };
        t.downtracks[i].requested = q;
        t.retarget(i, budget, now, out);
        true
    }

    /// A subscriber's bandwidth estimate changed. Only a change of more than 10% from
    /// the estimate layers were last chosen for moves them, so a jittery estimate does
    /// not flap layers.
    pub fn set_bandwidth(&mut self, now: Instant, sub: PeerKey, bps: u64, out: &mut Vec<Action>) {
        let Some(m) = self.members.get_mut(&sub) else {
            return;
        };
        if let Some(last) = m.bwe
            && last != 0
            && bps.abs_diff(last) * 10 < last
        {
            return;
        }
        m.bwe = Some(bps);
        self.retarget_subscriber(now, sub, out);
    }

    /// What each subscriber would receive, bits/s, at the qualities it asked for: for each
    /// of its active downtracks, the measured rate of the layer it would get with no limit
    /// on bandwidth, summed; one pass over the room's downtracks. Its bandwidth estimator
    /// is told to probe toward this: an estimator only learns of capacity it is asked to
    /// use, so without it a top layer above the estimate would never be reached.
    pub fn wanted_bitrates(&self, now: Instant) -> HashMap<PeerKey, u64> {
        let mut wanted = HashMap::new();
        for t in self.tracks.values() {
            for d in &t.downtracks {
                if d.state != DownState::Active || d.slot.is_none() {
                    continue;
                }
                if let Some(layer) = t.pick_layer(d.requested.index(), now) {
                    *wanted.entry(d.sub).or_default() += t.layers[layer].bitrate;
                }
            }
        }
        wanted
    }

    /// A track and the index of `sub`'s downtrack in it.
    fn downtrack_at(&mut self, track: TrackKey, sub: PeerKey) -> Option<(&mut Track, usize)> {
        let t = self.tracks.get_mut(&track)?;
        let i = t.downtracks.iter().position(|d| d.sub == sub)?;
        Some((t, i))
    }

    /// Per-video-downtrack share of a subscriber's estimate.
    pub(super) fn budget(&self, sub: PeerKey) -> Option<u64> {
        let bwe = self.members.get(&sub)?.bwe?;
        let n = self
            .tracks
            .values()
            .filter(|t| t.is_video())
            .filter(|t| {
                t.downtrack(sub)
                    .is_some_and(|d| d.state == DownState::Active)
            })
            .count()
            .max(1) as u64;
        Some(bwe / n)
    }

    fn retarget_subscriber(&mut self, now: Instant, sub: PeerKey, out: &mut Vec<Action>) {
        let budget = self.budget(sub);
        for t in self.tracks.values_mut() {
            if let Some(i) = t.downtracks.iter().position(|d| d.sub == sub) {
                t.retarget(i, budget, now, out);
            }
        }
    }
}
