//! One room: its members, their published tracks, and every subscriber's view of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parlor_proto::control::CloseReason;
use parlor_proto::{Grants, MediaKind, ParticipantId, Quality, Source, TrackId};

use super::codec::Codec;
use super::munger::Munger;
use super::speakers::LevelMeter;

/// A keyframe request the publisher has not answered with a keyframe is repeated after
/// this long, not before.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// Once the publisher answered, the next request may follow this long after the last: a
/// subscriber that joins just after a keyframe waits at most this (plus the publisher's
/// answer) for its first frame, and a join storm costs the publisher at most five
/// keyframes a second.
pub const KEYFRAME_MIN_GAP: Duration = Duration::from_millis(200);
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
    /// When the member's transport (ICE) went down, if it is down.
    transport_down: Option<Instant>,
    /// A close was decided; the runtime removes the member.
    closing: bool,
    /// Where the member is: here, on another node (mirrored through a pipe), or a pipe
    /// carrying this node's tracks to another node.
    pub origin: Origin,
}

impl Member {
    /// A member as it joins. Who receives every track without asking: a pipe always; a
    /// local participant unless hidden or not granted subscribing; a remote one never
    /// (its own node subscribes it).
    fn new(
        identity: ParticipantId,
        name: String,
        grants: Grants,
        hidden: bool,
        origin: Origin,
    ) -> Member {
        let auto_subscribe = match origin {
            Origin::Pipe => true,
            Origin::Remote => false,
            Origin::Local => !hidden && grants.subscribe,
        };
        Member {
            identity,
            name,
            grants,
            hidden,
            tracks: Vec::new(),
            auto_subscribe,
            bwe: None,
            level: LevelMeter::default(),
            transport_down: None,
            closing: false,
            origin,
        }
    }
}

/// Where a member of a room that spans SFU nodes is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A participant connected to this node.
    Local,
    /// A participant of another node, whose tracks arrive through a pipe.
    Remote,
    /// A pipe to another node: it receives every track of this node's own participants,
    /// never a remote one's, so media crosses each pair of nodes at most once.
    Pipe,
}

#[derive(Debug, Clone)]
struct Layer {
    last_packet: Option<Instant>,
    window_start: Option<Instant>,
    window_bytes: u64,
    /// Bits per second over the last full window.
    bitrate: u64,
    last_keyframe_request: Option<Instant>,
    /// A keyframe arrived since the last request.
    answered: bool,
}

impl Layer {
    fn new() -> Layer {
        Layer {
            last_packet: None,
            window_start: None,
            window_bytes: 0,
            bitrate: 0,
            last_keyframe_request: None,
            answered: false,
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_TIMEOUT)
    }

