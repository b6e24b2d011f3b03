//! What crosses NATS between signaling and SFU nodes: the calls of the control interface,
//! their answers and the participants' room events, as JSON.

use serde::{Deserialize, Serialize};

use parlor_proto::control::{
    CloseReason, JoinRequest, Joined, ParticipantHandle, Reply, Request, RoomEvent, RoomStatus,
    SfuError,
};
use parlor_proto::{RoomCaps, RoomId};

/// The subject an SFU node of `cluster` answers control calls on.
pub fn control_subject(cluster: &str, node: &str) -> String {
    format!("{cluster}.sfu.{node}.control")
}

/// The subject a signaling node of `cluster` receives its participants' room events on.
pub fn events_subject(cluster: &str, node: &str) -> String {
    format!("{cluster}.signal.{node}.events")
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
}

/// The answer to a [`Call`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Joined(Joined),
    Reply(Reply),
    Status(RoomStatus),
    Done,
    Error(SfuError),
}

/// One room event for one participant, on its signaling node's event subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Routed {
    pub route: u64,
    pub event: RoomEvent,
}

/// JSON bytes of a value that always serialises.
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}
