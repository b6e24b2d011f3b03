//! The JSON views of users, messages, read states, guilds, channels, members, roles, scheduled events, notification
//! settings and interactions: what REST answers and what gateway dispatches carry. Ids
//! are strings on the wire (JavaScript numbers lose 64-bit precision).

use serde::Serialize;

use crate::ChatState;
use crate::model::ChannelKind;
use crate::service::attachments::AttachmentView;
use crate::store::User;
use crate::store::guilds::{Channel, Message};
use crate::store::members::{Member, Role};
use crate::store::messages::Reaction;
use crate::store::reads::{Level, Setting};

#[derive(Debug, Serialize)]
pub(crate) struct ReactionView {
    emoji: String,
    count: i64,
    /// The caller added it (REST only; events leave it out).
    #[serde(skip_serializing_if = "Option::is_none")]
    me: Option<bool>,
}

#[derive(Debug, Serialize)]
pub(crate) struct MessageView {
    id: String,
    channel_id: String,
    author_id: String,
    content: String,
    reply_to: Option<String>,
    edited_at: Option<i64>,
    created_at: i64,
    pinned: bool,
    /// Users, roles and channels mentioned, as ids.
    mentions: Vec<String>,
    mention_roles: Vec<String>,
    mention_channels: Vec<String>,
    mention_everyone: bool,
    reactions: Vec<ReactionView>,
    attachments: Vec<AttachmentView>,
    /// In channels of up to 100 members: how many who can see it have not read it yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) unread_by: Option<i64>,
}