    fn throttle_keyframe(&mut self, now: Instant) -> bool {
        let allowed = self.last_keyframe_request.is_none_or(|t| {
            let since = now.saturating_duration_since(t);
            since >= KEYFRAME_REQUEST_INTERVAL || (self.answered && since >= KEYFRAME_MIN_GAP)
        });
        if allowed {
            self.last_keyframe_request = Some(now);
            self.answered = false;
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
    /// Muted by its publisher.
    pub muted: bool,
    /// A server-muted member's microphone: nothing of it is forwarded
    /// ([`Room::set_server_muted`]).
    pub silenced: bool,
    /// Simulcast rids, lowest first; empty without simulcast.
    pub rids: Vec<String>,
    pub codec: Option<Codec>,
    layers: Vec<Layer>,
    pub downtracks: Vec<DownTrack>,
    /// Pipes to other nodes carrying this track: every layer, as it arrives (the far
    /// node picks layers for its own subscribers).
    pub pipes: Vec<PeerKey>,
}

impl Track {
    pub fn kind(&self) -> MediaKind {
        self.source.kind()
    }

    /// Muted as the room is told: by its publisher, or by a moderator.
    pub fn is_muted(&self) -> bool {
        self.muted || self.silenced
    }

    /// How many layers the track has (1 without simulcast).
    pub fn layer_count(&self) -> usize {
        self.layers.len()
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
    /// Remove a member, telling it why.
    Close {
        peer: PeerKey,
        reason: CloseReason,
    },
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
        // Only a session here is replaced; a mirror of another node's goes with its pipe.
        let replaced = self
            .members
            .iter()
            .find(|(_, m)| m.identity == identity && m.origin == Origin::Local)
            .map(|(k, _)| *k);
        let others = self.participants() - u32::from(replaced.is_some());
        if others >= self.caps.max_participants {
            return Err(JoinError::RoomFull(self.caps.max_participants));
        }
        let member = Member::new(identity, name, grants, hidden, Origin::Local);
        self.members.insert(key, member);
        Ok(replaced)
    }

    /// The member's transport went down (`up` false) or came back. Down for longer than
    /// [`DISCONNECT_GRACE`], it is closed with `media_timeout` at a [`Room::tick`].
    pub fn transport(&mut self, key: PeerKey, up: bool, now: Instant) {
        if let Some(m) = self.members.get_mut(&key) {
            if up {
                m.transport_down = None;
            } else {
                m.transport_down.get_or_insert(now);
            }
        }
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
            .filter(|t| t.owner != key && self.pipe_carries(key, t))
            .map(|t| t.key)
            .collect();
        t.sort_unstable();
        t
    }

    /// The members that subscribe by themselves to a track just published.
    pub fn auto_subscribers(&self, track: TrackKey) -> Vec<PeerKey> {
        let Some(t) = self.tracks.get(&track) else {
            return Vec::new();
        };
        let owner = t.owner;
        let mut m: Vec<PeerKey> = self
            .members
            .iter()
            .filter(|(k, m)| **k != owner && m.auto_subscribe && self.pipe_carries(**k, t))
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

    /// Participants, here and mirrored from other nodes; pipes are not participants.
    fn participants(&self) -> u32 {
        self.members
            .values()
            .filter(|m| m.origin != Origin::Pipe)
            .count() as u32
    }

    /// How full the room is, counted as the caps count.
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            participants: self.participants(),
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
            t.pipes.retain(|p| *p != key);
        }
        self.last_speakers.retain(|p| *p != key);
        m.tracks
            .iter()
            .filter_map(|t| self.tracks.remove(t))
            .collect()
    }

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
        self.add_track(owner, source, muted, rids)
            .ok_or(PublishError::NotJoined)
    }

    /// Adds a member's track with its simulcast layers (video only, at most
    /// [`MAX_LAYERS`]); `None` if there is no such member.
    fn add_track(
        &mut self,
        owner: PeerKey,
        source: Source,
        muted: bool,
        rids: Vec<String>,
    ) -> Option<TrackKey> {
        let key = TrackKey(self.next_track);
        let m = self.members.get_mut(&owner)?;
        m.tracks.push(key);
        let silenced = m.grants.muted && source == Source::Microphone;
        self.next_track += 1;
        let layers = if source.kind() == MediaKind::Video {
            rids.len().clamp(1, MAX_LAYERS)
        } else {
            1
        };
        self.tracks.insert(
            key,
            Track {
                key,
                id: TrackId::from_serial(key.0 as u64),
                owner,
                source,
                muted,
                silenced,
                rids,
                codec: None,
                layers: vec![Layer::new(); layers],
                downtracks: Vec::new(),
                pipes: Vec::new(),
            },
        );
        Some(key)
    }

    pub fn unpublish(&mut self, track: TrackKey) -> Option<Track> {
        let t = self.tracks.remove(&track)?;
        if let Some(m) = self.members.get_mut(&t.owner) {
            m.tracks.retain(|k| *k != track);
        }
        Some(t)
    }

    /// Sets the publisher's mute; true if that changes what the room is told
    /// ([`Track::is_muted`]): a silenced track stays muted to the room.
    pub fn set_muted(&mut self, track: TrackKey, muted: bool) -> bool {
        let Some(t) = self.tracks.get_mut(&track) else {
            return false;
        };
        let before = t.is_muted();
        t.muted = muted;
        before != t.is_muted()
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

#[path = "room_span.rs"]
mod span;

#[path = "moderation.rs"]
mod moderation;

#[path = "room_speakers.rs"]
mod room_speakers;

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
