//! Connections that never finish their request: closed by HTTP_HEADER_TIMEOUT_SECS while real
//! clients are served, and unable to hold a shutdown past DRAIN_TIMEOUT_SECS.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::support::{TestBinary, TestRedis, WsClient, within};

/// Opens `n` connections that each send half a request and then nothing.
async fn half_sent_requests(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: switchyard\r\nX-Slow: ")
            .await
            .expect("write half a request");
        streams.push(tcp);
    }
    streams
}

/// Resolves when the server has closed `tcp` (end of stream or reset), with what it sent.
async fn closed_by_server(mut tcp: TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = tcp.read_to_end(&mut received).await;
    received
}

/// A server on a fresh, migrated Redis with these variables.
async fn server(env: &[(&str, &str)]) -> (TestRedis, TestBinary) {
    let redis = TestRedis::start().await;
    let url = redis.url();
    redis.migrate().await;
    let env = [&[("REDIS_URL", url.as_str())], env].concat();
    (redis, TestBinary::start(&env).await)
}

const FLOOD: usize = 2000;
const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn half_sent_requests_are_closed_by_the_header_timeout_while_clients_are_served() {
    let (_redis, server) = server(&[("HTTP_HEADER_TIMEOUT_SECS", "2")]).await;
    let started = Instant::now();
    let flood = half_sent_requests(server.addr, FLOOD).await;
    let mut closes = JoinSet::new();
    for tcp in flood {
        closes.spawn(async move {
            closed_by_server(tcp).await;
            started.elapsed()
        });
    }

    // Meanwhile a real client connects and counts.
    let (mut client, session) = WsClient::open(server.addr, None).await;
    assert_eq!(session["resumed"], false);
    assert_eq!(client.send_seq(1).await["count"], 1);
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .expect("healthz answers during the flood");
    assert_eq!(health.status(), 200);

    let margin = Duration::from_secs(3);
    let mut latest = Duration::ZERO;
    within(
        HEADER_TIMEOUT + margin,
        "the server to close every half-sent request",
        async {
            while let Some(closed) = closes.join_next().await {
                latest = latest.max(closed.expect("close task"));
            }
        },
    )
    .await;
    eprintln!("{FLOOD} half-sent requests: the last closed {latest:?} after the flood began");
    assert!(
        latest >= HEADER_TIMEOUT - Duration::from_millis(100),
        "closed by the header timeout, not before it: last after {latest:?}"
    );
    // The WebSocket outlived the header timeout: upgraded connections are not subject to it.
    assert_eq!(client.send_seq(2).await["count"], 2);
}

const STUCK: usize = 200;

#[tokio::test]
async fn sigterm_with_stuck_connections_exits_within_the_drain_timeout() {
    let drain_timeout = Duration::from_secs(2);
    let (_redis, mut server) = server(&[
        ("HTTP_HEADER_TIMEOUT_SECS", "60"),
        ("DRAIN_TIMEOUT_SECS", "2"),
        ("DRAIN_SPREAD_MS", "200"),
    ])
    .await;
    let stuck = half_sent_requests(server.addr, STUCK).await;
    let (mut client, _) = WsClient::open(server.addr, None).await;
    // Accepted in order: once this request is answered, every stuck connection is being served.
    let health = reqwest::get(format!("http://{}/healthz", server.addr))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    server.sigterm();
    let signalled = Instant::now();
    let goodbye = tokio::spawn(async move { client.expect_close().await });
    let status = server
        .exit_status(drain_timeout + Duration::from_secs(3))
        .await;
    let exited = signalled.elapsed();
    eprintln!("SIGTERM with {STUCK} stuck requests: exited after {exited:?}");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        exited <= drain_timeout + Duration::from_millis(1000),
        "exited {exited:?} after SIGTERM, DRAIN_TIMEOUT_SECS is {drain_timeout:?}"
    );
    assert_eq!(
        goodbye.await.expect("client task"),
        (1001, "draining".to_owned())
    );
    for tcp in stuck {
        within(
            Duration::from_secs(1),
            "a stuck connection to be closed",
            closed_by_server(tcp),
        )
        .await;
    }
    let mut stopped = None;
    while let Ok(line) = server.log.try_recv() {
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if event["message"] == "stopped" {
            stopped = Some((event["cut"].clone(), event["http_cut"].clone()));
        }
    }
    assert_eq!(
        stopped,
        Some((0.into(), STUCK.into())),
        "the stopped line counts the HTTP connections cut"
    );
}
