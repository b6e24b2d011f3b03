//! What every Parlor service runs at its edge, whether it serves alone or beside the
//! others: a request id and a tracing span per HTTP request, rate limits, and the
//! session layer of both WebSocket gateways ([`session`]), and the process's own metrics
//! ([`process`]).
//!
//! Each request gets an `x-request-id` (the client's, if it sent one, else a fresh one:
//! this process's random prefix and a counter, which costs no syscall), echoed in the
//! response. Everything logged while the request is handled, a 5xx's cause
//! included, is inside a span `request{method, path, request_id}`; WebSocket sessions
//! open their own span inside it when they upgrade.

pub mod process;
pub mod rate;
pub mod session;

pub use rate::{FrameLimit, KeyedLimit};
pub use session::{CloseCode, Heartbeat, Next, Numbered, Outbox, OutboxLimits, ResumeError};

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Request};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The header that carries the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Request ids unique across processes and restarts: 64 random bits chosen at start, and
/// a counter.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeId;

impl MakeRequestId for MakeId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let prefix = PREFIX.get_or_init(|| {
            // A random state's hash of nothing: seeded from the OS once per process.
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        });
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{prefix:016x}-{n:x}"))
            .ok()
            .map(RequestId::new)
    }
}

/// Turns Nagle's algorithm off on an accepted connection. Signaling and chat write small
/// frames back to back (a reply, then the events it caused); with Nagle on, the second
/// waits for the client's acknowledgement of the first, which a client that delays its
/// acknowledgements sends up to 40 ms later.
pub fn no_delay(stream: &mut tokio::net::TcpStream) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
}

/// `router` with a request id and a span per request.
pub fn with_request_spans(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = req.uri().path(),
                        request_id = id,
                    )
                })
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeId))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    #[tokio::test]
    async fn every_response_carries_a_request_id() {
        let app = with_request_spans(Router::new().route("/", get(|| async { "ok" })));
        let res = app
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap_or_default();
        let first = res.headers().get(REQUEST_ID).cloned();
        let res = app
            .clone()
            .oneshot(Request::new(Body::empty()))
            .await
            .unwrap_or_default();
        let second = res.headers().get(REQUEST_ID).cloned();
        assert!(first.as_ref().is_some_and(|v| v.len() > 17), "{first:?}");
        assert_ne!(first, second, "a fresh one each time");
        let mut req = Request::new(Body::empty());
        req.headers_mut().insert(
            REQUEST_ID,
            "from-the-proxy".parse().unwrap_or_else(|_| unreachable!()),
        );
        let res = app.oneshot(req).await.unwrap_or_default();
        assert_eq!(
            res.headers()[REQUEST_ID],
            "from-the-proxy",
            "the client's is kept"
        );
    }
}
