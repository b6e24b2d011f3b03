//! Friends: requests, accepting, declining, removing and blocking (docs/chat-api.md,
//! "Friends"). Friends can message each other without sharing a guild and see each
//! other's presence; a block stops DMs both ways and is never shown to the blocked user.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::error::ChatError;
use crate::model::UserId;
use crate::routes::api::Authed;
use crate::routes::extract::Body;
use crate::routes::guilds::parse_id;
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::service::views::{RelationView, UserView};
use crate::store::relationships::Relation;
use crate::{ChatState, now_ms};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/users/@me/relationships", get(list).post(request))
        .route(
            "/api/v1/users/@me/relationships/{user}",
            put(set).delete(remove),
        )
        .with_state(state)
}

async fn view(
    state: &ChatState,
    other: UserId,
    kind: Relation,
    since: i64,
) -> Result<Option<RelationView>, ChatError> {
    Ok(state.store.user(other).await?.map(|u| RelationView {
        user: UserView::from(&u),
        kind: kind.as_str(),
        since,
    }))
}

/// The caller's relationships, for `GET` and for ready.
pub(crate) async fn relations_of(
    state: &ChatState,
    user: UserId,
) -> Result<Vec<RelationView>, ChatError> {
    let mut out = Vec::new();
    for (other, kind, since) in state.store.relations(user).await? {
        if let Some(v) = view(state, other, kind, since).await? {
            out.push(v);
        }
    }
    Ok(out)
}

async fn list(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<Vec<RelationView>>, ChatError> {
    Ok(Json(relations_of(&state, user).await?))
}

/// Tells `to` what `other` now is to them (`None`: nothing).
async fn tell(
    state: &ChatState,
    to: UserId,
    other: UserId,
    kind: Option<Relation>,
) -> Result<(), ChatError> {
    match kind {
        Some(k) => {
            if let Some(v) = view(state, other, k, now_ms()).await? {
                state.dispatch(Audience::Users(vec![to]), Dispatch::RelationshipUpdate(&v));
            }
        }
        None => state.dispatch(
            Audience::Users(vec![to]),
            Dispatch::RelationshipRemove { user_id: other },
        ),
    }
    Ok(())
}

/// Sets both sides and tells both users.
async fn settle(
    state: &ChatState,
    (a, ka): (UserId, Option<Relation>),
    (b, kb): (UserId, Option<Relation>),
) -> Result<(), ChatError> {
    let now = now_ms();
    let were_friends = state.store.relation(a, b).await? == Some(Relation::Friend);
    state.store.set_relation(a, b, ka, now).await?;
    state.store.set_relation(b, a, kb, now).await?;
    tell(state, a, b, ka).await?;
    tell(state, b, a, kb).await?;
    if were_friends != (ka == Some(Relation::Friend)) {
        // Friends see each other's presence from now on (or no longer).
        crate::service::presence::relations_changed(state, a, b).await;
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct FriendRequest {
    username: String,
}

fn cannot_add() -> ChatError {
    ChatError::new(
        StatusCode::FORBIDDEN,
        "cannot_add_friend",
        "this person is not accepting your friend request",
    )
}

async fn request(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Body(req): Body<FriendRequest>,
) -> Result<(StatusCode, Json<RelationView>), ChatError> {
    let other = state
        .store
        .user_by_username(req.username.trim().trim_start_matches('@'))
        .await?
        .filter(|u| !u.is_bot)
        .ok_or_else(|| {
            ChatError::new(
                StatusCode::NOT_FOUND,
                "unknown_user",
                "no one has that username",
            )
        })?;
    if other.id == user {
        return Err(ChatError::bad_request(
            "invalid_relationship",
            "you cannot befriend yourself",
        ));
    }
    let mine = state.store.relation(user, other.id).await?;
    let theirs = state.store.relation(other.id, user).await?;
    if mine == Some(Relation::Blocked) {
        return Err(ChatError::bad_request(
            "blocked_user",
            "unblock this person first",
        ));
    }
    if theirs == Some(Relation::Blocked) {
        return Err(cannot_add());
    }
    let (kind, status) = match mine {
        Some(Relation::Friend) => (Relation::Friend, StatusCode::OK),
        Some(Relation::Outgoing) => (Relation::Outgoing, StatusCode::OK),
        // They asked first: asking back accepts.
        Some(Relation::Incoming) => {
            settle(
                &state,
                (user, Some(Relation::Friend)),
                (other.id, Some(Relation::Friend)),
            )
            .await?;
            (Relation::Friend, StatusCode::OK)
        }
        _ => {
            settle(
                &state,
                (user, Some(Relation::Outgoing)),
                (other.id, Some(Relation::Incoming)),
            )
            .await?;
            (Relation::Outgoing, StatusCode::CREATED)
        }
    };
    Ok((
        status,
        Json(RelationView {
            user: UserView::from(&other),
            kind: kind.as_str(),
            since: now_ms(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct SetRelation {
    /// `friend` (accept a request) or `blocked`.
    kind: String,
}

async fn set(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(other): Path<String>,
    Body(req): Body<SetRelation>,
) -> Result<StatusCode, ChatError> {
    let other: UserId = parse_id(&other, "unknown_user")?;
    if other == user || state.store.user(other).await?.is_none() {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_user",
            "no such user",
        ));
    }
    let mine = state.store.relation(user, other).await?;
    let theirs = state.store.relation(other, user).await?;
    match req.kind.as_str() {
        "friend" => {
            if mine == Some(Relation::Friend) {
                return Ok(StatusCode::NO_CONTENT);
            }
            if mine != Some(Relation::Incoming) {
                return Err(ChatError::bad_request(
                    "no_friend_request",
                    "accept a request someone sent you; to ask, POST their username",
                ));
            }
            settle(
                &state,
                (user, Some(Relation::Friend)),
                (other, Some(Relation::Friend)),
            )
            .await?;
        }
        "blocked" => {
            // Their side goes, unless they blocked too; a block is never shown to them.
            let theirs_after = if theirs == Some(Relation::Blocked) {
                theirs
            } else {
                None
            };
            settle(
                &state,
                (user, Some(Relation::Blocked)),
                (other, theirs_after),
            )
            .await?;
        }
        _ => {
            return Err(ChatError::bad_request(
                "invalid_relationship",
                "kind is friend (to accept) or blocked",
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(other): Path<String>,
) -> Result<StatusCode, ChatError> {
    let other: UserId = parse_id(&other, "unknown_user")?;
    let mine = state.store.relation(user, other).await?;
    let theirs = state.store.relation(other, user).await?;
    if mine.is_none() {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_relationship",
            "you have no relationship with this user",
        ));
    }
    // Removing a friend, declining or cancelling a request clears both sides; unblocking
    // clears only the caller's. Their own block stays.
    let theirs_after = if theirs == Some(Relation::Blocked) || mine == Some(Relation::Blocked) {
        theirs
    } else {
        None
    };
    settle(&state, (user, None), (other, theirs_after)).await?;
    Ok(StatusCode::NO_CONTENT)
}
