//! The client WebSocket at `/ws`: hello, identify or resume, heartbeats, and room
//! operations relayed to the SFU.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tracing::{Instrument, debug, info_span};

use parlor_proto::control::{
    CloseReason, JoinRequest, Reply, Request, RoomEvent, RoomEvents, SfuError,
};
use parlor_proto::signal::{
    ActiveSpeakers, ClientFrame, ClientMessage, Empty, ErrorBody, Hello, Joined, MAX_FRAME_BYTES,
    PROTOCOL_VERSION, ParticipantJoined, ParticipantLeft, Ready, Resumed, ServerAnswer,
    ServerFrame, ServerMessage, ServerOffer, Shutdown, TrackMuted, TrackPublished,
    TrackUnpublished,
};

use crate::AppState;
use crate::session::{CONNECTION_QUEUE, Frame, REPLAY_FRAMES, ResumeError, Session};

/// Close codes beyond the standard ones.
const CLOSE_AUTH_FAILED: u16 = 4001;
const CLOSE_IDENTIFY_TIMEOUT: u16 = 4002;
const CLOSE_HEARTBEAT_TIMEOUT: u16 = 4003;
const CLOSE_TOO_SLOW: u16 = 4008;
const CLOSE_TOO_LARGE: u16 = 1009;

/// Messages a client may send per second, sustained, and in a burst.
const RATE_PER_SEC: f64 = 30.0;
const RATE_BURST: f64 = 60.0;

pub async fn ws_handler(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // The transport cap is above the protocol limit so an oversized frame gets a proper
    // error frame instead of a dropped connection.
    ws.max_message_size(MAX_FRAME_BYTES * 16)
        .max_frame_size(MAX_FRAME_BYTES * 16)
        .on_upgrade(move |socket| {
            let conn_id = state.next_conn.fetch_add(1, Ordering::Relaxed);
            Connection::new(state, conn_id)
                .run(socket)
                .instrument(info_span!("ws", conn = conn_id))
        })
}

struct Connection {
    state: AppState,
    conn_id: u64,
    session: Option<Arc<Session>>,
    /// Frames for this socket, from the session (replies, room events, replays).
    tx: mpsc::Sender<Frame>,
    rx: mpsc::Receiver<Frame>,
    last_heartbeat: Instant,
    frames: parlor_edge::FrameLimit,
}

