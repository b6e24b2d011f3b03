//! Sign-in with OpenID Connect (docs/chat-api.md, "Sign in with a provider"): the page
//! goes to `start`, the provider sends the browser back to `callback`, and the page, back
//! at `/chat?oidc=done`, collects the result with `complete`. A provider account already
//! linked signs in; a new one gets an account; one whose verified address belongs to an
//! existing account is linked to it only when that account's owner confirms with its
//! password (`link`). Tokens never travel in a URL: the result waits behind a one-time
//! ticket in an HttpOnly cookie.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::error::ChatError;
use crate::model::UserId;
use crate::routes::api::{clean_display_name, hash, issue, verify};
use crate::routes::extract::Body;
use crate::service::auth::{random_token, token_hash};
use crate::service::oidc::{IdClaims, OidcProvider, random};
use crate::store::User;
use crate::store::oidc::{OidcFlow, OidcTicket};
use crate::{ChatState, now_ms};

/// How long a sign-in may take at the provider.
const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the page has to collect the result.
const TICKET_TTL: Duration = Duration::from_secs(5 * 60);
const COOKIE: &str = "parlor_oidc_ticket";
const COOKIE_PATH: &str = "/api/v1/auth/oidc";

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/auth/oidc/providers", get(providers))
        .route("/api/v1/auth/oidc/{provider}/start", get(start))
        .route("/api/v1/auth/oidc/{provider}/callback", get(callback))
        .route("/api/v1/auth/oidc/complete", post(complete))
        .route("/api/v1/auth/oidc/link", post(link))
        .with_state(state)
}

async fn providers(State(state): State<ChatState>) -> Json<Value> {
    Json(Value::Array(
        state
            .oidc
            .providers
            .iter()
            .map(|p| json!({"id": p.id, "name": p.name}))
            .collect(),
    ))
}

fn provider<'a>(state: &'a ChatState, id: &str) -> Result<&'a OidcProvider, ChatError> {
    state.oidc.provider(id).ok_or_else(|| {
        ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_provider",
            "no such sign-in provider",
        )
    })
}

/// `PARLOR_PUBLIC_URL`, or this request's host over http (for one machine).
fn base_url(state: &ChatState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1:8080");
    format!("http://{host}")
}

fn redirect_uri(state: &ChatState, headers: &HeaderMap, provider: &str) -> String {
    format!(
        "{}/api/v1/auth/oidc/{provider}/callback",
        base_url(state, headers)
    )
}

async fn start(
    State(state): State<ChatState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Redirect, ChatError> {
    let p = provider(&state, &id)?;
    let (flow_state, nonce, verifier) = (random(), random(), random());
    state
        .store
        .add_oidc_flow(
            &token_hash(&flow_state),
            &OidcFlow {
                provider: p.id.clone(),
                nonce: nonce.clone(),
                verifier: verifier.clone(),
            },
            now_ms() + FLOW_TTL.as_millis() as i64,
        )
        .await?;
    let url = state
        .oidc
        .authorization_url(
            p,
            &redirect_uri(&state, &headers, &p.id),
            &flow_state,
            &nonce,
            &verifier,
        )
        .await
        .map_err(|e| {
            warn!(error = %e, provider = %p.id, "oidc: starting");
            ChatError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                e.to_string(),
            )
        })?;
    Ok(Redirect::to(&url))
}

#[derive(Debug, Deserialize)]
struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Back to the app, saying what went wrong (a code, never a credential).
fn back_with_error(code: &str) -> Response {
    Redirect::to(&format!("/chat?oidc=error&reason={code}")).into_response()
}

