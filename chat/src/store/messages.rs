//! Messages written in batches, and their mentions, reactions and pins, in the [`Store`].

use std::collections::HashMap;

use sqlx::{Acquire, Row};

use crate::model::{ChannelId, Mention, MessageId, UserId};
use crate::store::guilds::{Cursor, Message, message_from};
use crate::store::{Backend, Store, StoreError};

/// One emoji on one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reaction {
    pub emoji: String,
    pub count: i64,
    /// The viewer added it.
    pub me: bool,
}

/// Pins per channel.
pub const MAX_PINS: i64 = 50;

impl Store {
    /// Stores messages in one transaction, each in a savepoint of its own: one that fails
    /// (an attachment that is not the author's to claim) is left out with its error, and
    /// the rest commit together. Returns each message's outcome, or the error that failed
    /// the transaction as a whole.
    ///
    /// A message's id must be above every id already in its channel, so that a client
    /// catching up by id never skips one: on Postgres, where several chat nodes write,
    /// the channel's row is locked for the transaction and, if another node's message got
    /// there first with a later id, `later` gives this one an id after it (`m.id` is
    /// updated). One process alone (SQLite) orders by its channel lock.
    pub async fn insert_messages(
        &self,
        batch: &mut [Message],
        later: impl Fn(MessageId) -> MessageId,
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        let mut last = HashMap::new();
        if self.backend == Backend::Postgres {
            // Every channel of the batch locked up front, in id order: two nodes' batches
            // over the same channels cannot deadlock, and a message's savepoint rolled
            // back cannot release a lock the rest of the batch relies on.
            let mut channels: Vec<ChannelId> = batch.iter().map(|m| m.channel_id).collect();
            channels.sort_unstable();
            channels.dedup();
            for c in channels {
                sqlx::query("SELECT id FROM channels WHERE id = $1 FOR UPDATE")
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await?;
                let newest: Option<MessageId> =
                    sqlx::query_scalar("SELECT MAX(id) FROM messages WHERE channel_id = $1")
                        .bind(c)
                        .fetch_one(&mut *tx)
                        .await?;
                last.insert(c, newest);
            }
        }
        for m in batch.iter_mut() {
            let order = Order {
                backend: self.backend,
                later: &later,
            };
            if m.attachments.is_empty() {
                // Nothing in it can fail on its own: an error here fails the batch.
                insert_one(&order, &mut last, &mut tx, m).await?;
                out.push(Ok(()));
                continue;
            }
            // A savepoint: claiming someone else's upload rolls back this message alone.
            let mut one = (&mut *tx).begin().await?;
            let r = insert_one(&order, &mut last, &mut one, m).await;
            match r {
                Ok(()) => one.commit().await?,
                Err(_) => one.rollback().await?,
            }
            out.push(r);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Fills in the mentions of messages in one channel, and returns their reactions as
    /// `viewer` sees them, keyed by message id. The ranges are taken on the mentions' and
    /// reactions' own message ids, so the cost follows the rows there, not the messages'
    /// depth in the channel.
    pub async fn message_extras(
        &self,
        channel_id: ChannelId,
        messages: &mut [Message],
        viewer: UserId,
    ) -> Result<HashMap<MessageId, Vec<Reaction>>, StoreError> {
        let (Some(lo), Some(hi)) = (
            messages.iter().map(|m| m.id).min(),
            messages.iter().map(|m| m.id).max(),
        ) else {
            return Ok(HashMap::new());
        };
        let rows = sqlx::query(
            "SELECT mt.message_id, mt.kind, mt.target_id FROM mentions mt \
             WHERE mt.message_id BETWEEN $2 AND $3 AND EXISTS (SELECT 1 FROM messages m \
             WHERE m.id = mt.message_id AND m.channel_id = $1) \
             ORDER BY mt.message_id, mt.kind, mt.target_id",
        )
        .bind(channel_id)
        .bind(lo)
        .bind(hi)
        .fetch_all(&self.pool)
        .await?;
        let mut mentions: HashMap<MessageId, Vec<Mention>> = HashMap::new();
        for r in &rows {
            let kind: String = r.try_get("kind")?;
            let mention = Mention::from_parts(&kind, r.try_get("target_id")?).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown mention kind {kind:?}").into())
            })?;
            mentions
                .entry(r.try_get("message_id")?)
                .or_default()
                .push(mention);
        }
        let mut files: HashMap<MessageId, Vec<crate::store::attachments::Attachment>> =
            HashMap::new();
        for a in self.attachments_between(channel_id, lo, hi).await? {
            if let Some(mid) = a.message_id {
                files.entry(mid).or_default().push(a);
            }
        }
        for m in messages.iter_mut() {
            m.mentions = mentions.remove(&m.id).unwrap_or_default();
            m.attachments = files.remove(&m.id).unwrap_or_default();
        }
        let rows = sqlx::query(
            "SELECT r.message_id, r.emoji, COUNT(*) AS n, \
             SUM(CASE WHEN r.user_id = $4 THEN 1 ELSE 0 END) AS mine, MIN(r.created_at) AS first \
             FROM reactions r WHERE r.message_id BETWEEN $2 AND $3 AND EXISTS (SELECT 1 \
             FROM messages m WHERE m.id = r.message_id AND m.channel_id = $1) \
             GROUP BY r.message_id, r.emoji ORDER BY r.message_id, first",
        )
        .bind(channel_id)
        .bind(lo)
        .bind(hi)
        .bind(viewer)
        .fetch_all(&self.pool)
        .await?;
        let mut out: HashMap<MessageId, Vec<Reaction>> = HashMap::new();
        for r in &rows {
            out.entry(r.try_get("message_id")?)
                .or_default()
                .push(Reaction {
                    emoji: r.try_get("emoji")?,
                    count: r.try_get("n")?,
                    me: r.try_get::<i64, _>("mine")? > 0,
                });
        }
        Ok(out)
    }

