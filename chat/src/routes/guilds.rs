//! Guilds and channels under `/api/v1`, and the permission checks every route shares.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::{ChannelId, GuildId, UserId};
use crate::routes::api::{Authed, Body};
pub(crate) use crate::service::hub::channel_audience;
use crate::service::views::{ChannelView, GuildView};
use std::collections::HashSet;

use crate::model::perms::{MemberPerms, Perms, channel_perms, guild_perms};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::store::guilds::{Channel, Guild, GuildAccess, Membership};
use crate::{ChatState, now_ms};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/guilds", post(create_guild))
        .route(
            "/api/v1/guilds/{guild}",
            get(get_guild).patch(rename_guild).delete(delete_guild),
        )
        .route("/api/v1/guilds/{guild}/channels", post(create_channel))
        .with_state(state)
}

/// Ids are strings on the wire (JavaScript numbers lose 64-bit precision). Parses into
/// the id type the caller needs (`UserId`, `ChannelId`, ..., or a bare `i64`).
pub(crate) fn parse_id<T: From<i64>>(s: &str, what: &'static str) -> Result<T, ChatError> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .map(T::from)
        .ok_or_else(|| {
            ChatError::new(
                StatusCode::NOT_FOUND,
                what,
                format!("no such {}", &what[8..]),
            )
        })
}

pub(crate) fn forbidden(missing: Perms) -> ChatError {
    ChatError::new(
        StatusCode::FORBIDDEN,
        "missing_permissions",
        format!("missing permissions: {}", missing.names().join(", ")),
    )
}

pub(crate) fn unknown_guild() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_guild", "no such guild")
}

pub(crate) fn unknown_channel() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_channel", "no such channel")
}

pub(crate) fn member_perms(user_id: UserId, m: &Membership) -> MemberPerms<'_> {
    MemberPerms {
        user_id,
        is_owner: m.is_owner,
        everyone: m.everyone,
        roles: &m.roles,
    }
}

/// The caller's guild permissions. A guild the caller is not in does not exist for them.
pub(crate) async fn in_guild(
    state: &ChatState,
    guild_id: GuildId,
    user: UserId,
) -> Result<(Membership, Perms), ChatError> {
    let m = state
        .store
        .membership(guild_id, user)
        .await?
        .ok_or_else(unknown_guild)?;
    let p = guild_perms(&member_perms(user, &m));
    Ok((m, p))
}

/// The channel and the caller's permissions in it. A channel the caller cannot view does
/// not exist for them.
pub(crate) async fn in_channel(
    state: &ChatState,
    channel_id: ChannelId,
    user: UserId,
) -> Result<(Channel, Perms), ChatError> {
    // With the overwrites that apply: a thread's visibility follows its parent channel.
    let (c, overwrites) = state
        .metrics
        .db("channel", state.store.channel_access(channel_id))
        .await?
        .ok_or_else(unknown_channel)?;
    if c.is_dm() {
        if !c.recipients.contains(&user) {
            return Err(unknown_channel());
        }
        return Ok((c, Perms::DM));
    }
    let m = state
        .store
        .membership(c.guild_id, user)
        .await?
        .ok_or_else(unknown_channel)?;
    let p = channel_perms(&member_perms(user, &m), c.guild_id, &overwrites);
    if !p.contains(Perms::VIEW_CHANNEL) {
        return Err(unknown_channel());
    }
    Ok((c, p))
}

pub(crate) fn require(have: Perms, need: Perms) -> Result<(), ChatError> {
    if have.contains(need) {
        Ok(())
    } else {
        Err(forbidden(Perms(need.0 & !have.0)))
    }
}

/// The guild as the member sees it, with the ids of the channels they can view.
fn guild_view(access: &GuildAccess, user: UserId) -> Option<(GuildView, HashSet<ChannelId>)> {
    let m = access.member(user)?;
    let visible = access.visible(user)?;
    let view = GuildView {
        id: access.guild.id.to_string(),
        name: access.guild.name.clone(),
        owner_id: access.guild.owner_id.to_string(),
        permissions: guild_perms(&m).0.to_string(),
        channels: access
            .channels
            .iter()
            .filter(|(c, _)| visible.contains(&c.id))
            .map(|(c, _)| ChannelView::from(c))
            .collect(),
    };
    Some((view, visible))
}

/// The guild as the member sees it; unknown to non-members.
pub(crate) async fn guild_for(
    state: &ChatState,
    guild_id: GuildId,
    user: UserId,
) -> Result<(GuildView, HashSet<ChannelId>), ChatError> {
    let access = state
        .store
        .guild_access(guild_id)
        .await?
        .ok_or_else(unknown_guild)?;
    guild_view(&access, user).ok_or_else(unknown_guild)
}

/// After a change to channels, roles, overwrites or members: recomputes what each
/// connected member of the guild can see, on every chat node.
pub(crate) async fn refresh_guild(state: &ChatState, guild_id: GuildId) -> Result<(), ChatError> {
    state.refresh_guild(guild_id).await
}

