//! Refusals before an upgrade, answered in HTTP while we still can: status, JSON body, metric label.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

enum_with_all! {
    /// Why an upgrade was refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Rejection {
        InvalidSessionId,
        OriginNotAllowed,
        Draining,
        AtCapacity,
        StoreUnavailable,
    }
}

impl Rejection {
    /// The `error` code of the JSON body, also the metric label.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::InvalidSessionId => "invalid_session_id",
            Rejection::OriginNotAllowed => "origin_not_allowed",
            Rejection::Draining => "draining",
            Rejection::AtCapacity => "at_capacity",
            Rejection::StoreUnavailable => "store_unavailable",
        }
    }

    fn status(self) -> StatusCode {
        match self {
            Rejection::InvalidSessionId => StatusCode::BAD_REQUEST,
            Rejection::OriginNotAllowed => StatusCode::FORBIDDEN,
            Rejection::Draining | Rejection::AtCapacity | Rejection::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn message(self) -> &'static str {
        match self {
            Rejection::InvalidSessionId => {
                "session_id must be a UUID; omit it to start a new session"
            }
            Rejection::OriginNotAllowed => "this Origin is not in ALLOWED_ORIGINS",
            Rejection::Draining => "this instance is draining for a deploy; retry",
            Rejection::AtCapacity => "this instance holds MAX_CONNECTIONS connections; retry later",
            Rejection::StoreUnavailable => "the session store is unavailable; retry",
        }
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code(), "message": self.message() }));
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            (self.status(), [("retry-after", "1")], body).into_response()
        } else {
            (self.status(), body).into_response()
        }
    }
}
