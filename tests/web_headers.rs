//! The pages `parlor serve` hands to browsers carry the security headers: a
//! Content-Security-Policy without inline script and with `frame-ancestors 'none'`,
//! `X-Content-Type-Options: nosniff`, a Referrer-Policy and frame protection. The browser
//! tests load the pages under this policy and fail on any violation.
#![allow(clippy::unwrap_used)]

#[path = "common/serve.rs"]
mod serve;

use serve::serve;

/// The CSP's directives, by name.
fn directives(csp: &str) -> std::collections::HashMap<String, Vec<String>> {
    csp.split(';')
        .filter_map(|d| {
            let mut words = d.split_whitespace().map(str::to_owned);
            Some((words.next()?, words.collect()))
        })
        .collect()
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let s = serve();
    let http = reqwest::Client::new();
    for path in ["/", "/chat"] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with("text/html"),
            "{path}"
        );
        let csp = directives(h["content-security-policy"].to_str().unwrap());
        assert_eq!(csp["frame-ancestors"], ["'none'"], "{path}");
        assert_eq!(csp["object-src"], ["'none'"], "{path}");
        assert_eq!(csp["base-uri"], ["'none'"], "{path}");
        for (name, values) in &csp {
            assert!(
                !values
                    .iter()
                    .any(|v| v == "'unsafe-inline'" || v == "'unsafe-eval'"),
                "{path}: {name} allows inline code: {values:?}"
            );
        }
        assert_eq!(csp["script-src"], ["'self'"], "{path}");
        assert_eq!(csp["default-src"], ["'self'"], "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
    // Scripts and styles are never sniffed into something else.
    for path in [
        "/app.js",
        "/chat.js",
        "/call/room.js",
        "/shared/http.js",
        "/style.css",
        "/chat.css",
    ] {
        let r = http.get(format!("{}{path}", s.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    // Files are served from the embedded web/ with their type; unchanged ones revalidate.
    let r = http
        .get(format!("{}/chat.js", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["cache-control"], "no-cache");
    let etag = r.headers()["etag"].clone();
    let r = http
        .get(format!("{}/chat.js", s.base))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
    for missing in [
        "/nope.js",
        "/..%2FCargo.toml",
        "/web/chat.js",
        "/tsconfig.txt",
    ] {
        let r = http
            .get(format!("{}{missing}", s.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{missing}");
    }
    // API errors and JSON are covered too.
    let r = http
        .get(format!("{}/api/v1/users/@me", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Every request has an id, echoed back (the one the client sent, if any).
    assert!(r.headers()["x-request-id"].len() > 17);
    let r = http
        .get(format!("{}/healthz", s.base))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-me-42");
}