pub(crate) fn clean_name(n: &str, max: usize, code: &'static str) -> Result<String, ChatError> {
    let n: String = n.trim().chars().filter(|c| !c.is_control()).collect();
    if n.is_empty() || n.chars().count() > max {
        return Err(ChatError::bad_request(
            code,
            format!("names are 1-{max} characters"),
        ));
    }
    Ok(n)
}

#[derive(Debug, Deserialize)]
struct NewGuild {
    name: String,
}

async fn create_guild(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Body(req): Body<NewGuild>,
) -> Result<(StatusCode, Json<GuildView>), ChatError> {
    let g = Guild {
        id: state.ids.next(),
        name: clean_name(&req.name, 100, "invalid_name")?,
        owner_id: user,
        created_at: now_ms(),
    };
    let text_category = state.ids.next();
    let voice_category = state.ids.next();
    let channel = |id, kind: ChannelKind, name: &str, parent, position| Channel {
        id,
        guild_id: g.id,
        kind,
        name: name.into(),
        parent_id: parent,
        position,
        ..Channel::default()
    };
    let channels = [
        channel(
            text_category,
            ChannelKind::Category,
            "Text Channels",
            None,
            0,
        ),
        channel(
            state.ids.next(),
            ChannelKind::Text,
            "general",
            Some(text_category),
            0,
        ),
        channel(
            voice_category,
            ChannelKind::Category,
            "Voice Channels",
            None,
            1,
        ),
        channel(
            state.ids.next(),
            ChannelKind::Voice,
            "General",
            Some(voice_category),
            0,
        ),
    ];
    state
        .store
        .create_guild(&g, Perms::DEFAULT_EVERYONE, &channels)
        .await?;
    let (view, visible) = guild_for(&state, g.id, user).await?;
    state.set_visible(user, g.id, Some(visible));
    state.dispatch(Audience::Users(vec![user]), Dispatch::GuildCreate(&view));
    Ok((StatusCode::CREATED, Json(view)))
}

async fn get_guild(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<GuildView>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    Ok(Json(guild_for(&state, id, user).await?.0))
}

async fn rename_guild(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    Body(req): Body<NewGuild>,
) -> Result<Json<GuildView>, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::MANAGE_GUILD)?;
    let name = clean_name(&req.name, 100, "invalid_name")?;
    state.store.rename_guild(id, &name).await?;
    state.dispatch(
        Audience::Guild(id),
        Dispatch::GuildUpdate { id, name: &name },
    );
    Ok(Json(guild_for(&state, id, user).await?.0))
}

async fn delete_guild(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<StatusCode, ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (m, _) = in_guild(&state, id, user).await?;
    if !m.is_owner {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_owner",
            "only the owner can delete a guild",
        ));
    }
    let files = state.store.guild_attachment_ids(id).await?;
    state.store.delete_guild(id).await?;
    if let Some(blobs) = &state.blobs {
        blobs.delete_all(&files).await;
    }
    state.dispatch(Audience::Guild(id), Dispatch::GuildDelete { id });
    refresh_guild(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct NewChannel {
    name: String,
    kind: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    user_limit: Option<i64>,
}

async fn create_channel(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    Body(req): Body<NewChannel>,
) -> Result<(StatusCode, Json<ChannelView>), ChatError> {
    let id = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, id, user).await?;
    require(p, Perms::MANAGE_CHANNELS)?;
    let kind = match ChannelKind::parse(&req.kind) {
        Some(k @ (ChannelKind::Text | ChannelKind::Voice | ChannelKind::Category)) => k,
        _ => {
            return Err(ChatError::bad_request(
                "invalid_channel_kind",
                "kind is text, voice or category",
            ));
        }
    };
    let parent_id = match &req.parent_id {
        Some(p) => {
            let pid = parse_id(p, "unknown_channel")?;
            let parent = state.store.channel(pid).await?;
            if !parent.is_some_and(|c| c.guild_id == id && c.kind == ChannelKind::Category)
                || kind == ChannelKind::Category
            {
                return Err(ChatError::bad_request(
                    "invalid_parent",
                    "the parent must be a category of this guild",
                ));
            }
            Some(pid)
        }
        None => None,
    };
    if req.user_limit.is_some_and(|l| !(1..=99).contains(&l))
        || (req.user_limit.is_some() && kind != ChannelKind::Voice)
    {
        return Err(ChatError::bad_request(
            "invalid_user_limit",
            "user_limit is 1-99, on voice channels only",
        ));
    }
    let position = state
        .store
        .channels(id)
        .await?
        .iter()
        .filter(|c| c.parent_id == parent_id)
        .count() as i64;
    let c = Channel {
        id: state.ids.next(),
        guild_id: id,
        kind,
        name: clean_name(&req.name, 100, "invalid_name")?,
        parent_id,
        position,
        user_limit: req.user_limit,
        ..Channel::default()
    };
    state.store.create_channel(&c).await?;
    // Everyone connected who can see the channel gets `channel_create`.
    refresh_guild(&state, id).await?;
    Ok((StatusCode::CREATED, Json(ChannelView::from(&c))))
}

/// What sending in a channel takes: threads have their own permission.
pub(crate) fn send_permission(c: &Channel) -> Perms {
    if c.kind == ChannelKind::Thread {
        Perms::SEND_IN_THREADS
    } else {
        Perms::SEND_MESSAGES
    }
}
