//! The conformance echo endpoint's connection (`/ws/echo`, only with CONFORMANCE_ECHO): every
//! text and binary message is sent back as it came, under the same limits and close codes as
//! a chat session; no session, no heartbeats (they would be unexpected frames to a test suite).

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use tokio::sync::watch;

use super::close::CloseReason;
use super::limits::RateLimit;
use super::socket::{Incoming, Socket};
use crate::hub::Registration;
use crate::state::AppState;

pub(super) struct Echo {
    state: AppState,
    /// Frees this connection's place in the hub when it ends.
    _registration: Registration,
    drain: watch::Receiver<bool>,
    rate: Option<RateLimit>,
}

impl Echo {
    pub(super) fn new(
        state: AppState,
        registration: Registration,
        drain: watch::Receiver<bool>,
    ) -> Self {
        let rate = state.config.limits.max_messages_per_sec.map(RateLimit::new);
        Echo {
            state,
            _registration: registration,
            drain,
            rate,
        }
    }

    pub(super) async fn run(mut self, ws: WebSocket) {
        let metrics = Arc::clone(&self.state.metrics);
        metrics.connection_opened();
        let mut socket = Socket::new(ws, self.state.config.limits.send_timeout);
        let reason = self.serve(&mut socket).await;
        metrics.connection_closed(reason.label());
        socket.close(reason).await;
    }

    async fn serve(&mut self, socket: &mut Socket) -> CloseReason {
        if *self.drain.borrow_and_update() {
            return CloseReason::Draining;
        }
        loop {
            let outcome = tokio::select! {
                incoming = socket.recv() => match incoming {
                    Ok(Incoming::Text(text)) => self.echo(socket, Message::Text(text)).await,
                    Ok(Incoming::Binary(data)) => self.echo(socket, Message::Binary(data)).await,
                    Ok(Incoming::Alive) => Ok(()),
                    Err(reason) => Err(reason),
                },
                _ = self.drain.changed() => Err(CloseReason::Draining),
            };
            if let Err(reason) = outcome {
                return reason;
            }
        }
    }

    async fn echo(&mut self, socket: &mut Socket, message: Message) -> Result<(), CloseReason> {
        if self.rate.as_mut().is_some_and(|rate| !rate.allow()) {
            return Err(CloseReason::RateLimited);
        }
        socket.send(message).await
    }
}