enum Step {
    Continue,
    Close(u16, &'static str),
}

impl Connection {
    fn new(state: AppState, conn_id: u64) -> Connection {
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        Connection {
            state,
            conn_id,
            session: None,
            tx,
            rx,
            last_heartbeat: Instant::now(),
            frames: parlor_edge::FrameLimit::new(RATE_BURST, RATE_PER_SEC),
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        self.state.metrics.connections.inc();
        let hb = self.state.config.heartbeat_interval;
        let hello = ServerFrame {
            seq: 0,
            id: None,
            msg: ServerMessage::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                heartbeat_interval_ms: hb.as_millis() as u64,
                resume_window_ms: self.state.config.resume_window.as_millis() as u64,
            }),
        };
        let mut shutdown = self.state.shutdown.subscribe();
        let started = Instant::now();
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let close: Option<(u16, &'static str)> = 'conn: {
            if send_json(&mut sink, &hello).await.is_err() {
                break 'conn None;
            }
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let step = match msg {
                            Some(Ok(Message::Text(t))) => self.on_text(t.as_str()).await,
                            Some(Ok(Message::Binary(_))) => {
                                self.reply_error(None, "unsupported_frame", "frames must be JSON text");
                                Step::Continue
                            }
                            Some(Ok(Message::Close(_))) | None => {
                                // A clean close (tab closed, client left) ends the session now,
                                // unless the session has moved on to a newer connection.
                                if self.session.as_ref().is_some_and(|s| s.is_attached(self.conn_id)) {
                                    self.end_session(CloseReason::Left).await;
                                }
                                break 'conn None;
                            }
                            Some(Ok(_)) => Step::Continue,
                            Some(Err(e)) => {
                                debug!(error = %e, "websocket error");
                                break 'conn None;
                            }
                        };
                        if let Step::Close(code, reason) = step {
                            break 'conn Some((code, reason));
                        }
                    }
                    frame = self.rx.recv() => {
                        let Some(frame) = frame else { break 'conn None };
                        if sink.send(Message::Text(Utf8Bytes::from(&*frame))).await.is_err() {
                            break 'conn None;
                        }
                        self.state.metrics.frames_out.inc();
                    }
                    _ = check.tick() => {
                        let now = Instant::now();
                        if self.session.is_none()
                            && now.saturating_duration_since(started) > self.state.config.identify_timeout
                        {
                            break 'conn Some((CLOSE_IDENTIFY_TIMEOUT, "identify timeout"));
                        }
                        // Two missed heartbeats and a margin: the client is gone.
                        if now.saturating_duration_since(self.last_heartbeat) > hb * 2 + Duration::from_secs(5) {
                            break 'conn Some((CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout"));
                        }
                        // Detached for falling behind: close, so the client resumes and is
                        // replayed what it missed.
                        if self.session.as_ref().is_some_and(|s| !s.is_attached(self.conn_id)) {
                            break 'conn Some((CLOSE_TOO_SLOW, "too slow; resume"));
                        }
                    }
                    _ = shutdown.changed() => {
                        let msg = ServerMessage::Shutdown(Shutdown { reason: "server_shutdown".into() });
                        match &self.session {
                            Some(s) => s.emit(msg, None),
                            None => {
                                let _ = send_json(&mut sink, &ServerFrame { seq: 0, id: None, msg }).await;
                            }
                        }
                        self.end_session(CloseReason::ServerShutdown).await;
                        break 'conn Some((1001, "server shutting down"));
                    }
                }
            }
        };
        // Flush what is already queued (for example an error explaining the close).
        while let Ok(frame) = self.rx.try_recv() {
            if sink
                .send(Message::Text(Utf8Bytes::from(&*frame)))
                .await
                .is_err()
            {
                break;
            }
        }
        if let Some((code, reason)) = close {
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
        }
        if let Some(s) = &self.session {
            s.detach(self.conn_id);
        }
        self.state.metrics.connections.dec();
    }

    fn rate_limited(&mut self) -> bool {
        !self.frames.take()
    }

    /// Sends a reply through the session (numbered, replayable) or, before there is one,
    /// straight to this socket.
    fn reply(&self, id: Option<u64>, msg: ServerMessage) {
        match &self.session {
            Some(s) => s.emit(msg, id),
            None => {
                let f = ServerFrame { seq: 0, id, msg };
                if let Ok(t) = serde_json::to_string(&f) {
                    let _ = self.tx.try_send(t.into());
                }
            }
        }
    }

    fn reply_error(&self, id: Option<u64>, code: &str, message: impl Into<String>) {
        self.state.metrics.errors.with_label_values(&[code]).inc();
        self.reply(
            id,
            ServerMessage::Error(ErrorBody {
                code: code.into(),
                message: message.into(),
            }),
        );
    }

    async fn on_text(&mut self, text: &str) -> Step {
        self.state.metrics.frames_in.inc();
        if text.len() > MAX_FRAME_BYTES {
            self.reply_error(
                None,
                "frame_too_large",
                format!("frames are limited to {MAX_FRAME_BYTES} bytes"),
            );
            return Step::Close(CLOSE_TOO_LARGE, "frame too large");
        }
        let mut value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                self.reply_error(None, "invalid_json", e.to_string());
                return Step::Continue;
            }
        };
        let id = value.get("id").and_then(|v| v.as_u64());
        if self.rate_limited() {
            self.reply_error(id, "rate_limited", "too many messages; slow down");
            return Step::Continue;
        }
        // `d` may be left out where it would be empty.
        if let Some(obj) = value.as_object_mut()
            && !obj.contains_key("d")
        {
            obj.insert("d".into(), serde_json::json!({}));
        }
        let op = value
            .get("op")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned();
        let frame: ClientFrame = match serde_json::from_value(value) {
            Ok(f) => f,
            Err(e) => {
                if ClientMessage::OPS.contains(&op.as_str()) {
                    self.reply_error(id, "invalid_message", format!("bad {op}: {e}"));
                } else {
                    self.reply_error(id, "unknown_op", format!("unknown op {op:?}"));
                }
                return Step::Continue;
            }
        };
        self.on_frame(frame).await
    }

    async fn on_frame(&mut self, f: ClientFrame) -> Step {
        let id = f.id;
        match f.msg {
            ClientMessage::Heartbeat(h) => {
                self.last_heartbeat = Instant::now();
                if let Some(s) = &self.session {
                    s.ack(h.seq);
                }
                self.reply(id, ServerMessage::HeartbeatAck(Empty {}));
                Step::Continue
            }
            ClientMessage::Identify(i) => self.identify(id, i.token, i.protocol),
            ClientMessage::Resume(r) => self.resume(id, &r.session_id, r.seq),
            msg => {
                let Some(session) = self.session.clone() else {
                    self.reply_error(id, "not_identified", "identify first");
                    return Step::Continue;
                };
                self.room_op(id, &session, msg).await;
                Step::Continue
            }
        }
    }

    fn identify(&mut self, id: Option<u64>, token: String, protocol: u32) -> Step {
        if self.session.is_some() {
            self.reply_error(id, "already_identified", "this connection is identified");
            return Step::Continue;
        }
        if protocol != PROTOCOL_VERSION {
            self.reply_error(
                id,
                "unsupported_protocol",
                format!("this server speaks protocol {PROTOCOL_VERSION}"),
            );
            return Step::Close(CLOSE_AUTH_FAILED, "unsupported protocol");
        }
        let claims = match self.state.config.token_key.verify(&token) {
            Ok(c) => c,
            Err(e) => {
                self.reply_error(id, e.code(), e.to_string());
                return Step::Close(CLOSE_AUTH_FAILED, "authentication failed");
            }
        };
        let session = Arc::new(Session::new(crate::random_id(), claims));
        // Attaching a fresh session never fails.
        let _ = session.attach(self.conn_id, self.tx.clone(), None);
        self.state.sessions.insert(session.clone());
        self.state
            .metrics
            .sessions
            .set(self.state.sessions.len() as i64);
        let c = &session.claims;
        session.emit(
            ServerMessage::Ready(Ready {
                session_id: session.id.clone(),
                protocol: PROTOCOL_VERSION,
                room: c.room.clone(),
                identity: c.sub.clone(),
                name: c.display_name().to_owned(),
                grants: c.grants.clone(),
            }),
            id,
        );
        self.session = Some(session);
        Step::Continue
    }

    fn resume(&mut self, id: Option<u64>, session_id: &str, seq: u64) -> Step {
        if self.session.is_some() {
            self.reply_error(id, "already_identified", "this connection is identified");
            return Step::Continue;
        }
        let Some(session) = self.state.sessions.get(session_id) else {
            self.reply_error(id, "session_expired", "no such session; identify again");
            return Step::Continue;
        };
        // Room for a full replay on top of the usual queue.
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE + REPLAY_FRAMES);
        match session.attach(self.conn_id, tx.clone(), Some(seq)) {
            Ok(replayed) => {
                self.tx = tx;
                self.rx = rx;
                session.emit(ServerMessage::Resumed(Resumed { replayed }), id);
                self.session = Some(session);
            }
            Err(ResumeError::Unknown | ResumeError::TooOld) => {
                self.reply_error(
                    id,
                    "session_expired",
                    "the missed messages are no longer available; identify again",
                );
            }
        }
        Step::Continue
    }

    async fn room_op(&mut self, id: Option<u64>, session: &Arc<Session>, msg: ClientMessage) {
        let sfu = self.state.sfu.clone();
        match msg {
            ClientMessage::Join(j) => {
                if session.handle().is_some() {
                    self.reply_error(id, "already_joined", "already in the room");
                    return;
                }
                let c = &session.claims;
                session.hold();
                let req = JoinRequest {
                    room: c.room.clone(),
                    identity: c.sub.clone(),
                    name: c.display_name().to_owned(),
                    grants: c.grants.clone(),
                    caps: c.caps,
                    hidden: false,
                    auto_subscribe: j.auto_subscribe,
                };
                match sfu.join(req).await {
                    Ok((joined, erx)) => {
                        session.set_handle(Some(joined.handle.clone()));
                        tokio::spawn(pump(session.clone(), erx));
                        session.reply(
                            ServerMessage::Joined(Joined {
                                room: joined.handle.room,
                                me: joined.me,
                                participants: joined.participants,
                            }),
                            id,
                        );
                    }
                    Err(e) => self.sfu_error(session, id, e),
                }
            }
            ClientMessage::Leave(_) => match session.set_handle(None) {
                Some(h) => {
                    sfu.leave(&h, CloseReason::Left).await;
                    session.emit(ServerMessage::Left(Empty {}), id);
                }
                None => self.reply_error(id, "not_joined", "not in the room"),
            },
            msg => {
                let Some(h) = session.handle() else {
                    self.reply_error(id, "not_joined", "join the room first");
                    return;
                };
                let req = match msg {
                    ClientMessage::Offer(o) => Request::Offer {
                        sdp: o.sdp,
                        tracks: o.tracks,
                        infer_sources: false,
                    },
                    ClientMessage::Answer(a) => Request::Answer {
                        offer_id: a.offer_id,
                        sdp: a.sdp,
                    },
                    ClientMessage::Unpublish(t) => Request::Unpublish(t.track_id),
                    ClientMessage::Mute(m) => Request::Mute(m.track_id, m.muted),
                    ClientMessage::Subscribe(t) => Request::Subscribe(t.track_id),
                    ClientMessage::Unsubscribe(t) => Request::Unsubscribe(t.track_id),
                    ClientMessage::Pause(p) => Request::Pause(p.track_id, p.paused),
                    ClientMessage::Quality(q) => Request::Quality(q.track_id, q.quality),
                    ClientMessage::IceRestart(_) => Request::IceRestart,
                    _ => return,
                };
                session.hold();
                match sfu.request(&h, req).await {
                    Ok(Reply::Answer { sdp, tracks }) => {
                        session.reply(ServerMessage::Answer(ServerAnswer { sdp, tracks }), id)
                    }
                    Ok(Reply::Ok) => session.reply(ServerMessage::Ok(Empty {}), id),
                    Err(e) => self.sfu_error(session, id, e),
                }
            }
        }
    }

    /// Answers a request the SFU refused, releasing the events held meanwhile.
    fn sfu_error(&self, session: &Session, id: Option<u64>, e: SfuError) {
        self.state
            .metrics
            .errors
            .with_label_values(&[e.code()])
            .inc();
        session.reply(
            ServerMessage::Error(ErrorBody {
                code: e.code().into(),
                message: e.to_string(),
            }),
            id,
        );
    }

    /// Leaves the room and forgets the session (no resume).
    async fn end_session(&mut self, reason: CloseReason) {
        let Some(s) = self.session.take() else { return };
        if let Some(h) = s.set_handle(None) {
            self.state.sfu.leave(&h, reason).await;
        }
        self.state.sessions.remove(&s.id);
        self.state
            .metrics
            .sessions
            .set(self.state.sessions.len() as i64);
    }
}

