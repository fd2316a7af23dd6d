//! One connection's life in one task that owns its socket: send the session frame, then race
//! client frames, heartbeats and the drain notice; apply → reply; close with a reason.

use std::sync::Arc;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::close::CloseReason;
use super::limits::RateLimit;
use super::protocol::{self, ErrorCode, ServerFrame};
use super::socket::{Incoming, Socket};
use crate::hub::{Registration, Subscriptions};
use crate::live::Held;
use crate::metrics::MessageResult;
use crate::state::AppState;
use crate::store::{Applied, Opened, StoreError};
use crate::tick::{Beat, Tick};

pub(super) struct Connection {
    state: AppState,
    opened: Opened,
    /// Frees this connection's place in the hub when the connection ends, however it ends.
    _registration: Registration,
    /// Keeps the session's TTL refreshed while this connection is open.
    _held: Held,
    subscriptions: Subscriptions,
    rate: Option<RateLimit>,
    /// When the client last sent anything (a frame or a pong).
    last_heard: Instant,
}

impl Connection {
    pub(super) fn new(
        state: AppState,
        opened: Opened,
        registration: Registration,
        subscriptions: Subscriptions,
    ) -> Self {
        let rate = state.config.limits.max_messages_per_sec.map(RateLimit::new);
        let held = state.live.hold(opened.id);
        Connection {
            state,
            opened,
            _registration: registration,
            _held: held,
            subscriptions,
            rate,
            last_heard: Instant::now(),
        }
    }

    pub(super) async fn run(mut self, ws: WebSocket) {
        let metrics = Arc::clone(&self.state.metrics);
        metrics.connection_opened();
        metrics.session_opened(self.opened.resumed);
        let mut socket = Socket::new(ws, self.state.config.limits.send_timeout);
        let reason = self.serve(&mut socket).await;
        // Recorded before the goodbye, which may itself take up to SEND_TIMEOUT_MS.
        metrics.connection_closed(reason.label());
        tracing::debug!(session_id = %self.opened.id, reason = reason.label(), "connection closed");
        socket.close(reason).await;
    }

    async fn serve(&mut self, socket: &mut Socket) -> CloseReason {
        let hello = ServerFrame::Session {
            session_id: self.opened.id,
            count: self.opened.count,
            last_seq: self.opened.last_seq,
            resumed: self.opened.resumed,
            color: self.state.config.color,
            heartbeat_ms: u64::try_from(self.state.config.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
        };
        if let Err(reason) = socket.send(Message::Text(hello.to_json().into())).await {
            return reason;
        }
        if *self.subscriptions.drain.borrow_and_update() {
            return CloseReason::Draining;
        }
        let mut beats_open = true;
        loop {
            // Each raced future is cancel-safe; a message's store call runs in the branch body,
            // so a message already read is answered before a drain notice is looked at.
            // The bodies are boxed: their state machines (a store call, a bounded write) live
            // only while they run instead of in every idle connection's task.
            let outcome = tokio::select! {
                incoming = socket.recv() => match incoming {
                    Err(reason) => Err(reason),
                    Ok(incoming) => Box::pin(self.on_frame(socket, incoming)).await,
                },
                beat = self.subscriptions.beats.recv(), if beats_open => match beat {
                    Ok(Tick::Beat(beat)) => Box::pin(self.on_beat(socket, &beat)).await,
                    Ok(Tick::Probe) => Box::pin(self.on_probe(socket)).await,
                    Err(RecvError::Lagged(_)) => Ok(()),
                    Err(RecvError::Closed) => { beats_open = false; Ok(()) }
                },
                _ = self.subscriptions.drain.changed() => Err(CloseReason::Draining),
            };
            if let Err(reason) = outcome {
                return reason;
            }
        }
    }

    async fn on_frame(
        &mut self,
        socket: &mut Socket,
        incoming: Incoming,
    ) -> Result<(), CloseReason> {
        self.last_heard = Instant::now();
        match incoming {
            Incoming::Text(text) => self.on_text(socket, &text).await,
            Incoming::Binary(_) => Err(CloseReason::Binary),
            Incoming::Alive => Ok(()),
        }
    }

    async fn on_text(&mut self, socket: &mut Socket, text: &str) -> Result<(), CloseReason> {
        if self.rate.as_mut().is_some_and(|rate| !rate.allow()) {
            return Err(CloseReason::RateLimited);
        }
        let started = Instant::now();
        let (reply, result) = match protocol::parse(text) {
            Err(protocol::ProtocolError::InvalidSeq) => (
                error_frame(ErrorCode::InvalidSeq, None),
                MessageResult::Failed,
            ),
            Ok(message) => {
                let outcome = self.state.store.apply(self.opened.id, message.seq).await;
                if let Err(error) = &outcome {
                    tracing::debug!(%error, session_id = %self.opened.id, "message not acknowledged");
                    self.state.metrics.store_failed();
                }
                reply(outcome, message.seq)
            }
        };
        socket.send(Message::Text(reply.to_json().into())).await?;
        self.state
            .metrics
            .message_handled(result, started.elapsed());
        Ok(())
    }

    async fn on_beat(&mut self, socket: &mut Socket, beat: &Beat) -> Result<(), CloseReason> {
        // Shares the beat's bytes (no copy per connection); the text came from a String, so
        // the UTF-8 check always passes.
        if let Ok(text) = Utf8Bytes::try_from(beat.text.clone()) {
            socket.send(Message::Text(text)).await?;
        }
        beat.delivered();
        Ok(())
    }

    /// Half an interval after each heartbeat: a client silent for two intervals is dead; one
    /// not heard from for half an interval gets a ping, whose pong proves it alive.
    async fn on_probe(&mut self, socket: &mut Socket) -> Result<(), CloseReason> {
        let interval = self.state.config.heartbeat_interval;
        let silent = self.last_heard.elapsed();
        if silent > interval * 2 {
            return Err(CloseReason::DeadPeer);
        }
        if silent >= interval / 2 {
            socket.send(Message::Ping(Default::default())).await?;
        }
        Ok(())
    }
}

fn error_frame(code: ErrorCode, seq: Option<i64>) -> ServerFrame<'static> {
    ServerFrame::Error {
        code,
        seq,
        expected: None,
    }
}

/// The answer to a message whose store call ended with `outcome`.
fn reply(
    outcome: Result<Applied, StoreError>,
    seq: Option<i64>,
) -> (ServerFrame<'static>, MessageResult) {
    let count = |count, duplicate| ServerFrame::Count {
        count,
        seq,
        duplicate,
    };
    match outcome {
        Ok(Applied::Counted { count: n }) => (count(n, false), MessageResult::Counted),
        Ok(Applied::Duplicate { count: n }) => (count(n, true), MessageResult::Duplicate),
        Ok(Applied::SeqGap { expected }) => (
            ServerFrame::Error {
                code: ErrorCode::SeqGap,
                seq,
                expected: Some(expected),
            },
            MessageResult::Failed,
        ),
        Ok(Applied::SessionExpired) => (
            error_frame(ErrorCode::SessionExpired, seq),
            MessageResult::Failed,
        ),
        Err(StoreError::OutcomeUnknown(_)) => (
            error_frame(ErrorCode::OutcomeUnknown, seq),
            MessageResult::Failed,
        ),
        Err(StoreError::Unavailable(_) | StoreError::InvalidUrl(_)) => (
            error_frame(ErrorCode::StoreUnavailable, seq),
            MessageResult::Failed,
        ),
    }
}
