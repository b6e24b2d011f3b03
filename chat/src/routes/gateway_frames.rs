//! The chat gateway's frames: what a client sends, what the server answers, and reading
//! and writing them on the socket (size and type checks, write timeouts, counts).

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tracing::debug;

use crate::error::ChatError;
use crate::service::metrics::ChatMetrics;
use parlor_edge::CloseCode;

/// Largest frame a client may send.
pub const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// How long one write to a client may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// What a client sends: `{"op": ..., "d": ...}`.
#[derive(Debug)]
pub(crate) enum ClientFrame {
    Identify {
        token: String,
    },
    Resume {
        token: String,
        session_id: String,
        seq: u64,
        position: Option<String>,
    },
    /// With the last `s` the client has, when it says: the session need not keep what
    /// came up to it.
    Heartbeat(Option<u64>),
    /// Status, custom status or idleness of this device.
    Presence(serde_json::Value),
    /// Joining, changing or leaving a voice channel.
    VoiceState(serde_json::Value),
}

#[derive(Debug, Deserialize)]
pub(crate) struct RawFrame {
    op: String,
    #[serde(default)]
    d: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct IdentifyData {
    token: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ResumeData {
    token: String,
    session_id: String,
    seq: u64,
    /// The last `p` the client saw: lets another node of a cluster take the session over.
    #[serde(default)]
    position: Option<String>,
}

impl ClientFrame {
    pub(crate) fn parse(text: &str) -> Result<ClientFrame, String> {
        let raw: RawFrame = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let bad = |e: serde_json::Error| format!("{}: {e}", raw.op);
        match raw.op.as_str() {
            "identify" => {
                let d: IdentifyData = serde_json::from_value(raw.d.clone()).map_err(bad)?;
                Ok(ClientFrame::Identify { token: d.token })
            }
            "resume" => {
                let d: ResumeData = serde_json::from_value(raw.d.clone()).map_err(bad)?;
                Ok(ClientFrame::Resume {
                    token: d.token,
                    session_id: d.session_id,
                    seq: d.seq,
                    position: d.position,
                })
            }
            "heartbeat" => Ok(ClientFrame::Heartbeat(
                raw.d.get("seq").and_then(serde_json::Value::as_u64),
            )),
            "presence" => Ok(ClientFrame::Presence(raw.d)),
            "voice_state" => Ok(ClientFrame::VoiceState(raw.d)),
            other => Err(format!(
                "unknown op {other:?}; expected identify, resume, heartbeat, presence or \
                 voice_state"
            )),
        }
    }
}

pub(crate) type Sink = futures_util::stream::SplitSink<WebSocket, Message>;

pub(crate) async fn send(m: &ChatMetrics, sink: &mut Sink, text: String) -> Result<(), ()> {
    m.frames_out.inc();
    match tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text.into()))).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

pub(crate) async fn close_with(sink: &mut Sink, code: CloseCode, reason: &str) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        sink.send(Message::Close(Some(CloseFrame {
            code: code.code(),
            reason: reason.to_owned().into(),
        }))),
    )
    .await;
}

/// The frames the server sends besides dispatches (which the hub numbers and buffers).
#[derive(Debug, Serialize)]
#[serde(tag = "op", content = "d", rename_all = "snake_case")]
pub(crate) enum ServerOp<'a> {
    Hello {
        heartbeat_interval_ms: u64,
        session_timeout_ms: u64,
    },
    HeartbeatAck,
    InvalidSession {
        resumable: bool,
        code: &'a str,
    },
    Error {
        code: &'a str,
        message: &'a str,
    },
}

impl ServerOp<'_> {
    pub(crate) fn text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

pub(crate) fn error_frame(code: &str, message: &str) -> String {
    ServerOp::Error { code, message }.text()
}

/// The error frame of an operation that failed.
pub(crate) fn op_error(e: &ChatError) -> String {
    match e {
        ChatError::Api { message, .. } => error_frame(e.code(), message),
        ChatError::RateLimited { .. } => error_frame(e.code(), "too many requests"),
        ChatError::Internal(m) => {
            tracing::error!(error = %m, "gateway operation failed");
            error_frame(e.code(), "internal error")
        }
    }
}

/// What ends a connection.
pub(crate) enum End {
    /// Send this close code and reason.
    Close(CloseCode, &'static str),
    /// The socket is gone already.
    Gone,
    /// The client closed cleanly: the session ends too.
    ClientClosed,
}

/// The text of a client frame; `None` for frames to ignore.
pub(crate) fn frame_text(
    m: &ChatMetrics,
    msg: Option<Result<Message, axum::Error>>,
) -> Result<Option<String>, End> {
    match msg {
        Some(Ok(Message::Text(t))) => {
            m.frames_in.inc();
            if t.len() > MAX_CLIENT_FRAME {
                Err(End::Close(CloseCode::TooLarge, "frame too large"))
            } else {
                Ok(Some(t.to_string()))
            }
        }
        Some(Ok(Message::Binary(_))) => {
            Err(End::Close(CloseCode::DecodeError, "frames are JSON text"))
        }
        Some(Ok(Message::Close(Some(f)))) if f.code == 1000 => Err(End::ClientClosed),
        Some(Ok(Message::Close(_))) | None => Err(End::Gone),
        Some(Ok(_)) => Ok(None),
        Some(Err(e)) => {
            debug!(error = %e, "websocket error");
            if e.to_string().contains("too long") || e.to_string().contains("size") {
                Err(End::Close(CloseCode::TooLarge, "frame too large"))
            } else {
                Err(End::Gone)
            }
        }
    }
}
