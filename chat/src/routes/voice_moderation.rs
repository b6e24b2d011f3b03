//! Moderating voice: `PATCH /api/v1/guilds/{guild}/members/{user}/voice` server-mutes a
//! member (`MUTE_MEMBERS`), moves them to another voice channel or disconnects them
//! (`MOVE_MEMBERS`, in the channel they are in and in the one they go to). Chat keeps the
//! voice state and the member's mute; signaling's room admin API makes the SFU enforce
//! them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::patch;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};

use crate::ChatState;
use crate::error::ChatError;
use crate::model::perms::Perms;
use crate::model::presence::VoiceState;
use crate::model::{ChannelId, ChannelKind, GuildId, UserId};
use crate::routes::api::Authed;
use crate::routes::guilds::{in_channel, in_guild, parse_id, require};
use crate::routes::voice::{identity_of, room_of};
use crate::service::dispatch::{Dispatch, GuildMember};
use crate::service::hub::Audience;
use crate::service::presence;
use crate::service::views::MemberView;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route(
            "/api/v1/guilds/{guild}/members/{user}/voice",
            patch(moderate),
        )
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoicePatch {
    /// Server-mute (true) or lift it (false).
    #[serde(default)]
    mute: Option<bool>,
    /// Move to this voice channel, or (null) disconnect.
    #[serde(default, deserialize_with = "present")]
    channel_id: Option<Option<String>>,
}

/// A field that is there, null or not (absent stays `None`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn not_in_voice() -> ChatError {
    ChatError::bad_request(
        "not_in_voice",
        "that member is not in a voice channel of this guild",
    )
}

async fn moderate(
    State(state): State<ChatState>,
    Authed(me): Authed,
    Path((guild, target)): Path<(String, String)>,
    body: Result<Json<VoicePatch>, axum::extract::rejection::JsonRejection>,
) -> Result<StatusCode, ChatError> {
    let Json(patch) = body.map_err(|e| ChatError::bad_request("invalid_json", e.body_text()))?;
    if patch.mute.is_none() && patch.channel_id.is_none() {
        return Err(ChatError::bad_request(
            "invalid_json",
            "give mute, channel_id or both",
        ));
    }
    let guild: GuildId = parse_id(&guild, "unknown_guild")?;
    let (mine, _) = in_guild(&state, guild, me).await?;
    let target: UserId = parse_id(&target, "unknown_member")?;
    let member =
        state.store.member(guild, target).await?.ok_or_else(|| {
            ChatError::new(StatusCode::NOT_FOUND, "unknown_member", "no such member")
        })?;
    let (theirs, _) = in_guild(&state, guild, target).await?;
    if theirs.is_owner && !mine.is_owner {
        return Err(ChatError::new(
            StatusCode::FORBIDDEN,
            "role_hierarchy",
            "only the owner may moderate the owner",
        ));
    }
    let voice = state
        .presence
        .voice_of(target)
        .await
        .filter(|v| v.guild_id == guild);
    // The moderator's permissions where the member is.
    if let Some(v) = &voice {
        let (_, p) = in_channel(&state, v.channel_id, me).await?;
        if patch.mute.is_some() {
            require(p, Perms::MUTE_MEMBERS)?;
        }
        if patch.channel_id.is_some() {
            require(p, Perms::MOVE_MEMBERS)?;
        }
    } else {
        if patch.channel_id.is_some() {
            return Err(not_in_voice());
        }
        let (_, p) = in_guild(&state, guild, me).await?;
        require(p, Perms::MUTE_MEMBERS)?;
    }
    // Where the member goes, checked before anything changes.
    let to = match &patch.channel_id {
        Some(Some(id)) => Some(destination(&state, guild, id, me, target).await?),
        _ => None,
    };

    if let Some(muted) = patch.mute
        && muted != member.server_mute
    {
        let stays = patch.channel_id.is_none();
        set_mute(
            &state,
            guild,
            target,
            muted,
            voice.as_ref().filter(|_| stays),
        )
        .await?;
    }
    if let (Some(v), Some(_)) = (&voice, &patch.channel_id) {
        let v = VoiceState {
            mute: patch.mute.unwrap_or(v.mute),
            ..v.clone()
        };
        move_to(&state, guild, target, &v, to).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Server-mutes a member (or lifts it): stored, told to the guild, enforced in the room
/// the member is in, and shown in their voice state unless they are moving.
async fn set_mute(
    state: &ChatState,
    guild: GuildId,
    target: UserId,
    muted: bool,
    voice: Option<&VoiceState>,
) -> Result<(), ChatError> {
    state.store.set_server_mute(guild, target, muted).await?;
    if let Some(m) = state.store.member(guild, target).await? {
        state.dispatch(
            Audience::Guild(guild),
            Dispatch::GuildMemberUpdate(GuildMember {
                guild_id: guild,
                member: &MemberView::from(&m),
            }),
        );
    }
    if let Some(v) = voice {
        let room = room_of(v.channel_id);
        enforce(state.rooms.mute(&room, &identity_of(target), muted).await);
        presence::put_voice(
            state,
            &VoiceState {
                mute: muted,
                ..v.clone()
            },
        )
        .await;
    }
    Ok(())
}

/// Moves a member in voice to channel `to`, or (`None`) disconnects them: their voice
/// state changes, the session in voice is told to follow or hang up, and the SFU takes
/// them out of the old room.
async fn move_to(
    state: &ChatState,
    guild: GuildId,
    target: UserId,
    v: &VoiceState,
    to: Option<ChannelId>,
) {
    match to {
        Some(c) => {
            presence::put_voice(
                state,
                &VoiceState {
                    channel_id: c,
                    ..v.clone()
                },
            )
            .await;
        }
        None => {
            if let Some(old) = state.presence.clear_voice(target, &v.session_id).await {
                presence::announce_left(state, &old);
            }
        }
    }
    state.dispatch(
        Audience::Session(v.session_id.clone()),
        Dispatch::VoiceMove {
            guild_id: guild,
            channel_id: to,
        },
    );
    let room = room_of(v.channel_id);
    enforce(state.rooms.remove(&room, &identity_of(target)).await);
}

/// A voice channel of the guild that the moderator may move people into and the member
/// may connect to, with room for them.
async fn destination(
    state: &ChatState,
    guild: GuildId,
    id: &str,
    me: UserId,
    target: UserId,
) -> Result<ChannelId, ChatError> {
    let (c, p) = in_channel(state, parse_id(id, "unknown_channel")?, me).await?;
    if c.guild_id != guild || c.kind != ChannelKind::Voice {
        return Err(ChatError::bad_request(
            "not_a_voice_channel",
            "members can only be moved to a voice channel of this guild",
        ));
    }
    require(p, Perms::MOVE_MEMBERS)?;
    let (_, theirs) = in_channel(state, c.id, target)
        .await
        .map_err(|_| cannot_connect())?;
    if !theirs.contains(Perms::CONNECT) {
        return Err(cannot_connect());
    }
    presence::check_room(state, guild, c.id, c.user_limit, target).await?;
    Ok(c.id)
}

fn cannot_connect() -> ChatError {
    ChatError::new(
        StatusCode::FORBIDDEN,
        "missing_permissions",
        "that member may not connect to that channel",
    )
}

/// The SFU's part: a participant that is not in the room (yet) needs nothing; a failure
/// is logged, and the voice state stands (its next join carries the mute in its token).
fn enforce<E: std::fmt::Display>(r: Result<bool, E>) {
    if let Err(e) = r {
        tracing::warn!(error = %e, "voice moderation: the room could not be told");
    }
}
