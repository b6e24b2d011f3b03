//! DMs, group DMs and threads.
//!
//! A DM is a channel without a guild between two users who share a guild; there is one
//! per pair. A group DM has up to ten members and an owner. A thread is a channel under
//! a text channel, started from one of its messages; it is seen by whoever sees its
//! channel, and archived threads come back when someone posts in them.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::perms::Perms;
use crate::model::{ChannelId, UserId};
use crate::routes::api::{Authed, Body};
use crate::routes::guilds::{clean_name, in_channel, parse_id, refresh_guild, require};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::service::views::ChannelView;
use crate::store::StoreError;
use crate::store::guilds::Channel;
use crate::{ChatState, now_ms};

/// Members of a group DM, its owner included.
pub const MAX_GROUP: usize = 10;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/users/@me/channels", get(list_dms).post(open_dm))
        .route(
            "/api/v1/channels/{channel}/recipients/{user}",
            put(add_recipient).delete(remove_recipient),
        )
        .route(
            "/api/v1/channels/{channel}/messages/{message}/threads",
            post(start_thread),
        )
        .route("/api/v1/channels/{channel}/threads", get(list_threads))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct OpenDm {
    /// A one-to-one DM with this user.
    #[serde(default)]
    recipient_id: Option<String>,
    /// A group DM with these users (the caller is added).
    #[serde(default)]
    recipient_ids: Option<Vec<String>>,
    #[serde(default)]
    name: Option<String>,
}

fn unknown_user() -> ChatError {
    ChatError::new(StatusCode::NOT_FOUND, "unknown_user", "no such user")
}

/// Someone the caller may message: a friend, or a user who shares a guild with them; and
/// neither has blocked the other.
async fn reachable(state: &ChatState, user: UserId, other: &str) -> Result<UserId, ChatError> {
    let id = parse_id(other, "unknown_user")?;
    state.store.user(id).await?.ok_or_else(unknown_user)?;
    if id == user {
        return Ok(id);
    }
    let friends = state.store.relation(user, id).await?
        == Some(crate::store::relationships::Relation::Friend);
    if state.store.blocked_between(user, id).await?
        || !(friends || state.store.share_guild(user, id).await?)
    {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_reachable",
            "you can message your friends and people you share a guild with",
        ));
    }
    Ok(id)
}

async fn dm_view(state: &ChatState, id: ChannelId) -> Result<(Channel, ChannelView), ChatError> {
    let c = state
        .store
        .channel(id)
        .await?
        .ok_or_else(|| ChatError::Internal(format!("channel {id} vanished")))?;
    let v = ChannelView::from(&c);
    Ok((c, v))
}

async fn open_dm(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Body(req): Body<OpenDm>,
) -> Result<(StatusCode, Json<ChannelView>), ChatError> {
    match (&req.recipient_id, &req.recipient_ids) {
        (Some(other), None) => {
            let other = reachable(&state, user, other).await?;
            if other == user {
                return Err(ChatError::bad_request(
                    "invalid_recipient",
                    "a DM is with someone else",
                ));
            }
            let key = format!("{}:{}", user.min(other), user.max(other));
            if let Some(id) = state.store.dm_by_key(&key).await? {
                return Ok((StatusCode::OK, Json(dm_view(&state, id).await?.1)));
            }
            let c = Channel {
                id: state.ids.next(),
                kind: ChannelKind::Dm,
                dm_key: Some(key.clone()),
                ..Channel::default()
            };
            match state.store.create_dm(&c, &[user, other], now_ms()).await {
                Ok(()) => {}
                // Both opened it at once: the other request's DM is the one.
                Err(StoreError::Conflict) => {
                    let id =
                        state.store.dm_by_key(&key).await?.ok_or_else(|| {
                            ChatError::Internal("dm conflict without a dm".into())
                        })?;
                    return Ok((StatusCode::OK, Json(dm_view(&state, id).await?.1)));
                }
                Err(e) => return Err(e.into()),
            }
            let (c, view) = dm_view(&state, c.id).await?;
            state.dispatch(
                Audience::Users(c.recipients.clone()),
                Dispatch::ChannelCreate(&view),
            );
            Ok((StatusCode::CREATED, Json(view)))
        }
        (None, Some(others)) => {
            let mut members = vec![user];
            for o in others {
                let id = reachable(&state, user, o).await?;
                if !members.contains(&id) {
                    members.push(id);
                }
            }
            if members.len() < 2 || members.len() > MAX_GROUP {
                return Err(ChatError::bad_request(
                    "invalid_recipients",
                    format!("a group DM has 2-{MAX_GROUP} members"),
                ));
            }
            let c = Channel {
                id: state.ids.next(),
                kind: ChannelKind::GroupDm,
                name: match &req.name {
                    Some(n) => clean_name(n, 100, "invalid_name")?,
                    None => String::new(),
                },
                owner_id: Some(user),
                ..Channel::default()
            };
            state.store.create_dm(&c, &members, now_ms()).await?;
            let (c, view) = dm_view(&state, c.id).await?;
            state.dispatch(
                Audience::Users(c.recipients.clone()),
                Dispatch::ChannelCreate(&view),
            );
            Ok((StatusCode::CREATED, Json(view)))
        }
        _ => Err(ChatError::bad_request(
            "invalid_recipients",
            "give recipient_id for a DM or recipient_ids for a group DM",
        )),
    }
}

