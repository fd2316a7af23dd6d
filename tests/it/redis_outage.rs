//! Redis stopped and restarted under open connections.

use std::time::Duration;

use serde_json::json;

use crate::support::{TestApp, TestRedis, WsClient, metric, within};

async fn readiness(app: &TestApp) -> (u16, serde_json::Value) {
    let response = app.get("/readyz").await;
    (
        response.status().as_u16(),
        response.json().await.expect("JSON body"),
    )
}

#[tokio::test]
async fn an_outage_is_reported_and_the_same_connections_work_after_it() {
    let mut app = TestApp::spawn_with_redis(TestRedis::start_persistent().await, &[]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    assert_eq!(client.send_seq(1).await["count"], 1);
    assert_eq!(readiness(&app).await.0, 200);

    app.redis().stop().await;
    // The first call may meet the old connection breaking under it: its outcome is unknown.
    // Once that connection is gone, nothing reaches Redis: certainly not applied.
    let first = client.send_seq(2).await;
    assert!(
        ["outcome_unknown", "store_unavailable"].contains(&first["code"].as_str().unwrap_or("")),
        "{first}"
    );
    assert_eq!(
        client.send_seq(2).await,
        json!({"type": "error", "code": "store_unavailable", "seq": 2})
    );
    let primary = format!("127.0.0.1:{}", app.redis().port());
    assert_eq!(
        readiness(&app).await,
        (
            503,
            json!({"status": "not_ready", "code": "store_unavailable", "color": "blue",
                   "redis": {"topology": "single", "primaries": [primary]}})
        )
    );
    assert_eq!(
        WsClient::try_connect(app.addr, None, None).await.err(),
        Some(503),
        "no session can be opened"
    );
    assert!(metric(app.addr, "switchyard_redis_errors_total").await >= 2.0);

    app.redis().restart().await;
    within(Duration::from_secs(10), "readiness to return", async {
        while readiness(&app).await.0 != 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Seq 2 was not counted: the retry with the same seq counts it once.
    assert_eq!(
        client.send_seq(2).await,
        json!({"type": "count", "count": 2, "seq": 2})
    );
    let id = session["session_id"].as_str().expect("id");
    let (_again, resumed) = WsClient::open(app.addr, Some(id)).await;
    assert_eq!(resumed["count"], 2);
}

#[tokio::test]
async fn a_redis_that_never_answers_makes_the_server_not_ready_without_hanging() {
    let url = crate::support::redis::unreachable_url();
    let app = TestApp::spawn_with(&[("--redis-url", url.as_str())]).await;
    let (status, body) = within(
        Duration::from_secs(3),
        "readiness to answer",
        readiness(&app),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("store_unavailable"))
    );
    assert_eq!(app.get("/healthz").await.status(), 200);
}
