//! The WebSocket endpoints: refuse in HTTP what can be refused (bad id, origin, draining,
//! capacity, store down), open the session, size the socket, and hand it to a tracked
//! connection; `/ws/echo` (conformance) goes through the same checks, sizes and tracking.

/// Defines a fieldless enum and its `ALL`, every variant in declaration order, from one list,
/// so a variant cannot be added without its entry (each `ALL` pre-registers metric labels).
macro_rules! enum_with_all {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $($(#[$variant_meta:meta])* $variant:ident,)*
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$variant_meta])* $variant,)*
        }

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: [$name; [$($name::$variant),*].len()] = [$($name::$variant),*];
        }
    };
}

pub mod close;
mod connection;
mod echo;
pub mod limits;
pub mod protocol;
pub mod reject;
mod socket;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use self::connection::Connection;
use self::echo::Echo;
use self::reject::Rejection;
use crate::hub::{Registration, Subscriptions};
use crate::state::AppState;

/// Read buffer per socket. Small on purpose: an idle connection should cost a few KiB;
/// larger messages grow the buffer while they are read.
const READ_BUFFER_BYTES: usize = 256;
/// Frames are batched up to this size before a write; every send flushes anyway.
const WRITE_BUFFER_BYTES: usize = 256;
/// Outbound bytes one socket may hold unsent; a client that lets it fill is too slow.
const MAX_WRITE_BUFFER_BYTES: usize = 64 * 1024;
/// The longest frame header (2 bytes, 8 of length; server frames carry no mask): a message of
/// MAX_MESSAGE_BYTES echoed back needs this much more room in the write buffer.
const MAX_FRAME_HEADER_BYTES: usize = 10;

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

type UpgradeRequest =
    Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

/// `GET /ws/chat/`: checks the request, then upgrades.
pub async fn upgrade(
    State(state): State<AppState>,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ws: UpgradeRequest,
) -> Response {
    refused_or(&state, accept(&state, query, &headers, ws).await)
}

/// `GET /ws/echo` (only with CONFORMANCE_ECHO): the same checks, then an echo connection.
pub async fn echo(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: UpgradeRequest,
) -> Response {
    refused_or(&state, accept_echo(&state, &headers, ws))
}

fn refused_or(state: &AppState, accepted: Result<Response, Rejection>) -> Response {
    accepted.unwrap_or_else(|rejection| {
        state.metrics.upgrade_rejected(rejection.code());
        rejection.into_response()
    })
}

async fn accept(
    state: &AppState,
    query: Result<Query<WsQuery>, axum::extract::rejection::QueryRejection>,
    headers: &HeaderMap,
    ws: UpgradeRequest,
) -> Result<Response, Rejection> {
    let requested = requested_session(query)?;
    let (ws, registration, subscriptions) = match admit(state, headers, ws)? {
        Admission::Admitted(ws, registration, subscriptions) => (ws, registration, subscriptions),
        Admission::NotWebSocket(response) => return Ok(response),
    };
    let opened = state.store.open(requested).await.map_err(|error| {
        tracing::warn!(%error, "cannot open a session");
        state.metrics.store_failed();
        Rejection::StoreUnavailable
    })?;
    let connection = Connection::new(state.clone(), opened, registration, subscriptions);
    Ok(upgrade_tracked(state, ws, |socket| connection.run(socket)))
}

fn accept_echo(
    state: &AppState,
    headers: &HeaderMap,
    ws: UpgradeRequest,
) -> Result<Response, Rejection> {
    let (ws, registration, subscriptions) = match admit(state, headers, ws)? {
        Admission::Admitted(ws, registration, subscriptions) => (ws, registration, subscriptions),
        Admission::NotWebSocket(response) => return Ok(response),
    };
    let echo = Echo::new(state.clone(), registration, subscriptions.drain);
    Ok(upgrade_tracked(state, ws, |socket| echo.run(socket)))
}

/// What the checks every endpoint shares decided.
enum Admission {
    /// A WebSocket upgrade with its place in the hub.
    Admitted(WebSocketUpgrade, Registration, Subscriptions),
    /// Not a WebSocket request: axum's own answer.
    NotWebSocket(Response),
}

/// Origin, drain, upgrade headers and capacity, in that order.
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    ws: UpgradeRequest,
) -> Result<Admission, Rejection> {
    if !state
        .config
        .allowed_origins
        .allows(headers.get(header::ORIGIN).map(|origin| origin.as_bytes()))
    {
        return Err(Rejection::OriginNotAllowed);
    }
    if state.lifecycle.is_draining() {
        return Err(Rejection::Draining);
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(not_websocket) => return Ok(Admission::NotWebSocket(not_websocket.into_response())),
    };
    let (registration, subscriptions) = state.hub.try_register().ok_or(Rejection::AtCapacity)?;
    Ok(Admission::Admitted(ws, registration, subscriptions))
}

/// Sizes the socket by MAX_MESSAGE_BYTES, upgrades, and runs `connection` on it, tracked so
/// a drain waits for it (counted from now, even before the upgrade completes).
fn upgrade_tracked<F, Fut>(state: &AppState, ws: WebSocketUpgrade, connection: F) -> Response
where
    F: FnOnce(axum::extract::ws::WebSocket) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tracked = state.lifecycle.connections().token();
    let max_message = state.config.limits.max_message_bytes.get();
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES.max(max_message + MAX_FRAME_HEADER_BYTES))
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| async move {
            connection(socket).await;
            drop(tracked);
        })
}

#[cfg(test)]
mod tests {
    enum_with_all! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Sample {
            First,
            /// Documented variants are listed too.
            Second,
            Third,
        }
    }

    #[test]
    fn all_lists_every_variant_once_in_declaration_order() {
        assert_eq!(Sample::ALL, [Sample::First, Sample::Second, Sample::Third]);
    }
}
