//! The room's forwarding path: one packet from a publisher's layer to its subscribers,
//! keyframe requests, and the periodic upkeep of layers and waiting subscribers.

use super::*;

impl Room {
    /// A keyframe of one layer of a track is wanted (by a pipe's far node, or for a
    /// subscriber of that layer): asked of the publisher unless asked too recently.
    pub fn layer_keyframe_request(
        &mut self,
        now: Instant,
        track: TrackKey,
        layer: usize,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.layers
            .get_mut(layer)
            .is_some_and(|l| l.throttle_keyframe(now))
        {
            out.push(Action::KeyframeRequest {
                owner: t.owner,
                track,
                layer,
            });
        }
    }

    /// A subscriber asked for a keyframe (PLI/FIR) on a track it receives.
    pub fn subscriber_keyframe_request(
        &mut self,
        now: Instant,
        sub: PeerKey,
        track: TrackKey,
        out: &mut Vec<Action>,
    ) {
        let layer = self
            .tracks
            .get(&track)
            .and_then(|t| t.downtrack(sub))
            .and_then(|d| d.current.or(d.target));
        if let Some(layer) = layer {
            self.layer_keyframe_request(now, track, layer, out);
        }
    }

    /// The forwarding hot path: one packet from a publisher's track layer. Appends the
    /// forwards (and any keyframe requests) to `out`; allocates nothing once `out` has grown.
    pub fn on_rtp(
        &mut self,
        now: Instant,
        track: TrackKey,
        layer: usize,
        p: PacketIn,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        if t.silenced {
            return;
        }
        let Some(l) = t.layers.get_mut(layer) else {
            return;
        };
        let newly_active = !l.active(now);
        l.last_packet = Some(now);
        l.answered |= p.keyframe;
        l.window_bytes += p.len as u64;
        match l.window_start {
            None => l.window_start = Some(now),
            Some(s) if now.saturating_duration_since(s) >= RATE_WINDOW => {
                let secs = now.saturating_duration_since(s).as_secs_f64();
                l.bitrate = (l.window_bytes as f64 * 8.0 / secs) as u64;
                l.window_bytes = 0;
                l.window_start = Some(now);
            }
            _ => {}
        }
        if newly_active && t.layers.len() > 1 {
            // A layer came (back): subscribers waiting for a better one may move.
            for i in 0..t.downtracks.len() {
                if t.downtracks[i].current != t.downtracks[i].target
                    || t.downtracks[i].current.is_none()
                {
                    t.retarget(i, None, now, out);
                }
            }
        }
        // A pipe takes every layer unchanged; `slot` names the layer.
        for pipe in &t.pipes {
            out.push(Action::Forward(Forward {
                sub: *pipe,
                slot: layer as u32,
                seq: p.seq,
                ts: p.ts,
            }));
        }
        let mut waiting = false;
        for d in &mut t.downtracks {
            let (Some(slot), DownState::Active) = (d.slot, d.state) else {
                continue;
            };
            if d.target == Some(layer) && d.current != Some(layer) {
                if !p.keyframe {
                    waiting = true;
                    continue;
                }
                d.current = Some(layer);
                d.munger.start_new_run();
            }
            if d.current != Some(layer) {
                continue;
            }
            if let Some(m) = d.munger.munge(p.seq, p.ts, now) {
                out.push(Action::Forward(Forward {
                    sub: d.sub,
                    slot,
                    seq: m.seq,
                    ts: m.ts,
                }));
            }
        }
        // Subscribers still wait for a keyframe of this layer (they came after the last
        // one, or their request was throttled): ask again as soon as the interval allows,
        // not at the next tick.
        if waiting && t.layers[layer].throttle_keyframe(now) {
            out.push(Action::KeyframeRequest {
                owner: t.owner,
                track,
                layer,
            });
        }
    }

    /// Periodic upkeep: layers that stopped, and keyframes still awaited.
    pub fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self
            .last_tick
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_millis(250))
        {
            return;
        }
        self.last_tick = Some(now);
        for (k, m) in &mut self.members {
            if !m.closing && transport_expired(m.transport_down, now) {
                m.closing = true;
                out.push(Action::Close {
                    peer: *k,
                    reason: CloseReason::MediaTimeout,
                });
            }
        }
        let subs: HashMap<PeerKey, Option<u64>> =
            self.members.keys().map(|k| (*k, self.budget(*k))).collect();
        for t in self.tracks.values_mut() {
            if !t.is_video() {
                continue;
            }
            for i in 0..t.downtracks.len() {
                let d = &t.downtracks[i];
                let budget = subs.get(&d.sub).copied().flatten();
                let current_stopped = d.current.is_some_and(|c| !t.layers[c].active(now));
                // A layer chosen before its rate was measured, or one whose rate grew,
                // may no longer fit the subscriber's share of its estimate.
                let over_budget = d
                    .current
                    .is_some_and(|c| c > 0 && budget.is_some_and(|b| t.layers[c].bitrate > b));
                if d.current != d.target || current_stopped || over_budget || d.current.is_none() {
                    t.retarget(i, budget, now, out);
                }
            }
        }
    }
}
