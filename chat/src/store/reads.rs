//! Read states, notification settings and the inbox in the [`Store`].
//!
//! Unread and mention counts are computed from the messages after a user's last read
//! message, so posting a message writes nothing per reader. A member with no read state
//! for a channel has read everything from before they joined: ids are time-ordered, so
//! the join time is an id.

use sqlx::Row;

use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::store::{Store, StoreError};

/// The id of the first message at or after `ms` (ms since the Unix epoch).
/// Saturates past the year 2094, where 41 bits of milliseconds run out.
pub fn id_at(ms: i64) -> MessageId {
    MessageId(
        (ms - crate::ID_EPOCH_MS)
            .max(0)
            .checked_mul(1 << 22)
            .unwrap_or(i64::MAX),
    )
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRead {
    pub channel_id: ChannelId,
    pub guild_id: GuildId,
    /// Whose channel settings apply when the channel has none: a thread's parent.
    pub settings_channel: ChannelId,
    pub last_read_id: MessageId,
    /// Messages by others after the last read one.
    pub unread: i64,
    /// Of those, the ones that mention the user (directly, by role, or @everyone/@here).
    pub mentions: i64,
}

/// Notification level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    All,
    Mentions,
    Nothing,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "all" => Some(Level::All),
            "mentions" => Some(Level::Mentions),
            "nothing" => Some(Level::Nothing),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::All => "all",
            Level::Mentions => "mentions",
            Level::Nothing => "nothing",
        }
    }
}

/// One guild's or channel's settings; `None` fields inherit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// `guild` or `channel`.
    pub scope: String,
    pub scope_id: i64,
    pub level: Option<Level>,
    /// Muted until then (ms); `i64::MAX` until turned back on.
    pub muted_until: Option<i64>,
    /// While muted, mentions still notify and show.
    pub keep_mentions: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    pub message_id: MessageId,
    pub channel_id: ChannelId,
    pub reason: String,
    pub read: bool,
}

fn setting_from(r: &sqlx::any::AnyRow) -> Result<Setting, sqlx::Error> {
    Ok(Setting {
        scope: r.try_get("scope_kind")?,
        scope_id: r.try_get("scope_id")?,
        level: r
            .try_get::<Option<String>, _>("level")?
            .as_deref()
            .and_then(Level::parse),
        muted_until: r.try_get("muted_until")?,
        keep_mentions: r.try_get::<i64, _>("keep_mentions")? != 0,
    })
}

/// `COALESCE(r.last_read_id, <join id>)` over `mb` (members) and `r` (read_states).
macro_rules! last_read {
    () => {
        "COALESCE(r.last_read_id, (mb.joined_at - 1735689600000) * 4194304)"
    };
}