/// Moves SFU events for one participant into its session, as client messages.
async fn pump(session: Arc<Session>, mut events: RoomEvents) {
    while let Some(ev) = events.recv().await {
        let closed = matches!(ev, RoomEvent::Closed(_));
        if closed {
            session.set_handle(None);
        }
        session.event(client_message(ev));
        if closed {
            break;
        }
    }
}

/// The client protocol's message for a room event.
pub(crate) fn client_message(ev: RoomEvent) -> ServerMessage {
    match ev {
        RoomEvent::ParticipantJoined(participant) => {
            ServerMessage::ParticipantJoined(ParticipantJoined { participant })
        }
        RoomEvent::ParticipantLeft { identity, reason } => {
            ServerMessage::ParticipantLeft(ParticipantLeft {
                identity,
                reason: reason.as_str().into(),
            })
        }
        RoomEvent::TrackPublished(track) => ServerMessage::TrackPublished(TrackPublished { track }),
        RoomEvent::TrackUnpublished {
            track_id,
            participant,
        } => ServerMessage::TrackUnpublished(TrackUnpublished {
            track_id,
            participant,
        }),
        RoomEvent::TrackMuted {
            track_id,
            participant,
            muted,
        } => ServerMessage::TrackMuted(TrackMuted {
            track_id,
            participant,
            muted,
        }),
        RoomEvent::ActiveSpeakers(speakers) => {
            ServerMessage::ActiveSpeakers(ActiveSpeakers { speakers })
        }
        RoomEvent::Offer {
            offer_id,
            sdp,
            tracks,
        } => ServerMessage::Offer(ServerOffer {
            offer_id,
            sdp,
            tracks,
        }),
        RoomEvent::Closed(CloseReason::ServerShutdown) => ServerMessage::Shutdown(Shutdown {
            reason: CloseReason::ServerShutdown.as_str().into(),
        }),
        RoomEvent::Closed(reason) => ServerMessage::Error(ErrorBody {
            message: format!("removed from the room: {}", reason.as_str()),
            code: reason.as_str().into(),
        }),
    }
}

async fn send_json(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    f: &ServerFrame,
) -> Result<(), ()> {
    let t = serde_json::to_string(f).map_err(|_| ())?;
    sink.send(Message::Text(t.into())).await.map_err(|_| ())
}
