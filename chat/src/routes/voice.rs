//! Joining a voice channel: `POST /api/v1/channels/{id}/voice/join` turns the member's
//! permissions in the channel into a room token for the signaling service, whose grants
//! match them and whose caps carry the channel's participant cap.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use parlor_proto::{
    Claims, Grants, ParticipantId, PublishSource, RoomCaps, RoomId, RoomNamespace, TokenKey,
};
use serde::Serialize;

use crate::ChatState;
use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::perms::Perms;
use crate::model::{ChannelId, UserId};
use crate::routes::api::Authed;
use crate::routes::guilds::{in_channel, parse_id, require};

/// How long a voice token is good for: long enough to connect, short enough to expire
/// soon after someone loses access.
pub const VOICE_TOKEN_TTL: Duration = Duration::from_secs(10 * 60);

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/channels/{channel}/voice/join", post(join))
        .with_state(state)
}

/// The room a voice channel maps to, in the chat namespace: only tokens chat mints (with
/// `ns: "chat"`) can name it, so a guest token never reaches it.
pub fn room_of(channel_id: ChannelId) -> String {
    format!("{}voice-{channel_id}", RoomNamespace::Chat.prefix())
}

/// The participant identity of a chat user.
pub fn identity_of(user_id: UserId) -> String {
    format!("user-{user_id}")
}

#[derive(Debug, Serialize)]
struct VoiceJoin {
    /// The room token for signaling's `identify`.
    token: String,
    /// The signaling WebSocket to use it on.
    url: String,
    room: String,
    identity: String,
    grants: Grants,
    /// The channel's participant cap, enforced by the SFU when the room is joined.
    user_limit: Option<i64>,
    expires_in: u64,
}

/// The room grants a member's channel permissions amount to.
pub fn grants_for(p: Perms) -> Grants {
    let mut publish = Vec::new();
    if p.contains(Perms::SPEAK) {
        publish.push(PublishSource::Audio);
    }
    if p.contains(Perms::VIDEO) {
        publish.push(PublishSource::Video);
    }
    if p.contains(Perms::SCREEN_SHARE) {
        publish.push(PublishSource::Screen);
    }
    Grants {
        publish,
        subscribe: true,
        admin: false,
        muted: false,
    }
}

async fn join(
    State(state): State<ChatState>,
    Authed(user): Authed,
    headers: HeaderMap,
    Path(channel): Path<String>,
) -> Result<Json<VoiceJoin>, ChatError> {
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    if c.kind != ChannelKind::Voice {
        return Err(ChatError::bad_request(
            "not_a_voice_channel",
            "only voice channels can be joined",
        ));
    }
    require(p, Perms::CONNECT)?;
    // The SFU enforces the cap too; this says so before the client connects.
    crate::service::presence::check_room(&state, c.guild_id, c.id, c.user_limit, user).await?;
    let Some(secret) = &state.config.room_key else {
        return Err(ChatError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "voice_unavailable",
            "this chat server has no room-token key configured",
        ));
    };
    let u =
        state.store.user(user).await?.ok_or_else(|| {
            ChatError::unauthorized("invalid_token", "the account no longer exists")
        })?;
    let room = room_of(c.id);
    let identity = identity_of(user);
    let mut claims = Claims::new(
        RoomId::parse(&room).ok_or_else(|| ChatError::Internal(format!("room id {room}")))?,
        ParticipantId::parse(&identity)
            .ok_or_else(|| ChatError::Internal(format!("identity {identity}")))?,
        VOICE_TOKEN_TTL,
    );
    claims.name = Some(u.display_name.clone());
    claims.ns = Some(RoomNamespace::Chat);
    claims.grants = grants_for(p);
    // A moderator's server-mute: the SFU forwards none of the microphone.
    claims.grants.muted = !c.is_dm()
        && state
            .store
            .member(c.guild_id, user)
            .await?
            .is_some_and(|m| m.server_mute);
    if let Some(limit) = c.user_limit {
        // Caps in a room token apply to the room whoever holds it; members never get the
        // admin grant, which would open the room admin API to them.
        claims.caps = Some(RoomCaps {
            max_participants: Some(limit as u32),
            ..RoomCaps::default()
        });
    }
    let token = TokenKey::new(secret).sign(&claims);
    let url = match &state.config.signaling_url {
        Some(u) => u.clone(),
        None => {
            // Same server: the signaling WebSocket beside this API.
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1:8080");
            format!("ws://{host}/ws")
        }
    };
    Ok(Json(VoiceJoin {
        grants: claims.grants.clone(),
        token,
        url,
        room,
        identity,
        user_limit: c.user_limit,
        expires_in: VOICE_TOKEN_TTL.as_secs(),
    }))
}
