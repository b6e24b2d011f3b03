//! Messages under `/api/v1/channels/{id}`: send (with replies and mentions), history,
//! edit, delete and typing (reactions and pins: `routes/reactions.rs`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::perms::Perms;
use crate::model::{Mention, MessageId, UserId};
use crate::routes::api::{Authed, Body};
use crate::routes::attachments::MAX_PER_MESSAGE;
use crate::routes::guilds::{channel_audience, in_channel, parse_id, require, send_permission};
use crate::service::dispatch::Dispatch;
use crate::service::messages::{check_content, create};
use crate::service::views::{ChannelView, MessageView};
use crate::store::guilds::{Channel, Cursor, Message};
use crate::{ChatState, now_ms, routes::reads, service::mentions};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/channels/{channel}/messages",
            get(history).post(send_message),
        )
        .route(
            "/api/v1/channels/{channel}/messages/{message}",
            patch(edit_message).delete(delete_message),
        )
        .route("/api/v1/channels/{channel}/typing", post(typing))
        .with_state(state)
}

/// Resolves the mentions in `content` against the guild: members, roles and channels
/// that exist. `@everyone` and `@here` count only with the mention-everyone permission.
async fn resolve_mentions(
    state: &ChatState,
    c: &Channel,
    author: UserId,
    content: &str,
    perms: Perms,
) -> Result<(Vec<Mention>, bool), ChatError> {
    let found = mentions::parse(content);
    let mut out: Vec<Mention> = Vec::new();
    // Every user mention, by id or by name, resolves in one query.
    let guild = (!c.is_dm()).then_some(c.guild_id);
    let users = state
        .store
        .users_named(guild, &found.user_ids, &found.names)
        .await?;
    let by_name = |name: &str| {
        let name = name.to_lowercase();
        users.iter().find(|(_, n)| *n == name).map(|(id, _)| *id)
    };
    let known = |id: UserId| users.iter().any(|(u, _)| *u == id);
    if c.is_dm() {
        // Only the people in the DM can be mentioned there.
        for uid in &found.user_ids {
            if c.recipients.contains(uid) && !out.contains(&Mention::User(*uid)) {
                out.push(Mention::User(*uid));
            }
        }
        for name in &found.names {
            if let Some(id) = by_name(name)
                && c.recipients.contains(&id)
                && !out.contains(&Mention::User(id))
            {
                out.push(Mention::User(id));
            }
        }
        return Ok((out, false));
    }
    let mut add = |mention: Mention| {
        if !out.contains(&mention) {
            out.push(mention);
        }
    };
    let roles = if found.role_ids.is_empty() && found.names.is_empty() {
        Vec::new()
    } else {
        state.store.roles(c.guild_id).await?
    };
    for uid in &found.user_ids {
        if known(*uid) {
            add(Mention::User(*uid));
        }
    }
    for name in &found.names {
        if let Some(r) = roles
            .iter()
            .find(|r| r.id != c.guild_id.everyone_role() && r.name == *name)
        {
            add(Mention::Role(r.id));
        } else if let Some(id) = by_name(name) {
            add(Mention::User(id));
        }
    }
    for rid in &found.role_ids {
        if roles
            .iter()
            .any(|r| r.id == *rid && r.id != c.guild_id.everyone_role())
        {
            add(Mention::Role(*rid));
        }
    }
    if !found.channel_ids.is_empty() || !found.channel_names.is_empty() {
        // Only channels the author can see: a mention must not reveal a hidden one.
        let access = state.store.guild_access(c.guild_id).await?;
        let seen = access
            .as_ref()
            .and_then(|a| a.visible(author))
            .unwrap_or_default();
        let channels = access
            .iter()
            .flat_map(|a| a.channels.iter().map(|(ch, _)| ch));
        for ch in channels {
            if ch.kind != ChannelKind::Category
                && seen.contains(&ch.id)
                && (found.channel_ids.contains(&ch.id) || found.channel_names.contains(&ch.name))
            {
                add(Mention::Channel(ch.id));
            }
        }
    }
    let everyone = (found.everyone || found.here) && perms.contains(Perms::MENTION_EVERYONE);
    Ok((out, everyone))
}

