//! Wire types shared by Parlor's services: typed identifiers, room-token claims and the
//! signaling protocol spoken over `/ws`.
//!
//! Everything here is plain data plus (de)serialization; no I/O happens in this crate.

pub mod control;
pub mod ids;
pub mod signal;
pub mod token;

pub use ids::{ParticipantId, RoomId, TrackId};
pub use token::{Claims, Grants, PublishSource, RoomCaps, RoomNamespace, TokenError, TokenKey};

/// Media kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Audio,
    Video,
}

/// What a track carries, as labelled by its publisher and shown to everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Microphone,
    Camera,
    Screen,
    ScreenAudio,
}

impl Source {
    /// The media kind a track of this source must have.
    pub fn kind(self) -> MediaKind {
        match self {
            Source::Microphone | Source::ScreenAudio => MediaKind::Audio,
            Source::Camera | Source::Screen => MediaKind::Video,
        }
    }

    /// The publish grant that covers this source.
    pub fn grant(self) -> PublishSource {
        match self {
            Source::Microphone => PublishSource::Audio,
            Source::Camera => PublishSource::Video,
            Source::Screen | Source::ScreenAudio => PublishSource::Screen,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Microphone => "microphone",
            Source::Camera => "camera",
            Source::Screen => "screen",
            Source::ScreenAudio => "screen_audio",
        }
    }
}

/// Simulcast quality a subscriber asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Low,
    Medium,
    High,
}

impl Quality {
    /// Index of the layer, lowest first.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn from_index(i: usize) -> Quality {
        match i {
            0 => Quality::Low,
            1 => Quality::Medium,
            _ => Quality::High,
        }
    }
}
