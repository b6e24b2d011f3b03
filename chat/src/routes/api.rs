//! REST routes under `/api/v1`: accounts and sessions.

use std::net::IpAddr;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::ChatError;
use crate::model::UserId;
pub use crate::routes::extract::{
    Authed, Body, Caller, ClientIp, MAX_BODY_BYTES, MaybeBody, Patch, UserAuthed, authenticate,
};
use crate::service::auth::{self, Cidr};
pub use crate::service::views::UserView;
use crate::store::{RefreshUse, User};
use crate::{ChatState, now_ms};

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/users/@me", get(me).patch(update_me))
        .route("/api/v1/users/@me/password", post(change_password))
        .route(
            "/api/v1/users/@me/login-allowlist",
            put(set_allowlist).get(get_allowlist),
        )
        .route("/api/v1/users/@me/login-refusals", get(login_refusals))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

pub(crate) fn limit_auth(state: &ChatState, ip: IpAddr) -> Result<(), ChatError> {
    match &state.auth_limit {
        Some(l) => l
            .check(&ip)
            .map_err(|retry_after| ChatError::RateLimited { retry_after }),
        None => Ok(()),
    }
}

#[derive(Debug, Serialize)]
pub struct Session {
    pub user: UserView,
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Deserialize)]
pub struct Register {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    /// For password resets; optional.
    #[serde(default)]
    pub email: Option<String>,
}

fn check_username(u: &str) -> Result<(), ChatError> {
    let ok = (2..=32).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
    ok.then_some(()).ok_or_else(|| {
        ChatError::bad_request(
            "invalid_username",
            "usernames are 2-32 letters, digits, '_' and '.'",
        )
    })
}

pub(crate) fn check_password(p: &str) -> Result<(), ChatError> {
    ((8..=256).contains(&p.chars().count()))
        .then_some(())
        .ok_or_else(|| ChatError::bad_request("invalid_password", "passwords are 8-256 characters"))
}

pub(crate) fn clean_display_name(n: &str) -> Result<String, ChatError> {
    let n: String = n.trim().chars().filter(|c| !c.is_control()).collect();
    if n.is_empty() || n.chars().count() > 64 {
        return Err(ChatError::bad_request(
            "invalid_display_name",
            "display names are 1-64 characters",
        ));
    }
    Ok(n)
}

/// Argon2 runs one hash per core at a time: each takes ~19 MiB and a core for tens of
/// milliseconds, and a burst of sign-ups must not grow the process by a hash per request.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

pub(crate) async fn hash(password: String) -> Result<String, ChatError> {
    let _permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?;
    // Argon2 is deliberately slow: keep it off the async workers.
    tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?
        .map_err(ChatError::Internal)
}

pub(crate) async fn verify(password: String, hash: String) -> Result<bool, ChatError> {
    let _permit = argon2_permits()
        .acquire()
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
        .await
        .map_err(|e| ChatError::Internal(e.to_string()))
}

/// Issues an access token and a refresh token in `family` (a new family per login).
pub(crate) async fn issue(
    state: &ChatState,
    user: &User,
    family: &str,
) -> Result<Session, ChatError> {
    let refresh = auth::random_token();
    let expires = now_ms() + state.config.refresh_ttl.as_millis() as i64;
    state
        .store
        .insert_refresh(&auth::token_hash(&refresh), user.id, family, expires)
        .await?;
    let ttl = state.config.access_ttl.as_secs();
    Ok(Session {
        user: user.into(),
        access_token: state.keys.issue(user.id, family, ttl),
        refresh_token: refresh,
        expires_in: ttl,
    })
}

