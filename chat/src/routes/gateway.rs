//! The chat WebSocket at `/api/v1/gateway`: hello, identify or resume, ready, then
//! sequenced dispatch events with heartbeats. The protocol is in `docs/chat-api.md`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::StreamExt;
use tracing::{Instrument, info_span};

use crate::error::ChatError;
use crate::model::{ChannelId, GuildId};
use crate::routes::gateway_frames::{
    ClientFrame, End, ServerOp, Sink, close_with, error_frame, frame_text, op_error, send,
};
use crate::service::dispatch::{Dispatch, Ready};
use crate::service::hub::{Audience, Event, Next, ResumeError, Session};
use crate::service::presence;
use crate::{ChatState, service::auth};
use parlor_edge::{CloseCode, Heartbeat};

pub use crate::routes::gateway_frames::MAX_CLIENT_FRAME;
/// Client frames per second, sustained, and in a burst.
const RATE_PER_SEC: f64 = 5.0;
const RATE_BURST: f64 = 20.0;
/// Ready lists the presence of at most this many members of the user's guilds; a client
/// asks `GET /api/v1/guilds/{id}/presences` for the rest of a larger guild.
const READY_PRESENCE_USERS: i64 = 1000;
/// How long a client has to identify after hello.
const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn handler(State(state): State<ChatState>, ws: WebSocketUpgrade) -> Response {
    // The transport cap is above the protocol limit so an oversized frame gets a close
    // code with a reason instead of a dropped connection.
    // Small buffers: an idle connection should cost kilobytes, not the 128 KiB read
    // buffer a WebSocket gets by default. Frames in and out are small; buffers grow
    // for the rare large one.
    ws.max_message_size(MAX_CLIENT_FRAME * 4)
        .max_frame_size(MAX_CLIENT_FRAME * 4)
        .read_buffer_size(1024)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let span = info_span!("chat_ws", session = tracing::field::Empty);
            run(state, socket).instrument(span)
        })
}

async fn run(state: ChatState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let hb = state.config.heartbeat_interval;
    let hello = ServerOp::Hello {
        heartbeat_interval_ms: hb.as_millis() as u64,
        session_timeout_ms: state.hub.limits.session_timeout.as_millis() as u64,
    };
    if send(&state.metrics, &mut sink, hello.text()).await.is_err() {
        return;
    }
    let mut bucket = parlor_edge::FrameLimit::new(RATE_BURST, RATE_PER_SEC);
    let attached = attach(&state, &mut sink, &mut stream, &mut bucket).await;
    let (session, generation) = match attached {
        Ok(s) => s,
        Err(End::Close(code, reason)) => return close_with(&mut sink, code, reason).await,
        Err(_) => return,
    };
    tracing::Span::current().record("session", session.id.as_str());
    let end = pump(
        &state,
        &session,
        generation,
        &mut sink,
        &mut stream,
        &mut bucket,
    )
    .await;
    match end {
        End::ClientClosed => {
            if state.hub.close(&session, generation) {
                presence::ended(&state, session.user_id, &session.id).await;
            }
        }
        End::Close(code, reason) => {
            // Resumable until the session times out (an overflowed one answers
            // `resume_too_old`).
            detach(&state, &session, generation).await;
            close_with(&mut sink, code, reason).await;
        }
        End::Gone => detach(&state, &session, generation).await,
    }
}

/// The connection of `generation` is gone: the session waits for a resume, and its
/// device for as long as presence's grace. A connection another has replaced (a resume,
/// here or on another node) leaves both to that one.
async fn detach(state: &ChatState, session: &Session, generation: u64) {
    let current = session.outbox.is_current(generation);
    state.hub.detach(session, generation);
    if current {
        presence::disconnected(state, session.user_id, &session.id).await;
    }
}

