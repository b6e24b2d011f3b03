//! Parlor's signaling service: the client WebSocket gateway (`/ws`), WHIP and WHEP, and
//! guest tokens. It checks room tokens and relays everything media-related to an SFU
//! through [`parlor_proto::control::SfuControl`].

pub mod admin;
pub mod error;
pub mod gateway;
pub mod ops;
mod room_events;
pub mod session;
pub mod whip;

use axum::serve::ListenerExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use parlor_proto::control::{CloseReason, SessionRecords, SfuControl};
use parlor_proto::{Claims, ParticipantId, RoomId, TokenKey};

use crate::error::ApiError;
use crate::session::Sessions;
use crate::whip::HttpSessions;

/// Largest WHIP/WHEP or API body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Config {
    pub token_key: TokenKey,
    /// Whether `POST /api/guest-token` hands out tokens (the embedded default).
    pub guest_tokens: bool,
    pub guest_token_ttl: Duration,
    pub heartbeat_interval: Duration,
    /// How long a dropped connection's session can be resumed.
    pub resume_window: Duration,
    /// How long a new connection may take to identify.
    pub identify_timeout: Duration,
    /// What clients are told when this node stops: `server_shutdown` for a lone server,
    /// `moved` on a cluster, where joining again through the same address lands on
    /// another signaling node.
    pub drain_reason: CloseReason,
}

impl Config {
    pub fn new(token_key: TokenKey) -> Config {
        Config {
            token_key,
            guest_tokens: true,
            guest_token_ttl: Duration::from_secs(6 * 3600),
            heartbeat_interval: Duration::from_secs(10),
            resume_window: Duration::from_secs(60),
            identify_timeout: Duration::from_secs(10),
            drain_reason: CloseReason::ServerShutdown,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics {
    pub connections: IntGauge,
    pub sessions: IntGauge,
    pub frames_in: IntCounter,
    pub frames_out: IntCounter,
    pub errors: IntCounterVec,
    /// Sessions taken over from another signaling node of the cluster.
    pub taken_over: IntCounter,
    /// From a `join` to the SFU's answer.
    pub join_duration: prometheus::Histogram,
}

impl Metrics {
    pub fn new(registry: &Registry) -> Result<Metrics, prometheus::Error> {
        let connections =
            IntGauge::new("parlor_signaling_connections", "Open signaling WebSockets")?;
        let sessions = IntGauge::new(
            "parlor_signaling_sessions",
            "Signaling sessions, including ones waiting to be resumed",
        )?;
        let frames_in = IntCounter::new(
            "parlor_signaling_frames_in_total",
            "Frames received from clients",
        )?;
        let frames_out = IntCounter::new(
            "parlor_signaling_frames_out_total",
            "Frames sent to clients",
        )?;
        let errors = IntCounterVec::new(
            Opts::new(
                "parlor_signaling_errors_total",
                "Error frames sent to clients, by code",
            ),
            &["code"],
        )?;
        let taken_over = IntCounter::new(
            "parlor_signaling_sessions_taken_over_total",
            "Sessions resumed here that another signaling node held",
        )?;
        registry.register(Box::new(taken_over.clone()))?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(sessions.clone()))?;
        registry.register(Box::new(frames_in.clone()))?;
        registry.register(Box::new(frames_out.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        // The codes the alerts watch exist before the first one is sent.
        for code in ["internal", "unavailable"] {
            errors.with_label_values(&[code]);
        }
        let join_duration = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "parlor_signaling_join_duration_seconds",
                "Time from a join request to the SFU admitting the participant",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )?;
        registry.register(Box::new(join_duration.clone()))?;
        Ok(Metrics {
            join_duration,
            taken_over,
            connections,
            sessions,
            frames_in,
            frames_out,
            errors,
        })
    }
}

/// Everything the routes share.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub sfu: Arc<dyn SfuControl>,
    pub sessions: Arc<Sessions>,
    pub http_sessions: Arc<HttpSessions>,
    pub metrics: Metrics,
    pub shutdown: Arc<watch::Sender<bool>>,
    /// Where sessions are recorded so another signaling node can take one over (Redis,
    /// in a cluster); `None` in one process.
    pub records: Option<Arc<dyn SessionRecords>>,
    next_conn: Arc<AtomicU64>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(config: Config, sfu: Arc<dyn SfuControl>, metrics: Metrics) -> AppState {
        AppState {
            config: Arc::new(config),
            sfu,
            sessions: Arc::default(),
            http_sessions: Arc::default(),
            metrics,
            shutdown: Arc::new(watch::channel(false).0),
            records: None,
            next_conn: Arc::new(AtomicU64::new(1)),
        }
    }

    /// Tells every connection the server is going away.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The signaling routes: `/ws`, WHIP, WHEP, guest tokens and the room admin API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/ws", get(gateway::ws_handler))
        .route("/whip/rooms/{room}", post(whip::whip_post))
        .route(
            "/whip/rooms/{room}/sessions/{resource}",
            axum::routing::delete(whip::delete_session).patch(whip::patch_session),
        )
        .route(
            "/whep/rooms/{room}/participants/{identity}",
            post(whip::whep_post),
        )
        .route(
            "/whep/rooms/{room}/sessions/{resource}",
            axum::routing::delete(whip::delete_session).patch(whip::patch_session),
        )
        .route("/api/guest-token", post(guest_token))
        .route("/admin/rooms/{room}", get(admin::get_room))
        .route(
            "/admin/rooms/{room}/caps",
            axum::routing::put(admin::put_caps),
        )
        .route(
            "/admin/rooms/{room}/participants/{identity}",
            axum::routing::patch(admin::patch_participant).delete(admin::remove_participant),
        )
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Serves `app` until `shutdown` resolves, then drains: every client is told, sockets
/// close, and sessions waiting for resume are dropped.
pub async fn run(
    listener: TcpListener,
    app: Router,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let reaper = tokio::spawn(reap_sessions(state.clone()));
    let st = state.clone();
    let app = parlor_edge::with_request_spans(app)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener.tap_io(parlor_edge::no_delay), app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            st.begin_shutdown();
        })
        .await;
    reaper.abort();
    // On a cluster the sessions live on: other nodes take them over.
    let handed_over = state.records.is_some();
    // Upgraded WebSockets outlive the server: give each a moment to tell its client why it
    // closes (`shutdown`), or the process would exit under them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while state.metrics.connections.get() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for s in state.sessions.all().into_iter().filter(|_| !handed_over) {
        if let Some(h) = s.set_handle(None) {
            state.sfu.leave(&h, state.config.drain_reason).await;
        }
    }
    result
}

