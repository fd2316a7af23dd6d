//! The heartbeat reaches every connection; silent peers are closed.

use std::time::Duration;

use crate::support::client::Frame;
use crate::support::{TestApp, WsClient, metric_reaches, within};

#[tokio::test]
async fn every_connection_receives_the_same_heartbeat() {
    let app = TestApp::spawn(&[]).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(WsClient::open(app.addr, None).await.0);
    }
    // A tick may be under way while the clients connect, so a client's first beat can be the
    // one before; the tick after it reaches them all: it is within each client's first two.
    let mut seen = Vec::new();
    for client in &mut clients {
        let mut stamps = Vec::new();
        for _ in 0..2 {
            let beat = match client.next_frame().await {
                Frame::Json(frame) if frame["type"] == "heartbeat" => frame,
                other => panic!("expected a heartbeat, got {other:?}"),
            };
            let ts = beat["ts"].as_str().expect("ts").to_owned();
            assert_eq!(
                ts.len(),
                "2026-11-22T13:00:00.000Z".len(),
                "RFC 3339 with milliseconds: {ts}"
            );
            assert!(ts.ends_with('Z'), "{ts}");
            stamps.push(ts);
        }
        seen.push(stamps);
    }
    let shared: Vec<&String> = seen[0]
        .iter()
        .filter(|stamp| seen.iter().all(|stamps| stamps.contains(stamp)))
        .collect();
    assert!(
        !shared.is_empty(),
        "no heartbeat reached every connection: {seen:?}"
    );
    within(
        Duration::from_secs(5),
        "a fan-out observation",
        metric_reaches(app.addr, "switchyard_heartbeat_fanout_seconds_count", 1.0),
    )
    .await;
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    // The client does not read, so it answers no ping: silent for two intervals.
    within(
        Duration::from_secs(10),
        "the server to close the silent peer",
        metric_reaches(
            app.addr,
            "switchyard_connections_closed_total{reason=\"dead_peer\"}",
            1.0,
        ),
    )
    .await;
    assert_eq!(
        client.expect_close().await,
        (1001, "ping timeout".to_owned())
    );
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_open() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    // Reading answers pings; four intervals of heartbeats without sending a message.
    for _ in 0..4 {
        match client.next_frame().await {
            Frame::Json(frame) => assert_eq!(frame["type"], "heartbeat"),
            other => panic!("connection should stay open, got {other:?}"),
        }
    }
}
