//! `switchyard migrate`: the Django Channels import, recorded once, gating readiness.

use std::time::Duration;

use redis::AsyncCommands;

use crate::support::binary::run_command;
use crate::support::{TestApp, TestRedis, WsClient, session_key};

/// Old-layout sessions: (uuid, count, TTL seconds or none).
fn old_sessions() -> Vec<(String, u64, Option<u64>)> {
    vec![
        (uuid::Uuid::new_v4().to_string(), 7, Some(600)),
        (uuid::Uuid::new_v4().to_string(), 0, Some(120)),
        (uuid::Uuid::new_v4().to_string(), 42, None),
    ]
}

#[tokio::test]
async fn old_sessions_are_imported_with_their_ttl_and_resume() {
    let redis = TestRedis::start().await;
    let mut conn = redis.connection().await;
    let old = old_sessions();
    for (id, count, ttl) in &old {
        let key = format!("session:{id}:count");
        match ttl {
            Some(ttl) => conn
                .set_ex::<_, _, ()>(&key, count, *ttl)
                .await
                .expect("SET EX"),
            None => conn.set::<_, _, ()>(&key, count).await.expect("SET"),
        }
    }
    let _: () = conn.set("session:not-a-uuid:count", 5).await.expect("SET");

    let app = TestApp::spawn_unmigrated(redis, &[]).await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(body["code"], "migration_pending");
    assert_eq!(body["pending"][0], "0001_import_django_sessions");

    let url = app.redis.as_ref().expect("redis").url();
    let (status, stdout) = run_command(&["migrate"], &[("REDIS_URL", url.as_str())]).await;
    assert!(status.success(), "{stdout}");
    assert!(
        stdout.contains("0001_import_django_sessions: applied"),
        "{stdout}"
    );
    assert!(stdout.contains("3 changed"), "{stdout}");

    for (id, count, ttl) in &old {
        let key = session_key(id);
        let stored: u64 = conn.hget(&key, "count").await.expect("HGET");
        assert_eq!(stored, *count);
        let left: i64 = conn.ttl(&key).await.expect("TTL");
        match ttl {
            Some(ttl) => assert!(
                left > 0 && left <= *ttl as i64 && left >= *ttl as i64 - 5,
                "TTL {left} kept from {ttl}"
            ),
            None => assert_eq!(left, -1, "no TTL stays no TTL"),
        }
    }
    assert!(
        !conn
            .exists::<_, bool>("session:{not-a-uuid}")
            .await
            .expect("EXISTS")
    );
    assert_eq!(
        app.get("/readyz").await.status(),
        200,
        "ready once migrated"
    );

    let (id, count, _) = &old[0];
    let (_client, session) = WsClient::open(app.addr, Some(id)).await;
    assert_eq!(
        (session["resumed"].as_bool(), session["count"].as_u64()),
        (Some(true), Some(*count))
    );

    let (status, again) = run_command(&["migrate"], &[("REDIS_URL", url.as_str())]).await;
    assert!(status.success());
    assert!(
        again.contains("0001_import_django_sessions: already applied"),
        "{again}"
    );
}

#[tokio::test]
async fn migrate_names_an_unreachable_redis() {
    let url = crate::support::redis::unreachable_url();
    let (status, output) = tokio::time::timeout(
        Duration::from_secs(10),
        run_command(
            &["migrate"],
            &[("REDIS_URL", url.as_str()), ("REDIS_TIMEOUT_MS", "500")],
        ),
    )
    .await
    .expect("migrate gives up within its timeout");
    assert!(!status.success(), "{output}");
    assert!(
        output.contains("cannot connect") && output.contains(&url),
        "the error names the Redis it could not reach: {output}"
    );
}

#[tokio::test]
async fn migrate_refuses_a_zero_redis_timeout_naming_the_variable() {
    let url = crate::support::redis::unreachable_url();
    let (status, output) = run_command(
        &["migrate"],
        &[("REDIS_URL", url.as_str()), ("REDIS_TIMEOUT_MS", "0")],
    )
    .await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("REDIS_TIMEOUT_MS"), "{output}");
}
