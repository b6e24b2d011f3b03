//! One room: its members, their published tracks, and every subscriber's view of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parlor_proto::{Grants, MediaKind, ParticipantId, Quality, Source, TrackId};

use super::codec::Codec;
use super::munger::Munger;
use super::speakers::LevelMeter;

/// At most one keyframe request per track layer in this interval.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// A simulcast layer with no packet for this long is considered stopped.
pub const LAYER_TIMEOUT: Duration = Duration::from_millis(1500);
/// Active speakers are evaluated at most this often.
pub const SPEAKERS_INTERVAL: Duration = Duration::from_millis(200);
/// A participant whose transport is down this long is removed (`media_timeout`).
pub const DISCONNECT_GRACE: Duration = Duration::from_secs(15);
/// Most simulcast layers one published video track may have.
pub const MAX_LAYERS: usize = 3;

/// Whether a participant whose transport went down at `since` has been gone too long.
pub fn transport_expired(since: Option<Instant>, now: Instant) -> bool {
    since.is_some_and(|t| now.saturating_duration_since(t) > DISCONNECT_GRACE)
}
/// Layer bitrates are measured over this window.
const RATE_WINDOW: Duration = Duration::from_millis(1000);

/// A participant, unique on its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub u32);

/// A published track, unique on its worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey(pub u32);

/// How full a room is, as its caps count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Occupancy {
    pub participants: u32,
    /// Members publishing at least one camera track.
    pub video_publishers: u32,
    /// Screen tracks (`screen_audio` not counted).
    pub screen_shares: u32,
}

/// Resolved caps of one room.
pub use parlor_proto::control::CapsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full ({0} participants)")]
    RoomFull(u32),
    #[error("this participant is already in the room")]
    AlreadyJoined,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the token does not grant publishing {0}")]
    NotGranted(&'static str),
    #[error("the room already has its maximum of {0} video publishers")]
    VideoPublishersFull(u32),
    #[error("the room already has its maximum of {0} screen shares")]
    ScreenSharesFull(u32),
    #[error("not a member of this room")]
    NotJoined,
    #[error("at most three simulcast layers")]
    TooManyLayers(usize),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    #[error("the token does not grant subscribing")]
    NotGranted,
    #[error("no such track")]
    UnknownTrack,
    #[error("cannot subscribe to your own track")]
    OwnTrack,
}

#[derive(Debug)]
pub struct Member {
    pub identity: ParticipantId,
    pub name: String,
    pub grants: Grants,
    /// Hidden members (WHEP viewers) are not announced to the room.
    pub hidden: bool,
    pub tracks: Vec<TrackKey>,
    /// Receives every track in the room, those published now and later.
    pub auto_subscribe: bool,
    /// The egress bandwidth estimate layers were last chosen for, bits per second.
    bwe: Option<u64>,
    level: LevelMeter,
}

#[derive(Debug, Clone)]
struct Layer {
    last_packet: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bits per second over the last full window.
    bitrate: u64,
    last_keyframe_request: Option<Instant>,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            last_packet: None,
            window_start: None,
            window_bytes: 0,
            bitrate: 0,
            last_keyframe_request: None,
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
    }

    fn throttle_keyframe(&mut self, now: Instant) -> bool {
        let allowed = self
            .last_keyframe_request
            .is_none_or(|t| now.saturating_duration_since(t) >= KEYFRAME_REQUEST_INTERVAL);
        if allowed {
            self.last_keyframe_request = Some(now);
        }
        allowed
    }
}

/// Whether a subscriber currently receives a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownState {
    Active,
    Paused,
}

/// One subscriber's view of one track.
#[derive(Debug, Clone)]
pub struct DownTrack {
    pub sub: PeerKey,
    /// The runtime's handle for the outgoing stream; `None` until negotiated.
    pub slot: Option<u32>,
    pub state: DownState,
    pub requested: Quality,
    /// The layer being forwarded.
    pub current: Option<usize>,
    /// The layer the forwarder wants; differs from `current` while waiting for a keyframe.
    pub target: Option<usize>,
    munger: Munger,
}

#[derive(Debug)]
pub struct Track {
    pub key: TrackKey,
    pub id: TrackId,
    pub owner: PeerKey,
    pub source: Source,
    pub muted: bool,
    /// Simulcast rids, lowest first; empty without simulcast.
    pub rids: Vec<String>,
    pub codec: Option<Codec>,
    layers: Vec<Layer>,
    pub downtracks: Vec<DownTrack>,
}

impl Track {
    pub fn kind(&self) -> MediaKind {
        self.source.kind()
    }

    pub fn downtrack(&self, sub: PeerKey) -> Option<&DownTrack> {
        self.downtracks.iter().find(|d| d.sub == sub)
    }

    fn is_video(&self) -> bool {
        self.kind() == MediaKind::Video
    }

