//! The sans-IO forwarding core.
//!
//! It holds every forwarding decision: who receives which track, which simulcast layer each
//! subscriber gets, when to ask a publisher for a keyframe, how sequence numbers and
//! timestamps are rewritten, and the room caps. It never reads the clock or touches a
//! socket: callers pass `now` in and act on the [`Action`]s it returns, so it is tested
//! with virtual time.

pub mod codec;
pub mod munger;
mod room;
mod speakers;

pub use room::{
    Action, CapsConfig, DISCONNECT_GRACE, DownState, Forward, JoinError, KEYFRAME_REQUEST_INTERVAL,
    LAYER_TIMEOUT, MAX_LAYERS, Member, Occupancy, Origin, PacketIn, PeerKey, PublishError, Room,
    SPEAKERS_INTERVAL, SubscribeError, Track, TrackKey, transport_expired,
};
