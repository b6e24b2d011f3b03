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
}

#[path = "room_forward.rs"]
mod forward;

#[path = "room_publish.rs"]
mod publish;

#[path = "room_subscribe.rs"]
mod subscribe;

#[path = "room_span.rs"]
mod span;

#[path = "moderation.rs"]
mod moderation;

#[path = "room_speakers.rs"]
mod room_speakers;

#[cfg(test)]
#[path = "room_tests.rs"]
mod tests;
