//! The control interface between signaling and an SFU: the one seam between the control
//! plane and the media plane.
//!
//! Everything that crosses it is plain, serialisable data: an opaque participant handle,
//! typed requests and replies, [`RoomEvent`]s and [`CloseReason`]s, and the event stream
//! that [`SfuControl::join`] returns. No channel, thread index or client-protocol frame
//! crosses it, so the same trait is served in process (`parlor serve`) and over the
//! network (an SFU node elsewhere). The SFU never builds a client frame; signaling turns
//! room events into its protocol.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::signal::{MidTrack, ParticipantInfo, PublishTrack, Speaker, TrackInfo};
use crate::{Grants, ParticipantId, Quality, RoomCaps, RoomId, TrackId};

/// Where a joined participant lives: which SFU node, which room, and a key the node
/// chose. Opaque to signaling, which only hands it back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParticipantHandle {
    /// The SFU node ("local" in process).
    pub node: String,
    pub room: RoomId,
    pub identity: ParticipantId,
    pub key: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    pub room: RoomId,
    pub identity: ParticipantId,
    pub name: String,
    pub grants: Grants,
    /// The token's caps, applied to the room when this participant joins.
    pub caps: Option<RoomCaps>,
    /// Hidden participants (WHEP viewers) are not announced and subscribe to nothing by
    /// themselves.
    pub hidden: bool,
    /// Subscribe to every track in the room, now and as they are published.
    pub auto_subscribe: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub handle: ParticipantHandle,
    pub me: ParticipantInfo,
    pub participants: Vec<ParticipantInfo>,
}

/// What a participant asks of the SFU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// An SDP offer from the client. `tracks` labels the m-lines it sends on; with
    /// `infer_sources` (WHIP) unlabelled audio is the microphone and video the camera.
    Offer {
        sdp: String,
        tracks: Vec<PublishTrack>,
        infer_sources: bool,
    },
    /// The client's answer to a server offer.
    Answer {
        offer_id: u64,
        sdp: String,
    },
    /// A WHEP viewer's offer: play `target`'s microphone and camera.
    WhepOffer {
        sdp: String,
        target: ParticipantId,
    },
    Unpublish(TrackId),
    Mute(TrackId, bool),
    Subscribe(TrackId),
    Unsubscribe(TrackId),
    Pause(TrackId, bool),
    Quality(TrackId, Quality),
    /// Restart ICE: the SFU sends an offer with fresh credentials.
    IceRestart,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Answer { sdp: String, tracks: Vec<MidTrack> },
    Ok,
}

/// The SFU's answer to a [`Request`], with how many of the participant's events it had
/// sent when it took the request up. Those events come before the reply on the client's
/// socket and whatever the request caused comes after it: a server offer the request
/// rolled back reaches the client before the answer, never after (`docs/protocol.md`
/// §6.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replied {
    pub result: Result<Reply, SfuError>,
    /// Events numbered up to this one precede the reply.
    pub after_event: u64,
}

impl Replied {
    /// A request that never reached the participant's events (no such participant, the
    /// SFU unreachable).
    pub fn failed(e: SfuError) -> Replied {
        Replied {
            result: Err(e),
            after_event: 0,
        }
    }
}

/// A room's limits, with every field set: the server's defaults where the room's caps
/// leave a field out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsConfig {
    pub max_participants: u32,
    pub max_video_publishers: u32,
    pub max_screen_shares: u32,
}

impl Default for CapsConfig {
    fn default() -> Self {
        CapsConfig {
            max_participants: 100,
            max_video_publishers: 25,
            max_screen_shares: 1,
        }
    }
}

impl CapsConfig {
    /// Whether a room with these caps can carry video: a camera or a screen share. One
    /// that cannot is a voice-only room.
    pub fn carries_video(&self) -> bool {
        self.max_video_publishers > 0 || self.max_screen_shares > 0
    }

