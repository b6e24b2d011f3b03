//! OpenID Connect links, sign-ins under way and their tickets in the [`Store`].

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::model::UserId;
use crate::store::{Store, StoreError};

/// A sign-in under way: what the callback needs.
#[derive(Debug, Clone)]
pub struct OidcFlow {
    pub provider: String,
    pub nonce: String,
    pub verifier: String,
}

/// A finished sign-in, waiting for the page.
#[derive(Debug, Clone)]
pub struct OidcTicket {
    pub user_id: Option<UserId>,
    pub issuer: String,
    pub subject: String,
    pub provider: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub link_user: Option<UserId>,
}

/// A row, unless it is missing or its `expires_at` has passed.
fn unexpired(row: Option<AnyRow>, now: i64) -> Result<Option<AnyRow>, StoreError> {
    match row {
        Some(r) if r.try_get::<i64, _>("expires_at")? >= now => Ok(Some(r)),
        _ => Ok(None),
    }
}

impl Store {
    pub async fn oidc_user(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM oidc_links WHERE issuer = $1 AND subject = $2")
            .bind(issuer)
            .bind(subject)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("user_id")?),
            None => None,
        })
    }

    pub async fn link_oidc(
        &self,
        issuer: &str,
        subject: &str,
        user: UserId,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO oidc_links (issuer, subject, user_id, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(issuer)
        .bind(subject)
        .bind(user)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn add_oidc_flow(
        &self,
        state_hash: &str,
        flow: &OidcFlow,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oidc_flows WHERE expires_at < $1")
            .bind(expires_at - 3600 * 1000)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_flows (state_hash, provider, nonce, verifier, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(state_hash)
        .bind(&flow.provider)
        .bind(&flow.nonce)
        .bind(&flow.verifier)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Takes a sign-in under way (once), if it has not expired.
    pub async fn take_oidc_flow(
        &self,
        state_hash: &str,
        now: i64,
    ) -> Result<Option<OidcFlow>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM oidc_flows WHERE state_hash = $1 RETURNING provider, nonce, verifier, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = unexpired(row, now)? else {
            return Ok(None);
        };
        Ok(Some(OidcFlow {
            provider: r.try_get("provider")?,
            nonce: r.try_get("nonce")?,
            verifier: r.try_get("verifier")?,
        }))
    }

    pub async fn add_oidc_ticket(
        &self,
        ticket_hash: &str,
        t: &OidcTicket,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oidc_tickets WHERE expires_at < $1")
            .bind(expires_at - 3600 * 1000)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_tickets (ticket_hash, user_id, issuer, subject, provider, email, \
             name, username, link_user, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(ticket_hash)
        .bind(t.user_id)
        .bind(&t.issuer)
        .bind(&t.subject)
        .bind(&t.provider)
        .bind(&t.email)
        .bind(&t.name)
        .bind(&t.username)
        .bind(t.link_user)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A ticket, if unexpired; `take` spends it.
    pub async fn oidc_ticket(
        &self,
        ticket_hash: &str,
        now: i64,
        take: bool,
    ) -> Result<Option<OidcTicket>, StoreError> {
        let sql = if take {
            "DELETE FROM oidc_tickets WHERE ticket_hash = $1 RETURNING user_id, issuer, subject, \
             provider, email, name, username, link_user, expires_at"
        } else {
            "SELECT user_id, issuer, subject, provider, email, name, username, link_user, \
             expires_at FROM oidc_tickets WHERE ticket_hash = $1"
        };
        let row = sqlx::query(sql)
            .bind(ticket_hash)
            .fetch_optional(&self.pool)
            .await?;
        let Some(r) = unexpired(row, now)? else {
            return Ok(None);
        };
        Ok(Some(OidcTicket {
            user_id: r.try_get("user_id")?,
            issuer: r.try_get("issuer")?,
            subject: r.try_get("subject")?,
            provider: r.try_get("provider")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            username: r.try_get("username")?,
            link_user: r.try_get("link_user")?,
        }))
    }
}
