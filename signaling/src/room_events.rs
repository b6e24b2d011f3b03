//! Room events from the SFU to a participant's session: each one translated into the
//! client protocol's message, in the order the SFU numbered them.

use std::sync::Arc;

use parlor_proto::control::{CloseReason, RoomEvent, RoomEvents};
use parlor_proto::signal::{
    ActiveSpeakers, ErrorBody, ParticipantJoined, ParticipantLeft, ServerMessage, ServerOffer,
    Shutdown, TrackMuted, TrackPublished, TrackUnpublished,
};

use crate::session::Session;

/// Moves SFU events for one participant into its session, as client messages.
pub(crate) async fn pump(session: Arc<Session>, mut events: RoomEvents) {
    while let Some((n, ev)) = events.recv_numbered().await {
        let closed = matches!(ev, RoomEvent::Closed(_));
        if closed {
            session.set_handle(None);
        }
        session.event(client_message(ev), (n > 0).then_some(n));
        if closed {
            break;
        }
    }
}

/// The client protocol's message for a room event.
pub(crate) fn client_message(ev: RoomEvent) -> ServerMessage {
    match ev {
        RoomEvent::ParticipantJoined(participant) => {
            ServerMessage::ParticipantJoined(ParticipantJoined { participant })
        }
        RoomEvent::ParticipantLeft { identity, reason } => {
            ServerMessage::ParticipantLeft(ParticipantLeft {
                identity,
                reason: reason.as_str().into(),
            })
        }
        RoomEvent::TrackPublished(track) => ServerMessage::TrackPublished(TrackPublished { track }),
        RoomEvent::TrackUnpublished {
            track_id,
            participant,
        } => ServerMessage::TrackUnpublished(TrackUnpublished {
            track_id,
            participant,
        }),
        RoomEvent::TrackMuted {
            track_id,
            participant,
            muted,
        } => ServerMessage::TrackMuted(TrackMuted {
            track_id,
            participant,
            muted,
        }),
        RoomEvent::ActiveSpeakers(speakers) => {
            ServerMessage::ActiveSpeakers(ActiveSpeakers { speakers })
        }
        RoomEvent::Offer {
            offer_id,
            sdp,
            tracks,
        } => ServerMessage::Offer(ServerOffer {
            offer_id,
            sdp,
            tracks,
        }),
        RoomEvent::Closed(CloseReason::ServerShutdown) => ServerMessage::Shutdown(Shutdown {
            reason: CloseReason::ServerShutdown.as_str().into(),
        }),
        RoomEvent::Closed(reason) => ServerMessage::Error(ErrorBody {
            message: format!("removed from the room: {}", reason.as_str()),
            code: reason.as_str().into(),
        }),
    }
}
