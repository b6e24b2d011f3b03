//! The client WebSocket at `/ws`: hello, identify or resume, heartbeats, and room
//! operations relayed to the SFU.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tracing::{Instrument, debug, info_span};

use parlor_proto::control::{CloseReason, JoinRequest, Reply, Request, SessionRecord, SfuError};
use parlor_proto::signal::{
    ClientFrame, ClientMessage, Empty, ErrorBody, Hello, Joined, MAX_FRAME_BYTES, PROTOCOL_VERSION,
    Ready, Resumed, ServerAnswer, ServerFrame, ServerMessage, Shutdown,
};

use crate::AppState;
use crate::room_events::pump;
use crate::session::Session;
use parlor_edge::{CloseCode, Heartbeat, Next, ResumeError};

/// Messages a client may send per second, sustained, and in a burst.
const RATE_PER_SEC: f64 = 30.0;
const RATE_BURST: f64 = 60.0;

pub async fn ws_handler(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // The transport cap is above the protocol limit so an oversized frame gets a proper
    // error frame instead of a dropped connection. Small buffers: a participant's socket
    // should cost kilobytes, not the 128 KiB read buffer a WebSocket gets by default;
    // they grow for the rare large frame (an SDP offer).
    ws.max_message_size(MAX_FRAME_BYTES * 16)
        .max_frame_size(MAX_FRAME_BYTES * 16)
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_upgrade(move |socket| {
            let conn_id = state.next_conn.fetch_add(1, Ordering::Relaxed);
            Connection::new(state)
                .run(socket)
                .instrument(info_span!("ws", conn = conn_id))
        })
}

struct Connection {
    state: AppState,
    session: Option<Arc<Session>>,
    /// This connection's generation of the session: a newer one replaces it.
    generation: u64,
    /// Frames for this socket before it has a session (hello, errors, acks).
    direct: Vec<String>,
    heartbeat: Heartbeat,
    frames: parlor_edge::FrameLimit,
}

enum Step {
    Continue,
    /// Close with this code and reason.
    Close(CloseCode, &'static str),
    /// The socket is gone (or the client closed it): no close frame.
    Gone,
}

type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

impl Connection {
    fn new(state: AppState) -> Connection {
        // Two missed heartbeats and a margin: the client is gone.
        let hb = state.config.heartbeat_interval * 2 + Duration::from_secs(5);
        Connection {
            state,
            session: None,
            generation: 0,
            direct: Vec::new(),
            heartbeat: Heartbeat::new(hb),
            frames: parlor_edge::FrameLimit::new(RATE_BURST, RATE_PER_SEC),
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        self.state.metrics.connections.inc();
        let mut shutdown = self.state.shutdown.subscribe();
        let identify_by = tokio::time::Instant::now() + self.state.config.identify_timeout;
        let mut step = match send_json(&mut sink, &self.hello()).await {
            Ok(()) => Step::Continue,
            Err(()) => Step::Gone,
        };
        while let Step::Continue = step {
            if self.write_direct(&mut sink).await.is_err() {
                break;
            }
            let session = self.session.clone();
            let generation = self.generation;
            let outgoing = async {
                match &session {
                    Some(s) => s.outbox.next(generation).await,
                    None => std::future::pending().await,
                }
            };
            let identify_timeout = async {
                match &session {
                    Some(_) => std::future::pending().await,
                    None => tokio::time::sleep_until(identify_by).await,
                }
            };
            step = tokio::select! {
                msg = stream.next() => self.on_message(msg).await,
                next = outgoing => self.write(&mut sink, next).await,
                _ = identify_timeout => Step::Close(CloseCode::NotIdentified, "identify timeout"),
                _ = self.heartbeat.missed() => Step::Close(CloseCode::SessionTimeout, "no heartbeat"),
                _ = shutdown.changed() => self.shut_down().await,
            };
        }
        self.finish(&mut sink, step).await;
        self.state.metrics.connections.dec();
    }

    fn hello(&self) -> ServerFrame {
        let config = &self.state.config;
        ServerFrame {
            seq: 0,
            id: None,
            ev: None,
            msg: ServerMessage::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                heartbeat_interval_ms: config.heartbeat_interval.as_millis() as u64,
                resume_window_ms: config.resume_window.as_millis() as u64,
            }),
        }
    }