/// Reads frames until identify or resume succeeds (the session and the generation of this
/// connection), or the connection must end.
async fn attach(
    state: &ChatState,
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    bucket: &mut parlor_edge::FrameLimit,
) -> Result<(Arc<Session>, u64), End> {
    // Until identify or resume succeeds.
    let identify_deadline = tokio::time::Instant::now() + IDENTIFY_TIMEOUT;
    loop {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(identify_deadline) => {
                break Err(End::Close(CloseCode::NotIdentified, "identify in time"));
            }
        };
        let text = match frame_text(&state.metrics, msg) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(end) => break Err(end),
        };
        if !bucket.take() {
            break Err(End::Close(CloseCode::RateLimited, "too many frames"));
        }
        match ClientFrame::parse(&text) {
            Ok(ClientFrame::Identify { token }) => match identify(state, &token).await {
                Ok(s) => break Ok(s),
                Err(end) => break Err(end),
            },
            Ok(ClientFrame::Resume {
                token,
                session_id,
                seq,
                position,
            }) => {
                let Ok(caller) = token_user(state, &token).await else {
                    break Err(End::Close(
                        CloseCode::AuthenticationFailed,
                        "the access token is not valid",
                    ));
                };
                match resume(state, caller, &session_id, seq, position.as_deref()).await {
                    Ok(s) => {
                        presence::connected(state, s.0.user_id, &s.0.id).await;
                        // After the replayed events, in the same sequence.
                        state.hub.publish(
                            &Audience::Session(session_id.clone()),
                            &Event::from(Dispatch::Resumed {
                                session_id: &session_id,
                            }),
                        );
                        break Ok(s);
                    }
                    Err(e) => {
                        let code = match e {
                            ResumeError::Invalid => "session_invalid",
                            ResumeError::TooOld => "resume_too_old",
                        };
                        // The client identifies afresh and catches up with `after=`.
                        let f = ServerOp::InvalidSession {
                            resumable: false,
                            code,
                        };
                        if send(&state.metrics, sink, f.text()).await.is_err() {
                            break Err(End::Gone);
                        }
                    }
                }
            }
            Ok(ClientFrame::Heartbeat(_)) => {
                if send(&state.metrics, sink, ServerOp::HeartbeatAck.text())
                    .await
                    .is_err()
                {
                    break Err(End::Gone);
                }
            }
            Ok(ClientFrame::Presence(_) | ClientFrame::VoiceState(_)) => {
                let f = error_frame("not_identified", "identify or resume first");
                if send(&state.metrics, sink, f).await.is_err() {
                    break Err(End::Gone);
                }
            }
            Err(e) => {
                let _ = send(&state.metrics, sink, error_frame("invalid_frame", &e)).await;
                break Err(End::Close(CloseCode::DecodeError, "invalid frame"));
            }
        }
    }
}

/// Writes the session's events and answers heartbeats until the connection ends.
async fn pump(
    state: &ChatState,
    session: &Arc<Session>,
    generation: u64,
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    bucket: &mut parlor_edge::FrameLimit,
) -> End {
    let hb = state.config.heartbeat_interval;
    let mut heartbeat = Heartbeat::new(hb + hb / 2);
    let mut recorded = tokio::time::Instant::now();
    loop {
        tokio::select! {
            next = session.outbox.next(generation) => match next {
                Next::Frames(frames) => {
                    for f in frames {
                        if send(&state.metrics, sink, f).await.is_err() {
                            return End::Gone;
                        }
                    }
                    session.forget_ready();
                }
                Next::Overflowed => return End::Close(CloseCode::SessionTimeout, "too slow"),
                Next::Replaced => return End::Close(CloseCode::ResumedElsewhere, "resumed elsewhere"),
                Next::Ended => return End::Close(CloseCode::SessionEnded, "session ended"),
                Next::Idle => {}
            },
            _ = heartbeat.missed() => {
                return End::Close(CloseCode::SessionTimeout, "no heartbeat");
            }
            msg = stream.next() => {
                let text = match frame_text(&state.metrics, msg) {
                    Ok(Some(t)) => t,
                    Ok(None) => continue,
                    Err(end) => return end,
                };
                if !bucket.take() {
                    return End::Close(CloseCode::RateLimited, "too many frames");
                }
                match ClientFrame::parse(&text) {
                    Ok(ClientFrame::Heartbeat(seq)) => {
                        heartbeat.beat();
                        // What the client has no resume will ask for again.
                        if let Some(seq) = seq {
                            session.outbox.ack(seq);
                        }
                        if let Some(bus) = &state.bus
                            && recorded.elapsed() > crate::service::bus::SESSION_RECORD_TTL / 4
                        {
                            // Keeps the session one another node may take over.
                            recorded = tokio::time::Instant::now();
                            let (bus, id, user) = (bus.clone(), session.id.clone(), session.user_id);
                            tokio::spawn(async move { bus.record_session(&id, user).await });
                        }
                        if send(&state.metrics, sink, ServerOp::HeartbeatAck.text()).await.is_err() {
                            return End::Gone;
                        }
                    }
                    Ok(ClientFrame::Presence(d)) => {
                        if let Err(e) = super::gateway_ops::presence_op(state, session, d).await
                            && send(&state.metrics, sink, op_error(&e)).await.is_err()
                        {
                            return End::Gone;
                        }
                    }
                    Ok(ClientFrame::VoiceState(d)) => {
                        if let Err(e) = super::gateway_ops::voice_state_op(state, session, d).await
                            && send(&state.metrics, sink, op_error(&e)).await.is_err()
                        {
                            return End::Gone;
                        }
                    }
                    Ok(_) => {
                        let _ = send(&state.metrics, sink, error_frame("already_identified", "this connection has a session")).await;
                    }
                    Err(e) => {
                        let _ = send(&state.metrics, sink, error_frame("invalid_frame", &e)).await;
                        return End::Close(CloseCode::DecodeError, "invalid frame");
                    }
                }
            }
        }
    }
}