async fn callback(
    State(state): State<ChatState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<CallbackQuery>,
) -> Response {
    match finish(&state, &headers, &id, q).await {
        Ok(ticket) => {
            let secure = if base_url(&state, &headers).starts_with("https://") {
                "; Secure"
            } else {
                ""
            };
            let cookie = format!(
                "{COOKIE}={ticket}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age={}{secure}",
                TICKET_TTL.as_secs()
            );
            let mut r = Redirect::to("/chat?oidc=done").into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Err(code) => back_with_error(code),
    }
}

/// Checks what the provider sent back and decides what the ticket grants.
async fn finish(
    state: &ChatState,
    headers: &HeaderMap,
    id: &str,
    q: CallbackQuery,
) -> Result<String, &'static str> {
    if q.error.is_some() {
        return Err("denied");
    }
    let (Some(code), Some(flow_state)) = (q.code, q.state) else {
        return Err("bad_callback");
    };
    let flow = state
        .store
        .take_oidc_flow(&token_hash(&flow_state), now_ms())
        .await
        .map_err(|_| "unavailable")?
        .filter(|f| f.provider == id)
        .ok_or("expired")?;
    let p = state.oidc.provider(id).ok_or("unknown_provider")?;
    let claims = state
        .oidc
        .finish(
            p,
            &code,
            &redirect_uri(state, headers, id),
            &flow.verifier,
            &flow.nonce,
        )
        .await
        .map_err(|e| {
            warn!(error = %e, provider = %id, "oidc: finishing");
            "provider_error"
        })?;
    let ticket = ticket_for(state, p, &claims).await.map_err(|e| {
        warn!(error = ?e, "oidc: deciding the account");
        "unavailable"
    })?;
    let secret = random_token();
    state
        .store
        .add_oidc_ticket(
            &token_hash(&secret),
            &ticket,
            now_ms() + TICKET_TTL.as_millis() as i64,
        )
        .await
        .map_err(|_| "unavailable")?;
    Ok(secret)
}

async fn ticket_for(
    state: &ChatState,
    p: &OidcProvider,
    c: &IdClaims,
) -> Result<OidcTicket, ChatError> {
    let mut t = OidcTicket {
        user_id: state.store.oidc_user(&p.issuer, &c.sub).await?,
        issuer: p.issuer.clone(),
        subject: c.sub.clone(),
        provider: p.name.clone(),
        email: c.email.clone(),
        name: c.name.clone(),
        username: c.preferred_username.clone(),
        link_user: None,
    };
    if t.user_id.is_none()
        && c.email_is_verified()
        && let Some(e) = &c.email
    {
        t.link_user = state.store.user_by_email(e).await?;
    }
    // Only a verified address is taken for the new account.
    if !c.email_is_verified() {
        t.email = None;
    }
    Ok(t)
}

fn ticket_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            kv.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

fn bad_ticket() -> ChatError {
    ChatError::bad_request(
        "invalid_oidc_ticket",
        "this sign-in has expired or was used; start again",
    )
}