async fn list_dms(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<Vec<ChannelView>>, ChatError> {
    Ok(Json(private_channels(&state, user).await?))
}

/// The user's DMs and group DMs.
pub(crate) async fn private_channels(
    state: &ChatState,
    user: UserId,
) -> Result<Vec<ChannelView>, ChatError> {
    let mut out = Vec::new();
    for id in state.store.user_dms(user).await? {
        out.push(dm_view(state, id).await?.1);
    }
    Ok(out)
}

/// A group DM the caller is in.
async fn group(state: &ChatState, channel: &str, user: UserId) -> Result<Channel, ChatError> {
    let id = parse_id(channel, "unknown_channel")?;
    let (c, _) = in_channel(state, id, user).await?;
    if c.kind != ChannelKind::GroupDm {
        return Err(ChatError::bad_request(
            "not_a_group_dm",
            "members are added to and removed from group DMs",
        ));
    }
    Ok(c)
}

async fn add_recipient(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, other)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let c = group(&state, &channel, user).await?;
    let other = reachable(&state, user, &other).await?;
    if c.recipients.len() >= MAX_GROUP && !c.recipients.contains(&other) {
        return Err(ChatError::bad_request(
            "group_full",
            format!("a group DM has at most {MAX_GROUP} members"),
        ));
    }
    if state
        .store
        .set_recipient(c.id, other, true, now_ms())
        .await?
    {
        let (c, view) = dm_view(&state, c.id).await?;
        state.dispatch(Audience::Users(vec![other]), Dispatch::ChannelCreate(&view));
        state.dispatch(
            Audience::Users(c.recipients.clone()),
            Dispatch::ChannelUpdate(&view),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Leaving (yourself) or, for the owner, removing someone.
async fn remove_recipient(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, other)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let mut c = group(&state, &channel, user).await?;
    let other = if other == "@me" {
        user
    } else {
        parse_id(&other, "unknown_user")?
    };
    if other != user && c.owner_id != Some(user) {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_owner",
            "only the group's owner removes others",
        ));
    }
    if !state.store.set_recipient(c.id, other, false, 0).await? {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_recipient",
            "not in this group",
        ));
    }
    c.recipients.retain(|r| *r != other);
    if c.owner_id == Some(other) {
        // The group passes to whoever was added first.
        c.owner_id = c.recipients.first().copied();
        state.store.update_channel(&c).await?;
    }
    state.dispatch(
        Audience::Users(vec![other]),
        Dispatch::ChannelGone {
            id: c.id,
            guild_id: None,
        },
    );
    state.dispatch(
        Audience::Users(c.recipients.clone()),
        Dispatch::ChannelUpdate(&ChannelView::from(&c)),
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct NewThread {
    name: String,
}

async fn start_thread(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
    Body(req): Body<NewThread>,
) -> Result<(StatusCode, Json<ChannelView>), ChatError> {
    let cid = parse_id(&channel, "unknown_channel")?;
    let (parent, p) = in_channel(&state, cid, user).await?;
    if parent.kind != ChannelKind::Text {
        return Err(ChatError::bad_request(
            "invalid_channel",
            "threads start in text channels",
        ));
    }
    require(p, Perms::SEND_IN_THREADS)?;
    let mid = parse_id(&message, "unknown_message")?;
    state.store.message(cid, mid).await?.ok_or_else(|| {
        ChatError::new(StatusCode::NOT_FOUND, "unknown_message", "no such message")
    })?;
    let t = Channel {
        id: state.ids.next(),
        guild_id: parent.guild_id,
        kind: ChannelKind::Thread,
        name: clean_name(&req.name, 100, "invalid_name")?,
        parent_id: Some(parent.id),
        owner_id: Some(user),
        starter_message_id: Some(mid),
        ..Channel::default()
    };
    state.store.create_channel(&t).await.map_err(|e| match e {
        StoreError::Conflict => {
            ChatError::bad_request("thread_exists", "that message already has a thread")
        }
        e => e.into(),
    })?;
    // Those who see the channel see the thread: they get `channel_create`.
    refresh_guild(&state, parent.guild_id).await?;
    Ok((StatusCode::CREATED, Json(ChannelView::from(&t))))
}

#[derive(Debug, Deserialize)]
struct ThreadQuery {
    archived: Option<bool>,
}

async fn list_threads(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    query: Result<Query<ThreadQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ChannelView>>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let cid = parse_id(&channel, "unknown_channel")?;
    in_channel(&state, cid, user).await?;
    let want_archived = q.archived.unwrap_or(false);
    let mut out = Vec::new();
    for id in state.store.threads(cid).await? {
        if let Some(t) = state.store.channel(id).await?
            && t.archived == want_archived
        {
            out.push(ChannelView::from(&t));
        }
    }
    Ok(Json(out))
}
