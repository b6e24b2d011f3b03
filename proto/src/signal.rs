//! The signaling protocol spoken over `/ws`, version [`PROTOCOL_VERSION`].
//!
//! Every frame is a JSON object with an `op`. Client frames may carry an `id`; the server's
//! reply to that frame carries the same `id`. Every server frame carries a `seq`, which the
//! client echoes when it resumes. `docs/protocol.md` documents each message.

use serde::{Deserialize, Serialize};

use crate::token::Grants;
use crate::{MediaKind, ParticipantId, Quality, RoomId, Source, TrackId};

pub const PROTOCOL_VERSION: u32 = 1;

/// Largest client frame the server reads, in bytes. SDP offers with many m-lines fit easily.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;

/// A frame from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    #[serde(flatten)]
    pub msg: ClientMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "d", rename_all = "snake_case")]
pub enum ClientMessage {
    Identify(Identify),
    Resume(Resume),
    Heartbeat(Heartbeat),
    Join(Join),
    Leave(Empty),
    Offer(ClientOffer),
    Answer(ClientAnswer),
    Unpublish(TrackRef),
    Mute(Mute),
    Subscribe(TrackRef),
    Unsubscribe(TrackRef),
    Pause(Pause),
    Quality(SetQuality),
    IceRestart(Empty),
}

