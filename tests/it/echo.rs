//! The conformance echo endpoint: absent unless CONFORMANCE_ECHO is set; when set, it echoes
//! text and binary messages and closes on violations like /ws/chat/.

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::FRAME_TIMEOUT;
use crate::support::raw::frame;
use crate::support::{RawSocket, TestApp, TestBinary, within};

#[tokio::test]
async fn there_is_no_echo_endpoint_by_default() {
    let app = TestApp::spawn_with(&[("--store", "memory")]).await;
    assert_eq!(app.get("/ws/echo").await.status(), 404);
}

#[tokio::test]
async fn with_conformance_echo_messages_come_back_as_sent() {
    let server = TestBinary::start(&[
        ("STORE", "memory"),
        ("CONFORMANCE_ECHO", "1"),
        ("MAX_MESSAGE_BYTES", "100000"),
    ])
    .await;
    let (mut stream, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws/echo", server.addr))
        .await
        .expect("upgrade");
    let sent = [
        Message::text("héllo"),
        Message::binary(vec![0u8, 1, 2, 255]),
        Message::text(""),
        // Exactly MAX_MESSAGE_BYTES, over the 64 KiB write buffer: its frame header fits too.
        Message::binary(vec![7u8; 100_000]),
    ];
    for message in sent {
        stream.send(message.clone()).await.expect("send");
        let echoed = within(FRAME_TIMEOUT, "the echo", stream.next())
            .await
            .expect("a frame")
            .expect("no error");
        assert_eq!(echoed, message);
    }

    let mut raw = RawSocket::connect(server.addr, "/ws/echo").await;
    raw.send(&frame(0x81, &[0xc3, 0x28], true)).await;
    assert_eq!(
        raw.close_code().await,
        Some(1007),
        "invalid UTF-8 closes as on /ws/chat/"
    );
}
