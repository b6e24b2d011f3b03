//! Sending a message, the one path for members, bots and webhooks alike, and the view of a
//! message that REST answers and events carry.

use serde::Serialize;

use crate::error::ChatError;
use crate::model::EventKind;
use crate::service::attachments::AttachmentView;
use crate::service::hub::{Event, channel_audience};
use crate::store::guilds::{Channel, Message};
use crate::store::messages::Reaction;
use crate::{ChatState, now_ms};

/// Longest message, in characters.
pub const MAX_CONTENT_CHARS: usize = 4000;

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

pub(crate) fn check_content(content: &str) -> Result<(), ChatError> {
    let n = content.chars().count();
    if content.trim().is_empty() || n > MAX_CONTENT_CHARS {
        return Err(ChatError::bad_request(
            "invalid_content",
            format!("content is 1-{MAX_CONTENT_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Stores a message and sends `message_create`, in one order per channel: the id is
/// taken, the row written and the event queued under the channel's lock, so events
/// leave in id order and a client catching up by id misses nothing. `draft` supplies
/// the author and contents; the id, channel and time are set here.
pub(crate) async fn create(
    state: &ChatState,
    c: &Channel,
    draft: Message,
) -> Result<(Message, MessageView), crate::store::StoreError> {
    let _order = state.lock_channel(c.id).await;
    let m = Message {
        id: state.ids.next(),
        channel_id: c.id,
        created_at: now_ms(),
        ..draft
    };
    state.store.insert_message(&m).await?;
    let view = MessageView::new(state, &m, &[], false);
    state.dispatch(
        channel_audience(c),
        Event::new(EventKind::MessageCreate, &view),
    );
    Ok((m, view))
}
