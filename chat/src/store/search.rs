//! Search in the store: substring matching over lowercased messages, with its filters.
//! A trigram index finds the candidates (SQLite's FTS5 `trigram` tokenizer, Postgres'
//! `pg_trgm`), and `LIKE` decides, so results are exactly those of a full scan.

use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::store::guilds::Message;
use crate::store::{Backend, Store, StoreError};

/// Terms per query.
pub const MAX_TERMS: usize = 5;

/// Candidate ids read from SQLite's trigram index per round.
const CANDIDATES: i64 = 256;

/// Postgres: how many of the newest messages are read before the index is asked.
const RECENT: i64 = 5_000;

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

/// Whether the trigram index can find a term: three characters or more, and no LIKE
/// wildcard to escape (FTS5 takes no ESCAPE clause). Other terms are only checked by LIKE.
fn indexable(term: &str) -> bool {
    term.chars().count() >= 3 && !term.contains(['%', '_', '\\'])
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

/// The filters and the LIKE of every term, `$1`–`$12`.
const MATCHES: &str = "SELECT m.id, m.channel_id, m.author_id, m.content, m.reply_to, \
     m.edited_at, m.created_at, m.pinned_at, m.mention_everyone FROM messages m \
     JOIN channels c ON c.id = m.channel_id \
     WHERE ($1 = 0 OR c.guild_id = $1) AND ($2 = 0 OR m.channel_id = $2) \
     AND m.id < $3 AND m.id >= $4 \
     AND ($5 = 0 OR m.author_id = $5) \
     AND ($6 = 0 OR EXISTS (SELECT 1 FROM mentions mt WHERE mt.message_id = m.id \
          AND mt.kind = 'user' AND mt.target_id = $6)) \
     AND ($7 = 0 OR EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = m.id)) \
     AND m.search_text LIKE $8 ESCAPE '\\' AND m.search_text LIKE $9 ESCAPE '\\' \
     AND m.search_text LIKE $10 ESCAPE '\\' AND m.search_text LIKE $11 ESCAPE '\\' \
     AND m.search_text LIKE $12 ESCAPE '\\'";

impl Store {
    /// Up to `limit` matching messages below `f.below`, newest first. Fewer than `limit`
    /// only when no more match.
    pub async fn search(
        &self,
        f: &Filters,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let indexed: Vec<&String> = terms.iter().filter(|t| indexable(t)).collect();
        match self.backend {
            Backend::Sqlite if !indexed.is_empty() => {
                self.search_by_index(f, terms, &indexed, limit).await
            }
            Backend::Postgres if !terms.is_empty() => {
                self.search_recent_first(f, terms, limit).await
            }
            _ => matches(&self.pool, f, f.below, f.from_id, terms, "m.id", limit).await,
        }
    }

    /// Postgres: the newest [`RECENT`] messages first, read newest first along
    /// the primary key (bitmap scans, and so the trigram index, off for that query), which
    /// fills the page at once for a common term; then, for a rarer one, the rest through
    /// pg_trgm's index, ordered after the fact (`m.id + 0` keeps the planner from walking
    /// the primary key newest first through a million messages instead).
    async fn search_recent_first(
        &self,
        f: &Filters,
        terms: &[String],
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        // Plans made for these values: a plan cached for any pattern or window is the
        // wrong one for most of them.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
            .execute(&mut *tx)
            .await?;
        // The window is the newest messages of all, which the primary key gives at once
        // whatever the guild; the matches below it come from the index.
        let floor: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM messages WHERE id < $1 AND id >= $2 ORDER BY id DESC \
             OFFSET $3 LIMIT 1",
        )
        .bind(f.below)
        .bind(f.from_id)
        .bind(RECENT - 1)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(floor) = floor.map(MessageId).filter(|fl| *fl > f.from_id) else {
            // Fewer messages than the window: one read covers them all.
            let out = matches(&mut *tx, f, f.below, f.from_id, terms, "m.id", limit).await?;
            tx.commit().await?;
            return Ok(out);
        };
        sqlx::query("SET LOCAL enable_bitmapscan = off")
            .execute(&mut *tx)
            .await?;
        let mut out = matches(&mut *tx, f, f.below, floor, terms, "m.id", limit).await?;
        if (out.len() as i64) < limit {
            sqlx::query("SET LOCAL enable_bitmapscan = on")
                .execute(&mut *tx)
                .await?;
            let rest = limit - out.len() as i64;
            out.extend(matches(&mut *tx, f, floor, f.from_id, terms, "(m.id + 0)", rest).await?);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// SQLite: candidates from the trigram index, newest first, a round at a time; the
    /// filters and every term's LIKE decide among them.
    async fn search_by_index(
        &self,
        f: &Filters,
        terms: &[String],
        indexed: &[&String],
        limit: i64,
    ) -> Result<Vec<Message>, StoreError> {
        let index_sql = format!(
            "SELECT rowid FROM message_search WHERE {} AND rowid < $1 AND rowid >= $2 \
             ORDER BY rowid DESC LIMIT $3",
            (0..indexed.len())
                .map(|i| format!("search_text LIKE ${}", i + 4))
                .collect::<Vec<_>>()
                .join(" AND ")
        );
        let mut out: Vec<Message> = Vec::new();
        let mut below = f.below;
        loop {
            let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(index_sql.clone()))
                .bind(below)
                .bind(f.from_id)
                .bind(CANDIDATES);
            for t in indexed {
                q = q.bind(format!("%{t}%"));
            }
            let ids: Vec<i64> = q.fetch_all(&self.pool).await?;
            let Some(&last) = ids.last() else { break };
            // The candidates by their ids: no ORDER BY, which would let the planner walk
            // the whole table newest first to satisfy it instead.
            let list = (0..ids.len())
                .map(|i| format!("${}", i + 13))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!("{MATCHES} AND m.id IN ({list})");
            let mut q = bind_matches(
                sqlx::query(sqlx::AssertSqlSafe(sql)),
                f,
                below,
                f.from_id,
                terms,
            );
            for id in &ids {
                q = q.bind(*id);
            }
            let mut round = q
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(crate::store::guilds::message_from)
                .collect::<Result<Vec<_>, _>>()?;
            round.sort_by_key(|m| std::cmp::Reverse(m.id));
            out.extend(round);
            if out.len() as i64 >= limit || (ids.len() as i64) < CANDIDATES {
                break;
            }
            below = MessageId(last);
        }
        out.truncate(limit.max(0) as usize);
        Ok(out)
    }
}

/// Matches between `from` (included) and `below`, ordered by `order` descending.
async fn matches<'e, E>(
    db: E,
    f: &Filters,
    below: MessageId,
    from: MessageId,
    terms: &[String],
    order: &str,
    limit: i64,
) -> Result<Vec<Message>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // Only constant text and `$n` placeholders are formatted in; values are bound.
    let sql = format!("{MATCHES} ORDER BY {order} DESC LIMIT $13");
    let rows = bind_matches(sqlx::query(sqlx::AssertSqlSafe(sql)), f, below, from, terms)
        .bind(limit)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(crate::store::guilds::message_from)
        .collect::<Result<_, _>>()
        .map_err(StoreError::Db)
}

/// Binds `$1`–`$12` of [`MATCHES`]: the filters, ids from `from` to below `below`, and
/// the terms.
fn bind_matches<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    f: &Filters,
    below: MessageId,
    from: MessageId,
    terms: &[String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let mut patterns: Vec<String> = terms.iter().map(|t| like(t)).collect();
    patterns.resize(MAX_TERMS, "%".into());
    let mut q = q
        .bind(f.guild_id)
        .bind(f.channel_id)
        .bind(below)
        .bind(from)
        .bind(f.author_id)
        .bind(f.mentions_id)
        .bind(i64::from(f.has_attachment));
    for p in patterns {
        q = q.bind(p);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like("50%_off"), r"%50\%\_off%");
        assert_eq!(like("안녕"), "%안녕%");
    }

    #[test]
    fn only_terms_of_three_characters_without_wildcards_use_the_index() {
        assert!(indexable("회의록"));
        assert!(indexable("abc"));
        assert!(!indexable("안녕"));
        assert!(!indexable("50%"));
        assert!(!indexable("a_b_c"));
    }
}
