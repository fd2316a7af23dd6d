//! SIGTERM drain of the real binary under a few hundred clients.

use std::time::{Duration, Instant};

use crate::support::{TestBinary, TestRedis, WsClient, within};

const CLIENTS: usize = 300;

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_spread_out_and_exits_0() {
    let redis = TestRedis::start().await;
    let url = redis.url();
    redis.migrate().await;
    let mut server = TestBinary::start(&[
        ("REDIS_URL", url.as_str()),
        ("DRAIN_SPREAD_MS", "1000"),
        ("DRAIN_TIMEOUT_SECS", "10"),
    ])
    .await;
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let (mut client, _) = WsClient::open(server.addr, None).await;
        client.send_seq(1).await;
        clients.push(client);
    }

    server.sigterm();
    let started = Instant::now();
    let waits: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move { (client.expect_close().await, started.elapsed()) })
        })
        .collect();

    // While the drain runs: not ready, and no new upgrades. The signal is handled
    // asynchronously, so wait (bounded) for readiness to say so.
    within(
        Duration::from_secs(2),
        "readiness to report the drain",
        async {
            loop {
                let ready = reqwest::get(format!("http://{}/readyz", server.addr))
                    .await
                    .expect("readyz answers while draining");
                let status = ready.status();
                let body: serde_json::Value = ready.json().await.expect("JSON");
                if body["code"] == "draining" {
                    assert_eq!(status, 503);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        },
    )
    .await;
    assert_eq!(
        WsClient::try_connect(server.addr, None, None).await.err(),
        Some(503)
    );

    let mut arrivals = Vec::with_capacity(CLIENTS);
    for wait in waits {
        let ((code, reason), at) = wait.await.expect("client task");
        assert_eq!((code, reason.as_str()), (1001, "draining"));
        arrivals.push(at);
    }
    let status = server.exit_status(Duration::from_secs(10)).await;
    assert!(status.success(), "exit status {status:?}");
    let mut stopped = None;
    while let Ok(line) = server.log.try_recv() {
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if event["message"] == "stopped" {
            stopped = Some((event["connections"].clone(), event["cut"].clone()));
        }
    }
    assert_eq!(
        stopped,
        Some((CLIENTS.into(), 0.into())),
        "the last log line reports a clean drain"
    );

    arrivals.sort();
    let first = arrivals[0];
    let last = arrivals[CLIENTS - 1];
    let median = arrivals[CLIENTS / 2];
    assert!(
        last - first >= Duration::from_millis(600),
        "closes spread over DRAIN_SPREAD_MS: {first:?}..{last:?}"
    );
    assert!(
        last <= Duration::from_millis(3000),
        "all closed soon after the spread: {last:?}"
    );
    assert!(
        median > first + Duration::from_millis(200),
        "not one reconnect wave: median {median:?}"
    );
}
