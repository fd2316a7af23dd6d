//! Every close code of the protocol, provoked for real.

use std::time::Duration;

use tokio::time::Instant;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::client::{Frame, url};
use crate::support::{TestApp, WsClient, metric_reaches, within};

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    client
        .stream
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(client.expect_close().await.0, 1003);
}

#[tokio::test]
async fn a_message_over_max_message_bytes_closes_with_1009() {
    let app = TestApp::spawn(&[("--max-message-bytes", "1024")]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    client.send_text(&"x".repeat(1000)).await;
    assert_eq!(
        client.next_reply().await["count"],
        1,
        "a message under the limit counts"
    );
    client.send_text(&"x".repeat(2000)).await;
    assert_eq!(client.expect_close().await.0, 1009);
}

/// A burst far over MAX_MESSAGES_PER_SEC closes with 1008. The rate is a token bucket of one
/// second (full when the connection opens), so however slow this machine, the first 5
/// messages are answered and no more than 5 + 5 per second the connection lived are counted.
#[tokio::test]
async fn a_client_over_its_message_rate_closes_with_1008() {
    const RATE: f64 = 5.0;
    const BURST: usize = 100;
    let app = TestApp::spawn(&[("--max-messages-per-sec", "5")]).await;
    let opened = Instant::now();
    let (mut client, _) = WsClient::open(app.addr, None).await;
    for _ in 0..BURST {
        client.send_text("burst").await;
    }
    let mut counted = 0;
    let close = loop {
        match client.next_frame().await {
            Frame::Json(frame) if frame["type"] == "count" => counted += 1,
            Frame::Json(_) => {}
            Frame::Close(close) => break close,
            Frame::Ended => panic!("ended without a close frame"),
        }
    };
    let allowance = RATE + RATE * opened.elapsed().as_secs_f64();
    assert_eq!(close.map(|(code, _)| code), Some(1008));
    assert!(counted >= 5, "the bucket's first 5 are answered: {counted}");
    assert!(
        counted as f64 <= allowance && counted < BURST,
        "{counted} of {BURST} counted, over the rate's allowance of {allowance:.1}"
    );
    within(
        Duration::from_secs(5),
        "the rate_limited close to be counted",
        metric_reaches(
            app.addr,
            "switchyard_connections_closed_total{reason=\"rate_limited\"}",
            1.0,
        ),
    )
    .await;
}

#[tokio::test]
async fn a_draining_server_closes_with_1001_draining() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    let closed = tokio::spawn(async move { client.expect_close().await });
    let report = app.shutdown().await;
    assert_eq!(closed.await.expect("client"), (1001, "draining".to_owned()));
    assert_eq!((report.connections, report.cut), (1, 0));
}

/// A client that stops reading while it floods the server fills the socket buffers; the
/// server's next write misses SEND_TIMEOUT_MS and the client is closed as too slow. Its window
/// is full, so the goodbye is bounded short: the server lets go of the socket within a few
/// hundred milliseconds (not SEND_TIMEOUT_MS more), which the flooding client sees as its
/// writes failing. A close frame, if one got through, says 1013.
#[tokio::test]
async fn a_client_too_slow_to_read_is_closed_as_slow_and_released_promptly() {
    // The memory store answers fastest, so the buffers fill in a second; the rule is the socket's.
    let app = TestApp::spawn_with(&[("--store", "memory"), ("--send-timeout-ms", "3000")]).await;
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let tcp = socket.connect(app.addr).await.expect("connect");
    let (stream, _) = tokio_tungstenite::client_async(url(app.addr, None), tcp)
        .await
        .expect("handshake");
    let (mut sink, mut stream) = stream.split();
    let flood = tokio::spawn(async move {
        let frame = Message::text("x".repeat(200));
        // Ends when the server lets go of the socket (reset); bounded by the waits below.
        while sink.send(frame.clone()).await.is_ok() {}
    });
    within(
        Duration::from_secs(60),
        "the server to give up on the slow client",
        metric_reaches(
            app.addr,
            "switchyard_connections_closed_total{reason=\"slow_client\"}",
            1.0,
        ),
    )
    .await;
    // Measured here: about 250 ms. Before the goodbye was bounded: SEND_TIMEOUT_MS + 1 s = 4 s.
    let observed = std::time::Instant::now();
    within(
        Duration::from_millis(1500),
        "the server to release the slow client's socket",
        flood,
    )
    .await
    .expect("flood task");
    eprintln!(
        "slow client: socket released {:?} after the 1013 was counted",
        observed.elapsed()
    );
    let close = within(Duration::from_secs(10), "the end of the backlog", async {
        while let Some(Ok(message)) = stream.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await;
    assert!(
        matches!(close, None | Some(1013)),
        "a close frame, if any, is 1013: {close:?}"
    );
}
