//! What every Parlor service runs at its edge, whether it serves alone or beside the
//! others: a request id and a tracing span per HTTP request.
//!
//! Each request gets an `x-request-id` (the client's, if it sent one, else a fresh UUID),
//! echoed in the response. Everything logged while the request is handled, a 5xx's cause
//! included, is inside a span `request{method, path, request_id}`; WebSocket sessions
//! open their own span inside it when they upgrade.

pub mod rate;

pub use rate::{FrameLimit, KeyedLimit};

use axum::Router;
use axum::http::{HeaderName, Request};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The header that carries the request id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

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
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
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
        let id = res.headers().get(REQUEST_ID).cloned();
        assert!(id.is_some_and(|v| v.len() == 36), "a fresh UUID");
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