async fn register(
    State(state): State<ChatState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<Register>,
) -> Result<(StatusCode, Json<Session>), ChatError> {
    limit_auth(&state, ip)?;
    check_username(&req.username)?;
    check_password(&req.password)?;
    let display_name = clean_display_name(req.display_name.as_deref().unwrap_or(&req.username))?;
    let email = match req
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        Some(e) => Some(clean_email(e)?),
        None => None,
    };
    if let Some(e) = &email
        && state.store.user_by_email(e).await?.is_some()
    {
        return Err(ChatError::new(
            StatusCode::CONFLICT,
            "email_taken",
            "another account has that address",
        ));
    }
    let user = User {
        id: state.ids.next(),
        username: req.username,
        display_name,
        avatar: None,
        is_bot: false,
        password_hash: hash(req.password).await?,
        login_allowlist: Vec::new(),
        created_at: now_ms(),
    };
    state.store.create_user(&user).await.map_err(|e| match e {
        crate::store::StoreError::Conflict => ChatError::new(
            StatusCode::CONFLICT,
            "username_taken",
            "that username is taken",
        ),
        e => e.into(),
    })?;
    if let Some(e) = &email
        && let Err(err) = state.store.set_email(user.id, e, None).await
    {
        // Taken meanwhile by another sign-up: the account stands without it, and the
        // address can be set later.
        tracing::warn!(error = %err, "registering an address");
    }
    let session = issue(&state, &user, &auth::random_token()).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

#[derive(Debug, Deserialize)]
pub struct Login {
    pub username: String,
    pub password: String,
}

async fn login(
    State(state): State<ChatState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<Login>,
) -> Result<Json<Session>, ChatError> {
    limit_auth(&state, ip)?;
    let bad = || ChatError::unauthorized("invalid_credentials", "wrong username or password");
    let Some(user) = state.store.user_by_username(&req.username).await? else {
        // Spend the same time as a real check, so timing does not reveal usernames.
        let _ = verify(req.password, DUMMY_HASH.into()).await;
        return Err(bad());
    };
    if user.is_bot || !verify(req.password, user.password_hash.clone()).await? {
        return Err(bad());
    }
    if !user.login_allowlist.is_empty()
        && !user
            .login_allowlist
            .iter()
            .filter_map(|e| Cidr::parse(e))
            .any(|c| c.contains(ip))
    {
        state
            .store
            .record_login_refusal(user.id, &ip.to_string(), "ip_not_allowed")
            .await?;
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "ip_not_allowed",
            format!("this account does not allow logins from {ip}"),
        ));
    }
    Ok(Json(issue(&state, &user, &auth::random_token()).await?))
}

/// An argon2id hash of a random password, verified against when a username is unknown.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2KMdJ2Fma0fIMjlCS7dO0i4fANWfg4Rr0AkXg9J+pIg";

#[derive(Debug, Deserialize)]
pub struct RefreshReq {
    pub refresh_token: String,
}

async fn refresh(
    State(state): State<ChatState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<RefreshReq>,
) -> Result<Json<Session>, ChatError> {
    limit_auth(&state, ip)?;
    let invalid = || ChatError::unauthorized("invalid_refresh_token", "sign in again");
    match state
        .store
        .use_refresh(&auth::token_hash(&req.refresh_token))
        .await?
    {
        None => Err(invalid()),
        Some(RefreshUse::Replayed { user_id, family }) => {
            // A spent token came back: it was stolen or copied. End that whole session,
            // its access tokens included.
            crate::service::sessions::end(&state, user_id, &family).await?;
            Err(invalid())
        }
        Some(RefreshUse::Fresh {
            user_id,
            family,
            expires_at,
        }) => {
            if expires_at < now_ms() {
                return Err(invalid());
            }
            let user = state.store.user(user_id).await?.ok_or_else(invalid)?;
            Ok(Json(issue(&state, &user, &family).await?))
        }
    }
}

async fn logout(
    State(state): State<ChatState>,
    Body(req): Body<RefreshReq>,
) -> Result<StatusCode, ChatError> {
    let (user_id, family) = match state
        .store
        .use_refresh(&auth::token_hash(&req.refresh_token))
        .await?
    {
        Some(
            RefreshUse::Fresh {
                user_id, family, ..
            }
            | RefreshUse::Replayed { user_id, family },
        ) => (user_id, family),
        None => return Ok(StatusCode::NO_CONTENT),
    };
    crate::service::sessions::end(&state, user_id, &family).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn load_user(state: &ChatState, id: UserId) -> Result<User, ChatError> {
    state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ChatError::unauthorized("invalid_token", "the account no longer exists"))
}

async fn me(
    State(state): State<ChatState>,
    Authed(id): Authed,
) -> Result<Json<UserView>, ChatError> {
    Ok(Json((&load_user(&state, id).await?).into()))
}

