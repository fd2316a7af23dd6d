//! WsClient: a real WebSocket client with a few protocol-level helpers. Every read is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::within;

/// How long one frame may take to arrive.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) struct WsClient {
    pub(crate) stream: Stream,
}

/// What the server sent next.
#[derive(Debug)]
pub(crate) enum Frame {
    Json(Value),
    Close(Option<(u16, String)>),
    Ended,
}

pub(crate) fn url(addr: SocketAddr, session_id: Option<&str>) -> String {
    match session_id {
        Some(id) => format!("ws://{addr}/ws/chat/?session_id={id}"),
        None => format!("ws://{addr}/ws/chat/"),
    }
}

impl WsClient {
    /// Connects, or returns the HTTP status the server refused the upgrade with.
    pub(crate) async fn try_connect(
        addr: SocketAddr,
        session_id: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Self, u16> {
        let mut request = url(addr, session_id)
            .into_client_request()
            .expect("valid url");
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", origin.parse().expect("header"));
        }
        match within(
            FRAME_TIMEOUT,
            "the WebSocket handshake",
            tokio_tungstenite::connect_async(request),
        )
        .await
        {
            Ok((stream, _)) => Ok(WsClient { stream }),
            Err(Error::Http(response)) => Err(response.status().as_u16()),
            Err(error) => panic!("connect failed: {error}"),
        }
    }

    pub(crate) async fn connect(addr: SocketAddr, session_id: Option<&str>) -> Self {
        Self::try_connect(addr, session_id, None)
            .await
            .expect("upgrade accepted")
    }

    /// Connects and reads the `session` frame.
    pub(crate) async fn open(addr: SocketAddr, session_id: Option<&str>) -> (Self, Value) {
        let mut client = Self::connect(addr, session_id).await;
        let session = client.next_reply().await;
        assert_eq!(
            session["type"], "session",
            "first frame is the session: {session}"
        );
        (client, session)
    }

    pub(crate) async fn next_frame(&mut self) -> Frame {
        loop {
            let next = within(FRAME_TIMEOUT, "a frame from the server", self.stream.next()).await;
            return match next {
                None => Frame::Ended,
                Some(Ok(Message::Text(text))) => {
                    Frame::Json(serde_json::from_str(&text).expect("server frames are JSON"))
                }
                Some(Ok(Message::Close(frame))) => Frame::Close(
                    frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string())),
                ),
                Some(Ok(_)) => continue,
                Some(Err(_)) => Frame::Ended,
            };
        }
    }

    /// The next JSON frame that is not a heartbeat.
    pub(crate) async fn next_reply(&mut self) -> Value {
        loop {
            match self.next_frame().await {
                Frame::Json(frame) if frame["type"] == "heartbeat" => continue,
                Frame::Json(frame) => return frame,
                other => panic!("expected a JSON frame, got {other:?}"),
            }
        }
    }

    /// The next JSON frame, heartbeats included.
    pub(crate) async fn next_reply_or_heartbeat(&mut self) -> Value {
        match self.next_frame().await {
            Frame::Json(frame) => frame,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    pub(crate) async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    /// Sends `{"seq":seq}` and returns the reply.
    pub(crate) async fn send_seq(&mut self, seq: i64) -> Value {
        self.send_text(&json!({ "seq": seq }).to_string()).await;
        self.next_reply().await
    }

    /// Reads until the close frame, skipping other frames, and returns its code and reason.
    pub(crate) async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.next_frame().await {
                Frame::Json(_) => continue,
                Frame::Close(Some(close)) => return close,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }
}
