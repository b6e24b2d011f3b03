//! The web app, embedded in the binary: no bundler, no build step. `/` is the guest room
//! page, `/chat` the chat app; both join rooms with `room.js`.
//!
//! Every response of the server passes through [`security_headers`]: HTML gets a
//! Content-Security-Policy that allows no inline script and no framing, and everything
//! gets `nosniff`, a Referrer-Policy and `X-Frame-Options`.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/style.css");
const ROOM_JS: &str = include_str!("../web/room.js");
const CHAT: &str = include_str!("../web/chat.html");
const CHAT_JS: &str = include_str!("../web/chat.js");
const CHAT_STYLE: &str = include_str!("../web/chat.css");

pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE, "text/css; charset=utf-8") }),
        )
        .route(
            "/room.js",
            get(|| async { page(ROOM_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/chat",
            get(|| async { page(CHAT, "text/html; charset=utf-8") }),
        )
        .route(
            "/chat.js",
            get(|| async { page(CHAT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/chat.css",
            get(|| async { page(CHAT_STYLE, "text/css; charset=utf-8") }),
        )
}

fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

/// The policy of every HTML page. Scripts and styles come only from this origin (no inline
/// code, no `eval`); images and media may also be data/blob URLs (thumbnails, local
/// previews) or https (avatars and attachments stored elsewhere); sockets and fetches go
/// to this origin and, when signaling runs elsewhere, to it. No plugins, no `<base>`, no
/// framing by anyone.
pub fn content_security_policy(signaling_url: Option<&str>) -> String {
    let mut connect = String::from("'self'");
    if let Some(origin) = signaling_url.and_then(ws_origin) {
        connect.push(' ');
        connect.push_str(&origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; \
         img-src 'self' data: blob: https:; media-src 'self' blob: https:; \
         connect-src {connect}; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'"
    )
}

type BoxedResponse = std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>;
type HeadersFn = fn(State<HeaderValue>, Request, Next) -> BoxedResponse;
/// [`security_headers`] as a layer.
pub type SecurityLayer =
    axum::middleware::FromFnLayer<HeadersFn, HeaderValue, (State<HeaderValue>, Request)>;

/// [`security_headers`] as a layer for the whole server.
pub fn security_layer(signaling_url: Option<&str>) -> anyhow::Result<SecurityLayer> {
    let csp = HeaderValue::from_str(&content_security_policy(signaling_url))?;
    let f: HeadersFn = |s, r, n| Box::pin(security_headers(s, r, n));
    Ok(axum::middleware::from_fn_with_state(csp, f))
}

/// `scheme://host[:port]` of a ws(s) URL, if it is one CSP can carry.
fn ws_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "ws" | "wss") {
        return None;
    }
    let host = rest.split(['/', '?', '#']).next()?;
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    ok.then(|| format!("{scheme}://{host}"))
}

/// Adds the security headers: the CSP (HTML only), `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: no-referrer` (signed attachment URLs never leak in a Referer) and
/// `X-Frame-Options: DENY` for browsers without `frame-ancestors`.
pub async fn security_headers(
    State(csp): State<HeaderValue>,
    req: Request,
    next: Next,
) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if html {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signaling_elsewhere_is_allowed_to_connect() {
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        assert!(
            content_security_policy(Some("wss://sig.example.com:8443/ws"))
                .contains("connect-src 'self' wss://sig.example.com:8443;")
        );
        assert_eq!(ws_origin("https://x/ws"), None);
        assert_eq!(ws_origin("ws://a b/ws"), None);
        assert_eq!(ws_origin("ws://h;script-src *"), None);
    }
}