    /// These caps with any field the override sets replaced.
    pub fn with(self, o: Option<RoomCaps>) -> CapsConfig {
        let Some(o) = o else { return self };
        CapsConfig {
            max_participants: o.max_participants.unwrap_or(self.max_participants),
            max_video_publishers: o.max_video_publishers.unwrap_or(self.max_video_publishers),
            max_screen_shares: o.max_screen_shares.unwrap_or(self.max_screen_shares),
        }
    }
}

/// A room's caps in force and how full it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomStatus {
    pub caps: CapsConfig,
    /// Whether anyone is in the room now.
    pub open: bool,
    pub participants: u32,
    pub video_publishers: u32,
    pub screen_shares: u32,
}

/// Why a participant left a room, or was removed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CloseReason {
    /// It asked to leave (a `leave`, a clean close, a WHIP/WHEP `DELETE`).
    Left,
    /// Its connection dropped and was not resumed in time.
    Disconnected,
    /// The same identity joined again.
    Replaced,
    /// Its WebRTC transport was down for too long, or its WebRTC session ended.
    MediaTimeout,
    /// The SFU's WebRTC stack failed on its session.
    MediaError,
    /// Its events could not be delivered fast enough.
    SlowConsumer,
    /// The server is shutting down.
    ServerShutdown,
    /// A WHIP publisher's offer was refused after it had joined.
    WhipFailed,
    /// A WHEP viewer's offer was refused after it had joined.
    WhepFailed,
    /// Its SFU node died or is draining: join again, and the room is placed on a live
    /// node.
    Moved,
    /// A moderator removed it from the room (the room admin API).
    Removed,
}

impl CloseReason {
    /// The reason as the client protocol spells it (`participant_left.reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Left => "left",
            CloseReason::Disconnected => "disconnected",
            CloseReason::Replaced => "replaced",
            CloseReason::MediaTimeout => "media_timeout",
            CloseReason::MediaError => "media_error",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::ServerShutdown => "server_shutdown",
            CloseReason::WhipFailed => "whip_failed",
            CloseReason::WhepFailed => "whep_failed",
            CloseReason::Moved => "moved",
            CloseReason::Removed => "removed",
        }
    }
}

/// What a room's moderator does to a participant (the room admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moderation {
    /// Server-mute (or unmute) its microphone: the SFU forwards none of it and reports it
    /// muted; the participant cannot unmute it. It holds for the identity while the room
    /// is open, over a rejoin with an older token.
    Mute(bool),
    /// Remove it from the room ([`CloseReason::Removed`]).
    Remove,
}

/// Something the SFU tells one participant about its room or its media session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RoomEvent {
    ParticipantJoined(ParticipantInfo),
    ParticipantLeft {
        identity: ParticipantId,
        reason: CloseReason,
    },
    TrackPublished(TrackInfo),
    TrackUnpublished {
        track_id: TrackId,
        participant: ParticipantId,
    },
    TrackMuted {
        track_id: TrackId,
        participant: ParticipantId,
        muted: bool,
    },
    ActiveSpeakers(Vec<Speaker>),
    /// The SFU's SDP offer to this participant (tracks to receive, or to stop).
    Offer {
        offer_id: u64,
        sdp: String,
        tracks: Vec<MidTrack>,
    },
    /// The SFU removed this participant; nothing follows.
    Closed(CloseReason),
}

impl RoomEvent {
    /// Events that a slow participant may miss without harm (a newer one replaces them).
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, RoomEvent::ActiveSpeakers(_))
    }
}

/// How many events may wait for a participant before the SFU gives up on it
/// ([`CloseReason::SlowConsumer`]).
pub const EVENT_QUEUE: usize = 1024;

/// The events of one joined participant, in order, each with its number (1, 2, ... for
/// the participant); ends after [`RoomEvent::Closed`] or when the SFU forgets the
/// participant. The numbers let a participant's events be picked up again after a given
/// one ([`SfuControl::attach`]).
#[derive(Debug)]
pub struct RoomEvents(mpsc::Receiver<(u64, RoomEvent)>);

/// The sending end of [`RoomEvents`]: numbers what it sends, unless told the number.
#[derive(Debug, Clone)]
pub struct EventSender {
    tx: mpsc::Sender<(u64, RoomEvent)>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventSender {
    fn number(&self) -> u64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }

