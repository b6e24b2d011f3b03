//! Web Push (RFC 8030) to devices with no page open: a browser's service worker
//! subscribes with the server's VAPID key (`GET /push/vapid-public-key`) and registers the
//! subscription; when a mention, a reply or a DM notifies a user (after their
//! notification settings and mutes, as `notification_create` is) and none of their devices
//! is connected, each subscription gets the notification, encrypted for it
//! ([`crypto::encrypt`]) and signed with VAPID. Subscriptions the push service says are
//! gone (404, 410) are removed.

pub mod crypto;

use std::time::Duration;

use serde::Serialize;
use tracing::{debug, warn};

use crate::ChatState;
use crate::model::{ChannelId, GuildId, MessageId, UserId};
use crate::store::push::PushSubscription;

/// How long a push service keeps a message for a device that is off (the `TTL` header).
const PUSH_TTL_SECS: u64 = 24 * 3600;
/// The longest message text a push carries.
const MAX_BODY_CHARS: usize = 500;

/// What to push: one notification of one message for one user.
#[derive(Debug, Clone)]
pub struct Away {
    pub user: UserId,
    /// `mention`, `reply` or `message` (a DM).
    pub reason: &'static str,
    pub guild_id: Option<GuildId>,
    pub channel_id: ChannelId,
    pub channel_name: String,
    pub message_id: MessageId,
    pub author_id: UserId,
    pub content: String,
}

/// What the service worker receives (decrypted), and shows.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    title: String,
    body: String,
    /// Where a click leads: the message in its channel.
    url: String,
    /// Notifications of one message replace each other.
    tag: String,
    reason: &'a str,
    message_id: String,
    channel_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    guild_id: Option<String>,
}

/// Pushes `away` to the user's subscribed devices if none of their devices is connected,
/// in the background.
pub fn notify_if_away(state: &ChatState, away: Away) {
    if state.push_key.is_none() {
        return;
    }
    if away.guild_id.is_some() && away.reason == "message" {
        // Guild messages at level "all" show in an open page; pushes are for mentions,
        // replies and DMs.
        return;
    }
    let state = state.clone();
    tokio::spawn(async move {
        if state.presence.has_device(away.user).await {
            return;
        }
        if let Err(e) = push(&state, &away).await {
            warn!(error = ?e, "web push");
        }
    });
}

async fn push(state: &ChatState, away: &Away) -> Result<(), crate::error::ChatError> {
    let subs = state.store.push_subscriptions(away.user).await?;
    if subs.is_empty() {
        return Ok(());
    }
    let author = state
        .store
        .user(away.author_id)
        .await?
        .map_or_else(|| "Someone".to_owned(), |u| u.display_name);
    let guild = match away.guild_id {
        Some(g) => state.store.guild(g).await?.map(|g| g.name),
        None => None,
    };
    let where_ = match &guild {
        Some(g) => format!("#{} · {g}", away.channel_name),
        None => "Direct message".to_owned(),
    };
    let title = match away.reason {
        "reply" => format!("{author} replied ({where_})"),
        _ => format!("{author} ({where_})"),
    };
    let mut body: String = away.content.chars().take(MAX_BODY_CHARS).collect();
    if body.is_empty() {
        body = "Sent a file".to_owned();
    }
    let payload = Payload {
        title,
        body,
        url: format!(
            "/chat/{}/{}/{}",
            away.guild_id
                .map_or_else(|| "@me".to_owned(), |g| g.to_string()),
            away.channel_id,
            away.message_id
        ),
        tag: away.message_id.to_string(),
        reason: away.reason,
        message_id: away.message_id.to_string(),
        channel_id: away.channel_id.to_string(),
        guild_id: away.guild_id.map(|g| g.to_string()),
    };
    let json = serde_json::to_vec(&payload).unwrap_or_default();
    for sub in subs {
        send_one(state, &sub, &json).await;
    }
    Ok(())
}

/// One push request; a subscription the push service says is gone is forgotten.
async fn send_one(state: &ChatState, sub: &PushSubscription, payload: &[u8]) {
    let Some(key) = &state.push_key else { return };
    let Ok(url) = reqwest::Url::parse(&sub.endpoint) else {
        return;
    };
    let body = match crypto::encrypt(&sub.p256dh, &sub.auth, payload) {
        Ok(b) => b,
        Err(e) => {
            warn!(error = ?e, "web push: encrypting");
            return;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let Ok(authorization) = key.authorization(&url, &state.config.push_subject, now) else {
        return;
    };
    let sent = state
        .outgoing
        .post(url)
        .header("TTL", PUSH_TTL_SECS.to_string())
        .header("Urgency", "high")
        .header("Content-Encoding", "aes128gcm")
        .header("Content-Type", "application/octet-stream")
        .header("Authorization", authorization)
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await;
    match sent {
        Ok(r) if r.status().is_success() => {
            state.metrics.pushes_sent.inc();
        }
        Ok(r) if r.status().as_u16() == 404 || r.status().as_u16() == 410 => {
            debug!(status = %r.status(), "web push: subscription gone");
            if let Err(e) = state.store.delete_push_subscription(&sub.endpoint).await {
                warn!(error = %e, "web push: removing a gone subscription");
            }
        }
        Ok(r) => warn!(status = %r.status(), "web push: refused"),
        Err(e) => warn!(error = %e, "web push: request failed"),
    }
}
