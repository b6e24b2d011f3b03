//! The one error type of the HTTP routes: a status, a code and a message, as
//! `{"code": ..., "message": ...}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use parlor_proto::TokenError;
use parlor_proto::control::SfuError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
    }
}

impl From<SfuError> for ApiError {
    fn from(e: SfuError) -> ApiError {
        let status = match e {
            SfuError::InvalidSdp(_) | SfuError::BadRequest(_) => StatusCode::BAD_REQUEST,
            SfuError::Forbidden(_) => StatusCode::FORBIDDEN,
            SfuError::RoomFull(_)
            | SfuError::VideoPublishersFull(_)
            | SfuError::ScreenSharesFull(_) => StatusCode::FORBIDDEN,
            SfuError::UnknownTrack | SfuError::UnknownParticipant(_) | SfuError::NotJoined => {
                StatusCode::NOT_FOUND
            }
            SfuError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        // The cause is in the log, inside the request's span; the client gets no detail.
        let message = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            "internal error"
        } else {
            &self.message
        };
        let body = Body {
            code: self.code,
            message,
        };
        (self.status, Json(body)).into_response()
    }
}
