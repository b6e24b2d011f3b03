//! Getting back into an account: its e-mail address, and a password reset by a code sent
//! there through the SMTP relay (docs/chat-api.md, "Password reset"). The answers never say
//! whether an address has an account, and both steps are rate-limited.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::warn;

use crate::error::ChatError;
use crate::routes::api::{Authed, check_password, clean_email, hash, limit_auth, verify};
use crate::routes::extract::{Body, ClientIp};
use crate::service::auth::token_hash;
use crate::{ChatState, now_ms};

/// How long a reset code works.
pub const RESET_CODE_TTL: Duration = Duration::from_secs(15 * 60);
/// Letters and digits that cannot be mistaken for one another.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
const CODE_LEN: usize = 10;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/users/@me/email", get(get_email).put(set_email))
        .route("/api/v1/auth/password-reset", post(request_reset))
        .route("/api/v1/auth/password-reset/confirm", post(confirm_reset))
        .with_state(state)
}

async fn get_email(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<Value>, ChatError> {
    let email = state.store.email_of(user).await?;
    Ok(Json(json!({
        "email": email.as_ref().map(|(e, _)| e),
        "verified": email.is_some_and(|(_, v)| v.is_some()),
    })))
}

#[derive(Debug, Deserialize)]
struct SetEmail {
    email: String,
    /// The account's password: the address can reset it.
    password: String,
}

async fn set_email(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Body(req): Body<SetEmail>,
) -> Result<Json<Value>, ChatError> {
    let u =
        state.store.user(user).await?.ok_or_else(|| {
            ChatError::unauthorized("invalid_token", "the account no longer exists")
        })?;
    if !verify(req.password, u.password_hash).await? {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "invalid_credentials",
            "the password is wrong",
        ));
    }
    let email = clean_email(&req.email)?;
    state
        .store
        .set_email(user, &email, None)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::Conflict => ChatError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "another account has that address",
            ),
            e => e.into(),
        })?;
    Ok(Json(json!({"email": email, "verified": false})))
}

#[derive(Debug, Deserialize)]
struct ResetRequest {
    email: String,
}

fn limit_email(state: &ChatState, email: &str) -> Result<(), ChatError> {
    state
        .reset_limit
        .check(&email.to_lowercase())
        .map_err(|retry_after| ChatError::RateLimited { retry_after })
}

fn new_code() -> String {
    let mut bytes = [0u8; CODE_LEN];
    rand::rng().fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| CODE_ALPHABET[(*b as usize) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// A code as typed: spaces and dashes dropped, any case.
fn normal_code(c: &str) -> String {
    c.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect::<String>()
        .to_uppercase()
}

async fn request_reset(
    State(state): State<ChatState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<ResetRequest>,
) -> Result<(StatusCode, Json<Value>), ChatError> {
    limit_auth(&state, ip)?;
    let email = clean_email(&req.email)?;
    limit_email(&state, &email)?;
    let Some(mailer) = state.mailer.clone() else {
        return Err(ChatError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "email_unavailable",
            "this server cannot send e-mail; ask its operator to reset your password",
        ));
    };
    // The same answer, at once, whether or not the address has an account: the lookup and
    // the mail happen after it.
    let state2 = state.clone();
    tokio::spawn(async move {
        let user = match state2.store.user_by_email(&email).await {
            Ok(Some(u)) => u,
            Ok(None) => return,
            Err(e) => return warn!(error = %e, "password reset: looking up an address"),
        };
        let code = new_code();
        let expires = now_ms() + RESET_CODE_TTL.as_millis() as i64;
        if let Err(e) = state2
            .store
            .add_password_reset(&token_hash(&code), user, expires)
            .await
        {
            return warn!(error = %e, "password reset: storing a code");
        }
        let shown = format!("{}-{}", &code[..5], &code[5..]);
        let body = format!(
            "Someone asked to reset the password of your Parlor account.\n\n\
             Your code: {shown}\n\n\
             Enter it where you asked, with a new password, within 15 minutes. It works once.\n\
             If you did not ask, ignore this message: your password stays as it is.\n"
        );
        if let Err(e) = mailer
            .send(&email, "Your Parlor password reset code", body)
            .await
        {
            warn!(error = %e, "password reset: sending mail");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"message": "If an account has this address, a code is on its way to it."})),
    ))
}

#[derive(Debug, Deserialize)]
struct ResetConfirm {
    email: String,
    code: String,
    new_password: String,
}

async fn confirm_reset(
    State(state): State<ChatState>,
    ClientIp(ip): ClientIp,
    Body(req): Body<ResetConfirm>,
) -> Result<StatusCode, ChatError> {
    limit_auth(&state, ip)?;
    let email = clean_email(&req.email)?;
    limit_email(&state, &email)?;
    check_password(&req.new_password)?;
    let bad = || {
        ChatError::bad_request(
            "invalid_reset_code",
            "that code is wrong, used or expired; ask for a new one",
        )
    };
    let Some(user) = state.store.user_by_email(&email).await? else {
        return Err(bad());
    };
    let code = normal_code(&req.code);
    if !state
        .store
        .use_password_reset(&token_hash(&code), user, now_ms())
        .await?
    {
        return Err(bad());
    }
    state
        .store
        .set_password(user, &hash(req.new_password).await?)
        .await?;
    // Whoever had the old password is signed out everywhere.
    crate::service::sessions::end_all(&state, user).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unambiguous_and_typed_loosely() {
        let c = new_code();
        assert_eq!(c.len(), CODE_LEN);
        assert!(c.bytes().all(|b| CODE_ALPHABET.contains(&b)));
        assert_ne!(new_code(), new_code());
        assert_eq!(normal_code(" abcde-fghij "), "ABCDEFGHIJ");
    }
}
