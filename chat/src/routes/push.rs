//! Web Push subscriptions: the server's VAPID key, and a browser's subscription kept or
//! forgotten (docs/chat-api.md, "Web Push").

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ChatError;
use crate::routes::extract::Body;
use crate::routes::extract::UserAuthed;
use crate::{ChatState, now_ms};

/// The longest endpoint URL accepted.
const MAX_ENDPOINT: usize = 2048;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/push/vapid-public-key", get(vapid_key))
        .route(
            "/api/v1/users/@me/push-subscriptions",
            get(list).post(subscribe).delete(unsubscribe),
        )
        .with_state(state)
}

fn unavailable() -> ChatError {
    ChatError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "push_unavailable",
        "this server cannot send Web Push messages",
    )
}

async fn vapid_key(State(state): State<ChatState>) -> Result<Json<Value>, ChatError> {
    let key = state.push_key.as_ref().ok_or_else(unavailable)?;
    Ok(Json(json!({"public_key": key.public_key()})))
}

#[derive(Debug, Deserialize)]
struct Keys {
    p256dh: String,
    auth: String,
}

/// A `PushSubscription` as the browser's `toJSON()` gives it.
#[derive(Debug, Deserialize)]
struct Subscription {
    endpoint: String,
    keys: Keys,
}

#[derive(Debug, Deserialize)]
struct Endpoint {
    endpoint: String,
}

fn invalid(message: &str) -> ChatError {
    ChatError::bad_request("invalid_subscription", message)
}

async fn subscribe(
    State(state): State<ChatState>,
    UserAuthed(user): UserAuthed,
    Body(s): Body<Subscription>,
) -> Result<(StatusCode, Json<Value>), ChatError> {
    state.push_key.as_ref().ok_or_else(unavailable)?;
    let url = reqwest::Url::parse(&s.endpoint).map_err(|_| invalid("endpoint is not a URL"))?;
    if !matches!(url.scheme(), "https" | "http") || s.endpoint.len() > MAX_ENDPOINT {
        return Err(invalid(
            "endpoint is an http(s) URL of at most 2048 characters",
        ));
    }
    let p256dh = B64
        .decode(s.keys.p256dh.trim_end_matches('='))
        .ok()
        .filter(|k| k.len() == 65 && k[0] == 4)
        .ok_or_else(|| invalid("keys.p256dh is an uncompressed P-256 point, base64url"))?;
    let auth = B64
        .decode(s.keys.auth.trim_end_matches('='))
        .ok()
        .filter(|k| k.len() == 16)
        .ok_or_else(|| invalid("keys.auth is 16 bytes, base64url"))?;
    state
        .store
        .put_push_subscription(user, &s.endpoint, &p256dh, &auth, now_ms())
        .await?;
    Ok((StatusCode::CREATED, Json(json!({"endpoint": s.endpoint}))))
}

/// The user's subscribed devices: `[{"endpoint", "created_at"}]`.
async fn list(
    State(state): State<ChatState>,
    UserAuthed(user): UserAuthed,
) -> Result<Json<Value>, ChatError> {
    let subs = state.store.push_subscriptions(user).await?;
    Ok(Json(Value::Array(
        subs.iter()
            .map(|s| json!({"endpoint": s.endpoint, "created_at": s.created_at}))
            .collect(),
    )))
}

async fn unsubscribe(
    State(state): State<ChatState>,
    UserAuthed(user): UserAuthed,
    Body(e): Body<Endpoint>,
) -> Result<StatusCode, ChatError> {
    if state
        .store
        .delete_push_subscription_of(user, &e.endpoint)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_subscription",
            "no such subscription of yours",
        ))
    }
}
