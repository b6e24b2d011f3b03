//! The one interface signaling uses to drive an SFU: join a participant, relay its SDP and
//! stream controls, and receive its room events. [`crate::Sfu`] implements it in-process;
//! a networked implementation for remote SFU nodes implements the same trait.

use async_trait::async_trait;
use tokio::sync::mpsc;

use parlor_proto::signal::{MidTrack, ParticipantInfo, PublishTrack, ServerMessage};
use parlor_proto::{Grants, ParticipantId, Quality, RoomCaps, RoomId, TrackId};

use crate::core::PeerKey;

/// Where a joined participant lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParticipantHandle {
    pub room: RoomId,
    pub identity: ParticipantId,
    pub worker: usize,
    pub key: PeerKey,
}

#[derive(Debug)]
pub struct JoinRequest {
    pub room: RoomId,
    pub identity: ParticipantId,
    pub name: String,
    pub grants: Grants,
    /// Caps to apply if this join creates the room.
    pub caps: Option<RoomCaps>,
    /// Hidden participants (WHEP viewers) are not announced and subscribe to nothing
    /// by themselves.
    pub hidden: bool,
    /// Subscribe to every track in the room, now and as they are published.
    pub auto_subscribe: bool,
    /// Where this participant's events go. If it fills up, the participant is dropped.
    pub events: mpsc::Sender<SfuEvent>,
}

#[derive(Debug, Clone)]
pub struct Joined {
    pub handle: ParticipantHandle,
    pub me: ParticipantInfo,
    pub participants: Vec<ParticipantInfo>,
}

/// What a participant asks of the SFU.
#[derive(Debug, Clone)]
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

/// A room's caps in force and how full it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomStatus {
    pub caps: crate::core::CapsConfig,
    /// Whether anyone is in the room now.
    pub open: bool,
    pub participants: u32,
    pub video_publishers: u32,
    pub screen_shares: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Answer { sdp: String, tracks: Vec<MidTrack> },
    Ok,
}

/// Something the SFU tells one participant.
#[derive(Debug, Clone)]
pub enum SfuEvent {
    /// A protocol message to deliver as is (offers and room events).
    Signal(ServerMessage),
    /// The SFU dropped the participant (media timed out, replaced by a newer session,
    /// server shutting down).
    Closed { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    async fn join(&self, req: JoinRequest) -> Result<Joined, SfuError>;
    async fn request(&self, who: &ParticipantHandle, req: Request) -> Result<Reply, SfuError>;
    async fn leave(&self, who: &ParticipantHandle, reason: &str);
    /// Sets a room's caps (the fields given), now if it is open and whenever it opens.
    async fn set_caps(&self, room: &RoomId, caps: RoomCaps) -> Result<RoomStatus, SfuError>;
    async fn room_status(&self, room: &RoomId) -> Result<RoomStatus, SfuError>;
}