impl MessageView {
    pub(crate) fn new(
        state: &ChatState,
        m: &Message,
        reactions: &[Reaction],
        with_me: bool,
    ) -> MessageView {
        let ids = |kind: &str| {
            m.mentions
                .iter()
                .filter(|x| x.kind() == kind)
                .map(|x| x.target_id().to_string())
                .collect()
        };
        MessageView {
            id: m.id.to_string(),
            channel_id: m.channel_id.to_string(),
            author_id: m.author_id.to_string(),
            content: m.content.clone(),
            reply_to: m.reply_to.map(|r| r.to_string()),
            edited_at: m.edited_at,
            created_at: m.created_at,
            pinned: m.pinned_at.is_some(),
            mentions: ids("user"),
            mention_roles: ids("role"),
            mention_channels: ids("channel"),
            mention_everyone: m.mention_everyone,
            reactions: reactions
                .iter()
                .map(|r| ReactionView {
                    emoji: r.emoji.clone(),
                    count: r.count,
                    me: with_me.then_some(r.me),
                })
                .collect(),
            attachments: m
                .attachments
                .iter()
                .map(|a| AttachmentView::new(state, a))
                .collect(),
            unread_by: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct ChannelView {
    id: String,
    /// Absent for DMs and group DMs.
    #[serde(skip_serializing_if = "Option::is_none")]
    guild_id: Option<String>,
    kind: ChannelKind,
    name: String,
    parent_id: Option<String>,
    position: i64,
    user_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner_id: Option<String>,
    /// Threads: the message the thread started from, and whether it is archived.
    #[serde(skip_serializing_if = "Option::is_none")]
    starter_message_id: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    archived: bool,
    /// DMs and group DMs: who is in it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    recipients: Vec<String>,
}

impl From<&Channel> for ChannelView {
    fn from(c: &Channel) -> ChannelView {
        ChannelView {
            id: c.id.to_string(),
            guild_id: (!c.is_dm()).then(|| c.guild_id.to_string()),
            kind: c.kind,
            name: c.name.clone(),
            parent_id: c.parent_id.map(|p| p.to_string()),
            position: c.position,
            user_limit: c.user_limit,
            owner_id: c.owner_id.map(|o| o.to_string()),
            starter_message_id: c.starter_message_id.map(|m| m.to_string()),
            archived: c.archived,
            recipients: c.recipients.iter().map(|r| r.to_string()).collect(),
        }
    }
}

/// A user's own view of themselves, and of others in profiles.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub avatar: Option<String>,
    pub bot: bool,
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> UserView {
        UserView {
            // Ids are strings on the wire: JavaScript numbers lose 64-bit precision.
            id: u.id.to_string(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            avatar: u.avatar.clone(),
            bot: u.is_bot,
            created_at: u.created_at,
        }
    }
}

/// One channel's read mark and badges.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelReadView {
    pub(crate) channel_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) guild_id: Option<String>,
    pub(crate) last_read_id: String,
    pub(crate) unread_count: i64,
    pub(crate) mention_count: i64,
    pub(crate) muted: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct GuildReadView {
    pub(crate) guild_id: String,
    pub(crate) unread: bool,
    pub(crate) mention_count: i64,
}

/// The read states of a user's channels, and their badges per guild.
#[derive(Debug, Serialize)]
pub(crate) struct ReadStates {
    pub(crate) channels: Vec<ChannelReadView>,
    /// Per guild (DMs are not in a guild).
    pub(crate) guilds: Vec<GuildReadView>,
}

/// A guild as one member sees it.
#[derive(Debug, Serialize)]
pub struct GuildView {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) owner_id: String,
    /// The caller's permissions in the guild, as a decimal string of the bitfield.
    pub(crate) permissions: String,
    /// The channels the caller can see.
    pub(crate) channels: Vec<ChannelView>,
}

/// The user a member is.
#[derive(Debug, Serialize)]
pub(crate) struct MemberUserView {
    id: String,
    username: String,
    display_name: String,
}

#[derive(Debug, Serialize)]
pub(crate) struct MemberView {
    user: MemberUserView,
    roles: Vec<String>,
    joined_at: i64,
    /// Server-muted by a moderator.
    mute: bool,
}

impl From<&Member> for MemberView {
    fn from(m: &Member) -> MemberView {
        MemberView {
            user: MemberUserView {
                id: m.user_id.to_string(),
                username: m.username.clone(),
                display_name: m.display_name.clone(),
            },
            roles: m.roles.iter().map(|r| r.to_string()).collect(),
            joined_at: m.joined_at,
            mute: m.server_mute,
        }
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct RoleView {
    id: String,
    guild_id: String,
    name: String,
    permissions: String,
    position: i64,
}

impl From<&Role> for RoleView {
    fn from(r: &Role) -> RoleView {
        RoleView {
            id: r.id.to_string(),
            guild_id: r.guild_id.to_string(),
            name: r.name.clone(),
            permissions: r.permissions.0.to_string(),
            position: r.position,
        }
    }
}

/// A scheduled event as one member sees it.
#[derive(Debug, Serialize)]
pub(crate) struct EventView {
    pub(crate) id: String,
    pub(crate) guild_id: String,
    pub(crate) creator_id: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) start_at: i64,
    pub(crate) end_at: Option<i64>,
    pub(crate) channel_id: Option<String>,
    pub(crate) interested_count: usize,
    /// Whether the caller is interested.
    pub(crate) interested: bool,
}

#[derive(Debug, Serialize)]
pub(crate) struct SettingView {
    scope: String,
    id: String,
    level: Option<&'static str>,
    /// When a timed mute ends (ms); null when not muted or muted until turned back on.
    muted_until: Option<i64>,
    /// Muted until turned back on (a time that far out has no exact JavaScript number).
    muted_forever: bool,
    keep_mentions: bool,
}

impl From<&Setting> for SettingView {
    fn from(s: &Setting) -> SettingView {
        SettingView {
            scope: s.scope.clone(),
            id: s.scope_id.to_string(),
            level: s.level.map(Level::as_str),
            muted_until: s.muted_until.filter(|u| *u != i64::MAX),
            muted_forever: s.muted_until == Some(i64::MAX),
            keep_mentions: s.keep_mentions,
        }
    }
}

/// A slash command invocation, as its bot receives it. The invoker sees it without its
/// token.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InteractionView {
    pub(crate) id: String,
    /// The bot answers with it; left out of what the invoker sees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) token: Option<String>,
    pub(crate) application_id: String,
    #[serde(rename = "type")]
    pub(crate) kind: &'static str,
    pub(crate) command: String,
    pub(crate) options: Vec<InteractionOption>,
    pub(crate) args: String,
    pub(crate) guild_id: String,
    pub(crate) channel_id: String,
    pub(crate) user: InteractionUser,
    pub(crate) created_at: i64,
    pub(crate) expires_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct InteractionOption {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// Who invoked the command; `null` name fields for a user that is gone.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct InteractionUser {
    pub(crate) id: String,
    pub(crate) username: Option<String>,
    pub(crate) display_name: Option<String>,
}

/// What another user is to the user: a friend, a request either way, or blocked.
#[derive(Debug, Serialize)]
pub struct RelationView {
    pub user: UserView,
    /// `friend`, `outgoing` (you asked), `incoming` (they asked) or `blocked`.
    pub kind: &'static str,
    pub since: i64,
}
