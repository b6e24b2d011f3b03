//! Presence choices in the [`Store`], and who shares a guild with whom.

use sqlx::Row;

use crate::model::UserId;
use crate::model::presence::{Pref, Status};
use crate::store::{Store, StoreError};

impl Store {
    /// The user's choice; the default (online, no custom status) if they never made one.
    pub async fn presence_pref(&self, user: UserId) -> Result<Pref, StoreError> {
        let row =
            sqlx::query("SELECT status, custom_status FROM presence_prefs WHERE user_id = $1")
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
        let Some(r) = row else {
            return Ok(Pref::default());
        };
        let status: String = r.try_get("status")?;
        Ok(Pref {
            status: Status::parse(&status).unwrap_or(Status::Online),
            custom_status: r.try_get("custom_status")?,
        })
    }

    pub async fn set_presence_pref(&self, user: UserId, pref: &Pref) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO presence_prefs (user_id, status, custom_status) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET status = excluded.status, \
             custom_status = excluded.custom_status",
        )
        .bind(user)
        .bind(pref.status.as_str())
        .bind(pref.custom_status.as_deref())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Users who share a guild with `user` (the user included), at most `limit`.
    pub async fn co_members(&self, user: UserId, limit: i64) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.user_id FROM members m JOIN members o ON o.guild_id = m.guild_id \
             WHERE m.user_id = $1 ORDER BY o.user_id LIMIT $2",
        )
        .bind(user)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("user_id").map_err(StoreError::Db))
            .collect()
    }

    /// The members of a guild, at most `limit`, by id.
    pub async fn member_ids(
        &self,
        guild: crate::model::GuildId,
        limit: i64,
    ) -> Result<Vec<UserId>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id FROM members WHERE guild_id = $1 ORDER BY user_id LIMIT $2",
        )
        .bind(guild)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get("user_id").map_err(StoreError::Db))
            .collect()
    }
}
