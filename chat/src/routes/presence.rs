//! Presence and voice state over REST, for a client that needs them afresh (a large
//! guild, or after a resume in which presence updates were shed): the members of a
//! guild who are not offline, and who is in its voice channels.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use crate::ChatState;
use crate::error::ChatError;
use crate::model::GuildId;
use crate::model::presence::{PresenceView, VoiceStateView};
use crate::routes::api::Authed;
use crate::routes::guilds::{guild_for, in_guild, parse_id};
use crate::service::presence;

/// The most members one answer covers.
const MAX_MEMBERS: i64 = 10_000;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/guilds/{guild}/presences", get(presences))
        .route("/api/v1/guilds/{guild}/voice-states", get(voice_states))
        .with_state(state)
}

async fn presences(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<PresenceView>>, ChatError> {
    let guild: GuildId = parse_id(&guild, "unknown_guild")?;
    in_guild(&state, guild, user).await?;
    let members = state.store.member_ids(guild, MAX_MEMBERS).await?;
    Ok(Json(state.presence.views(&members).await))
}

async fn voice_states(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<VoiceStateView>>, ChatError> {
    let guild: GuildId = parse_id(&guild, "unknown_guild")?;
    let (_, visible) = guild_for(&state, guild, user).await?;
    Ok(Json(presence::voice_views(&state, guild, &visible).await))
}
