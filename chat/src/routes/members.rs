//! Members (list, leave, kick, ban) and roles, under `/api/v1/guilds/{id}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ChatError;
use crate::model::perms::Perms;
use crate::model::{GuildId, RoleId, UserId};
use crate::routes::api::{Authed, Body, MaybeBody};
use crate::routes::guilds::{
    clean_name, in_guild, parse_id, refresh_guild, require, unknown_guild,
};
use crate::service::dispatch::{Dispatch, GuildMember, GuildUser};
use crate::service::hub::Audience;
use crate::service::views::{MemberView, RoleView};
use crate::store::members::Role;
use crate::{ChatState, now_ms};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/guilds/{guild}/members", get(list_members))
        .route(
            "/api/v1/guilds/{guild}/members/{user}",
            delete(remove_member),
        )
        .route(
            "/api/v1/guilds/{guild}/members/{user}/roles/{role}",
            put(add_role).delete(take_role),
        )
        .route("/api/v1/guilds/{guild}/bans", get(list_bans))
        .route("/api/v1/guilds/{guild}/bans/{user}", put(ban).delete(unban))
        .route(
            "/api/v1/guilds/{guild}/roles",
            get(list_roles).post(create_role),
        )
        .route(
            "/api/v1/guilds/{guild}/roles/{role}",
            axum::routing::patch(update_role).delete(delete_role),
        )
        .with_state(state)
}

fn unknown_member() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_member", "no such member")
}

fn unknown_role() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_role", "no such role")
}

fn hierarchy() -> ChatError {
    ChatError::new(
        StatusCode::FORBIDDEN,
        "role_hierarchy",
        "that needs a role above theirs",
    )
}

/// Permission bits on the wire: a decimal string (JavaScript loses 64-bit numbers).
pub(crate) fn parse_bits(s: &str) -> Result<Perms, ChatError> {
    let bits: u64 = s.parse().map_err(|_| {
        ChatError::bad_request("invalid_permissions", "permissions are a decimal string")
    })?;
    if bits & !Perms::ALL.0 != 0 {
        return Err(ChatError::bad_request(
            "invalid_permissions",
            "unknown permission bits",
        ));
    }
    Ok(Perms(bits))
}

/// Position of the member's highest role (`@everyone` is 0); the owner is above all.
async fn top_position(
    state: &ChatState,
    guild_id: GuildId,
    user: UserId,
) -> Result<i64, ChatError> {
    let g = state
        .store
        .guild(guild_id)
        .await?
        .ok_or_else(unknown_guild)?;
    if g.owner_id == user {
        return Ok(i64::MAX);
    }
    let roles: HashMap<RoleId, i64> = state
        .store
        .roles(guild_id)
        .await?
        .into_iter()
        .map(|r| (r.id, r.position))
        .collect();
    let Some(m) = state.store.member(guild_id, user).await? else {
        return Ok(0);
    };
    Ok(m.roles
        .iter()
        .filter_map(|r| roles.get(r))
        .copied()
        .max()
        .unwrap_or(0))
}

#[derive(Debug, Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<i64>,
}

async fn list_members(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<MemberView>>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let id = parse_id(&guild, "unknown_guild")?;
    in_guild(&state, id, user).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ChatError::bad_request("invalid_limit", "limit is 1-1000"));
    }
    let after = match q.after {
        Some(a) => a
            .parse()
            .map_err(|_| ChatError::bad_request("invalid_cursor", "after is a user id"))?,
        None => UserId(0),
    };
    let page = state.store.members(id, after, limit).await?;
    Ok(Json(page.iter().map(MemberView::from).collect()))
}

/// Tells the guild a member is gone, and the member that the guild is gone for them.
async fn member_gone(
    state: &ChatState,
    guild_id: GuildId,
    user_id: UserId,
) -> Result<(), ChatError> {
    state.dispatch(
        Audience::Users(vec![user_id]),
        Dispatch::GuildDelete { id: guild_id },
    );
    refresh_guild(state, guild_id).await?;
    state.dispatch(
        Audience::Guild(guild_id),
        Dispatch::GuildMemberRemove(GuildUser { guild_id, user_id }),
    );
    Ok(())
}

