//! Scheduled events, interest in them, and the words each user excludes from insights,
//! in the store.

use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::now_ms;
use crate::store::{Store, StoreError};
use sqlx::Row;

/// Messages read for one insight.
pub const INSIGHT_SCAN: i64 = 20_000;

#[derive(Debug, Clone)]
pub struct ScheduledEvent {
    pub id: i64,
    pub guild_id: GuildId,
    pub creator_id: UserId,
    pub title: String,
    pub description: String,
    pub start_at: i64,
    pub end_at: Option<i64>,
    pub channel_id: Option<ChannelId>,
}

fn event_from(r: &sqlx::any::AnyRow) -> Result<ScheduledEvent, sqlx::Error> {
    Ok(ScheduledEvent {
        id: r.try_get("id")?,
        guild_id: r.try_get("guild_id")?,
        creator_id: r.try_get("creator_id")?,
        title: r.try_get("title")?,
        description: r.try_get("description")?,
        start_at: r.try_get("start_at")?,
        end_at: r.try_get("end_at")?,
        channel_id: r.try_get("channel_id")?,
    })
}

impl Store {
    pub async fn save_event(&self, e: &ScheduledEvent, new: bool) -> Result<(), StoreError> {
        let q = if new {
            sqlx::query(
                "INSERT INTO scheduled_events (id, guild_id, creator_id, title, description, \
                 start_at, end_at, channel_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(e.id)
            .bind(e.guild_id)
            .bind(e.creator_id)
            .bind(&e.title)
            .bind(&e.description)
            .bind(e.start_at)
            .bind(e.end_at)
            .bind(e.channel_id)
            .bind(now_ms())
        } else {
            sqlx::query(
                "UPDATE scheduled_events SET title = $1, description = $2, start_at = $3, \
                 end_at = $4, channel_id = $5 WHERE id = $6",
            )
            .bind(&e.title)
            .bind(&e.description)
            .bind(e.start_at)
            .bind(e.end_at)
            .bind(e.channel_id)
            .bind(e.id)
        };
        q.execute(&self.pool).await?;
        Ok(())
    }

    pub async fn event(
        &self,
        guild_id: GuildId,
        id: i64,
    ) -> Result<Option<ScheduledEvent>, StoreError> {
        let row = sqlx::query(
            "SELECT id, guild_id, creator_id, title, description, start_at, end_at, channel_id \
             FROM scheduled_events WHERE guild_id = $1 AND id = $2",
        )
        .bind(guild_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| event_from(&r)).transpose()?)
    }

    /// Events not yet over, soonest first.
    pub async fn events(
        &self,
        guild_id: GuildId,
        now: i64,
    ) -> Result<Vec<ScheduledEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, guild_id, creator_id, title, description, start_at, end_at, channel_id \
             FROM scheduled_events WHERE guild_id = $1 AND COALESCE(end_at, start_at) >= $2 \
             ORDER BY start_at, id",
        )
        .bind(guild_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(event_from).collect::<Result<_, _>>()?)
    }

    pub async fn delete_event(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM scheduled_events WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Marks or unmarks interest; false if nothing changed.
    pub async fn set_interest(
        &self,
        event_id: i64,
        user_id: UserId,
        on: bool,
    ) -> Result<bool, StoreError> {
        let q = if on {
            sqlx::query(
                "INSERT INTO event_interests (event_id, user_id) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
            )
        } else {
            sqlx::query("DELETE FROM event_interests WHERE event_id = $1 AND user_id = $2")
        };
        let r = q.bind(event_id).bind(user_id).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    pub async fn interested(&self, event_id: i64) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM event_interests WHERE event_id = $1 ORDER BY user_id",
        )
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The text of a channel's messages since `from_id`, newest first.
    pub async fn recent_texts(
        &self,
        channel_id: ChannelId,
        from_id: MessageId,
    ) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT content FROM messages WHERE channel_id = $1 AND id >= $2 \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(channel_id)
        .bind(from_id)
        .bind(INSIGHT_SCAN)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn excluded_words(&self, user_id: UserId) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT word FROM insight_exclusions WHERE user_id = $1 ORDER BY word",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn set_excluded_words(
        &self,
        user_id: UserId,
        words: &[String],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM insight_exclusions WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        for w in words {
            sqlx::query("INSERT INTO insight_exclusions (user_id, word) VALUES ($1, $2)")
                .bind(user_id)
                .bind(w)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
