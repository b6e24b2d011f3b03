//! Search in the store: LIKE over lowercased messages, with its filters.

use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::store::guilds::Message;
use crate::store::{Store, StoreError};

/// Terms per query.
pub const MAX_TERMS: usize = 5;

/// `%term%` for LIKE, with the wildcards in the term escaped.
fn like(term: &str) -> String {
    let mut s = String::with_capacity(term.len() + 2);
    s.push('%');
    for c in term.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

/// What a search is restricted to, resolved to ids (0: no restriction).
#[derive(Debug, Clone, Copy, Default)]
pub struct Filters {
    pub guild_id: GuildId,
    pub channel_id: ChannelId,
    pub author_id: UserId,
    pub mentions_id: UserId,
    pub has_attachment: bool,
    /// Only ids below this.
    pub below: MessageId,
    /// Only ids at or above this.
    pub from_id: MessageId,
}

impl Store {
    /// Up to `limit` matching messages below `f.below`, newest first.
    pub async fn search(
        &self,
        f: &Filters,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let mut patterns: Vec<String> = terms.iter().map(|t| like(t)).collect();
        patterns.resize(MAX_TERMS, "%".into());
        let rows = sqlx::query(
            "SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to, m.edited_at, \
             m.created_at, m.pinned_at, m.mention_everyone FROM messages m \
             JOIN channels c ON c.id = m.channel_id \
             WHERE ($1 = 0 OR c.guild_id = $1) AND ($2 = 0 OR m.channel_id = $2) \
             AND m.id < $3 AND m.id >= $4 \
             AND ($5 = 0 OR m.author_id = $5) \
             AND ($6 = 0 OR EXISTS (SELECT 1 FROM mentions mt WHERE mt.message_id = m.id \
                  AND mt.kind = 'user' AND mt.target_id = $6)) \
             AND ($7 = 0 OR EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = m.id)) \
             AND m.search_text LIKE $8 ESCAPE '\\' AND m.search_text LIKE $9 ESCAPE '\\' \
             AND m.search_text LIKE $10 ESCAPE '\\' AND m.search_text LIKE $11 ESCAPE '\\' \
             AND m.search_text LIKE $12 ESCAPE '\\' \
             ORDER BY m.id DESC LIMIT $13",
        )
        .bind(f.guild_id)
        .bind(f.channel_id)
        .bind(f.below)
        .bind(f.from_id)
        .bind(f.author_id)
        .bind(f.mentions_id)
        .bind(i64::from(f.has_attachment))
        .bind(&patterns[0])
        .bind(&patterns[1])
        .bind(&patterns[2])
        .bind(&patterns[3])
        .bind(&patterns[4])
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(crate::store::guilds::message_from)
            .collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like("50%_off"), r"%50\%\_off%");
        assert_eq!(like("안녕"), "%안녕%");
    }
}
