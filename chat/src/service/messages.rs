//! Sending a message, the one path for members, bots and webhooks alike. The view of a
//! message that REST answers and events carry is [`MessageView`], in `service::views`.

use crate::error::ChatError;
use crate::service::dispatch::Dispatch;
use crate::service::hub::channel_audience;
use crate::service::views::MessageView;
use crate::store::guilds::{Channel, Message};
use crate::{ChatState, now_ms};

/// Longest message, in characters.
pub const MAX_CONTENT_CHARS: usize = 4000;

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
/// taken and the message queued for the writer under the channel's lock, and the writer
/// commits and dispatches in queue order (group commit, `message_writer.rs`), so events
/// leave in id order and a client catching up by id misses nothing. `draft` supplies the
/// author and contents; the id, channel and time are set here. Returns once the message
/// is committed.
pub(crate) async fn create(
    state: &ChatState,
    c: &Channel,
    draft: Message,
) -> Result<(Message, MessageView), crate::store::StoreError> {
    let (reply, stored) = tokio::sync::oneshot::channel();
    {
        let _order = state.lock_channel(c.id).await;
        let m = Message {
            id: state.ids.next(),
            channel_id: c.id,
            created_at: now_ms(),
            ..draft
        };
        let st = state.clone();
        let audience = channel_audience(c);
        state.writer.submit(
            m,
            Box::new(move |r| {
                let r = r.map(|m| {
                    st.metrics.messages.inc();
                    let view = MessageView::new(&st, &m, &[], false);
                    st.dispatch(audience, Dispatch::MessageCreate(&view));
                    (m, view)
                });
                let _ = reply.send(r);
            }),
        );
    }
    stored.await.unwrap_or_else(|_| {
        Err(crate::store::StoreError::Files(
            "the message writer stopped".into(),
        ))
    })
}
