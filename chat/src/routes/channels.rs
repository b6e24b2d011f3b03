//! Channel edits and permission overwrites, under `/api/v1/channels/{id}`.

use crate::ChatState;
use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::perms::{Perms, Target};
use crate::model::{RoleId, UserId};
use crate::routes::api::{Authed, Body, Patch};
use crate::routes::guilds::{
    channel_audience, clean_name, in_channel, parse_id, refresh_guild, require,
};
use crate::routes::members::parse_bits;
use crate::service::dispatch::Dispatch;
use crate::service::views::ChannelView;
use crate::store::guilds::Channel;
use crate::store::members::overwrite_target;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::put;
use axum::{Json, Router};
use serde::Deserialize;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/channels/{channel}",
            axum::routing::patch(update_channel).delete(delete_channel),
        )
        .route(
            "/api/v1/channels/{channel}/permissions",
            axum::routing::get(list_overwrites),
        )
        .route(
            "/api/v1/channels/{channel}/permissions/{target}",
            put(set_overwrite).delete(delete_overwrite),
        )
        .with_state(state)
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
    state.dispatch(channel_audience(&c), Dispatch::ChannelUpdate(&view));
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
    let files = state.store.channel_attachment_ids(c.id).await?;
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
    user: UserId,
) -> Result<(Channel, Perms), ChatError> {
    let cid = parse_id(channel, "unknown_channel")?;
    let (c, p) = in_channel(state, cid, user).await?;
    require(p, Perms::MANAGE_ROLES)?;
    Ok((c, p))
}

/// One overwrite as the API shows it.
#[derive(Debug, serde::Serialize)]
struct OverwriteView {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    allow: String,
    deny: String,
}

/// The channel's overwrites (of its parent, for a thread), for those who may edit them.
async fn list_overwrites(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
) -> Result<Json<Vec<OverwriteView>>, ChatError> {
    let (c, _) = overwrite_channel(&state, &channel, user).await?;
    let list = state.store.overwrites(c.perms_channel()).await?;
    Ok(Json(
        list.iter()
            .map(|o| {
                let (kind, id) = match o.target {
                    Target::Role(r) => ("role", r.0),
                    Target::Member(m) => ("member", m.0),
                };
                OverwriteView {
                    id: id.to_string(),
                    kind,
                    allow: o.allow.0.to_string(),
                    deny: o.deny.0.to_string(),
                }
            })
            .collect(),
    ))
}

async fn set_overwrite(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, target)): Path<(String, String)>,
    Body(req): Body<OverwriteBody>,
) -> Result<StatusCode, ChatError> {
    let (c, p) = overwrite_channel(&state, &channel, user).await?;
    let tid: i64 = parse_id(&target, "unknown_target")?;
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
    let tid: i64 = parse_id(&target, "unknown_target")?;
    // The id names a role or a member; remove whichever overwrite exists.
    state
        .store
        .set_overwrite(c.id, Target::Role(RoleId(tid)), None)
        .await?;
    state
        .store
        .set_overwrite(c.id, Target::Member(UserId(tid)), None)
        .await?;
    overwrites_changed(&state, &c).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn overwrites_changed(state: &ChatState, c: &Channel) -> Result<(), ChatError> {
    // Those who gained or lost the channel hear of it; those who keep it get the update.
    refresh_guild(state, c.guild_id).await?;
    state.dispatch(
        channel_audience(c),
        Dispatch::ChannelUpdate(&ChannelView::from(c)),
    );
    Ok(())
}
