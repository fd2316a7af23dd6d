//! Opening, resuming and expiring sessions; malformed ids.

use std::time::Duration;

use redis::AsyncCommands;

use crate::support::{TestApp, WsClient, session_key, within};

#[tokio::test]
async fn a_new_session_gets_a_server_generated_id_and_count_zero() {
    let app = TestApp::spawn(&[("--color", "green")]).await;
    let (_client, session) = WsClient::open(app.addr, None).await;
    assert_eq!(session["resumed"], false);
    assert_eq!(session["count"], 0);
    assert_eq!(session["color"], "green");
    assert_eq!(session["heartbeat_ms"], 1000);
    let id = session["session_id"].as_str().expect("session_id");
    assert_eq!(
        uuid::Uuid::parse_str(id).expect("a UUID").get_version_num(),
        4
    );
}

#[tokio::test]
async fn resuming_with_the_session_id_keeps_the_count() {
    let app = TestApp::spawn(&[]).await;
    let (mut first, session) = WsClient::open(app.addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    for _ in 0..3 {
        first.send_text("hello").await;
        first.next_reply().await;
    }
    drop(first);
    let (mut second, resumed) = WsClient::open(app.addr, Some(&id)).await;
    assert_eq!(resumed["session_id"], id.as_str());
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["count"], 3);
    second.send_text("again").await;
    assert_eq!(second.next_reply().await["count"], 4);
}

#[tokio::test]
async fn an_unknown_session_id_opens_a_new_session_with_a_new_id() {
    let app = TestApp::spawn(&[]).await;
    let unknown = uuid::Uuid::new_v4().to_string();
    let (_client, session) = WsClient::open(app.addr, Some(&unknown)).await;
    assert_eq!(session["resumed"], false);
    assert_eq!(session["count"], 0);
    assert_ne!(session["session_id"], unknown.as_str());
}

#[tokio::test]
async fn an_expired_session_is_not_resumed() {
    let mut app = TestApp::spawn(&[("--session-ttl-secs", "1")]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    client.send_text("x").await;
    client.next_reply().await;
    drop(client);
    let mut redis = app.redis().connection().await;
    let key = session_key(&id);
    within(Duration::from_secs(5), "the session key to expire", async {
        while redis.exists::<_, bool>(&key).await.expect("EXISTS") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_client, session) = WsClient::open(app.addr, Some(&id)).await;
    assert_eq!(session["resumed"], false);
    assert_eq!(session["count"], 0);
    assert_ne!(session["session_id"], id.as_str());
}

#[tokio::test]
async fn a_malformed_session_id_is_refused_with_400_and_a_json_body() {
    let app = TestApp::spawn(&[]).await;
    assert_eq!(
        WsClient::try_connect(app.addr, Some("not-a-uuid"), None)
            .await
            .err(),
        Some(400)
    );
    let response = app.get("/ws/chat/?session_id=not-a-uuid").await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(body["code"], "invalid_session_id");
    assert_eq!(
        crate::support::metric(
            app.addr,
            "switchyard_upgrades_rejected_total{reason=\"invalid_session_id\"}"
        )
        .await,
        2.0
    );
}

#[tokio::test]
async fn an_origin_outside_allowed_origins_is_refused_with_403() {
    let app = TestApp::spawn(&[("--allowed-origins", "https://good.example")]).await;
    assert_eq!(
        WsClient::try_connect(app.addr, None, Some("https://evil.example"))
            .await
            .err(),
        Some(403)
    );
    assert!(
        WsClient::try_connect(app.addr, None, Some("https://good.example"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn upgrades_beyond_max_connections_get_503() {
    let app = TestApp::spawn(&[("--max-connections", "1")]).await;
    let (first, _) = WsClient::open(app.addr, None).await;
    assert_eq!(
        WsClient::try_connect(app.addr, None, None).await.err(),
        Some(503)
    );
    drop(first);
    within(Duration::from_secs(5), "the place to be freed", async {
        loop {
            if let Ok(mut client) = WsClient::try_connect(app.addr, None, None).await {
                return client.next_reply().await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}
