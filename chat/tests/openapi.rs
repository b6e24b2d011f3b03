//! The OpenAPI document is served, well-formed, and names every route the chat service
//! registers (and no route it does not).
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::BTreeSet;

use common::{Db, Server};
use serde_json::Value;

/// (path, method) of every `.route("...", get(..).post(..))` in the chat sources.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let mut out = BTreeSet::new();
    for path in files {
        let text = std::fs::read_to_string(path).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + 7..];
            // The call's text, up to its closing parenthesis.
            let mut depth = 1;
            let mut end = 0;
            for (j, c) in rest.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &rest[..end];
            let Some(path) = call.split('"').nth(1) else {
                continue;
            };
            if !path.starts_with("/api/v1/") {
                continue;
            }
            let handlers = &call[call.find(',').unwrap()..];
            for m in ["get", "post", "put", "patch", "delete"] {
                let called = handlers.match_indices(&format!("{m}(")).any(|(k, _)| {
                    k == 0
                        || !handlers.as_bytes()[k - 1].is_ascii_alphanumeric()
                            && handlers.as_bytes()[k - 1] != b'_'
                });
                if called {
                    out.insert((path.to_owned(), m.to_owned()));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn the_openapi_document_covers_every_route() {
    let s = Server::start(Db::Sqlite).await;
    let r = s
        .http
        .get(s.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                documented.insert((path.clone(), m.to_owned()));
            }
        }
    }
    let registered = routes_in_source();
    assert!(
        registered.len() > 80,
        "found only {} routes",
        registered.len()
    );
    let missing: Vec<_> = registered.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.json: {missing:?}"
    );
    let extra: Vec<_> = documented
        .difference(&registered)
        .filter(|(p, _)| p != "/api/v1/openapi.json")
        .collect();
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    s.stop().await;
}
