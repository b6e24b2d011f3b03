//! What requests carry, turned into types before a handler sees them: JSON bodies with
//! API errors, partial updates, the caller behind a token (with the per-user limit), and
//! the client's address behind trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};

use crate::ChatState;
use crate::error::ChatError;
use crate::model::UserId;
use crate::service::auth;

/// Largest JSON body accepted by these routes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON body whose rejection is a proper API error.
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S> for Body<T> {
    type Rejection = ChatError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ChatError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(JsonRejection::BytesRejection(_)) => Err(ChatError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
            )),
            Err(e) => Err(ChatError::bad_request("invalid_json", e.body_text())),
        }
    }
}

/// A field of a partial update (`PATCH`, `PUT` of settings): left out, `null`, or a
/// value. Left out keeps what is stored; `null` clears or resets it. A plain `Option`
/// cannot tell the first two apart, so every nullable field of an update is a `Patch`,
/// declared with `#[serde(default)]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    #[default]
    Absent,
    Null,
    Value(T),
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Patch<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Only called for a field that is present.
        Option::<T>::deserialize(d).map(|v| v.map_or(Patch::Null, Patch::Value))
    }
}

impl<T> Patch<T> {
    /// `None`: leave it; `Some(None)`: clear it; `Some(Some(v))`: set it.
    pub fn into_update(self) -> Option<Option<T>> {
        match self {
            Patch::Absent => None,
            Patch::Null => Some(None),
            Patch::Value(v) => Some(Some(v)),
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Patch::Absent)
    }
}

/// An optional JSON body: `None` when the request has no body at all.
#[derive(Debug)]
pub struct MaybeBody<T>(pub Option<T>);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequest<S>
    for MaybeBody<T>
{
    type Rejection = ChatError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ChatError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|_| {
                ChatError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("bodies are limited to {MAX_BODY_BYTES} bytes"),
                )
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeBody(None));
        }
        serde_json::from_slice(&bytes)
            .map(|v| MaybeBody(Some(v)))
            .map_err(|e| ChatError::bad_request("invalid_json", e.to_string()))
    }
}

/// Who a request speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// The sign-in session of a user's access token; `None` for a bot token.
    pub session: Option<String>,
}

impl Caller {
    pub fn is_bot(&self) -> bool {
        self.session.is_none()
    }
}

/// The account behind `Bearer <access token>` or `Bot <bot token>`. An access token of a
/// session that ended is refused (`401 session_ended`) however long it has left.
pub async fn authenticate(state: &ChatState, header: &str) -> Result<Caller, ChatError> {
    if let Some(t) = header.strip_prefix("Bot ") {
        let user_id = state
            .store
            .bot_by_token(&auth::token_hash(t.trim()))
            .await?
            .ok_or_else(|| {
                ChatError::unauthorized("invalid_token", "the bot token is not valid")
            })?;
        return Ok(Caller {
            user_id,
            session: None,
        });
    }
    let t = header.strip_prefix("Bearer ").ok_or_else(|| {
        ChatError::unauthorized(
            "missing_token",
            "Authorization: Bearer <access token> or Bot <bot token>",
        )
    })?;
    let token = state
        .keys
        .verify(t.trim())
        .map_err(|code| ChatError::unauthorized(code, "the access token is not valid"))?;
    if state.ended.is_ended(&token.session) {
        return Err(ChatError::unauthorized(
            "session_ended",
            "this session was signed out; sign in again",
        ));
    }
    Ok(Caller {
        user_id: token.user_id,
        session: Some(token.session),
    })
}

/// Authenticates a request and applies the per-user per-route limit.
async fn caller(parts: &Parts, state: &ChatState) -> Result<Caller, ChatError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ChatError::unauthorized(
                "missing_token",
                "Authorization: Bearer <access token> or Bot <bot token>",
            )
        })?;
    let caller = authenticate(state, header).await?;
    // Per user per route (method and path template).
    if let Some(limiter) = &state.user_limit {
        let route = parts
            .extensions
            .get::<axum::extract::MatchedPath>()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        let key = (caller.user_id, format!("{} {route}", parts.method));
        limiter
            .check(&key)
            .map_err(|retry_after| ChatError::RateLimited { retry_after })?;
    }
    Ok(caller)
}

/// The signed-in account, user or bot, from `Authorization: Bearer <access token>` or
/// `Bot <bot token>`.
#[derive(Debug)]
pub struct Authed(pub UserId);

impl FromRequestParts<ChatState> for Authed {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, state: &ChatState) -> Result<Self, ChatError> {
        Ok(Authed(caller(parts, state).await?.user_id))
    }
}

/// A signed-in user account; a bot token is refused (`403 bots_not_allowed`). For what
/// only people may do, such as creating applications: a bot that could would mint
/// accounts past the sign-up limits.
#[derive(Debug)]
pub struct UserAuthed(pub UserId);

impl FromRequestParts<ChatState> for UserAuthed {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, state: &ChatState) -> Result<Self, ChatError> {
        let c = caller(parts, state).await?;
        if c.is_bot() {
            return Err(ChatError::new(
                StatusCode::FORBIDDEN,
                "bots_not_allowed",
                "only user accounts may do this",
            ));
        }
        Ok(UserAuthed(c.user_id))
    }
}

/// The client's address: the TCP peer, or, when the peer is a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not one of the trusted proxies.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<ChatState> for ClientIp {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, state: &ChatState) -> Result<Self, ChatError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ChatError::Internal("no peer address".into()))?;
        let trusted = &state.config.trusted_proxies;
        let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
        if !is_trusted(peer) {
            return Ok(ClientIp(peer));
        }
        let forwarded: Vec<IpAddr> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        Ok(ClientIp(
            forwarded
                .into_iter()
                .rev()
                .find(|ip| !is_trusted(*ip))
                .unwrap_or(peer),
        ))
    }
}
