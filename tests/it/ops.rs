//! Health, readiness, metrics, and configuration errors of the real binary.

use std::time::Duration;

use crate::support::binary::run_command;
use crate::support::redis::unreachable_url;
use crate::support::{TestApp, TestBinary, TestRedis, WsClient, metric, within};

#[tokio::test]
async fn healthz_and_readyz_answer_when_serving() {
    let app = TestApp::spawn(&[("--color", "green")]).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.expect("JSON"),
        serde_json::json!({"status": "ready", "color": "green", "redis": {
            "topology": "single",
            "primaries": [format!("127.0.0.1:{}", app.redis.as_ref().expect("redis").port())]
        }})
    );
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    client.send_text("one").await;
    client.next_reply().await;
    drop(client);
    let id = session["session_id"].as_str().expect("id");
    let (_client, _) = WsClient::open(app.addr, Some(id)).await;
    assert_eq!(
        metric(app.addr, "switchyard_sessions_total{kind=\"created\"}").await,
        1.0
    );
    assert_eq!(
        metric(app.addr, "switchyard_sessions_total{kind=\"resumed\"}").await,
        1.0
    );
    assert_eq!(
        metric(app.addr, "switchyard_messages_total{result=\"counted\"}").await,
        1.0
    );
    assert_eq!(
        metric(app.addr, "switchyard_message_duration_seconds_count").await,
        1.0
    );
    assert_eq!(
        metric(app.addr, "switchyard_connections_opened_total").await,
        2.0
    );
    assert_eq!(
        metric(
            app.addr,
            "switchyard_build_info{color=\"blue\",version=\"0.1.0\"}"
        )
        .await,
        1.0
    );
    assert_eq!(metric(app.addr, "switchyard_draining").await, 0.0);
    assert!(metric(app.addr, "switchyard_connections_active").await >= 1.0);
}

