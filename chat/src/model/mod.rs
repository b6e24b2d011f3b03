//! Chat's domain types that every layer shares.

mod ids;
pub mod perms;
pub mod presence;

pub use ids::{ChannelId, GuildId, Mention, MessageId, RoleId, UserId};

use serde::{Deserialize, Serialize};

/// What a channel is. Stored and sent as its snake_case name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    #[default]
    Text,
    Voice,
    Category,
    /// A text channel's thread.
    Thread,
    /// A one-to-one DM.
    Dm,
    GroupDm,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Text => "text",
            ChannelKind::Voice => "voice",
            ChannelKind::Category => "category",
            ChannelKind::Thread => "thread",
            ChannelKind::Dm => "dm",
            ChannelKind::GroupDm => "group_dm",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        Some(match s {
            "text" => ChannelKind::Text,
            "voice" => ChannelKind::Voice,
            "category" => ChannelKind::Category,
            "thread" => ChannelKind::Thread,
            "dm" => ChannelKind::Dm,
            "group_dm" => ChannelKind::GroupDm,
            _ => return None,
        })
    }

    /// The kinds messages are posted in.
    pub fn has_messages(self) -> bool {
        matches!(
            self,
            ChannelKind::Text | ChannelKind::Thread | ChannelKind::Dm | ChannelKind::GroupDm
        )
    }
}

/// The type of a dispatch on the chat WebSocket (`"t"`): every event the server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    Ready,
    Resumed,
    MessageCreate,
    MessageUpdate,
    MessageDelete,
    MessageAck,
    MessageReactionAdd,
    MessageReactionRemove,
    ChannelCreate,
    ChannelUpdate,
    ChannelDelete,
    ChannelRead,
    ChannelPinsUpdate,
    GuildCreate,
    GuildUpdate,
    GuildDelete,
    GuildMemberAdd,
    GuildMemberUpdate,
    GuildMemberRemove,
    GuildBanAdd,
    GuildBanRemove,
    GuildRoleCreate,
    GuildRoleUpdate,
    GuildRoleDelete,
    GuildScheduledEventCreate,
    GuildScheduledEventUpdate,
    GuildScheduledEventDelete,
    GuildScheduledEventUserAdd,
    GuildScheduledEventUserRemove,
    InteractionCreate,
    NotificationCreate,
    NotificationSettingsUpdate,
    TypingStart,
    PresenceUpdate,
    VoiceStateUpdate,
    RelationshipUpdate,
    RelationshipRemove,
    VoiceMove,
}

impl EventKind {
    /// The name clients see in `"t"`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Ready => "ready",
            EventKind::Resumed => "resumed",
            EventKind::MessageCreate => "message_create",
            EventKind::MessageUpdate => "message_update",
            EventKind::MessageDelete => "message_delete",
            EventKind::MessageAck => "message_ack",
            EventKind::MessageReactionAdd => "message_reaction_add",
            EventKind::MessageReactionRemove => "message_reaction_remove",
            EventKind::ChannelCreate => "channel_create",
            EventKind::ChannelUpdate => "channel_update",
            EventKind::ChannelDelete => "channel_delete",
            EventKind::ChannelRead => "channel_read",
            EventKind::ChannelPinsUpdate => "channel_pins_update",
            EventKind::GuildCreate => "guild_create",
            EventKind::GuildUpdate => "guild_update",
            EventKind::GuildDelete => "guild_delete",
            EventKind::GuildMemberAdd => "guild_member_add",
            EventKind::GuildMemberUpdate => "guild_member_update",
            EventKind::GuildMemberRemove => "guild_member_remove",
            EventKind::GuildBanAdd => "guild_ban_add",
            EventKind::GuildBanRemove => "guild_ban_remove",
            EventKind::GuildRoleCreate => "guild_role_create",
            EventKind::GuildRoleUpdate => "guild_role_update",
            EventKind::GuildRoleDelete => "guild_role_delete",
            EventKind::GuildScheduledEventCreate => "guild_scheduled_event_create",
            EventKind::GuildScheduledEventUpdate => "guild_scheduled_event_update",
            EventKind::GuildScheduledEventDelete => "guild_scheduled_event_delete",
            EventKind::GuildScheduledEventUserAdd => "guild_scheduled_event_user_add",
            EventKind::GuildScheduledEventUserRemove => "guild_scheduled_event_user_remove",
            EventKind::InteractionCreate => "interaction_create",
            EventKind::NotificationCreate => "notification_create",
            EventKind::NotificationSettingsUpdate => "notification_settings_update",
            EventKind::TypingStart => "typing_start",
            EventKind::PresenceUpdate => "presence_update",
            EventKind::VoiceStateUpdate => "voice_state_update",
            EventKind::RelationshipUpdate => "relationship_update",
            EventKind::RelationshipRemove => "relationship_remove",
            EventKind::VoiceMove => "voice_move",
        }
    }

    /// Typing and presence: shed first for slow consumers and never replayed, since a
    /// newer one replaces them.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, EventKind::TypingStart | EventKind::PresenceUpdate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_as_their_names() {
        for k in [
            ChannelKind::Text,
            ChannelKind::Voice,
            ChannelKind::Category,
            ChannelKind::Thread,
            ChannelKind::Dm,
            ChannelKind::GroupDm,
        ] {
            assert_eq!(ChannelKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap_or_default(),
                serde_json::json!(k.as_str())
            );
        }
        assert_eq!(ChannelKind::parse("forum"), None);
    }
}