    /// Highest layer at or below `want` that is sending; else the lowest sending layer.
    fn pick_layer(&self, want: usize, now: Instant) -> Option<usize> {
        let top = want.min(self.layers.len().saturating_sub(1));
        (0..=top)
            .rev()
            .find(|&i| self.layers[i].active(now))
            .or_else(|| (0..self.layers.len()).find(|&i| self.layers[i].active(now)))
    }

    /// Recomputes one downtrack's target layer; asks for a keyframe when it changes.
    fn retarget(&mut self, i: usize, budget: Option<u64>, now: Instant, out: &mut Vec<Action>) {
        let dt = &self.downtracks[i];
        if dt.state == DownState::Paused || dt.slot.is_none() {
            return;
        }
        if !self.is_video() {
            let d = &mut self.downtracks[i];
            if d.current.is_none() {
                d.current = Some(0);
                d.target = Some(0);
            }
            return;
        }
        let mut want = dt.requested.index();
        if let Some(budget) = budget {
            // The highest layer whose measured rate fits the share of the estimate.
            while want > 0 && self.layers.get(want).is_some_and(|l| l.bitrate > budget) {
                want -= 1;
            }
        }
        let target = self
            .pick_layer(want, now)
            .or(Some(0).filter(|_| self.layers.len() == 1));
        let d = &mut self.downtracks[i];
        d.target = target;
        if let Some(t) = target
            && d.current != Some(t)
            && self.layers[t].throttle_keyframe(now)
        {
            out.push(Action::KeyframeRequest {
                owner: self.owner,
                track: self.key,
                layer: t,
            });
        }
    }
}

/// One packet arriving from a publisher, as the forwarder sees it.
#[derive(Debug, Clone, Copy)]
pub struct PacketIn {
    /// Extended sequence number.
    pub seq: u64,
    pub ts: u32,
    /// First packet of a keyframe (always true for audio).
    pub keyframe: bool,
    /// Payload length, for layer bitrates.
    pub len: usize,
}

/// Send this packet to a subscriber with rewritten sequence number and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub sub: PeerKey,
    pub slot: u32,
    pub seq: u64,
    pub ts: u32,
}

/// What the core asks its runtime to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Forward(Forward),
    /// Ask the publisher for a keyframe on a layer (PLI).
    KeyframeRequest {
        owner: PeerKey,
        track: TrackKey,
        layer: usize,
    },
}

/// A room on one worker.
#[derive(Debug)]
pub struct Room {
    pub caps: CapsConfig,
    members: HashMap<PeerKey, Member>,
    tracks: HashMap<TrackKey, Track>,
    next_track: u32,
    last_speakers_check: Option<Instant>,
    last_speakers: Vec<PeerKey>,
    last_tick: Option<Instant>,
    first_seq: u64,
}