    /// Whether anyone has reacted to the message with this emoji.
    pub async fn has_reaction(
        &self,
        message_id: MessageId,
        emoji: &str,
    ) -> Result<bool, StoreError> {
        let r: Option<i64> = sqlx::query_scalar(
            "SELECT user_id FROM reactions WHERE message_id = $1 AND emoji = $2 LIMIT 1",
        )
        .bind(message_id)
        .bind(emoji)
        .fetch_optional(&self.pool)
        .await?;
        Ok(r.is_some())
    }

    /// Distinct emoji on a message.
    pub async fn reaction_kinds(&self, message_id: MessageId) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(DISTINCT emoji) FROM reactions WHERE message_id = $1")
                .bind(message_id)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Adds a reaction; false if the user had already added it.
    pub async fn add_reaction(
        &self,
        message_id: MessageId,
        emoji: &str,
        user_id: UserId,
        at: i64,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "INSERT INTO reactions (message_id, emoji, user_id, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(message_id)
        .bind(emoji)
        .bind(user_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes a reaction; false if there was none.
    pub async fn remove_reaction(
        &self,
        message_id: MessageId,
        emoji: &str,
        user_id: UserId,
    ) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
        )
        .bind(message_id)
        .bind(emoji)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Who reacted with this emoji, in the order they did, after user id `after`.
    pub async fn reaction_users(
        &self,
        message_id: MessageId,
        emoji: &str,
        limit: i64,
    ) -> Result<Vec<UserId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM reactions WHERE message_id = $1 AND emoji = $2 \
             ORDER BY created_at, user_id LIMIT $3",
        )
        .bind(message_id)
        .bind(emoji)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Pins or unpins a message.
    pub async fn set_pinned(
        &self,
        message_id: MessageId,
        at: Option<i64>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET pinned_at = $1 WHERE id = $2")
            .bind(at)
            .bind(message_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn pin_count(&self, channel_id: ChannelId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM messages WHERE channel_id = $1 AND pinned_at IS NOT NULL",
        )
        .bind(channel_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A channel's pinned messages, most recently pinned first.
    pub async fn pins(&self, channel_id: ChannelId) -> Result<Vec<Message>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            crate::message_columns!(),
            " FROM messages WHERE channel_id = $1 AND pinned_at IS NOT NULL \
             ORDER BY pinned_at DESC, id DESC"
        ))
        .bind(channel_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(crate::store::guilds::message_from)
            .collect::<Result<_, _>>()?)
    }
}

/// How a batch orders ids: the backend, and the id to use after another node's.
struct Order<'a, F> {
    backend: Backend,
    later: &'a F,
}