    /// Queues an event without waiting; gives it back if the queue is full or closed.
    pub fn try_send(&self, ev: RoomEvent) -> Result<(), RoomEvent> {
        self.try_send_numbered(self.number(), ev)
    }

    /// Queues an event numbered where it was produced (another node).
    pub fn try_send_numbered(&self, n: u64, ev: RoomEvent) -> Result<(), RoomEvent> {
        self.tx.try_send((n, ev)).map_err(|e| e.into_inner().1)
    }

    /// How many events have been numbered so far.
    pub fn numbered(&self) -> u64 {
        self.next.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the stream's receiver is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Queues an event, waiting for room; gives it back if the stream is gone.
    pub async fn send(&self, ev: RoomEvent) -> Result<(), RoomEvent> {
        let n = self.number();
        self.tx.send((n, ev)).await.map_err(|e| e.0.1)
    }
}

impl RoomEvents {
    /// A stream and the sender an implementation feeds it through.
    pub fn channel() -> (EventSender, RoomEvents) {
        let (tx, rx) = mpsc::channel(EVENT_QUEUE);
        let sender = EventSender {
            tx,
            next: std::sync::Arc::default(),
        };
        (sender, RoomEvents(rx))
    }

    pub async fn recv(&mut self) -> Option<RoomEvent> {
        self.0.recv().await.map(|(_, ev)| ev)
    }

    /// The next event with its number.
    pub async fn recv_numbered(&mut self) -> Option<(u64, RoomEvent)> {
        self.0.recv().await
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SfuError {
    #[error("{0}")]
    RoomFull(String),
    #[error("{0}")]
    VideoPublishersFull(String),
    #[error("{0}")]
    ScreenSharesFull(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("invalid SDP: {0}")]
    InvalidSdp(String),
    #[error("no such track")]
    UnknownTrack,
    #[error("no such participant: {0}")]
    UnknownParticipant(String),
    #[error("not in the room")]
    NotJoined,
    #[error("{0}")]
    BadRequest(String),
    #[error("the SFU is shutting down")]
    Unavailable,
}

impl SfuError {
    /// The protocol error code.
    pub fn code(&self) -> &'static str {
        match self {
            SfuError::RoomFull(_) => "room_full",
            SfuError::VideoPublishersFull(_) => "video_publishers_full",
            SfuError::ScreenSharesFull(_) => "screen_shares_full",
            SfuError::Forbidden(_) => "forbidden",
            SfuError::InvalidSdp(_) => "invalid_sdp",
            SfuError::UnknownTrack => "unknown_track",
            SfuError::UnknownParticipant(_) => "unknown_participant",
            SfuError::NotJoined => "not_joined",
            SfuError::BadRequest(_) => "bad_request",
            SfuError::Unavailable => "unavailable",
        }
    }
}

/// The control interface between signaling and an SFU.
#[async_trait]
pub trait SfuControl: Send + Sync + std::fmt::Debug + 'static {
    /// Admits a participant (caps checked in the room's core) and returns its handle and
    /// its event stream. Dropping the stream removes the participant as a slow consumer.
    async fn join(&self, req: JoinRequest) -> Result<(Joined, RoomEvents), SfuError>;
    /// Handles a participant's request; the reply says which of its events precede it.
    async fn request(&self, who: &ParticipantHandle, req: Request) -> Replied;
    async fn leave(&self, who: &ParticipantHandle, reason: CloseReason);
    /// Sets a room's caps (the fields given), now if it is open and whenever it opens.
    async fn set_caps(&self, room: &RoomId, caps: RoomCaps) -> Result<RoomStatus, SfuError>;
    async fn room_status(&self, room: &RoomId) -> Result<RoomStatus, SfuError>;
    /// Moderates a participant of the room, wherever in the cluster it is connected.
    async fn moderate(
        &self,
        room: &RoomId,
        identity: &ParticipantId,
        action: Moderation,
    ) -> Result<(), SfuError>;
    /// Checks that an SDP offer is one the SFU can apply, without joining anyone (WHIP
    /// refuses a bad offer before it takes a seat in the room).
    async fn check_offer(&self, sdp: &str) -> Result<(), SfuError>;
    /// Takes over a joined participant's events from whoever received them (a signaling
    /// node that died), starting after event number `after`; the earlier stream ends.
    /// Only where events outlive their receiver (a cluster); in one process there is
    /// nobody to take over from.
    async fn attach(&self, who: &ParticipantHandle, after: u64) -> Result<RoomEvents, SfuError> {
        let _ = (who, after);
        Err(SfuError::Unavailable)
    }
}

/// What a signaling node keeps of a session where every signaling node of a cluster can
/// read it, so that another node can take the session over after its node dies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub claims: crate::Claims,
    /// The participant, once joined.
    pub handle: Option<ParticipantHandle>,
}

