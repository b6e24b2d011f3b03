//! DMs, group DMs and threads in the store.

use crate::model::{ChannelId, UserId};
use crate::store::guilds::Channel;
use crate::store::{Store, StoreError};

impl Store {
    /// Whether two users are members of some guild together.
    pub async fn share_guild(&self, a: UserId, b: UserId) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT x.guild_id FROM members x JOIN members y ON x.guild_id = y.guild_id \
             WHERE x.user_id = $1 AND y.user_id = $2 LIMIT 1",
        )
        .bind(a)
        .bind(b)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.is_some())
    }

    /// Creates a DM or group DM with its members, in one transaction.
    pub async fn create_dm(
        &self,
        c: &Channel,
        members: &[UserId],
        at: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::store::guilds::insert_channel(&mut *tx, c).await?;
        for m in members {
            sqlx::query(
                "INSERT INTO dm_recipients (channel_id, user_id, added_at) VALUES ($1, $2, $3)",
            )
            .bind(c.id)
            .bind(*m)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn dm_by_key(&self, key: &str) -> Result<Option<ChannelId>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM channels WHERE dm_key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The user's DMs and group DMs, newest first.
    pub async fn user_dms(&self, user_id: UserId) -> Result<Vec<ChannelId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT channel_id FROM dm_recipients WHERE user_id = $1 ORDER BY channel_id DESC",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds (`true`) or removes a group DM member; false if nothing changed.
    pub async fn set_recipient(
        &self,
        channel_id: ChannelId,
        user_id: UserId,
        on: bool,
        at: i64,
    ) -> Result<bool, StoreError> {
        let r = if on {
            sqlx::query(
                "INSERT INTO dm_recipients (channel_id, user_id, added_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(channel_id)
            .bind(user_id)
            .bind(at)
        } else {
            sqlx::query("DELETE FROM dm_recipients WHERE channel_id = $1 AND user_id = $2")
                .bind(channel_id)
                .bind(user_id)
        }
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Threads of a channel, newest first.
    pub async fn threads(&self, parent_id: ChannelId) -> Result<Vec<ChannelId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM channels WHERE parent_id = $1 AND kind = 'thread' ORDER BY id DESC",
        )
        .bind(parent_id)
        .fetch_all(&self.pool)
        .await?)
    }
}
