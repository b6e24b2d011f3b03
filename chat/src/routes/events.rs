//! Scheduled events per guild (a title, a start, an optional end, a voice channel, and
//! who is interested), and channel insights: the most used words of the last seven
//! days, minus each user's excluded words.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ChatError;
use crate::model::ChannelKind;
use crate::model::UserId;
use crate::model::perms::Perms;
use crate::routes::api::{Authed, Body, Patch};
use crate::routes::guilds::{clean_name, in_channel, in_guild, parse_id, require};
use crate::service::dispatch::{Dispatch, EventInterest};
use crate::service::hub::Audience;
use crate::service::views::EventView;
use crate::store::events::ScheduledEvent;
use crate::store::reads::id_at;
use crate::{ChatState, now_ms};

/// Window of channel insights.
pub const INSIGHT_DAYS: i64 = 7;
pub use crate::store::events::INSIGHT_SCAN;
/// Excluded words per user.
pub const MAX_EXCLUDED: usize = 200;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/guilds/{guild}/scheduled-events",
            get(list_events).post(create_event),
        )
        .route(
            "/api/v1/guilds/{guild}/scheduled-events/{event}",
            get(get_event).patch(update_event).delete(delete_event),
        )
        .route(
            "/api/v1/guilds/{guild}/scheduled-events/{event}/interested",
            put(interested).delete(not_interested).get(interested_users),
        )
        .route("/api/v1/channels/{channel}/insights", get(insights))
        .route(
            "/api/v1/users/@me/insights/excluded-words",
            get(get_excluded).put(put_excluded),
        )
        .with_state(state)
}

async fn event_view(
    state: &ChatState,
    e: &ScheduledEvent,
    user: UserId,
) -> Result<EventView, ChatError> {
    let who = state.store.interested(e.id).await?;
    Ok(EventView {
        id: e.id.to_string(),
        guild_id: e.guild_id.to_string(),
        creator_id: e.creator_id.to_string(),
        title: e.title.clone(),
        description: e.description.clone(),
        start_at: e.start_at,
        end_at: e.end_at,
        channel_id: e.channel_id.map(|c| c.to_string()),
        interested_count: who.len(),
        interested: who.contains(&user),
    })
}

#[derive(Debug, Deserialize)]
struct EventBody {
    title: Option<String>,
    description: Option<String>,
    /// Milliseconds since the Unix epoch.
    start_at: Option<i64>,
    /// `null` removes it.
    #[serde(default)]
    end_at: Patch<i64>,
    /// A voice channel of the guild; `null` removes it.
    #[serde(default)]
    channel_id: Patch<String>,
}

/// Applies and checks a create or an edit.
async fn apply(
    state: &ChatState,
    e: &mut ScheduledEvent,
    req: EventBody,
    new: bool,
) -> Result<(), ChatError> {
    if let Some(t) = &req.title {
        e.title = clean_name(t, 100, "invalid_title")?;
    }
    if let Some(d) = req.description {
        if d.chars().count() > 1000 {
            return Err(ChatError::bad_request(
                "invalid_description",
                "descriptions are up to 1000 characters",
            ));
        }
        e.description = d;
    }
    if let Some(s) = req.start_at {
        if new && s < now_ms() {
            return Err(ChatError::bad_request(
                "invalid_time",
                "an event starts in the future",
            ));
        }
        e.start_at = s;
    }
    if let Some(end) = req.end_at.into_update() {
        e.end_at = end;
    }
    if e.end_at.is_some_and(|end| end <= e.start_at) {
        return Err(ChatError::bad_request(
            "invalid_time",
            "an event ends after it starts",
        ));
    }
    let channel = req.channel_id.into_update();
    if let Some(None) = channel {
        e.channel_id = None;
    }
    if let Some(Some(c)) = &channel {
        let cid = parse_id(c, "unknown_channel")?;
        let ok = state
            .store
            .channel(cid)
            .await?
            .is_some_and(|c| c.guild_id == e.guild_id && c.kind == ChannelKind::Voice);
        if !ok {
            return Err(ChatError::bad_request(
                "invalid_channel",
                "the event's channel is a voice channel of this guild",
            ));
        }
        e.channel_id = Some(cid);
    }
    if e.title.is_empty() {
        return Err(ChatError::bad_request(
            "invalid_title",
            "an event has a title",
        ));
    }
    Ok(())
}

