//! Read states, unread and mention badges, notification settings and the inbox of
//! mentions and replies (who is notified of a new message: `routes/notify.rs`).

use std::collections::{HashMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::error::ChatError;
use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::routes::api::{Authed, Body, Patch};
use crate::routes::guilds::{channel_audience, in_channel, in_guild, parse_id};
use crate::service::dispatch::{Dispatch, ReadMark};
use crate::service::hub::Audience;
use crate::service::views::MessageView;
use crate::service::views::SettingView;
use crate::service::views::{ChannelReadView, GuildReadView, ReadStates};
use crate::store::guilds::{Channel, Message};
use crate::store::reads::{ChannelRead, Level, Setting};
use crate::{ChatState, now_ms};

/// Channels with at most this many members show, per message, how many have not read it.
pub const READ_RECEIPT_MEMBERS: usize = 100;

/// The level of a guild channel nobody has configured.
pub const DEFAULT_LEVEL: Level = Level::Mentions;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/channels/{channel}/messages/{message}/ack",
            post(ack),
        )
        .route("/api/v1/users/@me/read-states", get(read_states))
        .route(
            "/api/v1/users/@me/notification-settings",
            get(list_settings),
        )
        .route(
            "/api/v1/users/@me/notification-settings/{scope}/{id}",
            put(put_setting),
        )
        .route("/api/v1/users/@me/inbox", get(inbox))
        .route("/api/v1/users/@me/inbox/read-all", post(inbox_read_all))
        .route("/api/v1/users/@me/inbox/{message}/read", post(inbox_read))
        .with_state(state)
}

/// The settings in force for one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective {
    pub level: Level,
    pub muted: bool,
    pub keep_mentions: bool,
}

/// A channel's setting overrides its guild's level; a mute of either mutes the channel.
pub fn effective(guild: Option<&Setting>, channel: Option<&Setting>, now: i64) -> Effective {
    effective_or(guild, channel, now, DEFAULT_LEVEL)
}

/// As [`effective`], with the level that applies when none is set (DMs: all).
pub fn effective_or(
    guild: Option<&Setting>,
    channel: Option<&Setting>,
    now: i64,
    default: Level,
) -> Effective {
    let muted = |s: Option<&Setting>| s.and_then(|s| s.muted_until).is_some_and(|u| u > now);
    let level = channel
        .and_then(|s| s.level)
        .or_else(|| guild.and_then(|s| s.level))
        .unwrap_or(default);
    let (muted, keep_mentions) = if muted(channel) {
        (true, channel.is_none_or(|s| s.keep_mentions))
    } else if muted(guild) {
        (true, guild.is_none_or(|s| s.keep_mentions))
    } else {
        (false, true)
    };
    Effective {
        level,
        muted,
        keep_mentions,
    }
}

impl Effective {
    /// Whether a message notifies (and, for mentions and replies, reaches the inbox).
    pub fn notifies(self, mentioned: bool) -> bool {
        if self.level == Level::Nothing {
            return false;
        }
        if self.muted {
            return mentioned && self.keep_mentions;
        }
        self.level == Level::All || mentioned
    }

    /// The badge shown: (unread messages, mentions). A muted channel shows no unread
    /// count, and mentions only if they are kept.
    pub fn badge(self, unread: i64, mentions: i64) -> (i64, i64) {
        let mentions = if self.level == Level::Nothing || (self.muted && !self.keep_mentions) {
            0
        } else {
            mentions
        };
        if self.muted {
            (0, mentions)
        } else {
            (unread, mentions)
        }
    }
}

/// The user's settings, keyed by scope.
pub(crate) struct Settings(pub(crate) HashMap<(String, i64), Setting>);

impl Settings {
    /// A thread without settings of its own follows its channel's.
    pub(crate) fn of(
        &self,
        guild_id: GuildId,
        channel_id: ChannelId,
        parent_id: ChannelId,
        now: i64,
    ) -> Effective {
        let channel = self
            .0
            .get(&("channel".to_owned(), channel_id.0))
            .or_else(|| self.0.get(&("channel".to_owned(), parent_id.0)));
        effective_or(
            self.0.get(&("guild".to_owned(), guild_id.0)),
            channel,
            now,
            if guild_id == GuildId(0) {
                Level::All
            } else {
                DEFAULT_LEVEL
            },
        )
    }
}

