//! Liveness, readiness (with a JSON reason) and Prometheus metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::AppState;

/// `/healthz`: 200 while the process runs.
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// `/readyz`: 200 when the store answers and the instance is not draining, else 503 and why.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let color = state.config.color;
    let reason = if state.lifecycle.is_draining() {
        Some("draining")
    } else if let Err(error) = state.store.ping().await {
        tracing::warn!(%error, "not ready: store unavailable");
        Some("store_unavailable")
    } else {
        None
    };
    match reason {
        None => Json(json!({ "status": "ready", "color": color })).into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "reason": reason, "color": color })),
        )
            .into_response(),
    }
}

/// `/metrics`: the Prometheus text format.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
