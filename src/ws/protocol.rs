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

    #[test]
    fn session_frame_has_every_field() {
        let id = Uuid::new_v4();
        let frame = ServerFrame::Session {
            session_id: id,
            count: 3,
            last_seq: 2,
            resumed: true,
            color: Color::Green,
            heartbeat_ms: 30000,
        };
        assert_eq!(
            json_of(frame),
            json!({"type":"session","session_id":id.to_string(),"count":3,"last_seq":2,"resumed":true,"color":"green","heartbeat_ms":30000})
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
                seq: Some(9),
                expected: None,
            }),
            json!({"type":"error","code":"store_unavailable","seq":9})
        );
        assert_eq!(
            json_of(ServerFrame::Error {
                code: ErrorCode::SeqGap,
                seq: Some(9),
                expected: Some(4),
            }),
            json!({"type":"error","code":"seq_gap","seq":9,"expected":4})
        );
        assert_eq!(
            json_of(ServerFrame::Error {
                code: ErrorCode::OutcomeUnknown,
                seq: Some(9),
                expected: None,
            }),
            json!({"type":"error","code":"outcome_unknown","seq":9})
        );
        assert_eq!(
            json_of(ServerFrame::Heartbeat {
                ts: "2026-11-22T13:00:00.000Z"
            }),
            json!({"type":"heartbeat","ts":"2026-11-22T13:00:00.000Z"})
        );
    }
}