/// The user's read states with badges as their settings show them, over the channels
/// they can see.
pub(crate) async fn read_states_of(
    state: &ChatState,
    user: UserId,
    visible: &HashMap<GuildId, HashSet<ChannelId>>,
) -> Result<ReadStates, ChatError> {
    let settings = settings_of(state, user).await?;
    let now = now_ms();
    let mut channels = Vec::new();
    let mut guilds: HashMap<GuildId, (bool, i64)> = HashMap::new();
    for r in state.store.read_states(user).await? {
        let ChannelRead {
            channel_id,
            guild_id,
            settings_channel,
            last_read_id,
            unread,
            mentions,
        } = r;
        let dm = guild_id == GuildId(0);
        if !dm
            && !visible
                .get(&guild_id)
                .is_some_and(|v| v.contains(&channel_id))
        {
            continue;
        }
        let eff = settings.of(guild_id, channel_id, settings_channel, now);
        let (unread, mentions) = eff.badge(unread, mentions);
        if !dm {
            let g = guilds.entry(guild_id).or_default();
            g.0 |= unread > 0;
            g.1 += mentions;
        }
        channels.push(ChannelReadView {
            channel_id: channel_id.to_string(),
            guild_id: (!dm).then(|| guild_id.to_string()),
            last_read_id: last_read_id.to_string(),
            unread_count: unread,
            mention_count: mentions,
            muted: eff.muted,
        });
    }
    let mut guilds: Vec<GuildReadView> = guilds
        .into_iter()
        .map(|(g, (unread, mentions))| GuildReadView {
            guild_id: g.to_string(),
            unread,
            mention_count: mentions,
        })
        .collect();
    guilds.sort_by(|a, b| a.guild_id.cmp(&b.guild_id));
    Ok(ReadStates { channels, guilds })
}

async fn settings_of(state: &ChatState, user: UserId) -> Result<Settings, ChatError> {
    Ok(Settings(
        state
            .store
            .notification_settings(user)
            .await?
            .into_iter()
            .map(|s| ((s.scope.clone(), s.scope_id), s))
            .collect(),
    ))
}

/// What the user can see in each of their guilds.
async fn visible_of(
    state: &ChatState,
    user: UserId,
) -> Result<HashMap<GuildId, HashSet<ChannelId>>, ChatError> {
    let mut out = HashMap::new();
    for g in state.store.user_guilds(user).await? {
        if let Some(a) = state.store.guild_access(g).await?
            && let Some(v) = a.visible(user)
        {
            out.insert(g, v);
        }
    }
    Ok(out)
}