    async fn on_message(&mut self, msg: Option<Result<Message, axum::Error>>) -> Step {
        match msg {
            Some(Ok(Message::Text(t))) => self.on_text(t.as_str()).await,
            Some(Ok(Message::Binary(_))) => {
                self.reply_error(None, "unsupported_frame", "frames must be JSON text");
                Step::Continue
            }
            Some(Ok(Message::Close(_))) | None => {
                // A clean close (tab closed, client left) ends the session now, unless
                // the session has moved on to a newer connection.
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.outbox.is_current(self.generation))
                {
                    self.end_session(CloseReason::Left).await;
                }
                Step::Gone
            }
            Some(Ok(_)) => Step::Continue,
            Some(Err(e)) => {
                debug!(error = %e, "websocket error");
                Step::Gone
            }
        }
    }

    /// Writes what the session's outbox gave, or closes as it says.
    async fn write(&self, sink: &mut Sink, next: Next) -> Step {
        match next {
            Next::Frames(frames) => {
                for frame in frames {
                    if sink
                        .send(Message::Text(Utf8Bytes::from(frame)))
                        .await
                        .is_err()
                    {
                        return Step::Gone;
                    }
                    self.state.metrics.frames_out.inc();
                }
                Step::Continue
            }
            Next::Idle => Step::Continue,
            Next::Replaced => Step::Close(CloseCode::ResumedElsewhere, "resumed elsewhere"),
            Next::Overflowed => Step::Close(CloseCode::SessionTimeout, "too slow"),
            Next::Ended => Step::Close(CloseCode::GoingAway, "session ended"),
        }
    }

    /// Writes the frames sent outside a session.
    async fn write_direct(&mut self, sink: &mut Sink) -> Result<(), ()> {
        for text in std::mem::take(&mut self.direct) {
            sink.send(Message::Text(text.into()))
                .await
                .map_err(|_| ())?;
        }
        Ok(())
    }

    /// The server drains: tells the client, and leaves the room. On a cluster, where
    /// another node can take the session over, the session and its participant stay and
    /// the client is told to resume (1012).
    async fn shut_down(&mut self) -> Step {
        if self.state.records.is_some() && self.session.is_some() {
            return Step::Close(CloseCode::Restarting, "restarting: resume");
        }
        let reason = self.state.config.drain_reason;
        let msg = ServerMessage::Shutdown(Shutdown {
            reason: reason.as_str().into(),
        });
        match self.session.clone() {
            Some(s) => {
                s.emit(msg, None);
                // Written in `finish`, after the session is gone.
                if let Next::Frames(frames) = s.outbox.take(self.generation) {
                    self.direct.extend(frames);
                }
            }
            None => self.direct_frame(None, msg),
        }
        self.end_session(reason).await;
        Step::Close(CloseCode::GoingAway, "server shutting down")
    }

    /// Writes what is already queued (for example an error explaining the close), closes
    /// with the code `step` names, and leaves the session for a resume.
    async fn finish(&mut self, sink: &mut Sink, step: Step) {
        if let Some(s) = &self.session
            && let Next::Frames(frames) = s.outbox.take(self.generation)
        {
            self.direct.extend(frames);
        }
        let _ = self.write_direct(sink).await;
        if let Step::Close(code, reason) = step {
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code: code.code(),
                    reason: reason.into(),
                })))
                .await;
        }
        if let Some(s) = &self.session {
            s.outbox.detach(self.generation);
        }
    }

    fn rate_limited(&mut self) -> bool {
        !self.frames.take()
    }

    /// Sends a reply through the session (numbered, replayable) or, before there is one,
    /// straight to this socket.
    fn reply(&mut self, id: Option<u64>, msg: ServerMessage) {
        match &self.session {
            Some(s) => s.emit(msg, id),
            None => self.direct_frame(id, msg),
        }
    }

    /// Queues a frame for this socket outside any session (`seq` 0).
    fn direct_frame(&mut self, id: Option<u64>, msg: ServerMessage) {
        if let Ok(t) = serde_json::to_string(&ServerFrame {
            seq: 0,
            id,
            ev: None,
            msg,
        }) {
            self.direct.push(t);
        }
    }

    fn reply_error(&mut self, id: Option<u64>, code: &str, message: impl Into<String>) {
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
            return Step::Close(CloseCode::TooLarge, "frame too large");
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
                self.heartbeat.beat();
                if let Some(s) = &self.session {
                    s.outbox.ack(h.seq);
                }
                self.reply(id, ServerMessage::HeartbeatAck(Empty {}));
                Step::Continue
            }
            ClientMessage::Identify(i) => self.identify(id, i.token, i.protocol).await,
            ClientMessage::Resume(r) => self.resume(id, &r.session_id, r.seq, r.event).await,
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

    async fn identify(&mut self, id: Option<u64>, token: String, protocol: u32) -> Step {
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
            return Step::Close(CloseCode::AuthenticationFailed, "unsupported protocol");
        }
        let claims = match self.state.config.token_key.verify(&token) {
            Ok(c) => c,
            Err(e) => {
                self.reply_error(id, e.code(), e.to_string());
                return Step::Close(CloseCode::AuthenticationFailed, "authentication failed");
            }
        };
        let session = Arc::new(Session::new(crate::random_id(), claims));
        self.record(&session).await;
        self.generation = 1;
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

    /// Keeps the session where another signaling node of a cluster can find it.
    async fn record(&self, session: &Session) {
        if let Some(r) = &self.state.records {
            let record = SessionRecord {
                claims: session.claims.clone(),
                handle: session.handle(),
            };
            r.save(&session.id, &record).await;
        }
    }

    async fn resume(
        &mut self,
        id: Option<u64>,
        session_id: &str,
        seq: u64,
        event: Option<u64>,
    ) -> Step {
        if self.session.is_some() {
            self.reply_error(id, "already_identified", "this connection is identified");
            return Step::Continue;
        }
        let Some(session) = self.state.sessions.get(session_id) else {
            if !self.take_over(id, session_id, seq, event).await {
                self.reply_error(id, "session_expired", "no such session; identify again");
            }
            return Step::Continue;
        };
        match session.outbox.resume(seq) {
            Ok((generation, replayed)) => {
                self.generation = generation;
                session.emit(ServerMessage::Resumed(Resumed { replayed }), id);
                self.session = Some(session);
            }
            Err(ResumeError::Invalid | ResumeError::TooOld) => {
                self.reply_error(
                    id,
                    "session_expired",
                    "the missed messages are no longer available; identify again",
                );
            }
        }
        Step::Continue
    }

    /// Takes over a session another signaling node of the cluster held (it died, or the
    /// client left it): the participant stays in the room, its events come here from
    /// now on, and those after the last one the client saw (`event`) are replayed after
    /// `resumed`, numbered on from `seq`. False if there is no such session to take.
    async fn take_over(
        &mut self,
        id: Option<u64>,
        session_id: &str,
        seq: u64,
        event: Option<u64>,
    ) -> bool {
        let Some(records) = self.state.records.clone() else {
            return false;
        };
        let Some(record) = records.load(session_id).await else {
            return false;
        };
        let session = Arc::new(Session::continuing(
            session_id.to_owned(),
            record.claims,
            seq,
        ));
        // The replayed events follow `resumed`.
        session.hold();
        if let Some(h) = record.handle {
            match self.state.sfu.attach(&h, event.unwrap_or(0)).await {
                Ok(events) => {
                    session.set_handle(Some(h));
                    tokio::spawn(pump(session.clone(), events));
                }
                Err(e) => {
                    tracing::info!(error = %e, "could not take the session's participant over");
                    return false;
                }
            }
        }
        self.state.sessions.insert(session.clone());
        self.state
            .metrics
            .sessions
            .set(self.state.sessions.len() as i64);
        self.state.metrics.taken_over.inc();
        self.generation = 1;
        session.reply(ServerMessage::Resumed(Resumed { replayed: 0 }), id);
        self.session = Some(session);
        true
    }

    /// Leaves the room and forgets the session (no resume).
    async fn end_session(&mut self, reason: CloseReason) {
        let Some(s) = self.session.take() else { return };
        if let Some(h) = s.set_handle(None) {
            self.state.sfu.leave(&h, reason).await;
        }
        if let Some(r) = &self.state.records {
            r.forget(&s.id).await;
        }
        self.state.sessions.remove(&s.id);
        self.state
            .metrics
            .sessions
            .set(self.state.sessions.len() as i64);
    }
}

async fn send_json(sink: &mut Sink, f: &ServerFrame) -> Result<(), ()> {
    let t = serde_json::to_string(f).map_err(|_| ())?;
    sink.send(Message::Text(t.into())).await.map_err(|_| ())
}

#[path = "gateway_rooms.rs"]
mod rooms;
