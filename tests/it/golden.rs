//! The golden frames (tests/golden/frames.json) replayed against the real server: each client
//! frame of the conversation gets exactly the server frame the fixture shows; the session's
//! Redis key and fields, a heartbeat, the close table and the refusals are as it shows too.

use redis::AsyncCommands;
use serde_json::Value;
use switchyard::store::session_key;
use switchyard::ws::close::CloseReason;
use switchyard::ws::protocol::golden;
use uuid::Uuid;

use crate::support::{TestApp, WsClient};

fn assert_golden(case: &Value, actual: &Value) {
    assert!(
        golden::matches(&case["server"], actual),
        "{}: frames.json shows {}, the server sent {actual}",
        case["name"],
        case["server"]
    );
}

#[tokio::test]
async fn the_golden_conversation_is_what_the_server_says() {
    let mut app = TestApp::spawn(&[("--heartbeat-interval-secs", "30")]).await;
    let mut client = None;
    let mut session_id = None;
    for case in golden::cases("conversation") {
        let reply = match (case["connect"].as_str(), case["client"].as_str()) {
            (Some("new"), None) => {
                let (opened, session) = WsClient::open(app.addr, None).await;
                client = Some(opened);
                session_id = session["session_id"].as_str().map(str::to_owned);
                session
            }
            (Some("resume"), None) => {
                drop(client.take());
                let id = session_id.as_deref().expect("a session to resume");
                let (opened, session) = WsClient::open(app.addr, Some(id)).await;
                assert_eq!(session["session_id"], id, "{}", case["name"]);
                client = Some(opened);
                session
            }
            (None, Some(text)) => {
                let client = client.as_mut().expect("the conversation opens first");
                client.send_text(text).await;
                client.next_reply().await
            }
            _ => panic!("a conversation step connects or sends: {case}"),
        };
        assert_golden(&case, &reply);
    }

    let id = Uuid::parse_str(session_id.as_deref().expect("a session")).expect("a UUID");
    let key = session_key(id);
    let shown = golden::fixture()["session_key"].clone();
    assert_eq!(
        shown["pattern"]
            .as_str()
            .map(|p| p.replace("<uuid>", &id.to_string())),
        Some(key.clone())
    );
    let stored: std::collections::HashMap<String, i64> = app
        .redis()
        .connection()
        .await
        .hgetall(&key)
        .await
        .expect("HGETALL");
    let mut fields: Vec<&str> = stored.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(serde_json::json!(fields), shown["fields"]);
}

#[tokio::test]
async fn a_heartbeat_is_the_golden_heartbeat() {
    let app = TestApp::spawn(&[]).await;
    let (mut client, _) = WsClient::open(app.addr, None).await;
    let beat = client.next_reply_or_heartbeat().await;
    let shown = golden::fixture()["heartbeat"].clone();
    assert!(
        golden::matches(&shown, &beat),
        "frames.json shows {shown}, got {beat}"
    );
}

#[tokio::test]
async fn the_golden_refusals_are_what_the_server_answers() {
    let app = TestApp::spawn(&[("--allowed-origins", "https://good.example")]).await;
    for (path, code) in [
        ("/ws/chat/?session_id=not-a-uuid", "invalid_session_id"),
        ("/ws/chat/", "origin_not_allowed"),
    ] {
        let shown = golden::cases("refusals")
            .into_iter()
            .find(|case| case["code"] == code)
            .expect("a golden refusal");
        let response = reqwest::Client::new()
            .get(format!("http://{}{path}", app.addr))
            .header("origin", "https://evil.example")
            .send()
            .await
            .expect("HTTP request");
        assert_eq!(response.status().as_u16(), shown["status"], "{code}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(body, shown["body"], "{code}");
    }
}

#[test]
fn the_golden_close_table_is_the_servers() {
    let fixture = golden::fixture();
    let shown = fixture["close"].as_array().expect("close");
    let mut with_frame = 0;
    for reason in CloseReason::ALL {
        match reason.frame() {
            Some((code, text)) => {
                with_frame += 1;
                let expected =
                    serde_json::json!({"label": reason.label(), "code": code, "reason": text});
                assert!(shown.contains(&expected), "frames.json lacks {expected}");
            }
            None => assert!(
                fixture["close_without_frame"]
                    .as_array()
                    .expect("close_without_frame")
                    .contains(&Value::from(reason.label())),
                "frames.json lacks {reason:?} among the closes without a frame"
            ),
        }
    }
    assert_eq!(
        shown.len(),
        with_frame,
        "frames.json shows closes the server has not"
    );
}