#[derive(Debug, Deserialize)]
pub struct ProfileUpdate {
    #[serde(default)]
    pub display_name: Option<String>,
    /// An image URL; `null` clears it.
    #[serde(default)]
    pub avatar: Patch<String>,
}

async fn update_me(
    State(state): State<ChatState>,
    Authed(id): Authed,
    Body(req): Body<ProfileUpdate>,
) -> Result<Json<UserView>, ChatError> {
    let mut user = load_user(&state, id).await?;
    if let Some(n) = &req.display_name {
        user.display_name = clean_display_name(n)?;
    }
    if let Some(avatar) = req.avatar.into_update() {
        // Uploaded avatars are set by `PUT /users/@me/avatar` only: a hand-written
        // `/api/v1/avatars/...` URL could name any stored file.
        if let Some(a) = &avatar
            && (a.len() > 2048
                || !(a.starts_with("https://") || a.starts_with('/'))
                || a.starts_with("/api/v1/avatars/")
                || a.starts_with("//"))
        {
            return Err(ChatError::bad_request(
                "invalid_avatar",
                "avatar must be an https:// or site-relative URL of at most 2048 bytes; \
                 upload images with PUT /api/v1/users/@me/avatar",
            ));
        }
        user.avatar = avatar;
    }
    state
        .store
        .set_profile(id, &user.display_name, user.avatar.as_deref())
        .await?;
    Ok(Json((&user).into()))
}

#[derive(Debug, Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

async fn change_password(
    State(state): State<ChatState>,
    Authed(id): Authed,
    Body(req): Body<PasswordChange>,
) -> Result<StatusCode, ChatError> {
    let user = load_user(&state, id).await?;
    if !verify(req.current_password, user.password_hash).await? {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    check_password(&req.new_password)?;
    state
        .store
        .set_password(id, &hash(req.new_password).await?)
        .await?;
    // Every session signed in with the old password ends, this one included.
    crate::service::sessions::end_all(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Allowlist {
    /// Addresses or CIDR blocks; empty allows every address.
    pub entries: Vec<String>,
}

async fn set_allowlist(
    State(state): State<ChatState>,
    Authed(id): Authed,
    Body(req): Body<Allowlist>,
) -> Result<Json<Allowlist>, ChatError> {
    if req.entries.len() > 64 {
        return Err(ChatError::bad_request(
            "invalid_allowlist",
            "at most 64 entries",
        ));
    }
    if let Some(bad) = req.entries.iter().find(|e| Cidr::parse(e).is_none()) {
        return Err(ChatError::bad_request(
            "invalid_allowlist",
            format!("{bad:?} is not an IP address or CIDR block"),
        ));
    }
    let entries: Vec<String> = req.entries.iter().map(|e| e.trim().to_owned()).collect();
    state.store.set_login_allowlist(id, &entries).await?;
    Ok(Json(Allowlist { entries }))
}

async fn get_allowlist(
    State(state): State<ChatState>,
    Authed(id): Authed,
) -> Result<Json<Allowlist>, ChatError> {
    Ok(Json(Allowlist {
        entries: load_user(&state, id).await?.login_allowlist,
    }))
}

#[derive(Debug, Serialize)]
pub struct Refusal {
    pub ip: String,
    pub reason: String,
    pub at: i64,
}

async fn login_refusals(
    State(state): State<ChatState>,
    Authed(id): Authed,
) -> Result<Json<Vec<Refusal>>, ChatError> {
    Ok(Json(
        state
            .store
            .login_refusals(id)
            .await?
            .into_iter()
            .map(|(ip, reason, at)| Refusal { ip, reason, at })
            .collect(),
    ))
}

/// An address as typed, checked for the shape `local@domain`.
pub(crate) fn clean_email(e: &str) -> Result<String, ChatError> {
    let e = e.trim();
    let ok = e.len() <= 254
        && e.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '<' || c == '>');
    if ok {
        Ok(e.to_owned())
    } else {
        Err(ChatError::bad_request(
            "invalid_email",
            "that is not an e-mail address",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked() {
        assert_eq!(clean_email(" ann@example.com ").unwrap(), "ann@example.com");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.com",
            "ann@localhost",
            "a b@example.com",
            "<a@b.c>",
        ] {
            assert!(clean_email(bad).is_err(), "{bad:?}");
        }
    }
}
