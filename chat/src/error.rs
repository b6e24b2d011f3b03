//! The chat API's one error type: `{"code": ..., "message": ...}` with a proper status.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

#[derive(Debug)]
pub enum ChatError {
    Api {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    RateLimited {
        retry_after: f64,
    },
    Internal(String),
}

impl ChatError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ChatError {
        ChatError::Api {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ChatError {
        ChatError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::Api { code, .. } => code,
            ChatError::RateLimited { .. } => "rate_limited",
            ChatError::Internal(_) => "internal",
        }
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ChatError {
        ChatError::new(StatusCode::UNAUTHORIZED, code, message)
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> ChatError {
        match e {
            StoreError::Conflict => {
                ChatError::new(StatusCode::CONFLICT, "conflict", "already exists")
            }
            e if e.is_unavailable() => ChatError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is not answering; try again shortly",
            ),
            StoreError::Db(e) => ChatError::Internal(e.to_string()),
            StoreError::Files(e) => ChatError::Internal(e),
        }
    }
}

impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        match self {
            ChatError::Api {
                status,
                code,
                message,
            } => (status, Json(json!({"code": code, "message": message}))).into_response(),
            ChatError::RateLimited { retry_after } => {
                let mut r = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({
                        "code": "rate_limited",
                        "message": "too many requests",
                        "retry_after": retry_after,
                    })),
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&(retry_after.ceil() as u64).to_string()) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                r
            }
            ChatError::Internal(detail) => {
                // The client gets a generic message; the detail is logged in the request span.
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Json(json!({"code": "internal", "message": "internal error"})),
                )
                    .into_response()
            }
        }
    }
}
