//! Message search within a guild or a channel: substring matching that finds Korean,
//! Japanese and Chinese text as well as English words, with `from:`, `in:`, `has:`,
//! `before:`, `after:` and `mentions:` filters. Results come newest first, a page at a
//! time, cursored by message id.
//!
//! Text is folded (lowercased) when stored and when searched, and each term must occur
//! as a substring. Word tokenizers split CJK text badly or not at all; substring
//! matching needs no tokenizer and never misses.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::ChatState;
use crate::error::ChatError;
use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::routes::api::Authed;
use crate::routes::guilds::{in_channel, in_guild, parse_id};
use crate::service::views::MessageView;
use crate::store::fold;
use crate::store::guilds::{GuildAccess, Message};
use crate::store::reads::id_at;
use crate::store::search::Filters;

pub use crate::store::search::MAX_TERMS;
/// Longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 512;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/api/v1/guilds/{guild}/messages/search", get(search_guild))
        .route(
            "/api/v1/channels/{channel}/messages/search",
            get(search_channel),
        )
        .with_state(state)
}

/// A parsed query.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    pub terms: Vec<String>,
    pub from: Option<String>,
    pub in_channel: Option<String>,
    pub has_attachment: bool,
    /// Messages before the start of this day (ms, UTC).
    pub before_ms: Option<i64>,
    /// Messages from the day after this one (ms, UTC).
    pub after_ms: Option<i64>,
    pub mentions: Option<String>,
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD` as ms since the epoch at 00:00 UTC.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.split('-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: i64 = it.next()?.parse().ok()?;
    let d: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1970..=9999).contains(&y) || !(1..=12).contains(&m) {
        return None;
    }
    let days_in_month = match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if !(1..=days_in_month).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400_000)
}

/// Splits a query into terms (quoted phrases stay whole) and filters.
pub fn parse_query(q: &str) -> Result<ParsedQuery, ChatError> {
    let bad = |m: String| ChatError::bad_request("invalid_query", m);
    if q.chars().count() > MAX_QUERY_CHARS {
        return Err(bad(format!(
            "queries are up to {MAX_QUERY_CHARS} characters"
        )));
    }
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                if quoted && !cur.is_empty() {
                    tokens.push((std::mem::take(&mut cur), true));
                }
                quoted = !quoted;
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    tokens.push((std::mem::take(&mut cur), false));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push((cur, quoted));
    }
    let mut p = ParsedQuery::default();
    for (t, was_quoted) in tokens {
        let filter = if was_quoted { None } else { t.split_once(':') };
        match filter {
            Some(("from", v)) if !v.is_empty() => p.from = Some(v.trim_start_matches('@').into()),
            Some(("mentions", v)) if !v.is_empty() => {
                p.mentions = Some(v.trim_start_matches('@').into())
            }
            Some(("in", v)) if !v.is_empty() => {
                p.in_channel = Some(v.trim_start_matches('#').into())
            }
            Some(("has", "attachment" | "file")) => p.has_attachment = true,
            Some(("has", v)) => return Err(bad(format!("has:{v}: only has:attachment"))),
            Some(("before", v)) => {
                p.before_ms =
                    Some(parse_date(v).ok_or_else(|| bad(format!("before:{v}: use YYYY-MM-DD")))?)
            }
            Some(("after", v)) => {
                let day = parse_date(v).ok_or_else(|| bad(format!("after:{v}: use YYYY-MM-DD")))?;
                p.after_ms = Some(day + 86_400_000);
            }
            _ => {
                if p.terms.len() == MAX_TERMS {
                    return Err(bad(format!("at most {MAX_TERMS} search terms")));
                }
                p.terms.push(fold(&t));
            }
        }
    }
    Ok(p)
}

#[derive(Debug, Deserialize)]
struct SearchParams {
    q: Option<String>,
    before: Option<String>,
    limit: Option<i64>,
}

#[derive(Debug, Serialize)]
struct SearchPage {
    messages: Vec<MessageView>,
    /// Pass as `before` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_before: Option<String>,
}

/// Resolves filters and runs the search, keeping only channels the caller can see.
async fn run(
    state: &ChatState,
    user: UserId,
    guild_id: GuildId,
    channel_id: Option<ChannelId>,
    params: SearchParams,
) -> Result<SearchPage, ChatError> {
    let q = parse_query(params.q.as_deref().unwrap_or(""))?;
    let limit = params.limit.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ChatError::bad_request("invalid_limit", "limit is 1-100"));
    }
    let below = match &params.before {
        Some(b) => b
            .parse::<MessageId>()
            .map_err(|_| ChatError::bad_request("invalid_cursor", "before is a message id"))?,
        None => MessageId(i64::MAX),
    };
    // A DM's search covers the DM; a guild's, the channels the caller can see.
    let access = if guild_id == GuildId(0) {
        None
    } else {
        Some(state.store.guild_access(guild_id).await?.ok_or_else(|| {
            ChatError::new(StatusCode::NOT_FOUND, "unknown_guild", "no such guild")
        })?)
    };
    let visible: HashSet<ChannelId> = match &access {
        Some(a) => a.visible(user).unwrap_or_default(),
        None => channel_id.into_iter().collect(),
    };
    let base = Filters {
        guild_id,
        channel_id: channel_id.unwrap_or(ChannelId(0)),
        below: below.min(q.before_ms.map_or(MessageId(i64::MAX), id_at)),
        from_id: q.after_ms.map_or(MessageId(0), id_at),
        has_attachment: q.has_attachment,
        ..Filters::default()
    };
    let Some(mut f) = narrow(state, &q, access.as_ref(), &visible, base).await? else {
        return Ok(SearchPage {
            messages: Vec::new(),
            next_before: None,
        });
    };
    let (mut out, exhausted) = visible_matches(state, &mut f, &q.terms, &visible, limit).await?;
    // Not exhausted: older matches may remain, even if this page found none visible.
    let next_before = (!exhausted).then(|| f.below.to_string());
    let mut messages = Vec::with_capacity(out.len());
    for m in out.iter_mut() {
        let r = state
            .store
            .message_extras(m.channel_id, std::slice::from_mut(m), user)
            .await?;
        messages.push(MessageView::new(
            state,
            m,
            r.get(&m.id).map_or(&[], |r| r),
            true,
        ));
    }
    Ok(SearchPage {
        messages,
        next_before,
    })
}

/// The query's `from:`, `mentions:` and `in:` as filters; `None` when one of them names
/// nobody or nothing the caller can see, so nothing can match.
async fn narrow(
    state: &ChatState,
    q: &ParsedQuery,
    access: Option<&GuildAccess>,
    visible: &HashSet<ChannelId>,
    mut f: Filters,
) -> Result<Option<Filters>, ChatError> {
    let member_named = |name: &str| {
        let name = name.to_owned();
        async move {
            let u = state.store.user_by_username(&name).await?;
            Ok::<_, ChatError>(u.map(|u| u.id))
        }
    };
    if let Some(name) = &q.from {
        match member_named(name).await? {
            Some(id) => f.author_id = id,
            None => return Ok(None),
        }
    }
    if let Some(name) = &q.mentions {
        match member_named(name).await? {
            Some(id) => f.mentions_id = id,
            None => return Ok(None),
        }
    }
    if let Some(ch) = &q.in_channel {
        let found = access.and_then(|a| {
            a.channels
                .iter()
                .find(|(c, _)| c.name == *ch || c.id.to_string() == *ch)
                .map(|(c, _)| c.id)
        });
        match found {
            Some(id)
                if visible.contains(&id)
                    && (f.channel_id == ChannelId(0) || f.channel_id == id) =>
            {
                f.channel_id = id
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(f))
}

/// Up to `limit` matches in channels the caller can see, newest first, and whether the
/// history is exhausted. Pages from channels the caller cannot see are skipped; it keeps
/// reading until the page is full or the history ends (at most 20 reads). `f.below` ends
/// as the cursor for the next page.
async fn visible_matches(
    state: &ChatState,
    f: &mut Filters,
    terms: &[String],
    visible: &HashSet<ChannelId>,
    limit: i64,
) -> Result<(Vec<Message>, bool), ChatError> {
    let mut out: Vec<Message> = Vec::new();
    let mut exhausted = false;
    let mut rounds = 0;
    while (out.len() as i64) < limit && rounds < 20 {
        rounds += 1;
        let want = limit - out.len() as i64;
        let batch = state
            .metrics
            .db("search", state.store.search(f, terms, want))
            .await?;
        if (batch.len() as i64) < want {
            exhausted = true;
        }
        let Some(last) = batch.last() else { break };
        f.below = last.id;
        out.extend(
            batch
                .into_iter()
                .filter(|m| visible.contains(&m.channel_id)),
        );
        if exhausted {
            break;
        }
    }
    Ok((out, exhausted))
}

async fn search_guild(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchPage>, ChatError> {
    let Query(params) =
        query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let id = parse_id(&guild, "unknown_guild")?;
    in_guild(&state, id, user).await?;
    Ok(Json(run(&state, user, id, None, params).await?))
}

async fn search_channel(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    query: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchPage>, ChatError> {
    let Query(params) =
        query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let id = parse_id(&channel, "unknown_channel")?;
    let (c, _) = in_channel(&state, id, user).await?;
    Ok(Json(run(&state, user, c.guild_id, Some(id), params).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_split_into_terms_and_filters() {
        let p = parse_query(r#"회의 "release notes" from:@alice in:#general has:attachment mentions:bob before:2026-11-21 after:2026-11-01 Deploy"#).unwrap();
        assert_eq!(p.terms, vec!["회의", "release notes", "deploy"]);
        assert_eq!(p.from.as_deref(), Some("alice"));
        assert_eq!(p.in_channel.as_deref(), Some("general"));
        assert_eq!(p.mentions.as_deref(), Some("bob"));
        assert!(p.has_attachment);
        assert_eq!(p.before_ms, parse_date("2026-11-21"));
        assert_eq!(p.after_ms, Some(parse_date("2026-11-02").unwrap()));
        // A quoted colon is text, not a filter.
        assert_eq!(parse_query(r#""from:x""#).unwrap().terms, vec!["from:x"]);
    }

    #[test]
    fn bad_queries_are_refused() {
        for q in [
            "before:2026-13-01",
            "after:yesterday",
            "has:link",
            "a b c d e f",
        ] {
            assert!(parse_query(q).is_err(), "{q}");
        }
        assert!(parse_query(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800_000));
        assert!(parse_date("2024-02-29").is_some());
        assert_eq!(parse_date("2023-02-29"), None);
    }
}
