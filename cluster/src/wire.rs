//! What crosses NATS between signaling and SFU nodes: the calls of the control interface,
//! their answers and the participants' room events, as JSON.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use parlor_proto::signal::ParticipantInfo;

use parlor_proto::control::{
    CloseReason, JoinRequest, Joined, Moderation, ParticipantHandle, Replied, Reply, Request,
    RoomEvent, RoomStatus, SfuError,
};
use parlor_proto::{ParticipantId, RoomCaps, RoomId};

/// The subject an SFU node of `cluster` answers control calls on.
pub fn control_subject(cluster: &str, node: &str) -> String {
    format!("{cluster}.sfu.{node}.control")
}

/// The subject a signaling node of `cluster` receives its participants' room events on.
pub fn events_subject(cluster: &str, node: &str) -> String {
    format!("{cluster}.signal.{node}.events")
}

/// The subject an SFU node of `cluster` receives the events of other nodes' pipes on.
pub fn pipe_subject(cluster: &str, node: &str) -> String {
    format!("{cluster}.sfu.{node}.pipe")
}

/// An event of a pipe out of `from`, for the receiving node's mirror of the room.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PipeEvent {
    pub room: RoomId,
    pub from: SocketAddr,
    pub event: RoomEvent,
}

/// A call of the control interface.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub enum Call {
    /// Join; the participant's events go to `events_to`, each marked with `route`.
    Join {
        req: JoinRequest,
        events_to: String,
        route: u64,
    },
    Request {
        who: ParticipantHandle,
        req: Request,
    },
    Leave {
        who: ParticipantHandle,
        reason: CloseReason,
    },
    SetCaps {
        room: RoomId,
        caps: RoomCaps,
    },
    RoomStatus {
        room: RoomId,
    },
    CheckOffer {
        sdp: String,
    },
    /// A moderator's action on a participant of the room, if connected to this node.
    Moderate {
        room: RoomId,
        identity: ParticipantId,
        action: Moderation,
    },
    /// Send a participant's events to `events_to` from now on, marked with `route`,
    /// starting with those after number `after` (another signaling node took its session
    /// over).
    Attach {
        who: ParticipantHandle,
        events_to: String,
        route: u64,
        after: u64,
    },
    /// Between SFU nodes: send this room's local tracks to `to` (the caller's pipe
    /// address), and its events to `from_node`'s pipe subject.
    Pipe {
        room: RoomId,
        to: SocketAddr,
        from_node: String,
    },
    /// Between SFU nodes: end the pipes with `peer` for this room, both ways.
    Unpipe {
        room: RoomId,
        peer: SocketAddr,
    },
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Joined(Joined),
    /// A request's reply from a node without event ordering (read, never sent).
    Reply(Reply),
    /// A request's reply or refusal, with the events that precede it.
    Replied(Replied),
    Status(RoomStatus),
    /// A pipe out: the room's local participants, the address its SRTP comes from, and
    /// the pipe's SRTP key (hex; NATS should run over TLS between regions).
    Piped {
        participants: Vec<ParticipantInfo>,
        from: SocketAddr,
        key: String,
    },
    Done,
    Error(SfuError),
}

/// One room event for one participant, on its signaling node's event subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Routed {
    pub route: u64,
    /// The event's number among the participant's events.
    #[serde(default)]
    pub n: u64,
    pub event: RoomEvent,
}

/// JSON bytes of a value that always serialises.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