impl ClientMessage {
    /// Every client `op`, as it appears on the wire.
    pub const OPS: &'static [&'static str] = &[
        "identify",
        "resume",
        "heartbeat",
        "join",
        "leave",
        "offer",
        "answer",
        "unpublish",
        "mute",
        "subscribe",
        "unsubscribe",
        "pause",
        "quality",
        "ice_restart",
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identify {
    pub token: String,
    #[serde(default = "v1")]
    pub protocol: u32,
}

fn v1() -> u32 {
    PROTOCOL_VERSION
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    pub session_id: String,
    /// The last `seq` the client received.
    pub seq: u64,
    /// The last `ev` the client received, if any: lets another signaling node of a
    /// cluster take the session over.
    #[serde(default)]
    pub event: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The last `seq` the client received; lets the server trim its replay buffer.
    #[serde(default)]
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Join {
    /// Tracks to receive at join; `true` (the default) means every track in the room.
    #[serde(default = "yes")]
    pub auto_subscribe: bool,
}

fn yes() -> bool {
    true
}

/// A track the client publishes in this offer: the m-line's `mid` and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishTrack {
    pub mid: String,
    pub source: Source,
    /// Simulcast `rid`s, lowest quality first. Empty without simulcast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    #[serde(default)]
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientOffer {
    pub sdp: String,
    /// Labels for the m-lines this client sends on. An m-line that sends media but has no
    /// label here is refused.
    #[serde(default)]
    pub tracks: Vec<PublishTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientAnswer {
    /// The `offer_id` of the server offer this answers.
    pub offer_id: u64,
    pub sdp: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackRef {
    pub track_id: TrackId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mute {
    pub track_id: TrackId,
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub track_id: TrackId,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetQuality {
    pub track_id: TrackId,
    pub quality: Quality,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerFrame {
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// For a room event: its number among the participant's events. A client resuming on
    /// another signaling node of a cluster says the last it saw.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ev: Option<u64>,
    #[serde(flatten)]
    pub msg: ServerMessage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "d", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello(Hello),
    Ready(Ready),
    Resumed(Resumed),
    HeartbeatAck(Empty),
    Joined(Joined),
    Left(Empty),
    Ok(Empty),
    Answer(ServerAnswer),
    Offer(ServerOffer),
    ParticipantJoined(ParticipantJoined),
    ParticipantLeft(ParticipantLeft),
    TrackPublished(TrackPublished),
    TrackUnpublished(TrackUnpublished),
    TrackMuted(TrackMuted),
    ActiveSpeakers(ActiveSpeakers),
    Error(ErrorBody),
    /// The server is going away; reconnect elsewhere or later.
    Shutdown(Shutdown),
}

impl ServerMessage {
    /// Ephemeral frames are not kept for replay on resume.
    pub fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            ServerMessage::Hello(_)
                | ServerMessage::HeartbeatAck(_)
                | ServerMessage::ActiveSpeakers(_)
                | ServerMessage::Resumed(_)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol: u32,
    pub heartbeat_interval_ms: u64,
    /// How long a dropped session may still be resumed.
    pub resume_window_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub session_id: String,
    pub protocol: u32,
    pub room: RoomId,
    pub identity: ParticipantId,
    pub name: String,
    pub grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub replayed: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    pub track_id: TrackId,
    pub participant: ParticipantId,
    pub kind: MediaKind,
    pub source: Source,
    pub muted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    pub identity: ParticipantId,
    pub name: String,
    pub tracks: Vec<TrackInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    pub room: RoomId,
    #[serde(rename = "self")]
    pub me: ParticipantInfo,
    /// Everyone else already in the room.
    pub participants: Vec<ParticipantInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAnswer {
    pub sdp: String,
    /// Track ids the server assigned to the published m-lines.
    #[serde(default)]
    pub tracks: Vec<MidTrack>,
}

/// Which m-line carries which track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MidTrack {
    pub mid: String,
    pub track_id: TrackId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerOffer {
    pub offer_id: u64,
    pub sdp: String,
    /// For each m-line the server sends on: the track it carries.
    pub tracks: Vec<MidTrack>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantJoined {
    pub participant: ParticipantInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantLeft {
    pub identity: ParticipantId,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackPublished {
    pub track: TrackInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackUnpublished {
    pub track_id: TrackId,
    pub participant: ParticipantId,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackMuted {
    pub track_id: TrackId,
    pub participant: ParticipantId,
    pub muted: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Speaker {
    pub identity: ParticipantId,
    /// 0.0 (silence) to 1.0 (loudest), from the RFC 6464 audio level.
    pub level: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveSpeakers {
    /// Loudest first. Empty when nobody speaks.
    pub speakers: Vec<Speaker>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"op":"identify","d":{"token":"t"}}"#).unwrap();
        assert_eq!(f.id, None);
        assert!(
            matches!(f.msg, ClientMessage::Identify(Identify { ref token, protocol: 1 }) if token == "t")
        );

        let f: ClientFrame = serde_json::from_str(r#"{"op":"leave","id":7,"d":{}}"#).unwrap();
        assert_eq!(f.id, Some(7));
        assert_eq!(f.msg, ClientMessage::Leave(Empty {}));

        let f: ClientFrame = serde_json::from_str(
            r#"{"op":"offer","id":2,"d":{"sdp":"v=0","tracks":[{"mid":"0","source":"screen_audio"}]}}"#,
        )
        .unwrap();
        let ClientMessage::Offer(o) = f.msg else {
            panic!("not an offer")
        };
        assert_eq!(o.tracks[0].source, Source::ScreenAudio);
    }

    #[test]
    fn every_listed_op_parses() {
        for op in ClientMessage::OPS {
            let v = serde_json::json!({"op": op, "d": {}});
            // Shapes differ; what matters is that the op is known, not that `d` fits.
            let err = serde_json::from_value::<ClientFrame>(v)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!err.contains("unknown variant"), "{op}: {err}");
        }
    }

    #[test]
    fn unknown_op_is_an_error() {
        assert!(serde_json::from_str::<ClientFrame>(r#"{"op":"fly","d":{}}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"not json"#).is_err());
    }

    #[test]
    fn server_frames_carry_op_and_seq() {
        let f = ServerFrame {
            seq: 3,
            id: Some(9),
            ev: None,
            msg: ServerMessage::Error(ErrorBody {
                code: "room_full".into(),
                message: "full".into(),
            }),
        };
        let v: serde_json::Value = serde_json::to_value(&f).unwrap();
        assert_eq!(v["op"], "error");
        assert_eq!(v["seq"], 3);
        assert_eq!(v["id"], 9);
        assert_eq!(v["d"]["code"], "room_full");
        let back: ServerFrame = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