async fn create_event(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
    Body(req): Body<EventBody>,
) -> Result<(StatusCode, Json<EventView>), ChatError> {
    let gid = parse_id(&guild, "unknown_guild")?;
    let (_, p) = in_guild(&state, gid, user).await?;
    require(p, Perms::MANAGE_GUILD)?;
    if req.start_at.is_none() {
        return Err(ChatError::bad_request(
            "invalid_time",
            "start_at is required",
        ));
    }
    let mut e = ScheduledEvent {
        id: state.ids.next(),
        guild_id: gid,
        creator_id: user,
        title: String::new(),
        description: String::new(),
        start_at: 0,
        end_at: None,
        channel_id: None,
    };
    apply(&state, &mut e, req, true).await?;
    state.store.save_event(&e, true).await?;
    let view = event_view(&state, &e, user).await?;
    state.dispatch(
        Audience::Guild(gid),
        Dispatch::GuildScheduledEventCreate(&view),
    );
    Ok((StatusCode::CREATED, Json(view)))
}

async fn the_event(
    state: &ChatState,
    guild: &str,
    event: &str,
    user: UserId,
) -> Result<(ScheduledEvent, Perms), ChatError> {
    let gid = parse_id(guild, "unknown_guild")?;
    let (_, p) = in_guild(state, gid, user).await?;
    let eid = parse_id(event, "unknown_event")?;
    let e =
        state.store.event(gid, eid).await?.ok_or_else(|| {
            ChatError::new(StatusCode::NOT_FOUND, "unknown_event", "no such event")
        })?;
    Ok((e, p))
}

async fn list_events(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(guild): Path<String>,
) -> Result<Json<Vec<EventView>>, ChatError> {
    let gid = parse_id(&guild, "unknown_guild")?;
    in_guild(&state, gid, user).await?;
    let mut out = Vec::new();
    for e in state.store.events(gid, now_ms()).await? {
        out.push(event_view(&state, &e, user).await?);
    }
    Ok(Json(out))
}

async fn get_event(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
) -> Result<Json<EventView>, ChatError> {
    let (e, _) = the_event(&state, &guild, &event, user).await?;
    Ok(Json(event_view(&state, &e, user).await?))
}

async fn update_event(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
    Body(req): Body<EventBody>,
) -> Result<Json<EventView>, ChatError> {
    let (mut e, p) = the_event(&state, &guild, &event, user).await?;
    if e.creator_id != user {
        require(p, Perms::MANAGE_GUILD)?;
    }
    apply(&state, &mut e, req, false).await?;
    state.store.save_event(&e, false).await?;
    let view = event_view(&state, &e, user).await?;
    state.dispatch(
        Audience::Guild(e.guild_id),
        Dispatch::GuildScheduledEventUpdate(&view),
    );
    Ok(Json(view))
}

async fn delete_event(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let (e, p) = the_event(&state, &guild, &event, user).await?;
    if e.creator_id != user {
        require(p, Perms::MANAGE_GUILD)?;
    }
    state.store.delete_event(e.id).await?;
    state.dispatch(
        Audience::Guild(e.guild_id),
        Dispatch::GuildScheduledEventDelete {
            id: e.id,
            guild_id: e.guild_id,
        },
    );
    Ok(StatusCode::NO_CONTENT)
}

