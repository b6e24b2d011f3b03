//! `/metrics`, `/healthz` and `/readyz`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, Registry, TextEncoder};

use crate::AppState;

/// More series for the same `/metrics`: another service of the process (chat, in
/// `parlor serve`).
pub type Gather = std::sync::Arc<dyn Fn() -> Vec<prometheus::proto::MetricFamily> + Send + Sync>;

#[derive(Clone)]
struct Ops {
    registry: Registry,
    more: Vec<Gather>,
    state: AppState,
}

pub fn router(registry: Registry, state: AppState) -> Router {
    router_with(registry, Vec::new(), state)
}

/// [`router`], with `/metrics` serving `more` beside the registry.
pub fn router_with(registry: Registry, more: Vec<Gather>, state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Ops {
            registry,
            more,
            state,
        })
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let mut buf = Vec::new();
    let enc = TextEncoder::new();
    let mut families = ops.registry.gather();
    for more in &ops.more {
        families.extend(more());
    }
    if enc.encode(&families, &mut buf).is_err() {
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