impl Room {
    /// `track_base` keeps track keys unique across the rooms of one worker.
    pub fn new(caps: CapsConfig, track_base: u32) -> Room {
        Room {
            caps,
            members: HashMap::new(),
            tracks: HashMap::new(),
            next_track: track_base,
            last_speakers_check: None,
            last_speakers: Vec::new(),
            last_tick: None,
            first_seq: 1000,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Members that count toward the participant cap.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn member(&self, p: PeerKey) -> Option<&Member> {
        self.members.get(&p)
    }

    pub fn members(&self) -> impl Iterator<Item = (PeerKey, &Member)> {
        self.members.iter().map(|(k, m)| (*k, m))
    }

    pub fn find_member(&self, identity: &ParticipantId) -> Option<PeerKey> {
        self.members
            .iter()
            .find(|(_, m)| &m.identity == identity)
            .map(|(k, _)| *k)
    }

    pub fn track(&self, t: TrackKey) -> Option<&Track> {
        self.tracks.get(&t)
    }

    pub fn tracks(&self) -> impl Iterator<Item = &Track> {
        self.tracks.values()
    }

    pub fn find_track(&self, id: &TrackId) -> Option<TrackKey> {
        self.tracks.values().find(|t| &t.id == id).map(|t| t.key)
    }

    /// Admits a member if the room has room. Checked and applied in one step, so racing
    /// joins on the room's worker admit exactly the cap.
    ///
    /// A newer session of an identity replaces the older one: it does not count against
    /// the cap, and its key comes back for the caller to remove (`replaced`). A new
    /// member auto-subscribes unless it is hidden or may not subscribe
    /// ([`Room::set_auto_subscribe`]).
    pub fn admit(
        &mut self,
        key: PeerKey,
        identity: ParticipantId,
        name: String,
        grants: Grants,
        hidden: bool,
    ) -> Result<Option<PeerKey>, JoinError> {
        if self.members.contains_key(&key) {
            return Err(JoinError::AlreadyJoined);
        }
        let replaced = self.find_member(&identity);
        let others = self.members.len() - usize::from(replaced.is_some());
        if others as u32 >= self.caps.max_participants {
            return Err(JoinError::RoomFull(self.caps.max_participants));
        }
        let auto_subscribe = !hidden && grants.subscribe;
        self.members.insert(
            key,
            Member {
                identity,
                name,
                grants,
                hidden,
                tracks: Vec::new(),
                auto_subscribe,
                bwe: None,
                level: LevelMeter::default(),
            },
        );
        Ok(replaced)
    }

    /// Whether a member receives every track without asking (never without the
    /// subscribe grant).
    pub fn set_auto_subscribe(&mut self, key: PeerKey, on: bool) {
        if let Some(m) = self.members.get_mut(&key) {
            m.auto_subscribe = on && m.grants.subscribe;
        }
    }

    /// The tracks a member that just joined subscribes to by itself.
    pub fn auto_subscriptions(&self, key: PeerKey) -> Vec<TrackKey> {
        if !self.members.get(&key).is_some_and(|m| m.auto_subscribe) {
            return Vec::new();
        }
        let mut t: Vec<TrackKey> = self
            .tracks
            .values()
            .filter(|t| t.owner != key)
            .map(|t| t.key)
            .collect();
        t.sort_unstable();
        t
    }

    /// The members that subscribe by themselves to a track just published.
    pub fn auto_subscribers(&self, track: TrackKey) -> Vec<PeerKey> {
        let Some(owner) = self.tracks.get(&track).map(|t| t.owner) else {
            return Vec::new();
        };
        let mut m: Vec<PeerKey> = self
            .members
            .iter()
            .filter(|(k, m)| **k != owner && m.auto_subscribe)
            .map(|(k, _)| *k)
            .collect();
        m.sort_unstable();
        m
    }

    /// Members publishing a camera, leaving out `except`: the count the video publisher
    /// cap limits.
    fn video_publishers(&self, except: Option<PeerKey>) -> u32 {
        self.members
            .iter()
            .filter(|(k, m)| {
                Some(**k) != except
                    && m.tracks.iter().any(|t| {
                        self.tracks
                            .get(t)
                            .is_some_and(|t| t.source == Source::Camera)
                    })
            })
            .count() as u32
    }

    /// Screen tracks: the count the screen share cap limits.
    fn screen_shares(&self) -> u32 {
        self.tracks
            .values()
            .filter(|t| t.source == Source::Screen)
            .count() as u32
    }

    /// How full the room is, counted as the caps count.
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            participants: self.members.len() as u32,
            video_publishers: self.video_publishers(None),
            screen_shares: self.screen_shares(),
        }
    }

    /// Checks a video track's simulcast layers: at most [`MAX_LAYERS`].
    pub fn check_layers(rids: &[String]) -> Result<(), PublishError> {
        if rids.len() > MAX_LAYERS {
            return Err(PublishError::TooManyLayers(MAX_LAYERS));
        }
        Ok(())
    }

    /// Removes a member with its tracks and its subscriptions. Returns the tracks it owned.
    pub fn remove(&mut self, key: PeerKey) -> Vec<Track> {
        let Some(m) = self.members.remove(&key) else {
            return Vec::new();
        };
        for t in self.tracks.values_mut() {
            t.downtracks.retain(|d| d.sub != key);
        }
        self.last_speakers.retain(|p| *p != key);
        m.tracks
            .iter()
            .filter_map(|t| self.tracks.remove(t))
            .collect()
    }

    /// Publishes a track after checking the member's grants and the room's caps.
    pub fn publish(
        &mut self,
        owner: PeerKey,
        source: Source,
        rids: Vec<String>,
        muted: bool,
    ) -> Result<TrackKey, PublishError> {
        let m = self.members.get(&owner).ok_or(PublishError::NotJoined)?;
        if !m.grants.may_publish(source.grant()) {
            return Err(PublishError::NotGranted(source.as_str()));
        }
        Room::check_layers(&rids)?;
        match source {
            Source::Camera => {
                if self.video_publishers(Some(owner)) >= self.caps.max_video_publishers {
                    return Err(PublishError::VideoPublishersFull(
                        self.caps.max_video_publishers,
                    ));
                }
            }
            Source::Screen => {
                if self.screen_shares() >= self.caps.max_screen_shares {
                    return Err(PublishError::ScreenSharesFull(self.caps.max_screen_shares));
                }
            }
            Source::Microphone | Source::ScreenAudio => {}
        }
        let key = TrackKey(self.next_track);
        self.next_track += 1;
        let m = self
            .members
            .get_mut(&owner)
            .ok_or(PublishError::NotJoined)?;
        let id = TrackId::from_serial(key.0 as u64);
        m.tracks.push(key);
        let layers = if source.kind() == MediaKind::Video {
            rids.len().max(1)
        } else {
            1
        };
        self.tracks.insert(
            key,
            Track {
                key,
                id,
                owner,
                source,
                muted,
                rids,
                codec: None,
                layers: vec![Layer::new(); layers],
                downtracks: Vec::new(),
            },
        );
        Ok(key)
    }

