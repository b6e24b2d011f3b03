//! Every gateway dispatch with its payload: one variant per kind of event, so the kind
//! (`"t"`) and the payload (`"d"`) cannot disagree. Only the payload is serialized; ids
//! go out as strings, as every view sends them.

use std::fmt::Display;

use serde::{Serialize, Serializer};

use crate::model::presence::{Pref, PresenceView, VoiceStateView};
use crate::model::{ChannelId, EventKind, GuildId, MessageId, RoleId, UserId};
use crate::service::hub::Event;
use crate::service::views::{
    ChannelView, EventView, GuildView, InteractionView, MemberView, MessageView, ReadStates,
    RoleView, SettingView, UserView,
};

/// One dispatch: its kind and payload. Serializes as the payload alone.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub(crate) enum Dispatch<'a> {
    /// A session's first event: who the user is and all they can see.
    Ready(&'a Ready<'a>),
    /// After a resume, following the replayed events.
    Resumed {
        session_id: &'a str,
    },
    MessageCreate(&'a MessageView),
    MessageUpdate(&'a MessageView),
    MessageDelete {
        #[serde(serialize_with = "string")]
        id: MessageId,
        #[serde(serialize_with = "string")]
        channel_id: ChannelId,
    },
    /// The user's own read mark moved (to their other sessions).
    MessageAck(ReadMark),
    MessageReactionAdd(ReactionChange<'a>),
    MessageReactionRemove(ReactionChange<'a>),
    ChannelCreate(&'a ChannelView),
    ChannelUpdate(&'a ChannelView),
    /// A channel the recipient no longer sees, in full.
    ChannelDelete(&'a ChannelView),
    /// A channel that is gone, by id (with its guild, for a guild channel).
    ChannelGone {
        #[serde(serialize_with = "string")]
        id: ChannelId,
        #[serde(serialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
        guild_id: Option<GuildId>,
    },
    /// Someone's read mark moved, in a DM or small channel.
    ChannelRead(ReadMark),
    ChannelPinsUpdate {
        #[serde(serialize_with = "string")]
        channel_id: ChannelId,
        #[serde(serialize_with = "string")]
        message_id: MessageId,
        pinned: bool,
    },
    GuildCreate(&'a GuildView),
    GuildUpdate {
        #[serde(serialize_with = "string")]
        id: GuildId,
        name: &'a str,
    },
    GuildDelete {
        #[serde(serialize_with = "string")]
        id: GuildId,
    },
    GuildMemberAdd(GuildMember<'a>),
    GuildMemberUpdate(GuildMember<'a>),
    GuildMemberRemove(GuildUser),
    GuildBanAdd(GuildUser),
    GuildBanRemove(GuildUser),
    GuildRoleCreate(&'a RoleView),
    GuildRoleUpdate(&'a RoleView),
    GuildRoleDelete {
        #[serde(serialize_with = "string")]
        guild_id: GuildId,
        #[serde(serialize_with = "string")]
        role_id: RoleId,
    },
    GuildScheduledEventCreate(&'a EventView),
    GuildScheduledEventUpdate(&'a EventView),
    GuildScheduledEventDelete {
        #[serde(serialize_with = "string")]
        id: i64,
        #[serde(serialize_with = "string")]
        guild_id: GuildId,
    },
    GuildScheduledEventUserAdd(EventInterest),
    GuildScheduledEventUserRemove(EventInterest),
    InteractionCreate(&'a InteractionView),
    NotificationCreate {
        /// `mention`, `reply` or `message`.
        reason: &'a str,
        /// Absent for DMs.
        #[serde(serialize_with = "opt_string", skip_serializing_if = "Option::is_none")]
        guild_id: Option<GuildId>,
        message: &'a MessageView,
    },
    NotificationSettingsUpdate(&'a SettingView),
    TypingStart {
        #[serde(serialize_with = "string")]
        channel_id: ChannelId,
        #[serde(serialize_with = "string")]
        user_id: UserId,
        timestamp: i64,
        expires_at: i64,
    },
    /// What others now see of a user: only that user's presence, never a full list.
    PresenceUpdate(&'a PresenceView),
    /// A member joined, changed or (with no channel) left a voice channel.
    VoiceStateUpdate(&'a VoiceStateView),
    /// Someone is now a friend, a request or blocked, to the user.
    RelationshipUpdate(&'a crate::service::views::RelationView),
    RelationshipRemove {
        #[serde(serialize_with = "string")]
        user_id: UserId,
    },
    /// To the session in voice: a moderator moved it to another voice channel, or (with
    /// no channel) disconnected it.
    VoiceMove {
        #[serde(serialize_with = "string")]
        guild_id: GuildId,
        #[serde(serialize_with = "opt_string")]
        channel_id: Option<ChannelId>,
    },
}

/// A new session's state.
#[derive(Debug, Serialize)]
pub(crate) struct Ready<'a> {
    pub(crate) session_id: &'a str,
    pub(crate) user: UserView,
    pub(crate) guilds: Vec<GuildView>,
    /// DMs and group DMs.
    pub(crate) private_channels: Vec<ChannelView>,
    pub(crate) read_states: ReadStates,
    pub(crate) notification_settings: Vec<SettingView>,
    /// Who among the members of the user's guilds is not offline (see
    /// `READY_PRESENCE_USERS`), the user included.
    pub(crate) presences: Vec<PresenceView>,
    /// Who is in the voice channels the user can see.
    pub(crate) voice_states: Vec<VoiceStateView>,
    /// Friends, friend requests and blocks.
    pub(crate) relationships: Vec<crate::service::views::RelationView>,
    /// What the user chose to show (status and custom status).
    pub(crate) presence: Pref,
}

/// Where a user's read mark in a channel is.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ReadMark {
    #[serde(serialize_with = "string")]
    pub(crate) channel_id: ChannelId,
    #[serde(serialize_with = "string")]
    pub(crate) user_id: UserId,
    #[serde(serialize_with = "string")]
    pub(crate) last_read_id: MessageId,
}

/// A reaction one user added or removed.
#[derive(Debug, Serialize)]
pub(crate) struct ReactionChange<'a> {
    #[serde(serialize_with = "string")]
    pub(crate) channel_id: ChannelId,
    #[serde(serialize_with = "string")]
    pub(crate) message_id: MessageId,
    #[serde(serialize_with = "string")]
    pub(crate) user_id: UserId,
    pub(crate) emoji: &'a str,
}

/// A member, with the guild they are in.
#[derive(Debug, Serialize)]
pub(crate) struct GuildMember<'a> {
    #[serde(serialize_with = "string")]
    pub(crate) guild_id: GuildId,
    #[serde(flatten)]
    pub(crate) member: &'a MemberView,
}

/// A user of a guild: a member who left or a ban.
#[derive(Debug, Serialize)]
pub(crate) struct GuildUser {
    #[serde(serialize_with = "string")]
    pub(crate) guild_id: GuildId,
    #[serde(serialize_with = "string")]
    pub(crate) user_id: UserId,
}

/// A user's interest in a scheduled event.
#[derive(Debug, Serialize)]
pub(crate) struct EventInterest {
    #[serde(serialize_with = "string")]
    pub(crate) event_id: i64,
    #[serde(serialize_with = "string")]
    pub(crate) guild_id: GuildId,
    #[serde(serialize_with = "string")]
    pub(crate) user_id: UserId,
}

impl Dispatch<'_> {
    /// The `"t"` the dispatch goes out as.
    pub(crate) fn kind(&self) -> EventKind {
        match self {
            Dispatch::Ready(_) => EventKind::Ready,
            Dispatch::Resumed { .. } => EventKind::Resumed,
            Dispatch::MessageCreate(_) => EventKind::MessageCreate,
            Dispatch::MessageUpdate(_) => EventKind::MessageUpdate,
            Dispatch::MessageDelete { .. } => EventKind::MessageDelete,
            Dispatch::MessageAck(_) => EventKind::MessageAck,
            Dispatch::MessageReactionAdd(_) => EventKind::MessageReactionAdd,
            Dispatch::MessageReactionRemove(_) => EventKind::MessageReactionRemove,
            Dispatch::ChannelCreate(_) => EventKind::ChannelCreate,
            Dispatch::ChannelUpdate(_) => EventKind::ChannelUpdate,
            Dispatch::ChannelDelete(_) | Dispatch::ChannelGone { .. } => EventKind::ChannelDelete,
            Dispatch::ChannelRead(_) => EventKind::ChannelRead,
            Dispatch::ChannelPinsUpdate { .. } => EventKind::ChannelPinsUpdate,
            Dispatch::GuildCreate(_) => EventKind::GuildCreate,
            Dispatch::GuildUpdate { .. } => EventKind::GuildUpdate,
            Dispatch::GuildDelete { .. } => EventKind::GuildDelete,
            Dispatch::GuildMemberAdd(_) => EventKind::GuildMemberAdd,
            Dispatch::GuildMemberUpdate(_) => EventKind::GuildMemberUpdate,
            Dispatch::GuildMemberRemove(_) => EventKind::GuildMemberRemove,
            Dispatch::GuildBanAdd(_) => EventKind::GuildBanAdd,
            Dispatch::GuildBanRemove(_) => EventKind::GuildBanRemove,
            Dispatch::GuildRoleCreate(_) => EventKind::GuildRoleCreate,
            Dispatch::GuildRoleUpdate(_) => EventKind::GuildRoleUpdate,
            Dispatch::GuildRoleDelete { .. } => EventKind::GuildRoleDelete,
            Dispatch::GuildScheduledEventCreate(_) => EventKind::GuildScheduledEventCreate,
            Dispatch::GuildScheduledEventUpdate(_) => EventKind::GuildScheduledEventUpdate,
            Dispatch::GuildScheduledEventDelete { .. } => EventKind::GuildScheduledEventDelete,
            Dispatch::GuildScheduledEventUserAdd(_) => EventKind::GuildScheduledEventUserAdd,
            Dispatch::GuildScheduledEventUserRemove(_) => EventKind::GuildScheduledEventUserRemove,
            Dispatch::InteractionCreate(_) => EventKind::InteractionCreate,
            Dispatch::NotificationCreate { .. } => EventKind::NotificationCreate,
            Dispatch::NotificationSettingsUpdate(_) => EventKind::NotificationSettingsUpdate,
            Dispatch::TypingStart { .. } => EventKind::TypingStart,
            Dispatch::PresenceUpdate(_) => EventKind::PresenceUpdate,
            Dispatch::VoiceStateUpdate(_) => EventKind::VoiceStateUpdate,
            Dispatch::RelationshipUpdate(_) => EventKind::RelationshipUpdate,
            Dispatch::RelationshipRemove { .. } => EventKind::RelationshipRemove,
            Dispatch::VoiceMove { .. } => EventKind::VoiceMove,
        }
    }
}

impl From<Dispatch<'_>> for Event {
    fn from(d: Dispatch<'_>) -> Event {
        Event::new(d.kind(), &d)
    }
}

/// An id (or any number) as a JSON string.
fn string<T: Display, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn opt_string<T: Display, S: Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload(d: Dispatch<'_>) -> serde_json::Value {
        let ev = Event::from(d);
        serde_json::from_str(&ev.data).unwrap_or_default()
    }

    #[test]
    fn ids_go_out_as_strings_and_only_the_payload_is_sent() {
        let d = Dispatch::GuildMemberRemove(GuildUser {
            guild_id: GuildId(7),
            user_id: UserId(9),
        });
        assert_eq!(d.kind(), EventKind::GuildMemberRemove);
        assert_eq!(payload(d), json!({"guild_id": "7", "user_id": "9"}));
        assert_eq!(
            payload(Dispatch::ChannelGone {
                id: ChannelId(3),
                guild_id: None
            }),
            json!({"id": "3"})
        );
        assert_eq!(
            payload(Dispatch::ChannelGone {
                id: ChannelId(3),
                guild_id: Some(GuildId(1))
            }),
            json!({"id": "3", "guild_id": "1"})
        );
    }

    #[test]
    fn a_member_event_is_the_member_with_its_guild() {
        let m = crate::store::members::Member {
            user_id: UserId(5),
            username: "ann".into(),
            display_name: "Ann".into(),
            joined_at: 10,
            roles: vec![RoleId(2)],
            server_mute: false,
        };
        let view = MemberView::from(&m);
        assert_eq!(
            payload(Dispatch::GuildMemberAdd(GuildMember {
                guild_id: GuildId(1),
                member: &view,
            })),
            json!({
                "guild_id": "1",
                "user": {"id": "5", "username": "ann", "display_name": "Ann"},
                "roles": ["2"],
                "joined_at": 10,
                "mute": false,
            })
        );
    }

    #[test]
    fn presence_is_ephemeral() {
        let view = PresenceView {
            user_id: "1".into(),
            status: crate::model::presence::Status::Dnd,
            custom_status: Some("away".into()),
        };
        let ev = Event::from(Dispatch::PresenceUpdate(&view));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&ev.data).unwrap(),
            serde_json::json!({"user_id": "1", "status": "dnd", "custom_status": "away"})
        );
        assert!(ev.ephemeral);
        assert_eq!(ev.kind, EventKind::PresenceUpdate);
    }
}
