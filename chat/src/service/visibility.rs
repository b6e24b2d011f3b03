//! Who sees which channel: each chat session keeps the channels it may read, per guild,
//! and this recomputes them after a change.

use crate::ChatState;
use crate::error::ChatError;
use std::collections::{HashMap, HashSet};

use crate::model::{ChannelId, GuildId, UserId};
use crate::service::dispatch::Dispatch;
use crate::service::hub::Audience;
use crate::service::views::ChannelView;

/// The channels a user may read now, per guild the user is in.
pub async fn visible_to(
    state: &ChatState,
    user: UserId,
) -> Result<HashMap<GuildId, HashSet<ChannelId>>, ChatError> {
    let mut out = HashMap::new();
    for g in state.store.user_guilds(user).await? {
        if let Some(v) = state
            .store
            .guild_access(g)
            .await?
            .and_then(|a| a.visible(user))
        {
            out.insert(g, v);
        }
    }
    Ok(out)
}

/// After a change to channels, roles, overwrites or members: recomputes what each
/// connected member of the guild can see, so events keep reaching exactly those who may
/// read them. A member who can now see a channel gets `channel_create`; one who no
/// longer can gets `channel_delete`. Only this node's sessions: each node refreshes its
/// own (`ChatState::refresh_guild` tells the others), so the events go to this node's
/// hub alone.
pub async fn refresh_guild(state: &ChatState, guild_id: GuildId) -> Result<(), ChatError> {
    let access = state.store.guild_access(guild_id).await?;
    for user in state.hub.users_in_guild(guild_id) {
        let visible = access.as_ref().and_then(|a| a.visible(user));
        let Some(a) = access.as_ref().filter(|_| visible.is_some()) else {
            // No longer a member (or no guild): `guild_delete` says it all.
            state.hub.set_visible(user, guild_id, None);
            continue;
        };
        let now = visible.unwrap_or_default();
        let before = state
            .hub
            .set_visible(user, guild_id, Some(now.clone()))
            .unwrap_or_default();
        for (c, _) in &a.channels {
            let appeared = match (before.contains(&c.id), now.contains(&c.id)) {
                (false, true) => true,
                (true, false) => false,
                _ => continue,
            };
            let view = ChannelView::from(c);
            let ev = if appeared {
                Dispatch::ChannelCreate(&view)
            } else {
                Dispatch::ChannelDelete(&view)
            };
            state.hub.publish(&Audience::Users(vec![user]), &ev.into());
        }
        for gone in before
            .iter()
            .filter(|id| !a.channels.iter().any(|(c, _)| c.id == **id))
        {
            let ev = Dispatch::ChannelGone {
                id: *gone,
                guild_id: Some(guild_id),
            };
            state.hub.publish(&Audience::Users(vec![user]), &ev.into());
        }
    }
    Ok(())
}
