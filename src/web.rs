//! The web app, embedded in the binary: no bundler, no build step. `/` is the guest room
//! page, `/chat` the chat app; both join rooms with the modules of `web/call/`.
//!
//! Every response of the server passes through [`security_headers`]: HTML gets a
//! Content-Security-Policy that allows no inline script and no framing, and everything
//! gets `nosniff`, a Referrer-Policy and `X-Frame-Options`.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

/// `web/`, embedded at compile time: a file added there is served without a Rust change.
static WEB: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/web");

/// `/` is the room page and `/chat` the chat app, also at the addresses it gives its
/// channels and messages (`/chat/<guild>/<channel>[/<message>]`: any path under `/chat/`
/// that is not one of its modules); every other file of `web/` is served at its path
/// (`/chat.js`, `/chat/app.js`, `/call/room.js`, ...).
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { file("index.html", &h) }),
        )
        .route(
            "/chat",
            get(|h: HeaderMap| async move { file("chat.html", &h) }),
        )
        .route(
            "/{*path}",
            get(|Path(path): Path<String>, h: HeaderMap| async move {
                let page = path.starts_with("chat/") && WEB.get_file(&path).is_none();
                file(if page { "chat.html" } else { &path }, &h)
            }),
        )
}

/// The content type of a file served from `web/`, by extension; `None` for files that
/// are not served (sources of types, configuration).
pub fn content_type(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1;
    Some(match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "json" => "application/json",
        _ => return None,
    })
}

/// One file of `web/`. Clients revalidate every time (`no-cache`) and get `304` while the
/// file is unchanged, so a new binary's pages and modules are never mixed with old ones.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let found = WEB
        .get_file(path)
        .filter(|_| !path.ends_with(".d.ts"))
        .and_then(|f| Some((f, content_type(path)?)));
    let Some((f, content_type)) = found else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = etag(f.contents());
    let cached = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        (header::CACHE_CONTROL, "no-cache".to_owned()),
        (header::ETAG, etag.clone()),
    ];
    if cached {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(header::CONTENT_TYPE, content_type)], f.contents()).into_response()
}

fn etag(bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
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