impl Store {
    /// Read state of every text channel and thread in the user's guilds (visibility is
    /// the caller's to apply), and of their DMs (`guild_id` 0), where every unread
    /// message counts as a mention.
    pub async fn read_states(&self, user_id: UserId) -> Result<Vec<ChannelRead>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT c.id AS channel_id, c.guild_id, \
             CASE WHEN c.kind = 'thread' THEN c.parent_id ELSE c.id END AS settings_channel, ",
            last_read!(),
            " AS last_read, \
             (SELECT COUNT(*) FROM messages m WHERE m.channel_id = c.id AND m.id > ",
            last_read!(),
            " AND m.author_id <> $1) AS unread, \
             (SELECT COUNT(*) FROM messages m WHERE m.channel_id = c.id AND m.id > ",
            last_read!(),
            " AND m.author_id <> $1 AND (m.mention_everyone <> 0 OR EXISTS ( \
               SELECT 1 FROM mentions mt WHERE mt.message_id = m.id AND \
               ((mt.kind = 'user' AND mt.target_id = $1) OR (mt.kind = 'role' AND mt.target_id IN \
                 (SELECT role_id FROM member_roles WHERE user_id = $1 AND guild_id = c.guild_id)))))) \
               AS mentions \
             FROM channels c JOIN members mb ON mb.guild_id = c.guild_id AND mb.user_id = $1 \
             LEFT JOIN read_states r ON r.user_id = $1 AND r.channel_id = c.id \
             WHERE c.kind IN ('text', 'thread') \
             UNION ALL \
             SELECT c.id AS channel_id, 0 AS guild_id, c.id AS settings_channel, \
             COALESCE(r.last_read_id, (d.added_at - 1735689600000) * 4194304) AS last_read, \
             (SELECT COUNT(*) FROM messages m WHERE m.channel_id = c.id AND m.id > \
               COALESCE(r.last_read_id, (d.added_at - 1735689600000) * 4194304) \
               AND m.author_id <> $1) AS unread, 0 AS mentions \
             FROM channels c JOIN dm_recipients d ON d.channel_id = c.id AND d.user_id = $1 \
             LEFT JOIN read_states r ON r.user_id = $1 AND r.channel_id = c.id \
             ORDER BY channel_id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let guild_id: GuildId = r.try_get("guild_id")?;
                let unread: i64 = r.try_get("unread")?;
                Ok(ChannelRead {
                    channel_id: r.try_get("channel_id")?,
                    guild_id,
                    settings_channel: r.try_get("settings_channel")?,
                    last_read_id: r.try_get("last_read")?,
                    unread,
                    mentions: if guild_id == GuildId(0) {
                        unread
                    } else {
                        r.try_get("mentions")?
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// Marks the channel read up to `message_id` (never backwards).
    pub async fn ack(
        &self,
        user_id: UserId,
        channel_id: ChannelId,
        message_id: MessageId,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO read_states (user_id, channel_id, last_read_id) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, channel_id) DO UPDATE SET last_read_id = CASE \
             WHEN excluded.last_read_id > read_states.last_read_id \
             THEN excluded.last_read_id ELSE read_states.last_read_id END",
        )
        .bind(user_id)
        .bind(channel_id)
        .bind(message_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user's stored read mark in a channel.
    pub async fn read_mark(
        &self,
        user_id: UserId,
        channel_id: ChannelId,
    ) -> Result<Option<MessageId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT last_read_id FROM read_states WHERE user_id = $1 AND channel_id = $2",
        )
        .bind(user_id)
        .bind(channel_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Where each member of a DM has read it up to.
    pub async fn dm_read_marks(
        &self,
        channel_id: ChannelId,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.user_id, COALESCE(r.last_read_id, (d.added_at - 1735689600000) * 4194304) \
             AS last_read FROM dm_recipients d LEFT JOIN read_states r \
             ON r.user_id = d.user_id AND r.channel_id = d.channel_id WHERE d.channel_id = $1",
        )
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("last_read")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// Where each member of the guild has read the channel up to.
    pub async fn read_marks(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
    ) -> Result<Vec<(UserId, MessageId)>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT mb.user_id, ",
            last_read!(),
            " AS last_read FROM members mb LEFT JOIN read_states r \
             ON r.user_id = mb.user_id AND r.channel_id = $1 WHERE mb.guild_id = $2"
        ))
        .bind(channel_id)
        .bind(guild_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("last_read")?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    pub async fn notification_settings(&self, user_id: UserId) -> Result<Vec<Setting>, StoreError> {
        let rows = sqlx::query(
            "SELECT scope_kind, scope_id, level, muted_until, keep_mentions \
             FROM notification_settings WHERE user_id = $1 ORDER BY scope_kind, scope_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(setting_from)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// Everyone's settings for a guild, one of its channels and that channel's parent (a
    /// thread's channel; the channel itself otherwise), for notifying.
    pub async fn settings_for(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        parent_id: ChannelId,
    ) -> Result<Vec<(UserId, Setting)>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, scope_kind, scope_id, level, muted_until, keep_mentions \
             FROM notification_settings WHERE (scope_kind = 'guild' AND scope_id = $1) \
             OR (scope_kind = 'channel' AND (scope_id = $2 OR scope_id = $3))",
        )
        .bind(guild_id)
        .bind(channel_id)
        .bind(parent_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("user_id")?, setting_from(r)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    pub async fn set_notification_setting(
        &self,
        user_id: UserId,
        s: &Setting,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM notification_settings WHERE user_id = $1 AND scope_kind = $2 \
             AND scope_id = $3",
        )
        .bind(user_id)
        .bind(&s.scope)
        .bind(s.scope_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO notification_settings (user_id, scope_kind, scope_id, level, \
             muted_until, keep_mentions) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(user_id)
        .bind(&s.scope)
        .bind(s.scope_id)
        .bind(s.level.map(Level::as_str))
        .bind(s.muted_until)
        .bind(i64::from(s.keep_mentions))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Puts a message in these users' inboxes.
    pub async fn add_to_inbox(
        &self,
        users: &[UserId],
        message_id: MessageId,
        channel_id: ChannelId,
        reason: &str,
    ) -> Result<(), StoreError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for u in users {
            sqlx::query(
                "INSERT INTO inbox (user_id, message_id, channel_id, reason) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            )
            .bind(*u)
            .bind(message_id)
            .bind(channel_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A page of the inbox, newest first, before `before`.
    pub async fn inbox(
        &self,
        user_id: UserId,
        before: MessageId,
        limit: i64,
        unread_only: bool,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let rows = sqlx::query(
            "SELECT message_id, channel_id, reason, read_at FROM inbox \
             WHERE user_id = $1 AND message_id < $2 AND ($3 = 0 OR read_at IS NULL) \
             ORDER BY message_id DESC LIMIT $4",
        )
        .bind(user_id)
        .bind(before)
        .bind(i64::from(unread_only))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InboxItem {
                    message_id: r.try_get("message_id")?,
                    channel_id: r.try_get("channel_id")?,
                    reason: r.try_get("reason")?,
                    read: r.try_get::<Option<i64>, _>("read_at")?.is_some(),
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::Db)
    }

    /// Marks one inbox item (or, with `None`, all) read; how many changed.
    pub async fn read_inbox(
        &self,
        user_id: UserId,
        message_id: Option<MessageId>,
        at: i64,
    ) -> Result<u64, StoreError> {
        let r = match message_id {
            Some(m) => sqlx::query(
                "UPDATE inbox SET read_at = $1 WHERE user_id = $2 AND message_id = $3 \
                 AND read_at IS NULL",
            )
            .bind(at)
            .bind(user_id)
            .bind(m),
            None => sqlx::query(
                "UPDATE inbox SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL \
                 AND message_id > $3",
            )
            .bind(at)
            .bind(user_id)
            .bind(0_i64),
        }
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}
