//! The room admin API: read and set a room's caps.
//!
//! `GET /admin/rooms/{room}` and `PUT /admin/rooms/{room}/caps` take a room token with the
//! `admin` grant for that room (`parlor token --admin`), as do the moderation routes:
//! `PATCH /admin/rooms/{room}/participants/{identity}` (`{"muted": true}` server-mutes)
//! and `DELETE` of the same path (removes the participant).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use parlor_proto::control::{Moderation, RoomStatus};
use parlor_proto::{ParticipantId, RoomCaps, RoomId};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;

#[derive(Debug, Serialize)]
pub struct StatusBody {
    room: RoomId,
    open: bool,
    participants: u32,
    video_publishers: u32,
    screen_shares: u32,
    caps: RoomCaps,
}

impl StatusBody {
    fn new(room: RoomId, s: RoomStatus) -> StatusBody {
        StatusBody {
            room,
            open: s.open,
            participants: s.participants,
            video_publishers: s.video_publishers,
            screen_shares: s.screen_shares,
            caps: RoomCaps {
                max_participants: Some(s.caps.max_participants),
                max_video_publishers: Some(s.caps.max_video_publishers),
                max_screen_shares: Some(s.caps.max_screen_shares),
            },
        }
    }
}

fn authorize(state: &AppState, headers: &HeaderMap, room: &str) -> Result<RoomId, ApiError> {
    let (claims, room) = crate::whip::room_claims(state, headers, room)?;
    if !claims.grants.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token does not grant room admin",
        ));
    }
    Ok(room)
}

pub async fn get_room(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
) -> Result<Json<StatusBody>, ApiError> {
    let room = authorize(&state, &headers, &room)?;
    let status = state.sfu.room_status(&room).await?;
    Ok(Json(StatusBody::new(room, status)))
}

pub async fn put_caps(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Result<Json<RoomCaps>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<StatusBody>, ApiError> {
    let room = authorize(&state, &headers, &room)?;
    let Json(caps) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()))?;
    let status = state.sfu.set_caps(&room, caps).await?;
    Ok(Json(StatusBody::new(room, status)))
}

/// `PATCH /admin/rooms/{room}/participants/{identity}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantPatch {
    /// Server-mute (true) or lift the mute (false).
    muted: bool,
}

fn participant(identity: &str) -> Result<ParticipantId, ApiError> {
    ParticipantId::parse(identity).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_identity",
            "an identity is 1-128 letters, digits and -_.:@",
        )
    })
}

pub async fn patch_participant(
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Json<ParticipantPatch>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let room = authorize(&state, &headers, &room)?;
    let identity = participant(&identity)?;
    let Json(patch) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()))?;
    state
        .sfu
        .moderate(&room, &identity, Moderation::Mute(patch.muted))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_participant(
    State(state): State<AppState>,
    Path((room, identity)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let room = authorize(&state, &headers, &room)?;
    let identity = participant(&identity)?;
    state
        .sfu
        .moderate(&room, &identity, Moderation::Remove)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
