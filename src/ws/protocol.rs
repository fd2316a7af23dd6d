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
    #[error("seq must be an integer from -(2^53-1) to 2^53-1")]
    InvalidSeq,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    seq: Option<serde_json::Value>,
}

/// Reads a client text frame. Any text counts; a JSON object's `seq` makes the count exactly-once.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    if !text.trim_start().starts_with('{') {
        return Ok(ClientMessage { seq: None });
    }
    let Ok(envelope) = serde_json::from_str::<Envelope>(text) else {
        return Ok(ClientMessage { seq: None });
    };
    match envelope.seq {
        None | Some(serde_json::Value::Null) => Ok(ClientMessage { seq: None }),
        Some(value) => match value.as_i64() {
            Some(seq) if (-MAX_SEQ..=MAX_SEQ).contains(&seq) => {
                Ok(ClientMessage { seq: Some(seq) })
            }
            _ => Err(ProtocolError::InvalidSeq),
        },
    }
}

/// Error codes a client may see in an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The store could not apply the message; it was not counted, retry it.
    StoreUnavailable,
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
    },
}

impl ServerFrame<'_> {
    /// The frame as JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialise")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn json_of(frame: ServerFrame<'_>) -> Value {
        serde_json::from_str(&frame.to_json()).expect("valid JSON")
    }

    #[test]
    fn plain_text_counts_without_seq() {
        assert_eq!(parse("hello"), Ok(ClientMessage { seq: None }));
        assert_eq!(parse("{not json"), Ok(ClientMessage { seq: None }));
        assert_eq!(parse(r#"{"text":"hi"}"#), Ok(ClientMessage { seq: None }));
        assert_eq!(parse(r#"{"seq":null}"#), Ok(ClientMessage { seq: None }));
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
        ] {
            assert_eq!(parse(text), Err(ProtocolError::InvalidSeq), "{text}");
        }
    }

    #[test]
    fn session_frame_has_every_field() {
        let id = Uuid::new_v4();
        let frame = ServerFrame::Session {
            session_id: id,
            count: 3,
            resumed: true,
            color: Color::Green,
            heartbeat_ms: 30000,
        };
        assert_eq!(
            json_of(frame),
            json!({"type":"session","session_id":id.to_string(),"count":3,"resumed":true,"color":"green","heartbeat_ms":30000})
        );
    }

    #[test]
    fn count_frame_omits_absent_seq_and_false_duplicate() {
        assert_eq!(
            json_of(ServerFrame::Count {
                count: 1,
                seq: None,
                duplicate: false
            }),
            json!({"type":"count","count":1})
        );
        assert_eq!(
            json_of(ServerFrame::Count {
                count: 4,
                seq: Some(2),
                duplicate: true
            }),
            json!({"type":"count","count":4,"seq":2,"duplicate":true})
        );
    }

    #[test]
    fn error_and_heartbeat_frames() {
        assert_eq!(
            json_of(ServerFrame::Error {
                code: ErrorCode::StoreUnavailable,
                seq: Some(9)
            }),
            json!({"type":"error","code":"store_unavailable","seq":9})
        );
        assert_eq!(
            json_of(ServerFrame::Heartbeat {
                ts: "2026-11-22T13:00:00.000Z"
            }),
            json!({"type":"heartbeat","ts":"2026-11-22T13:00:00.000Z"})
        );
    }
}