fn invalid_attachment() -> ChatError {
    ChatError::bad_request(
        "invalid_attachment",
        "attachments must be your own unused uploads to this channel",
    )
}

/// The uploads a new message may carry.
async fn claimable(
    state: &ChatState,
    c: &Channel,
    user: UserId,
    ids: &[String],
) -> Result<Vec<crate::routes::attachments::Attachment>, ChatError> {
    if ids.len() > MAX_PER_MESSAGE {
        return Err(ChatError::bad_request(
            "too_many_attachments",
            format!("at most {MAX_PER_MESSAGE} attachments per message"),
        ));
    }
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let aid = id.parse::<i64>().map_err(|_| invalid_attachment())?;
        let a = state
            .store
            .attachment(aid)
            .await?
            .filter(|a| a.uploader_id == user && a.channel_id == c.id && a.message_id.is_none())
            .ok_or_else(invalid_attachment)?;
        if out
            .iter()
            .any(|o: &crate::routes::attachments::Attachment| o.id == a.id)
        {
            return Err(invalid_attachment());
        }
        out.push(a);
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
struct NewMessage {
    #[serde(default)]
    content: String,
    #[serde(default)]
    reply_to: Option<String>,
    /// Ids of the caller's uploads to this channel.
    #[serde(default)]
    attachments: Vec<String>,
}

async fn send_message(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    Body(req): Body<NewMessage>,
) -> Result<axum::response::Response, ChatError> {
    use axum::response::IntoResponse;
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    if !c.kind.has_messages() {
        return Err(ChatError::bad_request(
            "not_a_text_channel",
            "messages go in text channels, threads and DMs",
        ));
    }
    require(p, send_permission(&c))?;
    // A block on either side stops a one-to-one DM.
    if c.kind == crate::model::ChannelKind::Dm
        && let Some(other) = c.recipients.iter().find(|r| **r != user)
        && state.store.blocked_between(user, *other).await?
    {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_reachable",
            "this message could not be delivered",
        ));
    }
    // `/command args` for a bot in this guild starts an interaction instead.
    if req.attachments.is_empty()
        && let Some(interaction) =
            crate::routes::bots::invoke(&state, &c, user, &req.content).await?
    {
        return Ok((
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"interaction": interaction})),
        )
            .into_response());
    }
    let files = claimable(&state, &c, user, &req.attachments).await?;
    if files.is_empty() || !req.content.is_empty() {
        check_content(&req.content)?;
    }
    let reply_to = match &req.reply_to {
        Some(r) => {
            let rid = parse_id(r, "unknown_message")?;
            state.store.message(id, rid).await?.ok_or_else(|| {
                ChatError::bad_request(
                    "unknown_message",
                    "the replied message is not in this channel",
                )
            })?;
            Some(rid)
        }
        None => None,
    };
    let (mentions, mention_everyone) = resolve_mentions(&state, &c, user, &req.content, p).await?;
    let (m, view) = create(
        &state,
        &c,
        Message {
            author_id: user,
            content: req.content,
            reply_to,
            mention_everyone,
            mentions,
            attachments: files,
            ..Message::default()
        },
    )
    .await
    .map_err(|e| match e {
        crate::store::StoreError::Conflict => invalid_attachment(),
        e => e.into(),
    })?;
    if c.kind == ChannelKind::Thread && c.archived {
        // A new message brings an archived thread back.
        let mut open = c.clone();
        open.archived = false;
        state.store.update_channel(&open).await?;
        state.dispatch(
            channel_audience(&open),
            Dispatch::ChannelUpdate(&ChannelView::from(&open)),
        );
    }
    // The message is stored and sent: a failure here must not make the client retry it.
    if let Err(e) = crate::routes::notify::notify(&state, &c, &m, &view).await {
        tracing::error!(error = ?e, message = m.id.0, "notifying failed");
    }
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    after: Option<String>,
    around: Option<String>,
    limit: Option<i64>,
}

