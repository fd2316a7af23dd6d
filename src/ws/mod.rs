//! The WebSocket endpoint: refuse in HTTP what can be refused (bad id, origin, draining,
//! capacity, store down), open the session, size the socket, and hand it to a tracked session.

pub mod close;
pub mod limits;
pub mod protocol;
pub mod reject;
mod session;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use self::reject::Rejection;
use self::session::Session;
use crate::state::AppState;

/// Read buffer per socket. Small on purpose: an idle connection should cost a few KiB;
/// larger messages grow the buffer while they are read.
const READ_BUFFER_BYTES: usize = 256;
/// Frames are batched up to this size before a write; every send flushes anyway.
const WRITE_BUFFER_BYTES: usize = 256;
/// Outbound bytes one socket may hold unsent; a client that lets it fill is too slow.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    session_id: Option<String>,
}

fn requested_session(
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Option<Uuid>, Rejection> {
    let Ok(Query(query)) = query else {
        return Err(Rejection::InvalidSessionId);
    };
    match query.session_id.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(id) => Uuid::parse_str(id)
            .map(Some)
            .map_err(|_| Rejection::InvalidSessionId),
    }
}

/// `GET /ws/chat/`: checks the request, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    match accept(&state, query, &headers, ws).await {
        Ok(response) => response,
        Err(rejection) => {
            state.metrics.upgrade_rejected(rejection);
            rejection.into_response()
        }
    }
}

async fn accept(
    state: &AppState,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, Rejection> {
    let requested = requested_session(query)?;
    if !state
        .config
        .allowed_origins
        .allows(headers.get(header::ORIGIN))
    {
        return Err(Rejection::OriginNotAllowed);
    }
    if state.lifecycle.is_draining() {
        return Err(Rejection::Draining);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(not_websocket) => return Ok(not_websocket.into_response()),
    };
    let (registration, subscriptions) = state.hub.try_register().ok_or(Rejection::AtCapacity)?;
    let opened = state.store.open(requested).await.map_err(|error| {
        tracing::warn!(%error, "cannot open a session");
        state.metrics.store_failed();
        Rejection::StoreUnavailable
    })?;
    // Counted from now, so a drain waits for this session even before the upgrade completes.
    let tracked = state.lifecycle.sessions().token();
    let max_message = state.config.limits.max_message_bytes.get();
    let session = Session::new(state.clone(), opened, registration, subscriptions);
    Ok(ws
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES.max(max_message))
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            session.run(socket).await;
            drop(tracked);
        }))
}