async fn set_interest(
    state: ChatState,
    user: UserId,
    guild: String,
    event: String,
    on: bool,
) -> Result<StatusCode, ChatError> {
    let (e, _) = the_event(&state, &guild, &event, user).await?;
    if state.store.set_interest(e.id, user, on).await? {
        let interest = EventInterest {
            event_id: e.id,
            guild_id: e.guild_id,
            user_id: user,
        };
        state.dispatch(
            Audience::Guild(e.guild_id),
            if on {
                Dispatch::GuildScheduledEventUserAdd(interest)
            } else {
                Dispatch::GuildScheduledEventUserRemove(interest)
            },
        );
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn interested(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    set_interest(state, user, guild, event, true).await
}

async fn not_interested(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    set_interest(state, user, guild, event, false).await
}

async fn interested_users(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((guild, event)): Path<(String, String)>,
) -> Result<Json<Vec<String>>, ChatError> {
    let (e, _) = the_event(&state, &guild, &event, user).await?;
    Ok(Json(
        state
            .store
            .interested(e.id)
            .await?
            .iter()
            .map(|u| u.to_string())
            .collect(),
    ))
}

/// Words too common to say anything.
const STOPWORDS: &[&str] = &[
    "the", "and", "for", "are", "but", "not", "you", "your", "all", "any", "can", "had", "her",
    "was", "one", "our", "out", "has", "him", "his", "how", "its", "let", "may", "she", "too",
    "use", "that", "this", "with", "have", "from", "they", "will", "would", "there", "their",
    "what", "when", "which", "who", "been", "were", "then", "them", "than", "into", "just",
    "about", "also", "some", "could", "should", "here", "is", "it", "to", "of", "in", "on", "at",
    "be", "as", "by", "or", "an", "if", "so", "do", "we", "me", "my", "no", "up", "i", "a",
];

/// Korean particles and endings that cling to words: `회의는`, `회의를` and `회의가`
/// all count as `회의`.
const KO_SUFFIXES: &[&str] = &[
    "에서는",
    "에게서",
    "으로는",
    "이라고",
    "에서",
    "에게",
    "으로",
    "까지",
    "부터",
    "처럼",
    "하고",
    "이랑",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "에",
    "의",
    "도",
    "로",
    "와",
    "과",
    "만",
    "랑",
];

fn is_cjk_ideo(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF   // kana
        | 0x3400..=0x4DBF // CJK ext A
        | 0x4E00..=0x9FFF // CJK unified
        | 0xF900..=0xFAFF)
}

fn is_hangul(c: char) -> bool {
    matches!(c as u32, 0xAC00..=0xD7A3)
}

/// The words of a message for insights: lowercased; Korean with particles trimmed;
/// Chinese and Japanese runs as overlapping pairs of characters (they have no spaces);
/// no links, mentions, numbers or stopwords.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.split_whitespace() {
        if raw.contains("://")
            || raw.starts_with('<')
            || raw.starts_with('@')
            || raw.starts_with('#')
        {
            continue;
        }
        let lower = raw.to_lowercase();
        let mut token = String::new();
        let flush = |t: &mut String, out: &mut Vec<String>| {
            if t.is_empty() {
                return;
            }
            let w = std::mem::take(t);
            let chars: Vec<char> = w.chars().collect();
            if chars.iter().any(|c| is_cjk_ideo(*c)) {
                if chars.len() == 1 {
                    return;
                }
                for pair in chars.windows(2) {
                    out.push(pair.iter().collect());
                }
            } else if chars.iter().any(|c| is_hangul(*c)) {
                let mut stem = w.as_str();
                for s in KO_SUFFIXES {
                    // A stem keeps two syllables: `회의` ends in `의` but is a word.
                    if let Some(x) = stem.strip_suffix(s)
                        && x.chars().count() >= 2
                    {
                        stem = x;
                        break;
                    }
                }
                out.push(stem.to_owned());
            } else if chars.len() >= 2
                && !chars.iter().all(|c| c.is_ascii_digit())
                && !STOPWORDS.contains(&w.as_str())
            {
                out.push(w);
            }
        };
        let mut kind = 0u8; // 1: cjk, 2: other letters
        for c in lower.chars() {
            let k = if is_cjk_ideo(c) {
                1
            } else if c.is_alphanumeric() || c == '\'' {
                2
            } else {
                0
            };
            if k != kind || k == 0 {
                flush(&mut token, &mut out);
            }
            if k != 0 {
                token.push(c);
            }
            kind = k;
        }
        flush(&mut token, &mut out);
    }
    out
}

