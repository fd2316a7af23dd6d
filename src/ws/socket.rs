//! A WebSocket as every endpoint uses it: reads turned into messages or the reason the
//! connection ends, writes bounded by SEND_TIMEOUT_MS, and the goodbye.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use bytes::Bytes;
use futures_util::SinkExt;

use super::close::CloseReason;

/// What the client sent.
#[derive(Debug)]
pub(super) enum Incoming {
    Text(Utf8Bytes),
    Binary(Bytes),
    /// A ping (tungstenite answers it) or a pong: only proves the client alive.
    Alive,
}

pub(super) struct Socket {
    ws: WebSocket,
    send_timeout: Duration,
}

impl Socket {
    pub(super) fn new(ws: WebSocket, send_timeout: Duration) -> Self {
        Socket { ws, send_timeout }
    }

    /// The next message, or why the connection ends. Cancel-safe.
    pub(super) async fn recv(&mut self) -> Result<Incoming, CloseReason> {
        match self.ws.recv().await {
            None | Some(Ok(Message::Close(_))) => Err(CloseReason::ClientClosed),
            Some(Ok(Message::Text(text))) => Ok(Incoming::Text(text)),
            Some(Ok(Message::Binary(data))) => Ok(Incoming::Binary(data)),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(Incoming::Alive),
            Some(Err(error)) => Err(match error.into_inner().downcast::<tungstenite::Error>() {
                Ok(error) => CloseReason::of_read_error(&error),
                Err(_) => CloseReason::SocketError,
            }),
        }
    }

    /// A write that must finish within SEND_TIMEOUT_MS, or the client is too slow.
    pub(super) async fn send(&mut self, message: Message) -> Result<(), CloseReason> {
        match tokio::time::timeout(self.send_timeout, self.ws.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(CloseReason::SocketError),
            Err(_) => Err(CloseReason::SlowClient),
        }
    }

    /// Ends the connection for `reason`, bounded by [`CloseReason::goodbye_bound`]: sends the
    /// close frame and waits for the client's answer, so the frame is not lost to a reset; or,
    /// when the client closed, delivers the answer to its close frame.
    pub(super) async fn close(mut self, reason: CloseReason) {
        let bound = reason.goodbye_bound(self.send_timeout);
        let goodbye = async {
            let Some((code, text)) = reason.frame() else {
                if reason == CloseReason::ClientClosed {
                    // tungstenite has queued its answer to the client's close frame.
                    let _ = self.ws.flush().await;
                }
                return;
            };
            let frame = Message::Close(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from_static(text),
            }));
            if self.ws.send(frame).await.is_err() {
                return;
            }
            while let Some(Ok(message)) = self.ws.recv().await {
                if matches!(message, Message::Close(_)) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(bound, goodbye).await;
    }
}
