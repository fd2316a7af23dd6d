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
    /// The `code` of the JSON body, also the metric label.
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
    /// `{"code":…,"message":…}`. `error` repeats `code` for the browser clients of pages
    /// loaded before this version: during a blue-green deploy their `client.js` (which reads
    /// `error`) talks to this server, and must still drop a refused session id.
    fn into_response(self) -> Response {
        let body = Json(json!({
            "code": self.code(),
            "error": self.code(),
            "message": self.message(),
        }));
        if self.status() == StatusCode::SERVICE_UNAVAILABLE {
            (self.status(), [("retry-after", "1")], body).into_response()
        } else {
            (self.status(), body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::ws::protocol::golden;

    #[tokio::test]
    async fn every_refusal_is_answered_as_the_golden_frames_show() {
        let shown = golden::cases("refusals");
        assert_eq!(shown.len(), Rejection::ALL.len(), "one golden refusal each");
        for rejection in Rejection::ALL {
            let golden = shown
                .iter()
                .find(|case| case["code"] == rejection.code())
                .unwrap_or_else(|| panic!("frames.json shows no {rejection:?}"));
            let response = rejection.into_response();
            assert_eq!(
                response.status().as_u16(),
                golden["status"],
                "{rejection:?}"
            );
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().expect("ASCII"));
            assert_eq!(retry_after, golden["retry_after"].as_str(), "{rejection:?}");
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("a body");
            let body: Value = serde_json::from_slice(&body).expect("a JSON body");
            assert_eq!(body, golden["body"], "{rejection:?}");
        }
    }
}