async fn read_states(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<ReadStates>, ChatError> {
    let visible = visible_of(&state, user).await?;
    Ok(Json(read_states_of(&state, user, &visible).await?))
}

async fn ack(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((channel, message)): Path<(String, String)>,
) -> Result<StatusCode, ChatError> {
    let cid = parse_id(&channel, "unknown_channel")?;
    let (c, _) = in_channel(&state, cid, user).await?;
    let mid = parse_id(&message, "unknown_message")?;
    state.store.message(cid, mid).await?.ok_or_else(|| {
        ChatError::new(StatusCode::NOT_FOUND, "unknown_message", "no such message")
    })?;
    state
        .metrics
        .db("read_state", state.store.ack(user, cid, mid))
        .await?;
    // Acks never move backwards: tell everyone where the mark really is.
    let last_read_id = state.store.read_mark(user, cid).await?.unwrap_or(mid);
    let mark = ReadMark {
        channel_id: cid,
        user_id: user,
        last_read_id,
    };
    // The user's other sessions clear their badges.
    state.dispatch(Audience::Users(vec![user]), Dispatch::MessageAck(mark));
    // In DMs and small channels, others update how many have read each message.
    let small =
        c.is_dm() || state.store.member_count(c.guild_id).await? <= READ_RECEIPT_MEMBERS as i64;
    if small {
        state.dispatch(channel_audience(&c), Dispatch::ChannelRead(mark));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Fills in, for a channel of at most [`READ_RECEIPT_MEMBERS`] members, how many of
/// those who can see it have not read each message (its author aside).
pub(crate) async fn unread_by(
    state: &ChatState,
    c: &Channel,
    views: &mut [MessageView],
    messages: &[Message],
) -> Result<(), ChatError> {
    let marks: Vec<(UserId, MessageId)> = if c.is_dm() {
        state.store.dm_read_marks(c.id).await?
    } else {
        // Count first: a large guild's permissions are not loaded for nothing.
        if state.store.member_count(c.guild_id).await? > READ_RECEIPT_MEMBERS as i64 {
            return Ok(());
        }
        let Some(access) = state.store.guild_access(c.guild_id).await? else {
            return Ok(());
        };
        state
            .store
            .read_marks(c.guild_id, c.id)
            .await?
            .into_iter()
            .filter(|(u, _)| access.visible(*u).is_some_and(|v| v.contains(&c.id)))
            .collect()
    };
    for (v, m) in views.iter_mut().zip(messages) {
        let n = marks
            .iter()
            .filter(|(u, last)| *u != m.author_id && *last < m.id)
            .count();
        v.unread_by = Some(n as i64);
    }
    Ok(())
}

async fn list_settings(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<Vec<SettingView>>, ChatError> {
    let all = state.store.notification_settings(user).await?;
    Ok(Json(all.iter().map(SettingView::from).collect()))
}

#[derive(Debug, Deserialize)]
struct SettingBody {
    /// `all`, `mentions`, `nothing`, or null to inherit.
    #[serde(default)]
    level: Patch<String>,
    /// `15m`, `1h`, `8h`, `24h`, `forever`, or `off`.
    #[serde(default)]
    mute: Option<String>,
    #[serde(default)]
    keep_mentions: Option<bool>,
}

/// How long each mute choice lasts, in ms; `None` for until turned back on.
fn mute_until(choice: &str, now: i64) -> Result<Option<i64>, ChatError> {
    let minutes = match choice {
        "off" => return Ok(None),
        "forever" => return Ok(Some(i64::MAX)),
        "15m" => 15,
        "1h" => 60,
        "8h" => 8 * 60,
        "24h" => 24 * 60,
        _ => {
            return Err(ChatError::bad_request(
                "invalid_mute",
                "mute is 15m, 1h, 8h, 24h, forever or off",
            ));
        }
    };
    Ok(Some(now + minutes * 60_000))
}

async fn put_setting(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path((scope, id)): Path<(String, String)>,
    Body(req): Body<SettingBody>,
) -> Result<Json<SettingView>, ChatError> {
    let scope_id = match scope.as_str() {
        "guilds" => {
            let g: GuildId = parse_id(&id, "unknown_guild")?;
            in_guild(&state, g, user).await?;
            g.0
        }
        "channels" => {
            let c: ChannelId = parse_id(&id, "unknown_channel")?;
            in_channel(&state, c, user).await?;
            c.0
        }
        _ => {
            return Err(ChatError::new(
                StatusCode::NOT_FOUND,
                "unknown_scope",
                "settings are per guilds/{id} or channels/{id}",
            ));
        }
    };
    let kind = if scope == "guilds" {
        "guild"
    } else {
        "channel"
    };
    let mut s = settings_of(&state, user)
        .await?
        .0
        .remove(&(kind.to_owned(), scope_id))
        .unwrap_or(Setting {
            scope: kind.to_owned(),
            scope_id,
            level: None,
            muted_until: None,
            keep_mentions: true,
        });
    if let Some(level) = req.level.into_update() {
        s.level = match level {
            None => None,
            Some(l) => Some(Level::parse(&l).ok_or_else(|| {
                ChatError::bad_request("invalid_level", "level is all, mentions or nothing")
            })?),
        };
    }
    if let Some(m) = &req.mute {
        s.muted_until = mute_until(m, now_ms())?;
    }
    if let Some(k) = req.keep_mentions {
        s.keep_mentions = k;
    }
    state.store.set_notification_setting(user, &s).await?;
    let view = SettingView::from(&s);
    state.dispatch(
        Audience::Users(vec![user]),
        Dispatch::NotificationSettingsUpdate(&view),
    );
    Ok(Json(view))
}

#[derive(Debug, Deserialize)]
struct InboxQuery {
    before: Option<String>,
    limit: Option<i64>,
    unread: Option<bool>,
}

async fn inbox(
    State(state): State<ChatState>,
    Authed(user): Authed,
    query: Result<Query<InboxQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<serde_json::Value>>, ChatError> {
    let Query(q) = query.map_err(|e| ChatError::bad_request("invalid_query", e.body_text()))?;
    let limit = q.limit.unwrap_or(25);
    if !(1..=100).contains(&limit) {
        return Err(ChatError::bad_request("invalid_limit", "limit is 1-100"));
    }
    let before = match q.before {
        Some(b) => b
            .parse()
            .map_err(|_| ChatError::bad_request("invalid_cursor", "before is a message id"))?,
        None => MessageId(i64::MAX),
    };
    let items = state
        .store
        .inbox(user, before, limit, q.unread.unwrap_or(false))
        .await?;
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        // Only what the user can still see.
        let Ok((_, _)) = in_channel(&state, i.channel_id, user).await else {
            continue;
        };
        let Some(mut m) = state.store.message(i.channel_id, i.message_id).await? else {
            continue;
        };
        let reactions = state
            .store
            .message_extras(i.channel_id, std::slice::from_mut(&mut m), user)
            .await?;
        let r = reactions.get(&m.id).map_or(&[][..], |r| r);
        out.push(json!({
            "reason": i.reason,
            "read": i.read,
            "message": MessageView::new(&state, &m, r, true),
        }));
    }
    Ok(Json(out))
}

async fn inbox_read(
    State(state): State<ChatState>,
    Authed(user): Authed,
    Path(message): Path<String>,
) -> Result<StatusCode, ChatError> {
    let mid = parse_id(&message, "unknown_message")?;
    if state.store.read_inbox(user, Some(mid), now_ms()).await? == 0 {
        return Err(ChatError::new(
            StatusCode::NOT_FOUND,
            "unknown_inbox_item",
            "no unread inbox item for that message",
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn inbox_read_all(
    State(state): State<ChatState>,
    Authed(user): Authed,
) -> Result<Json<serde_json::Value>, ChatError> {
    let n = state.store.read_inbox(user, None, now_ms()).await?;
    Ok(Json(json!({"marked": n})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(level: Option<Level>, muted_until: Option<i64>, keep: bool) -> Setting {
        Setting {
            scope: "channel".into(),
            scope_id: 1,
            level,
            muted_until,
            keep_mentions: keep,
        }
    }

    #[test]
    fn channel_level_overrides_guild_and_defaults_to_mentions() {
        let g = setting(Some(Level::All), None, true);
        let c = setting(Some(Level::Nothing), None, true);
        assert_eq!(effective(Some(&g), Some(&c), 0).level, Level::Nothing);
        assert_eq!(effective(Some(&g), None, 0).level, Level::All);
        assert_eq!(effective(None, None, 0).level, Level::Mentions);
        assert!(effective(None, None, 0).notifies(true));
        assert!(!effective(None, None, 0).notifies(false));
    }

    #[test]
    fn mutes_expire_and_hide_badges_except_kept_mentions() {
        let muted = setting(None, Some(1_000), true);
        let e = effective(None, Some(&muted), 999);
        assert!(e.muted);
        assert_eq!(e.badge(5, 2), (0, 2));
        assert!(e.notifies(true) && !e.notifies(false));
        let strict = setting(None, Some(1_000), false);
        let e = effective(None, Some(&strict), 999);
        assert_eq!(e.badge(5, 2), (0, 0));
        assert!(!e.notifies(true));
        // Expired.
        assert!(!effective(None, Some(&muted), 1_000).muted);
        // A guild mute mutes its channels.
        let g = setting(None, Some(i64::MAX), true);
        assert!(effective(Some(&g), None, 5).muted);
    }

    #[test]
    fn nothing_means_no_mention_badge_and_no_notification() {
        let c = setting(Some(Level::Nothing), None, true);
        let e = effective(None, Some(&c), 0);
        assert_eq!(e.badge(3, 1), (3, 0));
        assert!(!e.notifies(true));
    }

    #[test]
    fn mute_choices() {
        assert_eq!(mute_until("15m", 0).unwrap(), Some(900_000));
        assert_eq!(mute_until("24h", 0).unwrap(), Some(86_400_000));
        assert_eq!(mute_until("forever", 0).unwrap(), Some(i64::MAX));
        assert_eq!(mute_until("off", 0).unwrap(), None);
        assert!(mute_until("2h", 0).is_err());
    }
}
