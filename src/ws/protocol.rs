//! Wire types of protocol v1: parse client frames, serialise server frames. No I/O here.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Color;

/// Largest `seq` that JavaScript clients can represent exactly (2^53 - 1); Lua in Redis
/// compares numbers as doubles, so larger values would compare wrongly.
pub const MAX_SEQ: i64 = (1 << 53) - 1;

/// What a client text frame asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientMessage {
    /// The client's sequence number, when it sent one.
    pub seq: Option<i64>,
}

/// A client frame that cannot be applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("seq must be an integer from 0 to 2^53-1")]
    InvalidSeq,
}

#[derive(Deserialize)]
struct Envelope {
    /// `Some(Value::Null)` for `"seq": null`, told apart from an absent `seq`.
    #[serde(default, deserialize_with = "present")]
    seq: Option<serde_json::Value>,
}

fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(deserializer).map(Some)
}

/// Reads a client text frame. Any text counts; a JSON object's `seq` makes the count exactly-once.
/// A `seq` that is present must be an integer in 0..=MAX_SEQ (`null` included in "present").
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    if !text.trim_start().starts_with('{') {
        return Ok(ClientMessage { seq: None });
    }
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return Ok(ClientMessage { seq: None });
    };
    match envelope.seq {
        None => Ok(ClientMessage { seq: None }),
        Some(value) => match value.as_i64() {
            Some(seq) if (0..=MAX_SEQ).contains(&seq) => Ok(ClientMessage { seq: Some(seq) }),
            _ => Err(ProtocolError::InvalidSeq),
        },
    }
}

/// Error codes a client may see in an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Nothing reached the store: the message was certainly not counted. Resend it with the
    /// same seq.
    StoreUnavailable,
    /// The store did not answer in time: the message may have been counted. Resend it with the
    /// same seq (a repeat is answered as a duplicate).
    OutcomeUnknown,
    /// The seq skipped ahead of `expected`: nothing was counted. Resend from `expected`.
    SeqGap,
    /// The session is gone (expired or lost): nothing was counted or created. Start over.
    SessionExpired,
    /// The frame's `seq` is not a usable integer; it was not counted.
    InvalidSeq,
}

/// A frame the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame<'a> {
    Session {
        session_id: Uuid,
        count: u64,
        last_seq: i64,
        resumed: bool,
        color: Color,
        heartbeat_ms: u64,
    },
    Count {
        count: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        duplicate: bool,
    },
    Heartbeat {
        ts: &'a str,
    },
    Error {
        code: ErrorCode,
        #[serde(skip_serializing_if = "Option::is_none")]
        seq: Option<i64>,
        /// With `seq_gap`: the seq the session expects next.
        #[serde(skip_serializing_if = "Option::is_none")]
        expected: Option<i64>,
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialise")
    }
}

/// The golden frames (`tests/golden/frames.json`): protocol v1 written once, read by the Rust,
/// JS and Python tests. A string that names a placeholder (`<uuid>`, `<ts>`) stands for any
/// value of that shape.
#[cfg(any(test, feature = "test-support"))]
pub mod golden {
    use serde_json::Value;
    use uuid::Uuid;

    const FIXTURE: &str = include_str!("../../tests/golden/frames.json");

    /// The fixture, parsed.
    pub fn fixture() -> Value {
        serde_json::from_str(FIXTURE).expect("tests/golden/frames.json is JSON")
    }

    /// Every case of the fixture's `section` (`conversation`, `store_failures`, ...).
    pub fn cases(section: &str) -> Vec<Value> {
        fixture()[section]
            .as_array()
            .unwrap_or_else(|| panic!("frames.json has no list `{section}`"))
            .clone()
    }

