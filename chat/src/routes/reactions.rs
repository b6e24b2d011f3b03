//! Reactions and pins of messages under `/api/v1/channels/{id}`.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::UserId;
use crate::model::perms::Perms;
use crate::routes::api::Authed;
use crate::routes::guilds::{channel_audience, in_channel, parse_id, require};
use crate::routes::messages::message_in_channel;
use crate::service::dispatch::{Dispatch, ReactionChange};
use crate::service::views::MessageView;
use crate::store::guilds::{Channel, Message};
use crate::store::messages::MAX_PINS;
use crate::{ChatState, now_ms};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/channels/{channel}/messages/{message}/reactions/{emoji}",
            get(reaction_users),
        )
        .route(
            "/api/v1/channels/{channel}/messages/{message}/reactions/{emoji}/{user}",
            put(add_reaction).delete(remove_reaction),
        )
        .route("/api/v1/channels/{channel}/pins", get(pins))
        .route(
            "/api/v1/channels/{channel}/pins/{message}",
            put(pin).delete(unpin),
        )
        .with_state(state)
}

/// An emoji: a Unicode emoji or a custom `name:id`, 1-64 bytes, no spaces or controls.
fn check_emoji(e: &str) -> Result<(), ChatError> {
    if e.is_empty()
        || e.len() > 64
        || e.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(ChatError::bad_request(
            "invalid_emoji",
            "an emoji is 1-64 bytes without spaces",
        ));
    }
    Ok(())
}

/// Distinct emoji per message.
pub const MAX_REACTION_KINDS: i64 = 20;

fn reaction_event<'a>(
    c: &Channel,
    m: &Message,
    user: UserId,
    emoji: &'a str,
) -> ReactionChange<'a> {
    ReactionChange {
        channel_id: c.id,
        message_id: m.id,
        user_id: user,
        emoji,
    }
}

/// `PUT .../reactions/{emoji}/@me`.
async fn add_reaction(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message, emoji, who)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ChatError> {
    let (m, c, p) = message_in_channel(&state, &channel, &message, user).await?;
    if who != "@me" {
        return Err(ChatError::bad_request(
            "invalid_user",
            "reactions are added as @me",
        ));
    }
    check_emoji(&emoji)?;
    // Joining an existing reaction needs only to see the message; a new emoji needs the
    // add-reactions permission.
    if !state.store.has_reaction(m.id, &emoji).await? {
        require(p, Perms::ADD_REACTIONS)?;
        if state.store.reaction_kinds(m.id).await? >= MAX_REACTION_KINDS {
            return Err(ChatError::bad_request(
                "too_many_reactions",
                format!("a message has at most {MAX_REACTION_KINDS} different reactions"),
            ));
        }
    }
    if state
        .store
        .add_reaction(m.id, &emoji, user, now_ms())
        .await?
    {
        state.dispatch(
            channel_audience(&c),
            Dispatch::MessageReactionAdd(reaction_event(&c, &m, user, &emoji)),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE .../reactions/{emoji}/@me`, or another user's with manage messages.
async fn remove_reaction(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message, emoji, who)): Path<(String, String, String, String)>,
) -> Result<StatusCode, ChatError> {
    let (m, c, p) = message_in_channel(&state, &channel, &message, user).await?;
    check_emoji(&emoji)?;
    let target = if who == "@me" {
        user
    } else {
        let t = parse_id(&who, "unknown_user")?;
        if t != user {
            require(p, Perms::MANAGE_MESSAGES)?;
        }
        t
    };
    if state.store.remove_reaction(m.id, &emoji, target).await? {
        state.dispatch(
            channel_audience(&c),
            Dispatch::MessageReactionRemove(reaction_event(&c, &m, target, &emoji)),
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<i64>,
}

/// Who added this emoji, first come first.
async fn reaction_users(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message, emoji)): Path<(String, String, String)>,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<String>>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let (m, _, _) = message_in_channel(&state, &channel, &message, user).await?;
    check_emoji(&emoji)?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=100).contains(&limit) {
        return Err(ChatError::bad_request("invalid_limit", "limit is 1-100"));
    }
    let users = state.store.reaction_users(m.id, &emoji, limit).await?;
    Ok(Json(users.iter().map(|u| u.to_string()).collect()))
}

async fn pins(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
) -> Result<Json<Vec<MessageView>>, ChatError> {
    let id = parse_id(&channel, "unknown_channel")?;
    in_channel(&state, id, user).await?;
    let mut pinned = state.store.pins(id).await?;
    let mut out = Vec::with_capacity(pinned.len());
    for m in pinned.iter_mut() {
        let r = state
            .store
            .message_extras(id, std::slice::from_mut(m), user)
            .await?;
        out.push(MessageView::new(
            &state,
            m,
            r.get(&m.id).map_or(&[], |r| r),
            true,
        ));
    }
    Ok(Json(out))
}

async fn set_pin(
    state: ChatState,
    user: UserId,
    channel: String,
    message: String,
    on: bool,
) -> Result<StatusCode, ChatError> {
    let (m, c, p) = message_in_channel(&state, &channel, &message, user).await?;
    // In a DM or group DM everyone in it may pin, as nobody moderates there.
    if !c.is_dm() {
        require(p, Perms::MANAGE_MESSAGES)?;
    }
    if m.pinned_at.is_some() == on {
        return Ok(StatusCode::NO_CONTENT);
    }
    if on && state.store.pin_count(c.id).await? >= MAX_PINS {
        return Err(ChatError::bad_request(
            "too_many_pins",
            format!("a channel has at most {MAX_PINS} pins"),
        ));
    }
    state.store.set_pinned(m.id, on.then(now_ms)).await?;
    state.dispatch(
        channel_audience(&c),
        Dispatch::ChannelPinsUpdate {
            channel_id: c.id,
            message_id: m.id,
            pinned: on,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn pin(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    set_pin(state, user, channel, message, true).await
}

async fn unpin(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    set_pin(state, user, channel, message, false).await
}
