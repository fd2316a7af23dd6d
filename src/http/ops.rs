//! Liveness, readiness (with a JSON code saying why not) and Prometheus metrics.

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

/// Why an instance is not ready for traffic.
enum NotReady {
    Draining,
    StoreUnavailable,
    MigrationPending(Vec<&'static str>),
}

/// What `/readyz` answers and `/metrics` exports as `switchyard_ready`: not draining, the
/// store answers within its deadline, and no migration is pending.
async fn readiness(state: &AppState) -> Result<(), NotReady> {
    let verdict = check_readiness(state).await;
    state.metrics.set_ready(verdict.is_ok());
    verdict
}

async fn check_readiness(state: &AppState) -> Result<(), NotReady> {
    if state.lifecycle.is_draining() {
        return Err(NotReady::Draining);
    }
    let checks = async {
        state.store.ping().await?;
        state.migrations.pending(&state.store).await
    };
    match state.store.read_within_deadline(checks).await {
        Ok(pending) if pending.is_empty() => Ok(()),
        Ok(pending) => Err(NotReady::MigrationPending(pending)),
        Err(error) => {
            tracing::warn!(%error, "not ready: store unavailable");
            Err(NotReady::StoreUnavailable)
        }
    }
}

/// `/readyz`: 200 when the store answers and the instance is not draining, else 503 and why.
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let color = state.config.color;
    let redis = || {
        state
            .store
            .redis_primaries()
            .map(|(topology, primaries)| json!({ "topology": topology, "primaries": primaries }))
    };
    let not_ready = |code: &str, extra: serde_json::Value| {
        let mut body =
            json!({ "status": "not_ready", "code": code, "color": color, "redis": redis() });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    };
    match readiness(&state).await {
        Ok(()) => {
            Json(json!({ "status": "ready", "color": color, "redis": redis() })).into_response()
        }
        Err(NotReady::Draining) => not_ready("draining", json!({})),
        Err(NotReady::StoreUnavailable) => not_ready("store_unavailable", json!({})),
        Err(NotReady::MigrationPending(pending)) => not_ready(
            "migration_pending",
            json!({ "pending": pending, "fix": "run `switchyard migrate`" }),
        ),
    }
}

/// `/metrics`: the Prometheus text format, with readiness evaluated for this scrape.
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    // The verdict is in the exposition as switchyard_ready; its reason is /readyz's to give.
    let _ = readiness(&state).await;
    if let Some((topology, primaries)) = state.store.redis_primaries() {
        state.metrics.set_redis_primaries(topology, &primaries);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