    pub fn unpublish(&mut self, track: TrackKey) -> Option<Track> {
        let t = self.tracks.remove(&track)?;
        if let Some(m) = self.members.get_mut(&t.owner) {
            m.tracks.retain(|k| *k != track);
        }
        Some(t)
    }

    pub fn set_muted(&mut self, track: TrackKey, muted: bool) -> bool {
        match self.tracks.get_mut(&track) {
            Some(t) if t.muted != muted => {
                t.muted = muted;
                true
            }
            _ => false,
        }
    }

    pub fn set_codec(&mut self, track: TrackKey, codec: Codec) {
        if let Some(t) = self.tracks.get_mut(&track) {
            t.codec = Some(codec);
        }
    }

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
        let t = self.tracks.get_mut(&track)?;
        let i = t.downtracks.iter().position(|d| d.sub == sub)?;
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
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        let Some(i) = t.downtracks.iter().position(|d| d.sub == sub) else {
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
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        let Some(i) = t.downtracks.iter().position(|d| d.sub == sub) else {
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
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        let Some(i) = t.downtracks.iter().position(|d| d.sub == sub) else {
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

    /// Per-video-downtrack share of a subscriber's estimate.
    fn budget(&self, sub: PeerKey) -> Option<u64> {
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

    /// A subscriber asked for a keyframe (PLI/FIR) on a track it receives.
    pub fn subscriber_keyframe_request(
        &mut self,
        now: Instant,
        sub: PeerKey,
        track: TrackKey,
        out: &mut Vec<Action>,
    ) {
        let Some(t) = self.tracks.get_mut(&track) else {
            return;
        };
        let Some(layer) = t.downtrack(sub).and_then(|d| d.current.or(d.target)) else {
            return;
        };
        if t.layers[layer].throttle_keyframe(now) {
            out.push(Action::KeyframeRequest {
                owner: t.owner,
                track,
                layer,
            });
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
        let Some(l) = t.layers.get_mut(layer) else {
            return;
        };
        let newly_active = !l.active(now);
        l.last_packet = Some(now);
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
        for d in &mut t.downtracks {
            let (Some(slot), DownState::Active) = (d.slot, d.state) else {
                continue;
            };
            if d.target == Some(layer) && d.current != Some(layer) {
                if !p.keyframe {
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
    }

    /// An audio level (RFC 6464, -dBov) from a member's microphone.
    pub fn on_audio_level(&mut self, now: Instant, owner: PeerKey, level_dbov: u8) {
        if let Some(m) = self.members.get_mut(&owner) {
            m.level.observe(now, level_dbov);
        }
    }

    /// Active speakers, loudest first, when the set changed since it was last reported.
    /// Evaluated at most every [`SPEAKERS_INTERVAL`].
    pub fn poll_speakers(&mut self, now: Instant) -> Option<Vec<(PeerKey, f32)>> {
        if self
            .last_speakers_check
            .is_some_and(|t| now.saturating_duration_since(t) < SPEAKERS_INTERVAL)
        {
            return None;
        }
        self.last_speakers_check = Some(now);
        let mut speaking: Vec<(PeerKey, f32)> = self
            .members
            .iter()
            .filter(|(_, m)| !m.hidden)
            .filter_map(|(k, m)| m.level.speaking(now).map(|l| (*k, l)))
            .collect();
        speaking.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut keys: Vec<PeerKey> = speaking.iter().map(|s| s.0).collect();
        keys.sort();
        if keys == self.last_speakers {
            return None;
        }
        self.last_speakers = keys;
        Some(speaking)
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
        let subs: Vec<(PeerKey, Option<u64>)> =
            self.members.keys().map(|k| (*k, self.budget(*k))).collect();
        for t in self.tracks.values_mut() {
            if !t.is_video() {
                continue;
            }
            for i in 0..t.downtracks.len() {
                let d = &t.downtracks[i];
                let current_stopped = d.current.is_some_and(|c| !t.layers[c].active(now));
                if d.current != d.target || current_stopped || d.current.is_none() {
                    let budget = subs.iter().find(|(k, _)| *k == d.sub).and_then(|(_, b)| *b);
                    t.retarget(i, budget, now, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_proto::PublishSource;

    fn pid(s: &str) -> ParticipantId {
        ParticipantId::parse(s).unwrap()
    }

    fn room_with(n: u32) -> Room {
        let mut r = Room::new(CapsConfig::default(), 0);
        for i in 0..n {
            r.admit(
                PeerKey(i),
                pid(&format!("p{i}")),
                format!("P{i}"),
                Grants::default(),
                false,
            )
            .unwrap();
        }
        r
    }

    fn forwards(out: &[Action]) -> Vec<Forward> {
        out.iter()
            .filter_map(|a| match a {
                Action::Forward(f) => Some(*f),
                _ => None,
            })
            .collect()
    }

    fn keyframe_requests(out: &[Action]) -> Vec<usize> {
        out.iter()
            .filter_map(|a| match a {
                Action::KeyframeRequest { layer, .. } => Some(*layer),
                _ => None,
            })
            .collect()
    }

    fn pkt(seq: u64, ts: u32, keyframe: bool) -> PacketIn {
        PacketIn {
            seq,
            ts,
            keyframe,
            len: 1000,
        }
    }

    #[test]
    fn caps_race_admits_exactly_the_cap() {
        let mut r = Room::new(
            CapsConfig {
                max_participants: 10,
                ..CapsConfig::default()
            },
            0,
        );
        let results: Vec<_> = (0..50)
            .map(|i| {
                r.admit(
                    PeerKey(i),
                    pid(&format!("u{i}")),
                    String::new(),
                    Grants::default(),
                    false,
                )
            })
            .collect();
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 10);
        assert!(
            results[10..]
                .iter()
                .all(|r| *r == Err(JoinError::RoomFull(10)))
        );
        // A seat frees up when someone leaves.
        r.remove(PeerKey(3));
        assert!(
            r.admit(
                PeerKey(99),
                pid("late"),
                String::new(),
                Grants::default(),
                false
            )
            .is_ok()
        );
    }

    #[test]
    fn publish_checks_grants_and_caps() {
        let mut r = Room::new(
            CapsConfig {
                max_video_publishers: 1,
                max_screen_shares: 1,
                ..CapsConfig::default()
            },
            0,
        );
        let audio_only = Grants {
            publish: vec![PublishSource::Audio],
            subscribe: true,
            admin: false,
        };
        r.admit(PeerKey(0), pid("a"), "A".into(), audio_only, false)
            .unwrap();
        r.admit(PeerKey(1), pid("b"), "B".into(), Grants::default(), false)
            .unwrap();
        r.admit(PeerKey(2), pid("c"), "C".into(), Grants::default(), false)
            .unwrap();
        assert_eq!(
            r.publish(PeerKey(0), Source::Camera, vec![], false),
            Err(PublishError::NotGranted("camera"))
        );
        assert!(
            r.publish(PeerKey(0), Source::Microphone, vec![], false)
                .is_ok()
        );
        assert!(r.publish(PeerKey(1), Source::Camera, vec![], false).is_ok());
        // The same publisher may add a second camera; a second publisher may not.
        assert!(r.publish(PeerKey(1), Source::Camera, vec![], false).is_ok());
        assert_eq!(
            r.publish(PeerKey(2), Source::Camera, vec![], false),
            Err(PublishError::VideoPublishersFull(1))
        );
        assert!(r.publish(PeerKey(1), Source::Screen, vec![], false).is_ok());
        assert_eq!(
            r.publish(PeerKey(2), Source::Screen, vec![], false),
            Err(PublishError::ScreenSharesFull(1))
        );
        // Screen audio does not count as a screen share.
        assert!(
            r.publish(PeerKey(2), Source::ScreenAudio, vec![], false)
                .is_ok()
        );
    }

    #[test]
    fn subscribe_unsubscribe_and_pause() {
        let t0 = Instant::now();
        let mut r = room_with(3);
        let audio = r
            .publish(PeerKey(0), Source::Microphone, vec![], false)
            .unwrap();
        let mut out = Vec::new();
        for s in [1, 2] {
            assert_eq!(r.subscribe(PeerKey(s), audio), Ok(true));
            r.downtrack_ready(t0, PeerKey(s), audio, 10 + s, &mut out);
        }
        assert_eq!(
            r.subscribe(PeerKey(0), audio),
            Err(SubscribeError::OwnTrack)
        );
        out.clear();
        r.on_rtp(t0, audio, 0, pkt(100, 960, true), &mut out);
        let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
        assert_eq!(subs, vec![PeerKey(1), PeerKey(2)]);

        // Pause stops packets to that subscriber only.
        assert!(r.set_paused(t0, PeerKey(1), audio, true, &mut out));
        out.clear();
        r.on_rtp(t0, audio, 0, pkt(101, 1920, true), &mut out);
        let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
        assert_eq!(subs, vec![PeerKey(2)]);

        // Resume continues the sequence without a gap.
        let before = forwards(&out)[0];
        r.set_paused(t0, PeerKey(1), audio, false, &mut out);
        out.clear();
        for s in 102..110 {
            r.on_rtp(t0, audio, 0, pkt(s, s as u32 * 960, true), &mut out);
        }
        let to1: Vec<_> = forwards(&out)
            .into_iter()
            .filter(|f| f.sub == PeerKey(1))
            .collect();
        assert_eq!(to1.len(), 8);
        assert!(to1.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        let to2: Vec<_> = forwards(&out)
            .into_iter()
            .filter(|f| f.sub == PeerKey(2))
            .collect();
        assert_eq!(to2[0].seq, before.seq + 1);

        // Unsubscribe stops packets to that subscriber only, for good.
        assert_eq!(r.unsubscribe(PeerKey(2), audio), Some(Some(12)));
        out.clear();
        r.on_rtp(t0, audio, 0, pkt(110, 960 * 110, true), &mut out);
        let subs: Vec<_> = forwards(&out).iter().map(|f| f.sub).collect();
        assert_eq!(subs, vec![PeerKey(1)]);
    }

    #[test]
    fn nothing_is_forwarded_before_negotiation_or_keyframe() {
        let t0 = Instant::now();
        let mut r = room_with(2);
        let cam = r
            .publish(PeerKey(0), Source::Camera, vec![], false)
            .unwrap();
        r.subscribe(PeerKey(1), cam).unwrap();
        let mut out = Vec::new();
        r.on_rtp(t0, cam, 0, pkt(1, 0, true), &mut out);
        assert!(forwards(&out).is_empty(), "not negotiated yet");
        // Negotiated: a new video subscriber asks the publisher for a keyframe.
        out.clear();
        r.downtrack_ready(t0, PeerKey(1), cam, 7, &mut out);
        assert_eq!(keyframe_requests(&out), vec![0]);
        out.clear();
        r.on_rtp(t0, cam, 0, pkt(2, 3000, false), &mut out);
        assert!(forwards(&out).is_empty(), "delta frame before keyframe");
        r.on_rtp(t0, cam, 0, pkt(3, 6000, true), &mut out);
        r.on_rtp(t0, cam, 0, pkt(4, 6000, false), &mut out);
        assert_eq!(forwards(&out).len(), 2);
    }

    fn simulcast_room(t0: Instant) -> (Room, TrackKey, Vec<Action>) {
        let mut r = room_with(2);
        let cam = r
            .publish(
                PeerKey(0),
                Source::Camera,
                vec!["l".into(), "m".into(), "h".into()],
                false,
            )
            .unwrap();
        let mut out = Vec::new();
        // All three layers are sending.
        for layer in 0..3 {
            r.on_rtp(
                t0,
                cam,
                layer,
                pkt(layer as u64 * 10_000, 0, false),
                &mut out,
            );
        }
        r.subscribe(PeerKey(1), cam).unwrap();
        out.clear();
        r.downtrack_ready(t0, PeerKey(1), cam, 1, &mut out);
        (r, cam, out)
    }

    #[test]
    fn layer_switch_waits_for_keyframe_and_stays_continuous() {
        let t0 = Instant::now();
        let (mut r, cam, mut out) = simulcast_room(t0);
        assert_eq!(keyframe_requests(&out), vec![2], "default quality is high");
        out.clear();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        r.on_rtp(ms(10), cam, 2, pkt(20_001, 90_000, true), &mut out);
        for i in 2..6 {
            r.on_rtp(
                ms(10 * i),
                cam,
                2,
                pkt(20_000 + i, 90_000 + 3000 * i as u32, false),
                &mut out,
            );
        }
        let high: Vec<_> = forwards(&out);
        assert_eq!(high.len(), 5);
        let last = *high.last().unwrap();

        // Ask for low: a keyframe is requested on layer 0; layer 2 keeps flowing until then.
        out.clear();
        r.set_quality(ms(60), PeerKey(1), cam, Quality::Low, &mut out);
        assert_eq!(keyframe_requests(&out), vec![0]);
        out.clear();
        r.on_rtp(ms(70), cam, 0, pkt(500, 7_000, false), &mut out);
        assert!(forwards(&out).is_empty(), "no switch on a delta frame");
        r.on_rtp(ms(70), cam, 2, pkt(20_006, 108_000, false), &mut out);
        let kept = forwards(&out);
        assert_eq!(kept.len(), 1, "old layer continues until the switch");
        assert_eq!(kept[0].seq, last.seq + 1);
        out.clear();
        r.on_rtp(ms(100), cam, 0, pkt(501, 10_000, true), &mut out);
        r.on_rtp(ms(100), cam, 2, pkt(20_007, 111_000, false), &mut out);
        r.on_rtp(ms(133), cam, 0, pkt(502, 13_000, false), &mut out);
        let after = forwards(&out);
        assert_eq!(after.len(), 2, "only layer 0 after the switch");
        assert_eq!(after[0].seq, kept[0].seq + 1, "sequence continues");
        let dt = after[0].ts.wrapping_sub(kept[0].ts);
        assert!(
            (2000..=3500).contains(&dt),
            "timestamp continues, advanced {dt}"
        );
        assert_eq!(after[1].seq, after[0].seq + 1);
        assert_eq!(after[1].ts.wrapping_sub(after[0].ts), 3000);
    }

    #[test]
    fn bandwidth_estimate_lowers_the_layer() {
        let t0 = Instant::now();
        let (mut r, cam, mut out) = simulcast_room(t0);
        measure_layers(&mut r, cam, t0, &mut out);
        out.clear();
        r.set_bandwidth(
            t0 + Duration::from_millis(1100),
            PeerKey(1),
            500_000,
            &mut out,
        );
        assert_eq!(keyframe_requests(&out), vec![1]);
        assert_eq!(
            r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target,
            Some(1)
        );
        out.clear();
        r.set_bandwidth(
            t0 + Duration::from_millis(1700),
            PeerKey(1),
            50_000,
            &mut out,
        );
        assert_eq!(
            r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target,
            Some(0)
        );
    }

    /// Feeds ~1.6 Mbps, ~400 kbps and ~100 kbps on the three layers for 1.1 s.
    fn measure_layers(r: &mut Room, cam: TrackKey, t0: Instant, out: &mut Vec<Action>) {
        let sizes = [12usize, 50, 200];
        for ms in 0..=1100u64 {
            let now = t0 + Duration::from_millis(ms);
            for (layer, size) in sizes.iter().enumerate() {
                let p = PacketIn {
                    seq: 1 + ms + layer as u64 * 100_000,
                    ts: ms as u32 * 90,
                    keyframe: false,
                    len: *size,
                };
                r.on_rtp(now, cam, layer, p, out);
            }
        }
    }

    #[test]
    fn a_bandwidth_estimate_within_ten_percent_moves_nothing() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let target = |r: &Room, cam| r.track(cam).unwrap().downtrack(PeerKey(1)).unwrap().target;
        // Alone, 390 kbps is below the medium layer's ~400 kbps: the low layer.
        let (mut fresh, cam, mut out) = simulcast_room(t0);
        measure_layers(&mut fresh, cam, t0, &mut out);
        fresh.set_bandwidth(at(1100), PeerKey(1), 390_000, &mut out);
        assert_eq!(target(&fresh, cam), Some(0));

        let (mut r, cam, mut out) = simulcast_room(t0);
        measure_layers(&mut r, cam, t0, &mut out);
        r.set_bandwidth(at(1100), PeerKey(1), 420_000, &mut out);
        assert_eq!(target(&r, cam), Some(1));
        // 390 kbps is within 10% of the 420 kbps the layer was chosen for: no change.
        r.set_bandwidth(at(1200), PeerKey(1), 390_000, &mut out);
        assert_eq!(
            target(&r, cam),
            Some(1),
            "jitter within 10% keeps the layer"
        );
        // A larger change moves it.
        r.set_bandwidth(at(1300), PeerKey(1), 300_000, &mut out);
        assert_eq!(target(&r, cam), Some(0));
    }

    #[test]
    fn a_newer_session_of_an_identity_replaces_the_older_one() {
        let mut r = Room::new(
            CapsConfig {
                max_participants: 2,
                ..CapsConfig::default()
            },
            0,
        );
        let join = |r: &mut Room, k: u32, who: &str| {
            r.admit(PeerKey(k), pid(who), who.into(), Grants::default(), false)
        };
        assert_eq!(join(&mut r, 0, "ann"), Ok(None));
        assert_eq!(join(&mut r, 1, "ben"), Ok(None));
        // The room is full, but ann's second session takes the first one's seat.
        assert_eq!(join(&mut r, 2, "ann"), Ok(Some(PeerKey(0))));
        assert_eq!(join(&mut r, 3, "cat"), Err(JoinError::RoomFull(2)));
        assert_eq!(join(&mut r, 2, "dan"), Err(JoinError::AlreadyJoined));
    }

    #[test]
    fn auto_subscribers_get_every_track_but_their_own() {
        let mut r = room_with(4);
        let watch_only = Grants {
            publish: vec![],
            subscribe: false,
            admin: false,
        };
        r.admit(
            PeerKey(9),
            pid("whep"),
            String::new(),
            Grants::default(),
            true,
        )
        .unwrap();
        r.admit(PeerKey(8), pid("mute"), String::new(), watch_only, false)
            .unwrap();
        r.set_auto_subscribe(PeerKey(8), true);
        r.set_auto_subscribe(PeerKey(3), false);
        let mic = r
            .publish(PeerKey(0), Source::Microphone, vec![], false)
            .unwrap();
        let cam = r
            .publish(PeerKey(1), Source::Camera, vec![], false)
            .unwrap();
        // Hidden viewers, members without the subscribe grant and members who asked
        // not to auto-subscribe are left out.
        assert_eq!(r.auto_subscribers(mic), vec![PeerKey(1), PeerKey(2)]);
        assert_eq!(r.auto_subscribers(cam), vec![PeerKey(0), PeerKey(2)]);
        r.admit(
            PeerKey(5),
            pid("late"),
            String::new(),
            Grants::default(),
            false,
        )
        .unwrap();
        assert_eq!(r.auto_subscriptions(PeerKey(5)), vec![mic, cam]);
        assert_eq!(r.auto_subscriptions(PeerKey(0)), vec![cam], "not its own");
        assert!(r.auto_subscriptions(PeerKey(9)).is_empty());
        assert!(r.auto_subscriptions(PeerKey(3)).is_empty());
    }

    #[test]
    fn occupancy_counts_as_the_caps_do() {
        let mut r = room_with(3);
        r.publish(PeerKey(0), Source::Camera, vec![], false)
            .unwrap();
        r.publish(PeerKey(0), Source::Camera, vec![], false)
            .unwrap();
        r.publish(PeerKey(1), Source::Camera, vec![], false)
            .unwrap();
        r.publish(PeerKey(1), Source::Screen, vec![], false)
            .unwrap();
        r.publish(PeerKey(1), Source::ScreenAudio, vec![], false)
            .unwrap();
        assert_eq!(
            r.occupancy(),
            Occupancy {
                participants: 3,
                video_publishers: 2,
                screen_shares: 1,
            }
        );
    }

    #[test]
    fn at_most_three_simulcast_layers() {
        let mut r = room_with(1);
        let rids = |n: usize| (0..n).map(|i| format!("r{i}")).collect::<Vec<_>>();
        assert!(Room::check_layers(&rids(3)).is_ok());
        assert_eq!(
            Room::check_layers(&rids(4)),
            Err(PublishError::TooManyLayers(3))
        );
        assert_eq!(
            r.publish(PeerKey(0), Source::Camera, rids(4), false),
            Err(PublishError::TooManyLayers(3))
        );
        assert!(r.member(PeerKey(0)).unwrap().tracks.is_empty());
    }

    #[test]
    fn a_transport_down_longer_than_the_grace_expires() {
        let t0 = Instant::now();
        assert!(!transport_expired(None, t0 + Duration::from_secs(60)));
        assert!(!transport_expired(Some(t0), t0 + DISCONNECT_GRACE));
        assert!(transport_expired(
            Some(t0),
            t0 + DISCONNECT_GRACE + Duration::from_millis(1)
        ));
    }

    #[test]
    fn keyframe_requests_are_throttled_per_layer() {
        let t0 = Instant::now();
        let mut r = room_with(3);
        let cam = r
            .publish(PeerKey(0), Source::Camera, vec![], false)
            .unwrap();
        let mut out = Vec::new();
        r.on_rtp(t0, cam, 0, pkt(1, 0, true), &mut out);
        for s in [1, 2] {
            r.subscribe(PeerKey(s), cam).unwrap();
            r.downtrack_ready(t0, PeerKey(s), cam, s, &mut out);
        }
        assert_eq!(
            keyframe_requests(&out).len(),
            1,
            "two new subscribers, one PLI"
        );
        out.clear();
        r.on_rtp(t0, cam, 0, pkt(2, 3000, true), &mut out);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        for n in [100, 200, 300, 499] {
            r.subscriber_keyframe_request(ms(n), PeerKey(1), cam, &mut out);
            r.subscriber_keyframe_request(ms(n), PeerKey(2), cam, &mut out);
        }
        assert!(keyframe_requests(&out).is_empty());
        r.subscriber_keyframe_request(ms(500), PeerKey(2), cam, &mut out);
        r.subscriber_keyframe_request(ms(600), PeerKey(1), cam, &mut out);
        assert_eq!(keyframe_requests(&out).len(), 1);
        r.subscriber_keyframe_request(ms(1000), PeerKey(1), cam, &mut out);
        assert_eq!(keyframe_requests(&out).len(), 2);
    }

    #[test]
    fn active_speakers_change_at_most_every_interval() {
        let t0 = Instant::now();
        let mut r = room_with(3);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        r.on_audio_level(ms(0), PeerKey(1), 20);
        r.on_audio_level(ms(0), PeerKey(2), 127);
        let s = r.poll_speakers(ms(0)).unwrap();
        assert_eq!(s.iter().map(|s| s.0).collect::<Vec<_>>(), vec![PeerKey(1)]);
        r.on_audio_level(ms(50), PeerKey(2), 10);
        assert_eq!(r.poll_speakers(ms(100)), None, "inside the interval");
        let s = r.poll_speakers(ms(200)).unwrap();
        assert_eq!(
            s.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![PeerKey(2), PeerKey(1)]
        );
        assert_eq!(
            r.poll_speakers(ms(400)),
            None,
            "unchanged set is not repeated"
        );
        // Silence: both drop out after the hold time.
        assert_eq!(r.poll_speakers(ms(1000)).unwrap(), vec![]);
    }

    #[test]
    fn leaving_removes_tracks_and_subscriptions() {
        let t0 = Instant::now();
        let mut r = room_with(2);
        let a = r
            .publish(PeerKey(0), Source::Microphone, vec![], false)
            .unwrap();
        let b = r
            .publish(PeerKey(1), Source::Microphone, vec![], false)
            .unwrap();
        r.subscribe(PeerKey(1), a).unwrap();
        r.subscribe(PeerKey(0), b).unwrap();
        let mut out = Vec::new();
        r.downtrack_ready(t0, PeerKey(1), a, 1, &mut out);
        let gone = r.remove(PeerKey(0));
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].key, a);
        assert!(r.track(b).unwrap().downtracks.is_empty());
        assert_eq!(r.len(), 1);
    }
}