/// Answers with the session and clears the cookie.
async fn signed_in(state: &ChatState, user: UserId) -> Result<Response, ChatError> {
    let u =
        state.store.user(user).await?.ok_or_else(|| {
            ChatError::unauthorized("invalid_token", "the account no longer exists")
        })?;
    let session = issue(state, &u, &random_token()).await?;
    let mut r = Json(json!({"session": session})).into_response();
    let clear = format!("{COOKIE}=; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// The ticket the cookie names (its hash, to spend it later), if unexpired.
async fn ticket(state: &ChatState, headers: &HeaderMap) -> Result<(String, OidcTicket), ChatError> {
    let hash = token_hash(&ticket_of(headers).ok_or_else(bad_ticket)?);
    let t = state
        .store
        .oidc_ticket(&hash, now_ms(), false)
        .await?
        .ok_or_else(bad_ticket)?;
    Ok((hash, t))
}

/// The page collects the result: a session, or the question whether to link.
async fn complete(
    State(state): State<ChatState>,
    headers: HeaderMap,
) -> Result<Response, ChatError> {
    let (hash, t) = ticket(&state, &headers).await?;
    if let Some(user) = t.user_id {
        state.store.oidc_ticket(&hash, now_ms(), true).await?;
        return signed_in(&state, user).await;
    }
    if let Some(existing) = t.link_user {
        let u = state.store.user(existing).await?.ok_or_else(bad_ticket)?;
        return Ok(Json(json!({"link": {
            "provider": t.provider,
            "email": t.email,
            "username": u.username,
        }}))
        .into_response());
    }
    state
        .store
        .oidc_ticket(&hash, now_ms(), true)
        .await
        .map(|_| ())?;
    let user = create_account(&state, &t).await?;
    signed_in(&state, user).await
}

#[derive(Debug, Deserialize)]
struct LinkRequest {
    /// The existing account's password: its owner confirms the link.
    #[serde(default)]
    password: Option<String>,
    /// Or: make a new account instead (without the address, which is taken).
    #[serde(default)]
    create: bool,
}

async fn link(
    State(state): State<ChatState>,
    headers: HeaderMap,
    Body(req): Body<LinkRequest>,
) -> Result<Response, ChatError> {
    let (hash, t) = ticket(&state, &headers).await?;
    let Some(existing) = t.link_user else {
        return Err(bad_ticket());
    };
    if req.create {
        state.store.oidc_ticket(&hash, now_ms(), true).await?;
        let t = OidcTicket { email: None, ..t };
        let user = create_account(&state, &t).await?;
        return signed_in(&state, user).await;
    }
    let u = state.store.user(existing).await?.ok_or_else(bad_ticket)?;
    let password = req.password.unwrap_or_default();
    if !verify(password, u.password_hash).await? {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the password is wrong",
        ));
    }
    state.store.oidc_ticket(&hash, now_ms(), true).await?;
    state
        .store
        .link_oidc(&t.issuer, &t.subject, existing, now_ms())
        .await?;
    signed_in(&state, existing).await
}

/// A username from what the provider says, made valid and free.
async fn free_username(state: &ChatState, t: &OidcTicket) -> Result<String, ChatError> {
    let seed = t
        .username
        .clone()
        .or_else(|| {
            t.email
                .as_ref()
                .and_then(|e| e.split('@').next().map(str::to_owned))
        })
        .or_else(|| t.name.clone())
        .unwrap_or_else(|| "user".into());
    let mut base: String = seed
        .chars()
        .filter_map(|c| {
            let c = c.to_ascii_lowercase();
            (c.is_ascii_alphanumeric() || c == '_' || c == '.').then_some(c)
        })
        .take(24)
        .collect();
    if base.len() < 2 {
        base = format!("user{base}");
    }
    if state.store.user_by_username(&base).await?.is_none() {
        return Ok(base);
    }
    for _ in 0..8 {
        let n = rand::random::<u32>() % 100_000;
        let candidate = format!("{base}{n}");
        if state.store.user_by_username(&candidate).await?.is_none() {
            return Ok(candidate);
        }
    }
    Err(ChatError::Internal("no free username".into()))
}

async fn create_account(state: &ChatState, t: &OidcTicket) -> Result<UserId, ChatError> {
    let username = free_username(state, t).await?;
    let display_name = clean_display_name(t.name.as_deref().unwrap_or(&username))
        .or_else(|_| clean_display_name(&username))?;
    let user = User {
        id: state.ids.next(),
        username,
        display_name,
        avatar: None,
        is_bot: false,
        // No password: the account signs in through its provider (or a reset by e-mail).
        password_hash: hash(random_token()).await?,
        login_allowlist: Vec::new(),
        created_at: now_ms(),
    };
    state.store.create_user(&user).await?;
    state
        .store
        .link_oidc(&t.issuer, &t.subject, user.id, now_ms())
        .await?;
    if let Some(e) = &t.email
        && let Err(err) = state.store.set_email(user.id, e, Some(now_ms())).await
    {
        warn!(error = %err, "oidc: keeping the address");
    }
    Ok(user.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ticket_comes_from_the_cookie_only() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; parlor_oidc_ticket=abc; b=2"),
        );
        assert_eq!(ticket_of(&h).as_deref(), Some("abc"));
        assert_eq!(ticket_of(&HeaderMap::new()), None);
    }
}