async fn history(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<MessageView>>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, _) = in_channel(&state, id, user).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ChatError::bad_request("invalid_limit", "limit is 1-100"));
    }
    let cursor_id = |s: &str| {
        s.parse::<MessageId>()
            .map_err(|_| ChatError::bad_request("invalid_cursor", "cursors are message ids"))
    };
    let cursor = match (&q.before, &q.after, &q.around) {
        (None, None, None) => Cursor::Latest,
        (Some(b), None, None) => Cursor::Before(cursor_id(b)?),
        (None, Some(a), None) => Cursor::After(cursor_id(a)?),
        (None, None, Some(a)) => Cursor::Around(cursor_id(a)?),
        _ => {
            return Err(ChatError::bad_request(
                "invalid_cursor",
                "use one of before, after and around",
            ));
        }
    };
    let mut page = state
        .metrics
        .db("messages", state.store.history(id, cursor, limit))
        .await?;
    let reactions = state.store.message_extras(id, &mut page, user).await?;
    let mut views: Vec<MessageView> = page
        .iter()
        .map(|m| MessageView::new(&state, m, reactions.get(&m.id).map_or(&[], |r| r), true))
        .collect();
    reads::unread_by(&state, &c, &mut views, &page).await?;
    Ok(Json(views))
}

/// A message the caller can see, with its channel and the caller's permissions there.
pub(crate) async fn message_in_channel(
    state: &ChatState,
    channel: &str,
    message: &str,
    user: UserId,
) -> Result<(Message, Channel, Perms), ChatError> {
    let cid = parse_id(channel, "unknown_channel")?;
    let mid = parse_id(message, "unknown_message")?;
    let (c, p) = in_channel(state, cid, user).await?;
    let m = state.store.message(cid, mid).await?.ok_or_else(|| {
        ChatError::new(StatusCode::NOT_FOUND, "unknown_message", "no such message")
    })?;
    Ok((m, c, p))
}

#[derive(Debug, Deserialize)]
struct EditMessage {
    content: String,
}

async fn edit_message(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
    Body(req): Body<EditMessage>,
) -> Result<Json<MessageView>, ChatError> {
    let (mut m, c, p) = message_in_channel(&state, &channel, &message, user).await?;
    if m.author_id != user {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "not_author",
            "only the author can edit a message",
        ));
    }
    check_content(&req.content)?;
    let (mentions, mention_everyone) = resolve_mentions(&state, &c, user, &req.content, p).await?;
    m.content = req.content;
    m.edited_at = Some(now_ms());
    m.mentions = mentions;
    m.mention_everyone = mention_everyone;
    state.store.edit_message(&m).await?;
    let reactions = state
        .store
        .message_extras(c.id, std::slice::from_mut(&mut m), user)
        .await?;
    let r = reactions.get(&m.id).map_or(&[][..], |r| r);
    state.dispatch(
        channel_audience(&c),
        Dispatch::MessageUpdate(&MessageView::new(&state, &m, r, false)),
    );
    Ok(Json(MessageView::new(&state, &m, r, true)))
}

async fn delete_message(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let (m, c, p) = message_in_channel(&state, &channel, &message, user).await?;
    if m.author_id != user {
        require(p, Perms::MANAGE_MESSAGES)?;
    }
    let mut with_files = vec![m.clone()];
    state
        .store
        .message_extras(c.id, &mut with_files, user)
        .await?;
    state.store.delete_message(m.id).await?;
    if let Some(blobs) = &state.blobs {
        for a in &with_files[0].attachments {
            blobs.delete(a.id).await;
        }
    }
    state.dispatch(
        channel_audience(&c),
        Dispatch::MessageDelete {
            id: m.id,
            channel_id: c.id,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

/// How long a typing indicator lasts unless renewed.
pub const TYPING_MS: i64 = 10_000;

async fn typing(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
) -> Result<StatusCode, ChatError> {
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, p) = in_channel(&state, id, user).await?;
    require(p, send_permission(&c))?;
    let now = now_ms();
    state.dispatch(
        channel_audience(&c),
        Dispatch::TypingStart {
            channel_id: c.id,
            user_id: user,
            timestamp: now,
            expires_at: now + TYPING_MS,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}