/// `DELETE .../members/@me` leaves; `DELETE .../members/{id}` kicks.
async fn remove_member(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, target)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (m, p) = in_guild(&state, id, user).await?;
    let target = if target == "@me" {
        user
    } else {
        parse_id(&target, "unknown_member")?
    };
    if target == user {
        if m.is_owner {
            return Err(ChatError::bad_request(
                "owner_cannot_leave",
                "the owner deletes the guild instead of leaving it",
            ));
        }
    } else {
        require(p, Perms::KICK_MEMBERS)?;
        if top_position(&state, id, user).await? <= top_position(&state, id, target).await? {
            return Err(hierarchy());
        }
    }
    if !state.store.remove_member(id, target).await? {
        return Err(unknown_member());
    }
    member_gone(&state, id, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, Default)]
struct BanBody {
    #[serde(default)]
    reason: Option<String>,
}

async fn ban(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, target)): Path<(String, String)>,
    MaybeBody(body): MaybeBody<BanBody>,
) -> Result<StatusCode, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::BAN_MEMBERS)?;
    let t = parse_id(&target, "unknown_user")?;
    state
        .store
        .user(t)
        .await?
        .ok_or_else(|| ChatError::new(StatusCode::NOT_FOUND, "unknown_user", "no such user"))?;
    if t == user || top_position(&state, id, user).await? <= top_position(&state, id, t).await? {
        return Err(hierarchy());
    }
    let reason = body.and_then(|b| b.reason);
    if reason.as_ref().is_some_and(|r| r.chars().count() > 512) {
        return Err(ChatError::bad_request(
            "invalid_reason",
            "reasons are up to 512 characters",
        ));
    }
    let was_member = state.store.membership(id, t).await?.is_some();
    state.store.ban(id, t, reason.as_deref(), now_ms()).await?;
    if was_member {
        member_gone(&state, id, t).await?;
    }
    state.dispatch(
        Audience::Guild(id),
        Dispatch::GuildBanAdd(GuildUser {
            guild_id: id,
            user_id: t,
        }),
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn unban(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, target)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::BAN_MEMBERS)?;
    let t = parse_id(&target, "unknown_ban")?;
    if !state.store.unban(id, t).await? {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_ban",
            "that user is not banned",
        ));
    }
    state.dispatch(
        Audience::Guild(id),
        Dispatch::GuildBanRemove(GuildUser {
            guild_id: id,
            user_id: t,
        }),
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn list_bans(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<serde_json::Value>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::BAN_MEMBERS)?;
    let bans = state.store.bans(id).await?;
    Ok(Json(json!(
        bans.iter()
            .map(|b| json!({
                "user_id": b.user_id.to_string(),
                "reason": b.reason,
                "created_at": b.created_at,
            }))
            .collect::<Vec<_>>()
    )))
}

async fn list_roles(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<RoleView>>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    in_guild(&state, id, user).await?;
    let roles = state.store.roles(id).await?;
    Ok(Json(roles.iter().map(RoleView::from).collect()))
}

#[derive(Debug, Deserialize)]
struct RoleBody {
    name: Option<String>,
    permissions: Option<String>,
    position: Option<i64>,
}

/// Checks that the caller may give a role these bits at this position: only bits they
/// have themselves, and only below their own highest role.
async fn check_role_edit(
    state: &ChatState,
    guild_id: GuildId,
    user: UserId,
    have: Perms,
    bits: Perms,
    position: i64,
) -> Result<(), ChatError> {
    if !have.contains(bits) {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "missing_permissions",
            "a role can only be given permissions you have",
        ));
    }
    if position >= top_position(state, guild_id, user).await? {
        return Err(hierarchy());
    }
    Ok(())
}

async fn create_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    Body(req): Body<RoleBody>,
) -> Result<(StatusCode, Json<RoleView>), ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::MANAGE_ROLES)?;
    let roles = state.store.roles(id).await?;
    if roles.len() >= 250 {
        return Err(ChatError::bad_request(
            "too_many_roles",
            "a guild has at most 250 roles",
        ));
    }
    let bits = match &req.permissions {
        Some(b) => parse_bits(b)?,
        None => Perms(0),
    };
    // New roles start at the bottom, just above @everyone, where anyone who may manage
    // roles can place them.
    let position = req.position.unwrap_or(1);
    if position < 1 {
        return Err(ChatError::bad_request(
            "invalid_position",
            "position 0 is @everyone's",
        ));
    }
    check_role_edit(&state, id, user, p, bits, position).await?;
    let role = Role {
        id: state.ids.next(),
        guild_id: id,
        name: clean_name(
            req.name.as_deref().unwrap_or("new role"),
            100,
            "invalid_name",
        )?,
        permissions: bits,
        position,
    };
    state.store.create_role(&role).await?;
    let view = RoleView::from(&role);
    state.dispatch(Audience::Guild(id), Dispatch::GuildRoleCreate(&view));
    Ok((StatusCode::CREATED, Json(view)))
}

