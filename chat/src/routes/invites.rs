//! Invites with an expiry and a use limit: create, list, preview, accept, revoke.

use crate::error::ChatError;
use crate::model::UserId;
use crate::model::perms::Perms;
use crate::routes::api::{Authed, MaybeBody};
use crate::routes::guilds::{guild_for, in_guild, parse_id, require};
use crate::service::dispatch::{Dispatch, GuildMember};
use crate::service::hub::Audience;
use crate::service::views::{GuildView, MemberView};
use crate::store::members::{Invite, InviteRefusal};
use crate::{ChatState, now_ms, service::auth};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/guilds/{guild}/invites",
            get(list_invites).post(create_invite),
        )
        .route(
            "/api/v1/invites/{code}",
            get(preview_invite)
                .post(accept_invite)
                .delete(revoke_invite),
        )
        .with_state(state)
}

/// The lifetimes an invite may have, in seconds; 0 is forever.
pub const INVITE_MAX_AGES: [i64; 8] = [0, 1800, 3600, 21_600, 43_200, 86_400, 604_800, 2_592_000];

#[derive(Debug, Deserialize, Default)]
struct NewInvite {
    /// Seconds; one of [`INVITE_MAX_AGES`]. Default 7 days.
    #[serde(default)]
    max_age: Option<i64>,
    /// 0 (unlimited) to 100.
    #[serde(default)]
    max_uses: Option<i64>,
}

#[derive(Debug, Serialize)]
struct InviteView {
    code: String,
    guild_id: String,
    creator_id: String,
    uses: i64,
    max_uses: i64,
    expires_at: Option<i64>,
    created_at: i64,
}

impl From<&Invite> for InviteView {
    fn from(i: &Invite) -> InviteView {
        InviteView {
            code: i.code.clone(),
            guild_id: i.guild_id.to_string(),
            creator_id: i.creator_id.to_string(),
            uses: i.uses,
            max_uses: i.max_uses.unwrap_or(0),
            expires_at: i.expires_at,
            created_at: i.created_at,
        }
    }
}

async fn create_invite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    MaybeBody(body): MaybeBody<NewInvite>,
) -> Result<(StatusCode, Json<InviteView>), ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::CREATE_INVITES)?;
    let req = body.unwrap_or_default();
    let max_age = req.max_age.unwrap_or(604_800);
    if !INVITE_MAX_AGES.contains(&max_age) {
        return Err(ChatError::bad_request(
            "invalid_max_age",
            "max_age is 0 (never), 1800, 3600, 21600, 43200, 86400, 604800 or 2592000 seconds",
        ));
    }
    let max_uses = req.max_uses.unwrap_or(0);
    if !(0..=100).contains(&max_uses) {
        return Err(ChatError::bad_request(
            "invalid_max_uses",
            "max_uses is 0 (unlimited) to 100",
        ));
    }
    let now = now_ms();
    let invite = Invite {
        // 128 random bits: not guessable.
        code: auth::random_token().chars().take(22).collect(),
        guild_id: id,
        creator_id: user,
        uses: 0,
        max_uses: (max_uses > 0).then_some(max_uses),
        expires_at: (max_age > 0).then_some(now + max_age * 1000),
        created_at: now,
    };
    state.store.create_invite(&invite).await?;
    Ok((StatusCode::CREATED, Json(InviteView::from(&invite))))
}

async fn list_invites(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<InviteView>>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::MANAGE_GUILD)?;
    let invites = state.store.invites(id).await?;
    Ok(Json(invites.iter().map(InviteView::from).collect()))
}

fn unknown_invite() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_invite", "no such invite")
}

/// Looks up an invite code: rate-limited per user, so codes cannot be guessed by brute
/// force even though they are already 128 random bits.
fn limit_lookup(state: &ChatState, user: UserId, code: &str) -> Result<(), ChatError> {
    state
        .invite_limit
        .check(&user)
        .map_err(|retry_after| ChatError::RateLimited { retry_after })?;
    if code.is_empty() || code.len() > 64 {
        return Err(unknown_invite());
    }
    Ok(())
}

async fn preview_invite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(code): Path<String>,
) -> Result<Json<serde_json::Value>, ChatError> {
    limit_lookup(&state, user, &code)?;
    let i = state
        .store
        .invite(&code)
        .await?
        .ok_or_else(unknown_invite)?;
    let g = state
        .store
        .guild(i.guild_id)
        .await?
        .ok_or_else(unknown_invite)?;
    let mut v = serde_json::to_value(InviteView::from(&i)).unwrap_or_default();
    v["guild"] = json!({"id": g.id.to_string(), "name": g.name});
    Ok(Json(v))
}

async fn accept_invite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(code): Path<String>,
) -> Result<Json<GuildView>, ChatError> {
    limit_lookup(&state, user, &code)?;
    let invite = state
        .store
        .invite(&code)
        .await?
        .ok_or_else(unknown_invite)?;
    let guild_id = invite.guild_id;
    if state.store.membership(guild_id, user).await?.is_some() {
        // Already in: no use is counted.
        return Ok(Json(guild_for(&state, guild_id, user).await?.0));
    }
    if state.store.is_banned(guild_id, user).await? {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "banned",
            "you are banned from this guild",
        ));
    }
    match state.store.use_invite(&code, now_ms()).await? {
        Ok(_) => {}
        Err(InviteRefusal::Unknown) => return Err(unknown_invite()),
        Err(InviteRefusal::Expired) => {
            return Err(ChatError::new(
                StatusCode::GONE,
                "invite_expired",
                "this invite has expired",
            ));
        }
        Err(InviteRefusal::UsedUp) => {
            return Err(ChatError::new(
                StatusCode::GONE,
                "invite_used_up",
                "this invite has reached its maximum number of uses",
            ));
        }
    }
    match state.store.add_member(guild_id, user, now_ms()).await {
        Ok(()) | Err(crate::store::StoreError::Conflict) => {}
        Err(e) => return Err(e.into()),
    }
    let (view, visible) = guild_for(&state, guild_id, user).await?;
    state.set_visible(user, guild_id, Some(visible));
    state.dispatch(Audience::Users(vec![user]), Dispatch::GuildCreate(&view));
    if let Some(m) = state.store.member(guild_id, user).await? {
        state.dispatch(
            Audience::Guild(guild_id),
            Dispatch::GuildMemberAdd(GuildMember {
                guild_id,
                member: &MemberView::from(&m),
            }),
        );
    }
    crate::service::presence::joined_guild(&state, user, guild_id).await;
    Ok(Json(view))
}

async fn revoke_invite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(code): Path<String>,
) -> Result<StatusCode, ChatError> {
    limit_lookup(&state, user, &code)?;
    let i = state
        .store
        .invite(&code)
        .await?
        .ok_or_else(unknown_invite)?;
    let (_, p) = in_guild(&state, i.guild_id, user)
        .await
        .map_err(|_| unknown_invite())?;
    if i.creator_id != user {
        require(p, Perms::MANAGE_GUILD)?;
    }
    state.store.delete_invite(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}
