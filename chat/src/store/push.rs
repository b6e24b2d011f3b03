//! Web Push subscriptions in the [`Store`].

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sqlx::Row;

use crate::model::UserId;
use crate::store::{Store, StoreError};

/// The most subscriptions one user keeps; a new one beyond it replaces the oldest.
pub const MAX_PER_USER: i64 = 20;

#[derive(Debug, Clone)]
pub struct PushSubscription {
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
    pub created_at: i64,
}

impl Store {
    /// Keeps a subscription for `user` (moving it from whoever had it).
    pub async fn put_push_subscription(
        &self,
        user: UserId,
        endpoint: &str,
        p256dh: &[u8],
        auth: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO push_subscriptions (endpoint, user_id, p256dh, auth, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (endpoint) DO UPDATE SET \
             user_id = excluded.user_id, p256dh = excluded.p256dh, auth = excluded.auth, \
             created_at = excluded.created_at",
        )
        .bind(endpoint)
        .bind(user)
        .bind(B64.encode(p256dh))
        .bind(B64.encode(auth))
        .bind(now)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM push_subscriptions WHERE user_id = $1 AND endpoint NOT IN \
             (SELECT endpoint FROM push_subscriptions WHERE user_id = $1 \
              ORDER BY created_at DESC LIMIT $2)",
        )
        .bind(user)
        .bind(MAX_PER_USER)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn push_subscriptions(
        &self,
        user: UserId,
    ) -> Result<Vec<PushSubscription>, StoreError> {
        let rows = sqlx::query(
            "SELECT endpoint, p256dh, auth, created_at FROM push_subscriptions \
             WHERE user_id = $1 ORDER BY created_at",
        )
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let p256dh: String = r.try_get("p256dh")?;
            let auth: String = r.try_get("auth")?;
            let (Ok(p256dh), Ok(auth)) = (B64.decode(p256dh), B64.decode(auth)) else {
                continue;
            };
            out.push(PushSubscription {
                endpoint: r.try_get("endpoint")?,
                p256dh,
                auth,
                created_at: r.try_get("created_at")?,
            });
        }
        Ok(out)
    }

    /// Forgets a subscription; `user`, when given, must own it. Whether one was removed.
    pub async fn delete_push_subscription_of(
        &self,
        user: UserId,
        endpoint: &str,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1 AND user_id = $2")
            .bind(endpoint)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Forgets a subscription the push service says is gone.
    pub async fn delete_push_subscription(&self, endpoint: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM push_subscriptions WHERE endpoint = $1")
            .bind(endpoint)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
