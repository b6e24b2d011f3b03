//! Presence of chat users: a user is online while any of their sessions lives; their
//! guilds hear when that changes.

use crate::ChatState;
use crate::model::{GuildId, UserId};
use crate::service::dispatch::Dispatch;
use crate::service::hub::{Audience, Event, Hub};

/// Tells the guilds the user came online or went offline.
pub(crate) fn presence(hub: &Hub, user_id: UserId, guilds: &[GuildId], status: &str) {
    let ev = Event::from(Dispatch::PresenceUpdate { user_id, status });
    for g in guilds {
        hub.publish(&Audience::Guild(*g), &ev);
    }
}

/// Tells the user's guilds they went offline, if no session of theirs is left.
pub async fn went_offline(state: &ChatState, user_id: UserId) {
    if state.hub.online(user_id) {
        return;
    }
    if let Ok(guilds) = state.store.user_guilds(user_id).await {
        presence(&state.hub, user_id, &guilds, "offline");
    }
}