/// One message of a batch (in its savepoint when it has attachments). On Postgres `last`
/// holds the last id of each channel of the batch, whose rows the transaction has locked.
async fn insert_one<F: Fn(MessageId) -> MessageId>(
    order: &Order<'_, F>,
    last: &mut HashMap<ChannelId, Option<MessageId>>,
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &mut Message,
) -> Result<(), StoreError> {
    if order.backend == Backend::Postgres {
        let newest = last.get(&m.channel_id).copied().flatten();
        if let Some(newest) = newest.filter(|n| *n >= m.id) {
            m.id = (order.later)(newest);
        }
        last.insert(m.channel_id, Some(m.id));
    }
    sqlx::query(
        "INSERT INTO messages (id, channel_id, author_id, content, reply_to, edited_at, \
         created_at, mention_everyone, search_text) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
         $9)",
    )
    .bind(m.id)
    .bind(m.channel_id)
    .bind(m.author_id)
    .bind(&m.content)
    .bind(m.reply_to)
    .bind(m.edited_at)
    .bind(m.created_at)
    .bind(i64::from(m.mention_everyone))
    .bind(crate::store::fold(&m.content))
    .execute(&mut **tx)
    .await?;
    insert_mentions(tx, m).await?;
    for a in &m.attachments {
        // Only the uploader's own unclaimed uploads to this channel.
        let claimed = sqlx::query(
            "UPDATE attachments SET message_id = $1 WHERE id = $2 AND uploader_id = $3 \
             AND channel_id = $4 AND message_id IS NULL",
        )
        .bind(m.id)
        .bind(a.id)
        .bind(m.author_id)
        .bind(m.channel_id)
        .execute(&mut **tx)
        .await?;
        if claimed.rows_affected() != 1 {
            return Err(StoreError::Conflict);
        }
    }
    Ok(())
}

// Reading, editing and deleting stored messages, and a channel's history.
impl Store {
    pub async fn message(
        &self,
        channel_id: ChannelId,
        id: MessageId,
    ) -> Result<Option<Message>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            crate::message_columns!(),
            " FROM messages WHERE id = $1 AND channel_id = $2"
        ))
        .bind(id)
        .bind(channel_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| message_from(&r)).transpose()?)
    }

    /// Stores an edit: new content and the mentions parsed from it.
    pub async fn edit_message(&self, m: &Message) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE messages SET content = $1, edited_at = $2, mention_everyone = $3, \
             search_text = $4 WHERE id = $5",
        )
        .bind(&m.content)
        .bind(m.edited_at)
        .bind(i64::from(m.mention_everyone))
        .bind(crate::store::fold(&m.content))
        .bind(m.id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM mentions WHERE message_id = $1")
            .bind(m.id)
            .execute(&mut *tx)
            .await?;
        insert_mentions(&mut tx, m).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn delete_message(&self, id: MessageId) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM messages WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A page of a channel's history, newest first.
    pub async fn history(
        &self,
        channel_id: ChannelId,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let older = |below: MessageId, n: i64| {
            sqlx::query(concat!(
                "SELECT ",
                crate::message_columns!(),
                " FROM messages WHERE channel_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ))
            .bind(channel_id)
            .bind(below)
            .bind(n)
            .fetch_all(&self.pool)
        };
        let newer = |above: MessageId, n: i64| {
            sqlx::query(concat!(
                "SELECT ",
                crate::message_columns!(),
                " FROM messages WHERE channel_id = $1 AND id > $2 ORDER BY id ASC LIMIT $3"
            ))
            .bind(channel_id)
            .bind(above)
            .bind(n)
            .fetch_all(&self.pool)
        };
        let rows = match cursor {
            Cursor::Latest => older(MessageId(i64::MAX), limit).await?,
            Cursor::Before(id) => older(id, limit).await?,
            Cursor::After(id) => {
                let mut r = newer(id, limit).await?;
                r.reverse();
                r
            }
            Cursor::Around(id) => {
                // The message itself and the newer half, then the older half.
                let mut r = newer(MessageId(id.0 - 1), (limit + 1) / 2).await?;
                r.reverse();
                let take = limit - r.len() as i64;
                r.extend(older(id, take).await?);
                r
            }
        };
        Ok(rows.iter().map(message_from).collect::<Result<_, _>>()?)
    }
}

pub(crate) async fn insert_mentions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    m: &Message,
) -> Result<(), StoreError> {
    for mention in &m.mentions {
        sqlx::query("INSERT INTO mentions (message_id, kind, target_id) VALUES ($1, $2, $3)")
            .bind(m.id)
            .bind(mention.kind())
            .bind(mention.target_id())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
