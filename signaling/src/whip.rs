//! WHIP (RFC 9725) publishing and WHEP playback over plain HTTP.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use parlor_proto::control::{
    CloseReason, JoinRequest, ParticipantHandle, Reply, Request, RoomEvent, RoomEvents,
};
use parlor_proto::{Claims, ParticipantId, RoomId};

use crate::AppState;
use crate::error::ApiError;

/// WHIP/WHEP sessions, by their resource id.
#[derive(Debug, Default)]
pub struct HttpSessions {
    map: Mutex<HashMap<String, ParticipantHandle>>,
}

impl HttpSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ParticipantHandle>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let v = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer <room token>"))?;
    v.to_str()
        .ok()
        .and_then(|s| s.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::unauthorized("Authorization must be Bearer <room token>"))
}

/// The claims of the request's Bearer room token, which must be for `room`.
pub(crate) fn room_claims(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
) -> Result<(Claims, RoomId), ApiError> {
    let claims = state.config.token_key.verify(bearer(headers)?)?;
    let room = RoomId::parse(room)
        .ok_or_else(|| ApiError::new(StatusCode::BAD_REQUEST, "invalid_room", "bad room name"))?;
    if claims.room != room {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_room",
            format!("the token is for room {}, not {room}", claims.room),
        ));
    }
    Ok((claims, room))
}

async fn check_request(
    state: &AppState,
    headers: &HeaderMap,
    room: &str,
    body: &Bytes,
) -> Result<(Claims, RoomId, String), ApiError> {
    let (claims, room) = room_claims(state, headers, room)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !ct.starts_with("application/sdp") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Content-Type must be application/sdp",
        ));
    }
    let sdp = std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "invalid_sdp", "SDP is not UTF-8"))?
        .to_owned();
    state.sfu.check_offer(&sdp).await?;
    Ok((claims, room, sdp))
}

/// Drains a WHIP/WHEP participant's events: there is no socket to deliver them to, and the
/// session ends when the SFU drops the participant.
fn drain(state: AppState, resource: String, mut rx: RoomEvents) {
    tokio::spawn(async move {
        while let Some(ev) = rx.recv().await {
            if let RoomEvent::Closed(_) = ev {
                state.http_sessions.lock().remove(&resource);
                break;
            }
        }
    });
}

fn created(location: String, sdp: String) -> Response {
    let mut r = (StatusCode::CREATED, sdp).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/sdp"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    r
}

pub async fn whip_post(
    State(state): State<AppState>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (claims, room, sdp) = check_request(&state, &headers, &room, &body).await?;
    if claims.grants.publish.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token grants no publishing",
        ));
    }
    let join = JoinRequest {
        room: room.clone(),
        identity: claims.sub.clone(),
        name: claims.display_name().to_owned(),
        grants: claims.grants.clone(),
        caps: claims.caps,
        hidden: false,
        auto_subscribe: false,
    };
    let offer = Request::Offer {
        sdp,
        tracks: Vec::new(),
        infer_sources: true,
    };
    open_session(&state, "whip", join, offer).await
}

/// Joins, applies the offer, and registers the session under a fresh resource id; a
/// failed offer leaves the room again.
async fn open_session(
    state: &AppState,
    kind: &str,
    join: JoinRequest,
    offer: Request,
) -> Result<Response, ApiError> {
    let room = join.room.clone();
    let (joined, rx) = state.sfu.join(join).await?;
    let handle = joined.handle;
    let sdp = match state.sfu.request(&handle, offer).await.result {
        Ok(Reply::Answer { sdp, .. }) => sdp,
        Ok(Reply::Ok) => String::new(),
        Err(e) => {
            let reason = if kind == "whep" {
                CloseReason::WhepFailed
            } else {
                CloseReason::WhipFailed
            };
            state.sfu.leave(&handle, reason).await;
            return Err(e.into());
        }
    };
    let resource = crate::random_id();
    state.http_sessions.lock().insert(resource.clone(), handle);
    drain(state.clone(), resource.clone(), rx);
    Ok(created(
        format!("/{kind}/rooms/{room}/sessions/{resource}"),
        sdp,
    ))
}

pub async fn whep_post(
    State(state): State<AppState>,
    Path((room, target)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (claims, room, sdp) = check_request(&state, &headers, &room, &body).await?;
    if !claims.grants.subscribe {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token does not grant subscribing",
        ));
    }
    let target = ParticipantId::parse(&target).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_participant",
            "no such participant",
        )
    })?;
    let suffix = &crate::random_id()[..8];
    let viewer =
        ParticipantId::parse(&format!("{}.whep-{suffix}", claims.sub)).unwrap_or_else(|| {
            ParticipantId::parse(&format!("whep-{suffix}")).unwrap_or(claims.sub.clone())
        });
    let mut grants = claims.grants.clone();
    grants.publish.clear();
    let join = JoinRequest {
        room,
        identity: viewer,
        name: claims.display_name().to_owned(),
        grants,
        caps: None,
        hidden: true,
        auto_subscribe: false,
    };
    open_session(&state, "whep", join, Request::WhepOffer { sdp, target }).await
}

/// DELETE on a WHIP or WHEP Location ends that session.
pub async fn delete_session(
    State(state): State<AppState>,
    Path((_room, resource)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let handle = state.http_sessions.lock().remove(&resource);
    match handle {
        Some(h) => {
            state.sfu.leave(&h, CloseReason::Left).await;
            Ok(StatusCode::OK)
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_session",
            "no such WHIP/WHEP session",
        )),
    }
}

/// Trickle ICE is not needed: the SFU is ICE-lite and its candidates are in the answer.
pub async fn patch_session() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "DELETE")],
        "trickle ICE is not supported; all candidates are in the answer",
    )
        .into_response()
}
