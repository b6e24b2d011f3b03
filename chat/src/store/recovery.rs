//! Account e-mail addresses and password-reset codes in the [`Store`].

use sqlx::Row;

use crate::model::UserId;
use crate::store::{Store, StoreError};

impl Store {
    /// Sets the account's address (`Conflict` if another account has it).
    pub async fn set_email(
        &self,
        user: UserId,
        email: &str,
        verified_at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO user_emails (user_id, email, verified_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, \
             verified_at = excluded.verified_at",
        )
        .bind(user)
        .bind(email)
        .bind(verified_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn email_of(
        &self,
        user: UserId,
    ) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let row = sqlx::query("SELECT email, verified_at FROM user_emails WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some((r.try_get("email")?, r.try_get("verified_at")?)),
            None => None,
        })
    }

    /// The account with this address, any case.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserId>, StoreError> {
        let row = sqlx::query("SELECT user_id FROM user_emails WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("user_id")?),
            None => None,
        })
    }

    pub async fn add_password_reset(
        &self,
        code_hash: &str,
        user: UserId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO password_resets (code_hash, user_id, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(code_hash)
        .bind(user)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends a code: if it is `user`'s, unused and unexpired, it and every other code of
    /// theirs are used up. Whether it was good.
    pub async fn use_password_reset(
        &self,
        code_hash: &str,
        user: UserId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "UPDATE password_resets SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 \
             AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(code_hash)
        .bind(user)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM password_resets WHERE expires_at < $1")
            .bind(now - 24 * 3600 * 1000)
            .execute(&self.pool)
            .await?;
        Ok(true)
    }
}
