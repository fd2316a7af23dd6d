//! Health, readiness, metrics, and configuration errors of the real binary.

use std::time::Duration;

use crate::support::binary::run_command;
use crate::support::redis::unreachable_url;
use crate::support::{TestApp, TestBinary, WsClient, metric, within};

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
