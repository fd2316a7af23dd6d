//! The router: the WebSocket endpoint, operations endpoints and the browser page, with
//! request tracing on all and a timeout on the plain-HTTP routes only.

mod ops;
mod page;
mod serve;

pub use serve::HttpServer;

use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::ws;

/// Longest a plain HTTP request may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router(state: AppState) -> Router {
    let plain = Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(page::routes())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            HTTP_TIMEOUT,
        ));
    let mut sockets = Router::new()
        .route("/ws/chat/", get(ws::upgrade))
        .route("/ws/chat", get(ws::upgrade));
    if state.config.conformance_echo {
        sockets = sockets.route("/ws/echo", get(ws::echo));
    }
    sockets
        .merge(plain)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
