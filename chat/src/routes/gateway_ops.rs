//! The gateway operations of a session that is identified: `presence` (status, custom
//! status, idle) and `voice_state` (join, change or leave a voice channel). A bad one
//! gets an `error` frame with a code; the connection stays.

use serde::Deserialize;

use crate::ChatState;
use crate::error::ChatError;
use crate::model::perms::Perms;
use crate::model::presence::{Pref, Status, VoiceFlags};
use crate::model::{ChannelKind, UserId};
use crate::routes::guilds::{in_channel, parse_id, require};
use crate::service::hub::Session;
use crate::service::presence;

/// `presence`: every field is optional; `custom_status: null` clears it.
#[derive(Debug, Deserialize)]
struct PresenceData {
    #[serde(default)]
    status: Option<String>,
    #[serde(default, deserialize_with = "present")]
    custom_status: Option<Option<String>>,
    #[serde(default)]
    idle: Option<bool>,
}

/// Tells a field sent as `null` (clear it) from one left out (keep it).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `voice_state`: `channel_id` names the voice channel, or is `null` to leave.
#[derive(Debug, Deserialize)]
struct VoiceData {
    channel_id: Option<String>,
    #[serde(flatten)]
    flags: VoiceFlags,
}

fn invalid(op: &str, e: impl std::fmt::Display) -> ChatError {
    ChatError::bad_request("invalid_frame", format!("{op}: {e}"))
}

pub(crate) async fn presence_op(
    state: &ChatState,
    session: &Session,
    d: serde_json::Value,
) -> Result<(), ChatError> {
    let d: PresenceData = serde_json::from_value(d).map_err(|e| invalid("presence", e))?;
    let user: UserId = session.user_id;
    if d.status.is_some() || d.custom_status.is_some() {
        let mut pref = state.store.presence_pref(user).await?;
        if let Some(s) = &d.status {
            pref.status = Status::parse(s)
                .ok_or_else(|| invalid("presence", "status is online, idle, dnd or invisible"))?;
        }
        if let Some(c) = d.custom_status {
            pref.custom_status = c;
        }
        let pref = Pref::validate(pref.status, pref.custom_status)
            .map_err(|m| ChatError::bad_request("invalid_presence", m))?;
        presence::set_pref(state, user, pref).await?;
    }
    if let Some(idle) = d.idle {
        presence::set_idle(state, user, &session.id, idle).await;
    }
    Ok(())
}

pub(crate) async fn voice_state_op(
    state: &ChatState,
    session: &Session,
    d: serde_json::Value,
) -> Result<(), ChatError> {
    if d.get("channel_id").is_none() {
        return Err(invalid(
            "voice_state",
            "channel_id is required (null to leave)",
        ));
    }
    let d: VoiceData = serde_json::from_value(d).map_err(|e| invalid("voice_state", e))?;
    let user = session.user_id;
    let Some(id) = d.channel_id else {
        return presence::set_voice(state, user, &session.id, None).await;
    };
    let (c, perms) = in_channel(state, parse_id(&id, "unknown_channel")?, user).await?;
    if c.kind != ChannelKind::Voice {
        return Err(ChatError::bad_request(
            "not_a_voice_channel",
            "only voice channels can be joined",
        ));
    }
    require(perms, Perms::CONNECT)?;
    presence::set_voice(state, user, &session.id, Some((&c, d.flags))).await
}
