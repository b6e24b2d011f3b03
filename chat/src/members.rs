//! Members (list, leave, kick, ban), roles, channel edits and permission overwrites, and
//! invites with an expiry and a use limit, under `/api/v1`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api::{Authed, Body, MaybeBody, Patch};
use crate::error::ChatError;
use crate::guild_store::Channel;
use crate::guilds::{
    ChannelView, GuildView, channel_audience, clean_name, guild_for, in_channel, in_guild,
    parse_id, refresh_guild, require, unknown_guild,
};
use crate::hub::{Audience, Event};
use crate::member_store::{Invite, InviteRefusal, Member, Role, overwrite_target};
use crate::model::{ChannelKind, EventKind};
use crate::perms::{Perms, Target};
use crate::{ChatState, auth, now_ms};

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
        .route(
            "/api/v1/channels/{channel}",
            axum::routing::patch(update_channel).delete(delete_channel),
        )
        .route(
            "/api/v1/channels/{channel}/permissions/{target}",
            put(set_overwrite).delete(delete_overwrite),
        )
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
fn parse_bits(s: &str) -> Result<Perms, ChatError> {
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
async fn top_position(state: &ChatState, guild_id: i64, user: i64) -> Result<i64, ChatError> {
    let g = state
        .store
        .guild(guild_id)
        .await?
        .ok_or_else(unknown_guild)?;
    if g.owner_id == user {
        return Ok(i64::MAX);
    }
    let roles: HashMap<i64, i64> = state
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

#[derive(Debug, Serialize)]
pub(crate) struct MemberView {
    user: serde_json::Value,
    roles: Vec<String>,
    joined_at: i64,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> MemberView {
        MemberView {
            user: json!({
                "id": m.user_id.to_string(),
                "username": m.username,
                "display_name": m.display_name,
            }),
            roles: m.roles.iter().map(|r| r.to_string()).collect(),
            joined_at: m.joined_at,
        }
    }
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
        None => 0,
    };
    let page = state.store.members(id, after, limit).await?;
    Ok(Json(page.iter().map(MemberView::from).collect()))
}

/// Tells the guild a member is gone, and the member that the guild is gone for them.
async fn member_gone(state: &ChatState, guild_id: i64, user_id: i64) -> Result<(), ChatError> {
    state.dispatch(
        Audience::Users(vec![user_id]),
        Event::new(EventKind::GuildDelete, &json!({"id": guild_id.to_string()})),
    );
    refresh_guild(state, guild_id).await?;
    state.dispatch(
        Audience::Guild(guild_id),
        Event::new(
            EventKind::GuildMemberRemove,
            &json!({"guild_id": guild_id.to_string(), "user_id": user_id.to_string()}),
        ),
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
        Event::new(
            EventKind::GuildBanAdd,
            &json!({"guild_id": id.to_string(), "user_id": t.to_string()}),
        ),
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
        Event::new(
            EventKind::GuildBanRemove,
            &json!({"guild_id": id.to_string(), "user_id": t.to_string()}),
        ),
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

#[derive(Debug, Serialize)]
struct RoleView {
    id: String,
    guild_id: String,
    name: String,
    permissions: String,
    position: i64,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> RoleView {
        RoleView {
            id: r.id.to_string(),
            guild_id: r.guild_id.to_string(),
            name: r.name.clone(),
            permissions: r.permissions.0.to_string(),
            position: r.position,
        }
    }
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
    guild_id: i64,
    user: i64,
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
    state.dispatch(
        Audience::Guild(id),
        Event::new(EventKind::GuildRoleCreate, &view),
    );
    Ok((StatusCode::CREATED, Json(view)))
}

/// The role, if the caller may manage it (it sits below their highest role).
async fn managed_role(
    state: &ChatState,
    guild: &str,
    role: &str,
    user: i64,
) -> Result<(i64, Role, Perms), ChatError> {
    let id = parse_id(guild, "unknown_guild")?;
    let (_, p) = in_guild(state, id, user).await?;
    require(p, Perms::MANAGE_ROLES)?;
    let rid = parse_id(role, "unknown_role")?;
    let r = state.store.role(id, rid).await?.ok_or_else(unknown_role)?;
    if r.id != id && r.position >= top_position(state, id, user).await? {
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
    let everyone = r.id == id;
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
    state.dispatch(
        Audience::Guild(id),
        Event::new(EventKind::GuildRoleUpdate, &view),
    );
    Ok(Json(view))
}

async fn delete_role(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, role)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let (id, r, _) = managed_role(&state, &guild, &role, user).await?;
    if r.id == id {
        return Err(ChatError::bad_request(
            "invalid_role",
            "@everyone cannot be deleted",
        ));
    }
    state.store.delete_role(r.id).await?;
    refresh_guild(&state, id).await?;
    state.dispatch(
        Audience::Guild(id),
        Event::new(
            EventKind::GuildRoleDelete,
            &json!({"guild_id": id.to_string(), "role_id": r.id.to_string()}),
        ),
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn member_role(
    state: ChatState,
    user: i64,
    guild: String,
    target: String,
    role: String,
    on: bool,
) -> Result<StatusCode, ChatError> {
    let (id, r, _) = managed_role(&state, &guild, &role, user).await?;
    if r.id == id {
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
        let mut ev = serde_json::to_value(MemberView::from(&m)).unwrap_or_default();
        ev["guild_id"] = json!(id.to_string());
        state.dispatch(
            Audience::Guild(id),
            Event::new(EventKind::GuildMemberUpdate, &ev),
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

#[derive(Debug, Deserialize)]
struct ChannelEdit {
    name: Option<String>,
    position: Option<i64>,
    /// A category id; `""` or `null` for the top level.
    #[serde(default)]
    parent_id: Patch<String>,
    /// 1-99; 0 or `null` for no cap.
    #[serde(default)]
    user_limit: Patch<i64>,
    /// Threads only.
    archived: Option<bool>,
}

async fn update_channel(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    Body(req): Body<ChannelEdit>,
) -> Result<Json<ChannelView>, ChatError> {
    let cid = parse_id(&channel, "unknown_channel")?;
    let (mut c, p) = in_channel(&state, cid, user).await?;
    match c.kind {
        // A thread's creator, or a moderator, names and archives it.
        ChannelKind::Thread if c.owner_id != Some(user) => require(p, Perms::MANAGE_MESSAGES)?,
        ChannelKind::Thread | ChannelKind::GroupDm => {}
        ChannelKind::Dm => {
            return Err(ChatError::bad_request(
                "invalid_channel",
                "a DM has nothing to edit",
            ));
        }
        _ => require(p, Perms::MANAGE_CHANNELS)?,
    }
    let layout =
        req.position.is_some() || !req.parent_id.is_absent() || !req.user_limit.is_absent();
    if matches!(c.kind, ChannelKind::Thread | ChannelKind::GroupDm) && layout {
        return Err(ChatError::bad_request(
            "invalid_channel",
            "threads and group DMs have a name, not a place",
        ));
    }
    if let Some(a) = req.archived {
        if c.kind != ChannelKind::Thread {
            return Err(ChatError::bad_request(
                "invalid_channel",
                "only threads are archived",
            ));
        }
        c.archived = a;
    }
    if let Some(n) = &req.name {
        c.name = clean_name(n, 100, "invalid_name")?;
    }
    if let Some(pos) = req.position {
        if !(0..=10_000).contains(&pos) {
            return Err(ChatError::bad_request(
                "invalid_position",
                "position is 0-10000",
            ));
        }
        c.position = pos;
    }
    if let Some(parent) = req.parent_id.into_update() {
        let parent = parent.unwrap_or_default();
        c.parent_id = if parent.is_empty() {
            None
        } else {
            let pid = parse_id(&parent, "unknown_channel")?;
            let ok =
                state.store.channel(pid).await?.is_some_and(|pc| {
                    pc.guild_id == c.guild_id && pc.kind == ChannelKind::Category
                });
            if !ok || c.kind == ChannelKind::Category {
                return Err(ChatError::bad_request(
                    "invalid_parent",
                    "the parent must be a category of this guild",
                ));
            }
            Some(pid)
        };
    }
    if let Some(limit) = req.user_limit.into_update() {
        let limit = limit.unwrap_or(0);
        if c.kind != ChannelKind::Voice || !(0..=99).contains(&limit) {
            return Err(ChatError::bad_request(
                "invalid_user_limit",
                "user_limit is 0-99 (0 for none), on voice channels only",
            ));
        }
        c.user_limit = (limit > 0).then_some(limit);
    }
    state.store.update_channel(&c).await?;
    let view = ChannelView::from(&c);
    state.dispatch(
        channel_audience(&c),
        Event::new(EventKind::ChannelUpdate, &view),
    );
    Ok(Json(view))
}

async fn delete_channel(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
) -> Result<StatusCode, ChatError> {
    let cid = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, cid, user).await?;
    if c.is_dm() {
        return Err(ChatError::bad_request(
            "invalid_channel",
            "leave a group DM instead of deleting it",
        ));
    }
    require(p, Perms::MANAGE_CHANNELS)?;
    let files = state.store.attachment_ids(c.id, false).await?;
    state.store.delete_channel(c.id).await?;
    if let Some(blobs) = &state.blobs {
        blobs.delete_all(&files).await;
    }
    // Everyone connected who could see it gets `channel_delete`.
    refresh_guild(&state, c.guild_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct OverwriteBody {
    /// `role` or `member`.
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    allow: Option<String>,
    #[serde(default)]
    deny: Option<String>,
}

/// The channel, if the caller may manage its overwrites.
async fn overwrite_channel(
    state: &ChatState,
    channel: &str,
    user: i64,
) -> Result<(Channel, Perms), ChatError> {
    let cid = parse_id(channel, "unknown_channel")?;
    let (c, p) = in_channel(state, cid, user).await?;
    require(p, Perms::MANAGE_ROLES)?;
    Ok((c, p))
}

async fn set_overwrite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, target)): Path<(String, String)>,
    Body(req): Body<OverwriteBody>,
) -> Result<StatusCode, ChatError> {
    let (c, p) = overwrite_channel(&state, &channel, user).await?;
    let tid = parse_id(&target, "unknown_target")?;
    let t = overwrite_target(&req.kind, tid)
        .ok_or_else(|| ChatError::bad_request("invalid_overwrite", "type is role or member"))?;
    let exists = match t {
        Target::Role(r) => state.store.role(c.guild_id, r).await?.is_some(),
        Target::Member(m) => state.store.membership(c.guild_id, m).await?.is_some(),
    };
    if !exists {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_target",
            "no such role or member in this guild",
        ));
    }
    let allow = parse_bits(req.allow.as_deref().unwrap_or("0"))?;
    let deny = parse_bits(req.deny.as_deref().unwrap_or("0"))?;
    if !p.contains(Perms(allow.0 | deny.0)) {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "missing_permissions",
            "an overwrite can only set permissions you have",
        ));
    }
    state
        .store
        .set_overwrite(c.id, t, Some((allow, deny)))
        .await?;
    overwrites_changed(&state, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_overwrite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, target)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let (c, _) = overwrite_channel(&state, &channel, user).await?;
    let tid = parse_id(&target, "unknown_target")?;
    // The id names a role or a member; remove whichever overwrite exists.
    state
        .store
        .set_overwrite(c.id, Target::Role(tid), None)
        .await?;
    state
        .store
        .set_overwrite(c.id, Target::Member(tid), None)
        .await?;
    overwrites_changed(&state, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn overwrites_changed(state: &ChatState, c: &Channel) -> Result<(), ChatError> {
    // Those who gained or lost the channel hear of it; those who keep it get the update.
    refresh_guild(state, c.guild_id).await?;
    state.dispatch(
        channel_audience(c),
        Event::new(EventKind::ChannelUpdate, &ChannelView::from(c)),
    );
    Ok(())
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
fn limit_lookup(state: &ChatState, user: i64, code: &str) -> Result<(), ChatError> {
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
    state.hub.set_visible(user, guild_id, Some(visible));
    state.dispatch(
        Audience::Users(vec![user]),
        Event::new(EventKind::GuildCreate, &view),
    );
    if let Some(m) = state.store.member(guild_id, user).await? {
        let mut ev = serde_json::to_value(MemberView::from(&m)).unwrap_or_default();
        ev["guild_id"] = json!(guild_id.to_string());
        state.dispatch(
            Audience::Guild(guild_id),
            Event::new(EventKind::GuildMemberAdd, &ev),
        );
    }
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
