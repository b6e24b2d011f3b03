//! Who hears of a new message: inbox entries for those it mentions or replies to,
//! `notification_create` for everyone whose notification settings say so, and a Web Push
//! to those of them with no device connected.

use std::collections::{HashMap, HashSet};

use crate::error::ChatError;
use crate::model::{GuildId, Mention, RoleId, UserId};
use crate::routes::reads::{Settings, effective, effective_or};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::service::push;
use crate::service::views::MessageView;
use crate::store::guilds::{Channel, GuildAccess, Message};
use crate::store::reads::Level;
use crate::{ChatState, now_ms};

/// After a message is stored: inbox entries for those it mentions or replies to, and
/// `notification_create` for everyone whose settings say so.
pub(crate) async fn notify(
    state: &ChatState,
    c: &Channel,
    m: &Message,
    view: &MessageView,
) -> Result<(), ChatError> {
    if c.is_dm() {
        return notify_dm(state, c, m, view).await;
    }
    let settings = state
        .store
        .settings_for(c.guild_id, c.id, c.perms_channel())
        .await?;
    let wants_all = settings.iter().any(|(_, s)| s.level == Some(Level::All));
    let reply_to = match m.reply_to {
        Some(r) => state
            .store
            .message(c.id, r)
            .await?
            .map(|r| r.author_id)
            .filter(|a| *a != m.author_id),
        None => None,
    };
    if m.mentions.is_empty() && !m.mention_everyone && reply_to.is_none() && !wants_all {
        return Ok(());
    }
    let Some(access) = state.store.guild_access(c.guild_id).await? else {
        return Ok(());
    };
    let mentioned = mentioned_users(&access, c, m);
    // Each user's settings, resolved as their badges are (a thread follows its channel
    // unless it has settings of its own).
    let mut per_user: HashMap<UserId, Settings> = HashMap::new();
    for (u, s) in settings {
        per_user
            .entry(u)
            .or_insert_with(|| Settings(HashMap::new()))
            .0
            .insert((s.scope.clone(), s.scope_id), s);
    }
    let now = now_ms();
    let eff = |u: UserId| {
        per_user.get(&u).map_or(effective(None, None, now), |s| {
            s.of(c.guild_id, c.id, c.perms_channel(), now)
        })
    };
    let can_see =
        |u: UserId| u != m.author_id && access.visible(u).is_some_and(|v| v.contains(&c.id));
    let inbox_mentions: Vec<UserId> = mentioned
        .iter()
        .copied()
        .filter(|u| can_see(*u) && eff(*u).notifies(true))
        .collect();
    state
        .store
        .add_to_inbox(&inbox_mentions, m.id, c.id, "mention")
        .await?;
    let reply: Vec<UserId> = reply_to
        .into_iter()
        .filter(|u| !mentioned.contains(u) && can_see(*u) && eff(*u).notifies(true))
        .collect();
    state
        .store
        .add_to_inbox(&reply, m.id, c.id, "reply")
        .await?;
    let mut notified: Vec<(UserId, &str)> = inbox_mentions
        .iter()
        .map(|u| (*u, "mention"))
        .chain(reply.iter().map(|u| (*u, "reply")))
        .collect();
    if wants_all {
        for (u, _) in per_user.iter() {
            if !notified.iter().any(|(n, _)| n == u) && can_see(*u) && eff(*u).notifies(false) {
                notified.push((*u, "message"));
            }
        }
    }
    for (u, reason) in notified {
        state.dispatch(
            Audience::Users(vec![u]),
            Dispatch::NotificationCreate {
                reason,
                guild_id: Some(c.guild_id),
                message: view,
            },
        );
        push::notify_if_away(state, away(u, reason, Some(c.guild_id), c, m));
    }
    Ok(())
}

/// In a DM everyone else hears of every message (level all by default); replies and
/// mentions also reach the inbox.
async fn notify_dm(
    state: &ChatState,
    c: &Channel,
    m: &Message,
    view: &MessageView,
) -> Result<(), ChatError> {
    let settings = state.store.settings_for(GuildId(0), c.id, c.id).await?;
    let now = now_ms();
    let reply_to = match m.reply_to {
        Some(r) => state.store.message(c.id, r).await?.map(|r| r.author_id),
        None => None,
    };
    for u in c.recipients.iter().copied().filter(|u| *u != m.author_id) {
        let own = settings.iter().find(|(x, _)| *x == u).map(|(_, s)| s);
        let eff = effective_or(None, own, now, Level::All);
        let mentioned = m.mentions.contains(&Mention::User(u));
        let reason = if mentioned {
            "mention"
        } else if reply_to == Some(u) {
            "reply"
        } else {
            "message"
        };
        if !eff.notifies(reason != "message") {
            continue;
        }
        if reason != "message" {
            state.store.add_to_inbox(&[u], m.id, c.id, reason).await?;
        }
        state.dispatch(
            Audience::Users(vec![u]),
            Dispatch::NotificationCreate {
                reason,
                guild_id: None,
                message: view,
            },
        );
        push::notify_if_away(state, away(u, reason, None, c, m));
    }
    Ok(())
}

/// A notification of `m` to push to `user` if no device of theirs is connected.
fn away(
    user: UserId,
    reason: &'static str,
    guild_id: Option<GuildId>,
    c: &Channel,
    m: &Message,
) -> push::Away {
    push::Away {
        user,
        reason,
        guild_id,
        channel_id: c.id,
        channel_name: c.name.clone(),
        message_id: m.id,
        author_id: m.author_id,
        content: m.content.clone(),
    }
}

/// Everyone the message mentions: directly, through a role, or with @everyone/@here.
fn mentioned_users(access: &GuildAccess, _c: &Channel, m: &Message) -> HashSet<UserId> {
    let mut out = HashSet::new();
    if m.mention_everyone {
        out.extend(access.members.keys().copied());
        return out;
    }
    let roles: HashSet<RoleId> = m
        .mentions
        .iter()
        .filter_map(|x| match x {
            Mention::Role(id) => Some(*id),
            _ => None,
        })
        .collect();
    for x in &m.mentions {
        if let Mention::User(id) = x {
            out.insert(*id);
        }
    }
    if !roles.is_empty() {
        for (u, rs) in &access.members {
            if rs.iter().any(|(r, _)| roles.contains(r)) {
                out.insert(*u);
            }
        }
    }
    out
}
