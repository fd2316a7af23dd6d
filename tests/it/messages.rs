//! Counting: persisted before the reply, exactly once per seq.

use redis::AsyncCommands;

use crate::support::{TestApp, WsClient, session_key};

#[tokio::test]
async fn each_text_frame_counts_one_and_is_persisted_before_the_reply() {
    let mut app = TestApp::spawn(&[]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    let key = session_key(session["session_id"].as_str().expect("id"));
    let mut redis = app.redis().connection().await;
    for expected in 1..=5u64 {
        client.send_text("hello").await;
        let reply = client.next_reply().await;
        assert_eq!(
            reply,
            serde_json::json!({"type": "count", "count": expected})
        );
        let stored: u64 = redis.hget(&key, "count").await.expect("HGET");
        assert_eq!(
            stored, expected,
            "the count is in Redis when the reply arrives"
        );
    }
    let ttl: i64 = redis.ttl(&key).await.expect("TTL");
    assert!(ttl > 3500, "TTL refreshed to SESSION_TTL_SECS, got {ttl}");
}

#[tokio::test]
async fn a_reply_echoes_seq() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    assert_eq!(
        client.send_seq(1).await,
        serde_json::json!({"type": "count", "count": 1, "seq": 1})
    );
    assert_eq!(
        client.send_seq(2).await,
        serde_json::json!({"type": "count", "count": 2, "seq": 2})
    );
}

#[tokio::test]
async fn duplicate_seq_is_answered_without_counting() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    client.send_seq(1).await;
    client.send_seq(2).await;
    drop(client);
    // A client that retries seq 2 after a reconnect is told the count, not counted twice.
    let (mut client, _) = WsClient::open(app.addr, Some(&id)).await;
    assert_eq!(
        client.send_seq(2).await,
        serde_json::json!({"type": "count", "count": 2, "seq": 2, "duplicate": true})
    );
    assert_eq!(client.send_seq(1).await["duplicate"], true);
    assert_eq!(
        client.send_seq(3).await,
        serde_json::json!({"type": "count", "count": 3, "seq": 3})
    );
    assert_eq!(
        crate::support::metric(app.addr, "switchyard_messages_total{result=\"duplicate\"}").await,
        2.0
    );
}

#[tokio::test]
async fn a_seq_that_is_not_a_non_negative_integer_is_an_error_and_not_counted() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    for bad in [r#"{"seq":"one"}"#, r#"{"seq":null}"#, r#"{"seq":-1}"#] {
        client.send_text(bad).await;
        assert_eq!(
            client.next_reply().await,
            serde_json::json!({"type": "error", "code": "invalid_seq"}),
            "{bad}"
        );
    }
    client.send_text("plain").await;
    assert_eq!(client.next_reply().await["count"], 1);
}

#[tokio::test]
async fn a_seq_that_skips_ahead_is_refused_with_the_expected_seq() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    assert_eq!(session["last_seq"], 0);
    client.send_seq(1).await;
    assert_eq!(
        client.send_seq(3).await,
        serde_json::json!({"type": "error", "code": "seq_gap", "seq": 3, "expected": 2})
    );
    assert_eq!(
        client.send_seq(2).await,
        serde_json::json!({"type": "count", "count": 2, "seq": 2})
    );
    let id = session["session_id"].as_str().expect("id");
    let (_again, resumed) = WsClient::open(app.addr, Some(id)).await;
    assert_eq!(
        (&resumed["count"], &resumed["last_seq"]),
        (&2.into(), &2.into())
    );
}

#[tokio::test]
async fn the_memory_store_counts_when_chosen_explicitly() {
    let app = TestApp::spawn_with(&[("--store", "memory")]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    client.send_seq(1).await;
    client.send_seq(1).await;
    drop(client);
    let id = session["session_id"].as_str().expect("id");
    let (_client, resumed) = WsClient::open(app.addr, Some(id)).await;
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["count"], 1);
}