/// The role, if the caller may manage it (it sits below their highest role).
async fn managed_role(
    state: &ChatState,
    guild: &str,
    role: &str,
    user: UserId,
) -> Result<(GuildId, Role, Perms), ChatError> {
    let id = parse_id(guild, "unknown_guild")?;
    let (_, p) = in_guild(state, id, user).await?;
    require(p, Perms::MANAGE_ROLES)?;
    let rid = parse_id(role, "unknown_role")?;
    let r = state.store.role(id, rid).await?.ok_or_else(unknown_role)?;
    if r.id != id.everyone_role() && r.position >= top_position(state, id, user).await? {
        return Err(hierarchy());
    }
    Ok((id, r, p))
}

async fn update_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, role)): Path<(String, String)>,
    Body(req): Body<RoleBody>,
) -> Result<Json<RoleView>, ChatError> {
    let (id, mut r, p) = managed_role(&state, &guild, &role, user).await?;
    let everyone = r.id == id.everyone_role();
    if let Some(n) = &req.name {
        if everyone {
            return Err(ChatError::bad_request(
                "invalid_name",
                "@everyone keeps its name",
            ));
        }
        r.name = clean_name(n, 100, "invalid_name")?;
    }
    let bits = match &req.permissions {
        Some(b) => parse_bits(b)?,
        None => r.permissions,
    };
    // Only added bits need the caller to hold them.
    let added = Perms(bits.0 & !r.permissions.0);
    let position = match req.position {
        Some(_) if everyone => {
            return Err(ChatError::bad_request(
                "invalid_position",
                "@everyone stays at position 0",
            ));
        }
        Some(pos) if pos < 1 => {
            return Err(ChatError::bad_request(
                "invalid_position",
                "position 0 is @everyone's",
            ));
        }
        Some(pos) => pos,
        None => r.position,
    };
    if everyone {
        if !p.contains(added) {
            return Err(ChatError::new(
                StatusCode::FORBIDDEN,
                "missing_permissions",
                "a role can only be given permissions you have",
            ));
        }
    } else {
        check_role_edit(&state, id, user, p, added, position).await?;
    }
    r.permissions = bits;
    r.position = position;
    state.store.update_role(&r).await?;
    refresh_guild(&state, id).await?;
    let view = RoleView::from(&r);
    state.dispatch(Audience::Guild(id), Dispatch::GuildRoleUpdate(&view));
    Ok(Json(view))
}

async fn delete_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, role)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let (id, r, _) = managed_role(&state, &guild, &role, user).await?;
    if r.id == id.everyone_role() {
        return Err(ChatError::bad_request(
            "invalid_role",
            "@everyone cannot be deleted",
        ));
    }
    state.store.delete_role(r.id).await?;
    refresh_guild(&state, id).await?;
    state.dispatch(
        Audience::Guild(id),
        Dispatch::GuildRoleDelete {
            guild_id: id,
            role_id: r.id,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn member_role(
    state: ChatState,
    user: UserId,
    guild: String,
    target: String,
    role: String,
    on: bool,
) -> Result<StatusCode, ChatError> {
    let (id, r, _) = managed_role(&state, &guild, &role, user).await?;
    if r.id == id.everyone_role() {
        return Err(ChatError::bad_request(
            "invalid_role",
            "everyone has @everyone",
        ));
    }
    let t = parse_id(&target, "unknown_member")?;
    state
        .store
        .member(id, t)
        .await?
        .ok_or_else(unknown_member)?;
    if state.store.set_member_role(id, t, r.id, on).await? {
        refresh_guild(&state, id).await?;
        let m = state
            .store
            .member(id, t)
            .await?
            .ok_or_else(unknown_member)?;
        state.dispatch(
            Audience::Guild(id),
            Dispatch::GuildMemberUpdate(GuildMember {
                guild_id: id,
                member: &MemberView::from(&m),
            }),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn add_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, target, role)): Path<(String, String, String)>,
) -> Result<StatusCode, ChatError> {
    member_role(state, user, guild, target, role, true).await
}

async fn take_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, target, role)): Path<(String, String, String)>,
) -> Result<StatusCode, ChatError> {
    member_role(state, user, guild, target, role, false).await
}