    /// True when `actual` is `expected`, each placeholder in `expected` matching a value of
    /// its shape.
    pub fn matches(expected: &Value, actual: &Value) -> bool {
        match (expected, actual) {
            (Value::String(placeholder), Value::String(value)) if placeholder == "<uuid>" => {
                Uuid::parse_str(value)
                    .is_ok_and(|id| id.get_version_num() == 4 && id.to_string() == *value)
            }
            (Value::String(placeholder), Value::String(value)) if placeholder == "<ts>" => {
                is_timestamp(value)
            }
            (Value::Object(expected), Value::Object(actual)) => {
                expected.len() == actual.len()
                    && expected
                        .iter()
                        .all(|(key, value)| actual.get(key).is_some_and(|a| matches(value, a)))
            }
            (Value::Array(expected), Value::Array(actual)) => {
                expected.len() == actual.len()
                    && expected.iter().zip(actual).all(|(e, a)| matches(e, a))
            }
            _ => expected == actual,
        }
    }

    /// `value` with each placeholder replaced by the fixture's example of it.
    pub fn example(value: &Value) -> Value {
        match value {
            Value::String(text) => {
                let example = &fixture()["placeholders"][text.as_str()]["example"];
                if example.is_string() {
                    example.clone()
                } else {
                    value.clone()
                }
            }
            Value::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, value)| (key.clone(), example(value)))
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(example).collect()),
            _ => value.clone(),
        }
    }

    /// `2026-11-22T13:00:00.123Z`: RFC 3339, UTC, milliseconds.
    fn is_timestamp(text: &str) -> bool {
        const SHAPE: &[u8] = b"0000-00-00T00:00:00.000Z";
        text.len() == SHAPE.len()
            && text.bytes().zip(SHAPE).all(|(c, &shape)| {
                if shape == b'0' {
                    c.is_ascii_digit()
                } else {
                    c == shape
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn json_of(frame: ServerFrame<'_>) -> Value {
        serde_json::from_str(&frame.to_json()).expect("valid JSON")
    }

    /// The frame the fixture shows, built from its fields the way the server builds it.
    fn frame_of(shown: &Value) -> ServerFrame<'_> {
        let int = |field: &str| shown.get(field).map(|v| v.as_i64().expect(field));
        let uint = |field: &str| shown[field].as_u64().expect(field);
        match shown["type"].as_str().expect("type") {
            "session" => ServerFrame::Session {
                session_id: Uuid::parse_str(shown["session_id"].as_str().expect("id"))
                    .expect("a UUID"),
                count: uint("count"),
                last_seq: int("last_seq").expect("last_seq"),
                resumed: shown["resumed"].as_bool().expect("resumed"),
                color: <Color as clap::ValueEnum>::from_str(
                    shown["color"].as_str().expect("color"),
                    false,
                )
                .expect("a color"),
                heartbeat_ms: uint("heartbeat_ms"),
            },
            "count" => ServerFrame::Count {
                count: uint("count"),
                seq: int("seq"),
                duplicate: shown["duplicate"] == true,
            },
            "heartbeat" => ServerFrame::Heartbeat {
                ts: shown["ts"].as_str().expect("ts"),
            },
            "error" => ServerFrame::Error {
                code: code_named(shown["code"].as_str().expect("code")),
                seq: int("seq"),
                expected: int("expected"),
            },
            other => panic!("frames.json shows a frame type the server has not: {other}"),
        }
    }

    /// The section of frames.json that shows each code: a new code does not compile until
    /// it is given one, and the test below then fails until the fixture shows it.
    fn shown_in(code: ErrorCode) -> &'static str {
        match code {
            ErrorCode::SeqGap | ErrorCode::InvalidSeq => "conversation",
            ErrorCode::StoreUnavailable | ErrorCode::OutcomeUnknown | ErrorCode::SessionExpired => {
                "store_failures"
            }
        }
    }

    const CODES: [ErrorCode; 5] = [
        ErrorCode::StoreUnavailable,
        ErrorCode::OutcomeUnknown,
        ErrorCode::SeqGap,
        ErrorCode::SessionExpired,
        ErrorCode::InvalidSeq,
    ];

    fn code_named(name: &str) -> ErrorCode {
        CODES
            .into_iter()
            .find(|code| serde_json::to_value(code).expect("a code") == name)
            .unwrap_or_else(|| panic!("frames.json shows an error code the server has not: {name}"))
    }

    fn golden_exchanges() -> Vec<Value> {
        let mut cases = golden::cases("conversation");
        cases.extend(golden::cases("store_failures"));
        cases
    }

    #[test]
    fn every_golden_server_frame_is_what_the_server_serialises() {
        let mut shown: Vec<Value> = golden_exchanges()
            .into_iter()
            .map(|case| case["server"].clone())
            .collect();
        shown.push(golden::fixture()["heartbeat"].clone());
        for frame in shown {
            let concrete = golden::example(&frame);
            let sent = json_of(frame_of(&concrete));
            assert_eq!(sent, concrete, "frames.json shows {frame}");
            assert!(golden::matches(&frame, &sent), "{frame} matches {sent}");
        }
    }

    #[test]
    fn every_golden_client_frame_parses_as_its_reply_says() {
        for case in golden_exchanges() {
            let Some(text) = case["client"].as_str() else {
                continue;
            };
            let reply = &case["server"];
            let expected = if reply["code"] == "invalid_seq" {
                Err(ProtocolError::InvalidSeq)
            } else {
                Ok(ClientMessage {
                    seq: reply.get("seq").map(|seq| seq.as_i64().expect("seq")),
                })
            };
            assert_eq!(parse(text), expected, "{}: {text}", case["name"]);
        }
    }

    #[test]
    fn every_error_code_is_in_the_golden_frames() {
        for code in CODES {
            let name = serde_json::to_value(code).expect("a code");
            assert!(
                golden::cases(shown_in(code))
                    .iter()
                    .any(|case| case["server"]["code"] == name),
                "frames.json shows no {name} frame in {}",
                shown_in(code)
            );
        }
    }

    #[test]
    fn placeholders_match_only_their_shape() {
        let uuid = json!("<uuid>");
        let ts = json!("<ts>");
        assert!(golden::matches(&uuid, &json!(Uuid::new_v4().to_string())));
        assert!(!golden::matches(&uuid, &json!("not-a-uuid")));
        assert!(!golden::matches(
            &uuid,
            &json!(Uuid::new_v4().to_string().to_uppercase())
        ));
        assert!(golden::matches(&ts, &json!("2026-11-22T13:00:00.123Z")));
        assert!(!golden::matches(&ts, &json!("2026-11-22T13:00:00Z")));
        assert!(!golden::matches(&json!({"a": 1}), &json!({"a": 1, "b": 2})));
    }

    #[test]
    fn plain_text_counts_without_seq() {
        assert_eq!(parse("hello"), Ok(ClientMessage { seq: None }));
        assert_eq!(parse("{not json"), Ok(ClientMessage { seq: None }));
        assert_eq!(parse(r#"{"text":"hi"}"#), Ok(ClientMessage { seq: None }));
    }

    #[test]
    fn integer_seq_is_read() {
        assert_eq!(
            parse(r#"{"seq":7,"text":"hi"}"#),
            Ok(ClientMessage { seq: Some(7) })
        );
        assert_eq!(parse(r#" {"seq":0}"#), Ok(ClientMessage { seq: Some(0) }));
        assert_eq!(
            parse(&format!(r#"{{"seq":{MAX_SEQ}}}"#)),
            Ok(ClientMessage { seq: Some(MAX_SEQ) })
        );
    }

    #[test]
    fn unusable_seq_is_an_error() {
        for text in [
            r#"{"seq":1.5}"#,
            r#"{"seq":"3"}"#,
            r#"{"seq":9007199254740992}"#,
            r#"{"seq":[1]}"#,
            r#"{"seq":null}"#,
            r#"{"seq":-1}"#,
        ] {
            assert_eq!(parse(text), Err(ProtocolError::InvalidSeq), "{text}");
        }
    }
}
