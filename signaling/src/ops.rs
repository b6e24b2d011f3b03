//! `/metrics`, `/healthz` and `/readyz`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::AppState;

#[derive(Clone)]
struct Ops {
    registry: Registry,
    state: AppState,
}

pub fn router(registry: Registry, state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Ops { registry, state })
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    if enc.encode(&ops.registry.gather(), &mut buf).is_err() {
        return (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed").into_response();
    }
    ([(header::CONTENT_TYPE, enc.format_type().to_owned())], buf).into_response()
}

async fn ready(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.state.is_shutting_down() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else {
        (StatusCode::OK, "ready")
    }
}
