//! Attachments in the store: uploads, their claim by a message, and their removal.

use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::store::{Store, StoreError};
use sqlx::Row;

/// An uploaded file, by its id; claimed by a message once sent.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub id: i64,
    pub uploader_id: UserId,
    pub channel_id: ChannelId,
    pub message_id: Option<MessageId>,
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub width: Option<i64>,
    pub height: Option<i64>,
    pub has_thumb: bool,
}

fn attachment_from(r: &sqlx::any::AnyRow) -> Result<Attachment, sqlx::Error> {
    Ok(Attachment {
        id: r.try_get("id")?,
        uploader_id: r.try_get("uploader_id")?,
        channel_id: r.try_get("channel_id")?,
        message_id: r.try_get("message_id")?,
        filename: r.try_get("filename")?,
        content_type: r.try_get("content_type")?,
        size: r.try_get("size")?,
        width: r.try_get("width")?,
        height: r.try_get("height")?,
        has_thumb: r.try_get::<i64, _>("has_thumb")? != 0,
    })
}

impl Store {
    pub async fn insert_attachment(&self, a: &Attachment, at: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO attachments (id, uploader_id, channel_id, filename, content_type, \
             size, width, height, has_thumb, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(a.id)
        .bind(a.uploader_id)
        .bind(a.channel_id)
        .bind(&a.filename)
        .bind(&a.content_type)
        .bind(a.size)
        .bind(a.width)
        .bind(a.height)
        .bind(i64::from(a.has_thumb))
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn attachment(&self, id: i64) -> Result<Option<Attachment>, StoreError> {
        let row = sqlx::query(
            "SELECT id, uploader_id, channel_id, message_id, filename, content_type, size, \
             width, height, has_thumb FROM attachments WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| attachment_from(&r)).transpose()?)
    }

    /// Ids of the files stored for a channel and its threads: to delete the files with
    /// them.
    pub async fn channel_attachment_ids(&self, id: ChannelId) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT a.id FROM attachments a JOIN channels c ON c.id = a.channel_id \
             WHERE c.id = $1 OR (c.parent_id = $1 AND c.kind = 'thread')",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Ids of the files stored for every channel of a guild: to delete the files with
    /// them.
    pub async fn guild_attachment_ids(&self, id: GuildId) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT a.id FROM attachments a JOIN channels c ON c.id = a.channel_id \
             WHERE c.guild_id = $1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Uploads no message claimed since before `before`: removed, their ids returned.
    pub async fn take_stale_uploads(&self, before: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "DELETE FROM attachments WHERE message_id IS NULL AND created_at < $1 RETURNING id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The attachments of messages in a channel with ids in `lo..=hi`.
    pub async fn attachments_between(
        &self,
        channel_id: ChannelId,
        lo: MessageId,
        hi: MessageId,
    ) -> Result<Vec<Attachment>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, uploader_id, channel_id, message_id, filename, content_type, size, \
             width, height, has_thumb FROM attachments \
             WHERE channel_id = $1 AND message_id BETWEEN $2 AND $3 ORDER BY id",
        )
        .bind(channel_id)
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(attachment_from).collect::<Result<_, _>>()?)
    }
}