/// The `n` most frequent words, most frequent first, ties alphabetical.
pub fn top_words<'a>(
    texts: impl Iterator<Item = &'a str>,
    excluded: &[String],
    n: usize,
) -> Vec<(String, usize)> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for t in texts {
        for w in words(t) {
            if !excluded.contains(&w) {
                *counts.entry(w).or_default() += 1;
            }
        }
    }
    let mut all: Vec<(String, usize)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

#[derive(Debug, Deserialize)]
struct InsightQuery {
    top: Option<usize>,
}

async fn insights(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(channel): Path<String>,
    query: Result<Query<InsightQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let top = q.top.unwrap_or(10);
    if ![3, 5, 10].contains(&top) {
        return Err(ChatError::bad_request("invalid_top", "top is 3, 5 or 10"));
    }
    let cid = parse_id(&channel, "unknown_channel")?;
    let (c, _) = in_channel(&state, cid, user).await?;
    let since = now_ms() - INSIGHT_DAYS * 86_400_000;
    let texts = state.store.recent_texts(c.id, id_at(since)).await?;
    let excluded = state.store.excluded_words(user).await?;
    let words = top_words(texts.iter().map(String::as_str), &excluded, top);
    Ok(Json(json!({
        "channel_id": c.id.to_string(),
        "since": since,
        "messages": texts.len(),
        "words": words.iter().map(|(w, n)| json!({"word": w, "count": n})).collect::<Vec<_>>(),
    })))
}

async fn get_excluded(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<serde_json::Value>, ChatError> {
    Ok(Json(
        json!({"words": state.store.excluded_words(user).await?}),
    ))
}

#[derive(Debug, Deserialize)]
struct Excluded {
    words: Vec<String>,
}

async fn put_excluded(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Body(req): Body<Excluded>,
) -> Result<Json<serde_json::Value>, ChatError> {
    let mut words: Vec<String> = req
        .words
        .iter()
        .map(|w| w.trim().to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    words.sort();
    words.dedup();
    if words.len() > MAX_EXCLUDED || words.iter().any(|w| w.chars().count() > 64) {
        return Err(ChatError::bad_request(
            "invalid_words",
            format!("up to {MAX_EXCLUDED} words of up to 64 characters"),
        ));
    }
    state.store.set_excluded_words(user, &words).await?;
    Ok(Json(json!({ "words": words })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_handle_english_korean_and_cjk() {
        assert_eq!(words("The deploy, the DEPLOY!"), vec!["deploy", "deploy"]);
        assert_eq!(words("회의는 회의를 회의"), vec!["회의", "회의", "회의"]);
        assert_eq!(words("会議です"), vec!["会議", "議で", "です"]);
        assert!(words("https://x.y @bob <@1> #general 42 a").is_empty());
    }

    #[test]
    fn top_words_count_exclude_and_rank() {
        let texts = ["deploy 회의는 deploy", "회의를 release", "deploy"];
        let top = top_words(texts.iter().copied(), &[], 3);
        assert_eq!(
            top,
            vec![
                ("deploy".into(), 3),
                ("회의".into(), 2),
                ("release".into(), 1)
            ]
        );
        let top = top_words(texts.iter().copied(), &["deploy".into()], 3);
        assert_eq!(top[0], ("회의".into(), 2));
    }
}