/// Ends sessions whose connection dropped and did not come back within the window.
async fn reap_sessions(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let expired = state
            .sessions
            .take_expired(std::time::Instant::now(), state.config.resume_window);
        for s in expired {
            if let Some(h) = s.set_handle(None) {
                state.sfu.leave(&h, CloseReason::Disconnected).await;
            }
        }
        state.metrics.sessions.set(state.sessions.len() as i64);
    }
}

#[derive(Debug, Deserialize)]
struct GuestRequest {
    room: String,
    #[serde(default)]
    name: String,
}

#[derive(Debug, Serialize)]
struct GuestToken {
    token: String,
    identity: ParticipantId,
    room: RoomId,
}

async fn guest_token(
    State(state): State<AppState>,
    body: Result<Json<GuestRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<GuestToken>, ApiError> {
    if !state.config.guest_tokens {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "guest_tokens_disabled",
            "this server does not hand out guest tokens; ask for a room token",
        ));
    }
    let Json(req) =
        body.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()))?;
    let room = RoomId::parse(req.room.trim()).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_room",
            "room names are 1-64 letters, digits and -_.:@",
        )
    })?;
    // Rooms under a namespace belong to a service (chat's voice channels); guests never
    // get a token for one, whatever the room is called.
    if let Some(ns) = parlor_proto::RoomNamespace::of(&room) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved_room",
            format!(
                "rooms under {} belong to the chat service; join them through the chat app",
                ns.prefix()
            ),
        ));
    }
    let name: String = req
        .name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let identity = ParticipantId::parse(&format!("guest-{}", &random_id()[..12]))
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bad id"))?;
    let mut claims = Claims::new(room.clone(), identity.clone(), state.config.guest_token_ttl);
    if !name.is_empty() {
        claims.name = Some(name);
    }
    Ok(Json(GuestToken {
        token: state.config.token_key.sign(&claims),
        identity,
        room,
    }))
}

/// A random 128-bit id, hex.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
