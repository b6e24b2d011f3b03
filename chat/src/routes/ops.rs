//! What an orchestrator and Prometheus ask a chat node: `/healthz` (the process answers),
//! `/readyz` (its database answers) and `/metrics`. Served by `parlor chat`; in `parlor
//! serve` signaling's own `/healthz`, `/readyz` and `/metrics` stand for the process.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};

use crate::ChatState;

pub fn router(state: ChatState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// Ready while the store answers: a chat node without its database serves nothing.
async fn ready(State(state): State<ChatState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: the store does not answer");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn metrics(State(state): State<ChatState>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    if enc
        .encode(&crate::service::metrics::gather(&state), &mut buf)
        .is_err()
    {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response();
    }
    ([(header::CONTENT_TYPE, enc.format_type().to_owned())], buf).into_response()
}