#[tokio::test]
async fn the_page_is_served_with_security_headers() {
    let app = TestApp::spawn(&[]).await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    let csp = page
        .headers()
        .get("content-security-policy")
        .expect("CSP header")
        .to_str()
        .expect("ascii");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let body = page.text().await.expect("body");
    assert!(
        body.contains(r#"src="page.js""#),
        "the page loads page.js: {body}"
    );
    for script in ["/page.js", "/client.js"] {
        let answer = app.get(script).await;
        assert_eq!(answer.status(), 200, "{script}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .is_ok_and(|kind| kind.contains("javascript")),
            "{script} is served as JavaScript"
        );
    }
}

#[tokio::test]
async fn a_bad_value_stops_start_up_naming_the_variable() {
    for (variable, value) in [
        ("PORT", "abc"),
        ("COLOR", "red"),
        ("HEARTBEAT_INTERVAL_SECS", "0"),
        ("MAX_MESSAGE_BYTES", "many"),
        ("ALLOWED_ORIGINS", "example.com"),
        ("REDIS_URL", "localhost:6379"),
        ("LOG_FORMAT", "xml"),
    ] {
        let (status, stderr) = run_command(&["serve"], &[(variable, value)]).await;
        assert!(!status.success(), "{variable}={value} should stop start-up");
        assert!(
            stderr.contains(variable),
            "the error for {variable}={value} names it: {stderr}"
        );
    }
}

#[tokio::test]
async fn healthcheck_command_follows_the_instance_answer() {
    let app = TestApp::spawn(&[("--color", "blue")]).await;
    let port = app.addr.port().to_string();
    let (status, output) = run_command(
        &["healthcheck", "--path", "/readyz", "--print"],
        &[("PORT", port.as_str())],
    )
    .await;
    assert!(
        status.success(),
        "healthcheck of a ready instance: {output}"
    );
    let redis_port = app.redis.as_ref().expect("redis").port();
    assert_eq!(
        output,
        format!(
            r#"{{"color":"blue","redis":{{"primaries":["127.0.0.1:{redis_port}"],"topology":"single"}},"status":"ready"}}"#
        )
    );
    let (status, output) = run_command(
        &["healthcheck", "--path", "/nowhere", "--port", port.as_str()],
        &[],
    )
    .await;
    assert_eq!(status.code(), Some(1), "a 404 is unhealthy: {output}");
    assert!(output.contains("/nowhere answered 404"), "{output}");
    app.shutdown().await;
    let (status, output) = run_command(&["healthcheck", "--port", port.as_str()], &[]).await;
    assert_eq!(status.code(), Some(1), "nothing listening: {output}");
    assert!(output.contains("GET http://127.0.0.1:"), "{output}");
}

#[tokio::test]
async fn healthcheck_command_refuses_a_relative_path() {
    let (status, output) = run_command(&["healthcheck", "--path", "readyz"], &[]).await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(
        output.contains("'readyz' is not an absolute path"),
        "{output}"
    );
}

#[tokio::test]
async fn serving_without_a_reachable_redis_warns_naming_redis_url() {
    let url = unreachable_url().replace("redis://", "redis://:hunter2@");
    let mut server = TestBinary::start(&[("REDIS_URL", url.as_str())]).await;
    let warning = within(
        Duration::from_secs(5),
        "the unreachable-Redis warning",
        async {
            while let Some(line) = server.log.recv().await {
                if line.contains("REDIS_URL") {
                    return line;
                }
            }
            panic!("switchyard stopped logging before warning");
        },
    )
    .await;
    let event: serde_json::Value = serde_json::from_str(&warning).expect("a JSON log line");
    assert_eq!(event["level"], "WARN", "{warning}");
    assert!(
        event["redis_url"]
            .as_str()
            .is_some_and(|logged| logged.contains("***@")),
        "{warning}"
    );
    assert!(
        !warning.contains("hunter2"),
        "the password was logged: {warning}"
    );
}

#[tokio::test]
async fn metrics_export_the_settings_alert_rules_compare_against() {
    let app = TestApp::spawn(&[
        ("--max-connections", "50"),
        ("--drain-timeout-secs", "7"),
        ("--desired-replicas", "3"),
    ])
    .await;
    assert_eq!(metric(app.addr, "switchyard_max_connections").await, 50.0);
    assert_eq!(
        metric(app.addr, "switchyard_drain_timeout_seconds").await,
        7.0
    );
    assert_eq!(metric(app.addr, "switchyard_desired_replicas").await, 3.0);
    let uncapped = TestApp::spawn(&[]).await;
    assert_eq!(
        metric(uncapped.addr, "switchyard_max_connections").await,
        0.0
    );
    assert_eq!(
        metric(uncapped.addr, "switchyard_desired_replicas").await,
        0.0
    );
}

#[tokio::test]
async fn metrics_say_whether_the_instance_is_ready_at_each_scrape() {
    // No /readyz is asked first: the scrape itself evaluates readiness.
    let app = TestApp::spawn(&[]).await;
    assert_eq!(metric(app.addr, "switchyard_ready").await, 1.0);
    let unreachable = unreachable_url();
    let no_store = TestApp::spawn_with(&[("--redis-url", unreachable.as_str())]).await;
    assert_eq!(metric(no_store.addr, "switchyard_ready").await, 0.0);
    assert_eq!(no_store.get("/readyz").await.status(), 503);
}

#[tokio::test]
async fn a_drain_is_exported_with_the_time_it_began() {
    let redis = TestRedis::start().await;
    let url = redis.url();
    redis.migrate().await;
    let mut server = TestBinary::start(&[
        ("REDIS_URL", url.as_str()),
        ("DRAIN_SPREAD_MS", "3000"),
        ("DRAIN_TIMEOUT_SECS", "5"),
    ])
    .await;
    assert_eq!(
        metric(server.addr, "switchyard_drain_started_timestamp_seconds").await,
        0.0
    );
    // A connection keeps the drain going for up to DRAIN_SPREAD_MS.
    let (_client, _) = WsClient::open(server.addr, None).await;
    let signalled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    server.sigterm();
    within(
        Duration::from_secs(2),
        "the drain to show in /metrics",
        async {
            while metric(server.addr, "switchyard_draining").await != 1.0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        },
    )
    .await;
    let started = metric(server.addr, "switchyard_drain_started_timestamp_seconds").await;
    assert!(
        (signalled - 1.0..signalled + 5.0).contains(&started),
        "drain began at {started}, signal sent at {signalled}"
    );
    assert_eq!(metric(server.addr, "switchyard_ready").await, 0.0);
    assert!(server.exit_status(Duration::from_secs(10)).await.success());
}
