//! The web app, embedded in the binary: no bundler, no build step. `/` is the guest room
//! page, `/chat` the chat app; both join rooms with `room.js`.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
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