/// The account of an identify token: an access token, or `Bot <bot token>`.
async fn token_user(
    state: &ChatState,
    token: &str,
) -> Result<crate::routes::api::Caller, ChatError> {
    if token.starts_with("Bot ") {
        crate::routes::api::authenticate(state, token).await
    } else {
        crate::routes::api::authenticate(state, &format!("Bearer {token}")).await
    }
}

/// Attaches to the session here, or takes it over from another node of the cluster
/// (one that died, or that the client left) when the client says the last stream
/// position it saw.
async fn resume(
    state: &ChatState,
    caller: crate::routes::api::Caller,
    session_id: &str,
    seq: u64,
    position: Option<&str>,
) -> Result<(Arc<Session>, u64), ResumeError> {
    let local = state.hub.resume(session_id, caller.user_id, seq);
    let (Err(ResumeError::Invalid), Some(bus), Some(position)) = (&local, &state.bus, position)
    else {
        return local;
    };
    if state.hub.has(session_id) {
        return local;
    }
    let visible = crate::service::visibility::visible_to(state, caller.user_id)
        .await
        .map_err(|_| ResumeError::Invalid)?;
    let session = state.hub.detached_session(
        session_id.to_owned(),
        caller.user_id,
        caller.session,
        visible,
        Some(seq),
    );
    bus.adopt(session.clone(), caller.user_id, position).await?;
    state.metrics.resumed_elsewhere.inc();
    Ok((session, 1))
}

/// Checks the token, opens a session and queues ready.
async fn identify(state: &ChatState, token: &str) -> Result<(Arc<Session>, u64), End> {
    let Ok(crate::routes::api::Caller {
        user_id,
        session: auth,
    }) = token_user(state, token).await
    else {
        return Err(End::Close(
            CloseCode::AuthenticationFailed,
            "the access token is not valid",
        ));
    };
    let internal = |e: ChatError| {
        tracing::error!(error = ?e, "identify failed");
        End::Close(CloseCode::InternalError, "internal error")
    };
    let user = state
        .store
        .user(user_id)
        .await
        .map_err(|e| internal(e.into()))?
        .ok_or(End::Close(CloseCode::AuthenticationFailed, "no such user"))?;
    let mut visible: HashMap<GuildId, HashSet<ChannelId>> = HashMap::new();
    let guild_ids = state
        .store
        .user_guilds(user_id)
        .await
        .map_err(|e| internal(e.into()))?;
    let mut guilds = Vec::new();
    let mut voice_states = Vec::new();
    for g in &guild_ids {
        let (view, seen) = crate::routes::guilds::guild_for(state, *g, user_id)
            .await
            .map_err(internal)?;
        voice_states.extend(presence::voice_views(state, *g, &seen).await);
        visible.insert(*g, seen);
        guilds.push(view);
    }
    let private_channels = crate::routes::dms::private_channels(state, user_id)
        .await
        .map_err(internal)?;
    let read_states = crate::routes::reads::read_states_of(state, user_id, &visible)
        .await
        .map_err(internal)?;
    let notification_settings = state
        .store
        .notification_settings(user_id)
        .await
        .map_err(|e| internal(e.into()))?
        .iter()
        .map(crate::service::views::SettingView::from)
        .collect();
    let session_id = auth::random_token();
    presence::connected(state, user_id, &session_id).await;
    let mut co_members = state
        .store
        .co_members(user_id, READY_PRESENCE_USERS)
        .await
        .map_err(|e| internal(e.into()))?;
    let relationships = crate::routes::relationships::relations_of(state, user_id)
        .await
        .map_err(internal)?;
    for r in relationships.iter().filter(|r| r.kind == "friend") {
        if let Ok(id) = r.user.id.parse::<i64>() {
            co_members.push(crate::model::UserId(id));
        }
    }
    co_members.sort_unstable();
    co_members.dedup();
    let presences = state.presence.views(&co_members).await;
    let position = match &state.bus {
        Some(bus) => {
            bus.record_session(&session_id, user_id).await;
            bus.position()
        }
        None => None,
    };
    let (session, generation) = state
        .hub
        .open(session_id.clone(), user_id, auth.clone(), visible);
    // A logout between the token check and the open above ends this session too.
    if let Some(a) = &auth
        && state.ended.is_ended(a)
    {
        state.hub.end_sessions_of(user_id, |s| s == a);
    }
    let ready = Ready {
        session_id: &session_id,
        user: crate::service::views::UserView::from(&user),
        guilds,
        private_channels,
        read_states,
        notification_settings,
        presences,
        voice_states,
        relationships,
        presence: state
            .store
            .presence_pref(user_id)
            .await
            .map_err(|e| internal(e.into()))?,
    };
    let mut ev = Event::from(Dispatch::Ready(&ready));
    ev.position = position;
    session.push_ready(&ev);
    Ok((session, generation))
}