/// Where signaling nodes keep [`SessionRecord`]s (Redis, in a cluster).
#[async_trait]
pub trait SessionRecords: Send + Sync + std::fmt::Debug + 'static {
    async fn save(&self, session: &str, record: &SessionRecord);
    async fn load(&self, session: &str) -> Option<SessionRecord>;
    async fn forget(&self, session: &str);
}

/// Rooms that span SFU nodes, as an SFU node's media plane serves them to the cluster
/// layer. A pipe carries one room's tracks from one node to another as RTP over UDP,
/// each track once; the receiving node mirrors the sending node's participants and fans
/// their tracks out to its own subscribers.
#[async_trait]
pub trait Cascade: Send + Sync + std::fmt::Debug + 'static {
    /// Where this node receives a room's pipes (the room's media socket).
    fn pipe_addr(&self, room: &RoomId) -> Option<std::net::SocketAddr>;
    /// Starts sending a room's local tracks to `to`, another node's [`Cascade::pipe_addr`]:
    /// now and as they are published, as SRTP under a fresh key. Returns the room's local
    /// participants, the events about them from here on (joins, leaves, tracks, mutes),
    /// and the key, for the receiving node.
    async fn pipe_out(
        &self,
        room: &RoomId,
        to: std::net::SocketAddr,
    ) -> Result<(Vec<ParticipantInfo>, RoomEvents, Vec<u8>), SfuError>;
    /// Mirrors the participants another node's pipe out of `from` reported, and takes
    /// SRTP under `key` from `from` for their tracks.
    async fn pipe_in(
        &self,
        room: &RoomId,
        from: std::net::SocketAddr,
        participants: Vec<ParticipantInfo>,
        key: Vec<u8>,
    ) -> Result<(), SfuError>;
    /// Applies an event of the pipe out of `from` to the mirror.
    async fn mirror(&self, room: &RoomId, from: std::net::SocketAddr, event: RoomEvent);
    /// Ends the pipes between this node and `peer` for a room, both ways: the mirrored
    /// participants leave, and nothing more is sent there.
    async fn unpipe(&self, room: &RoomId, peer: std::net::SocketAddr);
    /// Participants connected to this node in the room (neither mirrored nor pipes).
    async fn local_members(&self, room: &RoomId) -> u32;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_serialise_as_the_protocol_spells_them() {
        for r in [
            CloseReason::Left,
            CloseReason::Disconnected,
            CloseReason::Replaced,
            CloseReason::MediaTimeout,
            CloseReason::MediaError,
            CloseReason::SlowConsumer,
            CloseReason::ServerShutdown,
            CloseReason::WhipFailed,
            CloseReason::WhepFailed,
            CloseReason::Moved,
            CloseReason::Removed,
        ] {
            assert_eq!(
                serde_json::to_value(r).unwrap_or_default(),
                serde_json::json!(r.as_str())
            );
        }
    }

    #[test]
    fn caps_with_replaces_only_given_fields() {
        let c = CapsConfig::default().with(Some(RoomCaps {
            max_participants: Some(10),
            ..RoomCaps::default()
        }));
        assert_eq!(
            c,
            CapsConfig {
                max_participants: 10,
                ..CapsConfig::default()
            }
        );
    }
}
