//! The harness: everything a test starts dies with it by ownership; every wait is bounded.

pub(crate) mod app;
pub(crate) mod binary;
pub(crate) mod client;
pub(crate) mod raw;
pub(crate) mod redis;
pub(crate) mod sender;
pub(crate) mod topology;
pub(crate) mod wait;

pub(crate) use app::TestApp;
pub(crate) use binary::TestBinary;
pub(crate) use client::WsClient;
pub(crate) use raw::RawSocket;
pub(crate) use redis::TestRedis;
pub(crate) use sender::Sender;
pub(crate) use wait::within;

use std::net::SocketAddr;

/// The tests that load both cores (hundreds of clients, replicated Redis deployments) run one
/// at a time, so the timings they assert measure the server, not their siblings.
pub(crate) static ONE_HEAVY_TEST_AT_A_TIME: tokio::sync::Mutex<()> =
    tokio::sync::Mutex::const_new(());

/// The Redis key of the session a session frame names (`switchyard::store::session_key`).
pub(crate) fn session_key(session_id: &str) -> String {
    switchyard::store::session_key(uuid::Uuid::parse_str(session_id).expect("a UUID session id"))
}

/// The value of one sample line of `/metrics`, e.g. `switchyard_sessions_total{kind="created"}`.
pub(crate) async fn metric(addr: SocketAddr, sample: &str) -> f64 {
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .map(|value| value.trim().parse().expect("a number"))
        .unwrap_or_else(|| panic!("no sample {sample} in /metrics:\n{text}"))
}

/// Polls `/metrics` until `sample` reaches `at_least` (bounded by `within`'s caller).
pub(crate) async fn metric_reaches(addr: SocketAddr, sample: &str, at_least: f64) {
    loop {
        if metric(addr, sample).await >= at_least {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
