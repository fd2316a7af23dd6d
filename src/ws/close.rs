//! Every way a connection ends: its close code, reason text and metric label, in one table,
//! and which read error means which of them.

use std::time::Duration;

use tungstenite::error::{Error, ProtocolError};

/// How long the server waits for the client's close frame after sending its own.
const CLOSE_HANDSHAKE: Duration = Duration::from_secs(1);
/// The whole goodbye to a client too slow to read: its window is full, so the close frame
/// will rarely get through; the socket is released soon instead of held for SEND_TIMEOUT_MS.
const SLOW_CLIENT_GOODBYE: Duration = Duration::from_millis(250);

enum_with_all! {
    /// Why a connection ended.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum CloseReason {
        /// The client closed, or its socket ended.
        ClientClosed,
        /// The server is draining for a deploy: reconnect (to the other color).
        Draining,
        /// No frame (not even a pong) for two heartbeat intervals.
        DeadPeer,
        /// The client sent a binary frame.
        Binary,
        /// The client sent a message over MAX_MESSAGE_BYTES.
        TooBig,
        /// The client sent more than MAX_MESSAGES_PER_SEC.
        RateLimited,
        /// A frame could not reach the client within SEND_TIMEOUT_MS.
        SlowClient,
        /// A text message that is not UTF-8 (RFC 6455 §8.1).
        InvalidUtf8,
        /// A client frame without a mask (§5.1).
        UnmaskedFrame,
        /// A frame with a reserved opcode (§5.2).
        ReservedOpcode,
        /// RSV bits set without an extension that defines them (§5.2).
        ReservedBits,
        /// A control frame with more than 125 bytes of payload (§5.5).
        ControlTooBig,
        /// A continuation frame with no fragmented message to continue (§5.4).
        UnexpectedContinuation,
        /// Any other violation of the framing rules (fragmented control frame, a new message
        /// inside a fragmented one, a malformed close frame).
        ProtocolError,
        /// The socket failed (I/O error, or the client vanished without a close frame).
        SocketError,
    }
}

impl CloseReason {
    /// What a failed read means: a message over MAX_MESSAGE_BYTES, a protocol violation, or
    /// a broken socket.
    pub fn of_read_error(error: &Error) -> CloseReason {
        match error {
            Error::Capacity(_) => CloseReason::TooBig,
            Error::Utf8(_) => CloseReason::InvalidUtf8,
            Error::Protocol(violation) => match violation {
                ProtocolError::UnmaskedFrameFromClient => CloseReason::UnmaskedFrame,
                ProtocolError::InvalidOpcode(_)
                | ProtocolError::UnknownDataFrameType(_)
                | ProtocolError::UnknownControlFrameType(_) => CloseReason::ReservedOpcode,
                ProtocolError::NonZeroReservedBits => CloseReason::ReservedBits,
                ProtocolError::ControlFrameTooBig => CloseReason::ControlTooBig,
                ProtocolError::UnexpectedContinueFrame => CloseReason::UnexpectedContinuation,
                ProtocolError::ResetWithoutClosingHandshake => CloseReason::SocketError,
                _ => CloseReason::ProtocolError,
            },
            _ => CloseReason::SocketError,
        }
    }

    /// The longest the goodbye (close frame out, the client's close frame back) may take.
    pub fn goodbye_bound(self, send_timeout: Duration) -> Duration {
        match self {
            CloseReason::SlowClient => SLOW_CLIENT_GOODBYE,
            _ => send_timeout + CLOSE_HANDSHAKE,
        }
    }

    /// The close frame the server sends, if it sends one.
    pub fn frame(self) -> Option<(u16, &'static str)> {
        match self {
            CloseReason::ClientClosed | CloseReason::SocketError => None,
            CloseReason::Draining => Some((1001, "draining")),
            CloseReason::DeadPeer => Some((1001, "ping timeout")),
            CloseReason::Binary => Some((1003, "binary frames are not supported")),
            CloseReason::TooBig => Some((1009, "message too big")),
            CloseReason::RateLimited => Some((1008, "message rate exceeded")),
            CloseReason::SlowClient => Some((1013, "client too slow")),
            CloseReason::InvalidUtf8 => Some((1007, "invalid utf-8 in a text message")),
            CloseReason::UnmaskedFrame => Some((1002, "unmasked client frame")),
            CloseReason::ReservedOpcode => Some((1002, "reserved opcode")),
            CloseReason::ReservedBits => Some((1002, "reserved bits set")),
            CloseReason::ControlTooBig => Some((1002, "control frame over 125 bytes")),
            CloseReason::UnexpectedContinuation => Some((1002, "continuation without a start")),
            CloseReason::ProtocolError => Some((1002, "protocol error")),
        }
    }

    /// The `reason` label of `switchyard_connections_closed_total`.
    pub fn label(self) -> &'static str {
        match self {
            CloseReason::ClientClosed => "client_closed",
            CloseReason::Draining => "draining",
            CloseReason::DeadPeer => "dead_peer",
            CloseReason::Binary => "binary",
            CloseReason::TooBig => "too_big",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::SlowClient => "slow_client",
            CloseReason::InvalidUtf8 => "invalid_utf8",
            CloseReason::UnmaskedFrame => "unmasked_frame",
            CloseReason::ReservedOpcode => "reserved_opcode",
            CloseReason::ReservedBits => "reserved_bits",
            CloseReason::ControlTooBig => "control_too_big",
            CloseReason::UnexpectedContinuation => "unexpected_continuation",
            CloseReason::ProtocolError => "protocol_error",
            CloseReason::SocketError => "socket_error",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_protocol() {
        let code = |r: CloseReason| r.frame().map(|(code, _)| code);
        assert_eq!(code(CloseReason::Draining), Some(1001));
        assert_eq!(code(CloseReason::Binary), Some(1003));
        assert_eq!(code(CloseReason::TooBig), Some(1009));
        assert_eq!(code(CloseReason::RateLimited), Some(1008));
        assert_eq!(code(CloseReason::SlowClient), Some(1013));
        assert_eq!(code(CloseReason::ClientClosed), None);
        assert_eq!(
            CloseReason::Draining.frame().map(|(_, text)| text),
            Some("draining")
        );
    }

    #[test]
    fn protocol_violations_map_to_their_own_reasons() {
        let of = |error: Error| CloseReason::of_read_error(&error);
        assert_eq!(of(Error::Utf8("bad".into())), CloseReason::InvalidUtf8);
        for (violation, reason) in [
            (
                ProtocolError::UnmaskedFrameFromClient,
                CloseReason::UnmaskedFrame,
            ),
            (ProtocolError::InvalidOpcode(3), CloseReason::ReservedOpcode),
            (
                ProtocolError::UnknownControlFrameType(11),
                CloseReason::ReservedOpcode,
            ),
            (
                ProtocolError::NonZeroReservedBits,
                CloseReason::ReservedBits,
            ),
            (
                ProtocolError::ControlFrameTooBig,
                CloseReason::ControlTooBig,
            ),
            (
                ProtocolError::UnexpectedContinueFrame,
                CloseReason::UnexpectedContinuation,
            ),
            (
                ProtocolError::FragmentedControlFrame,
                CloseReason::ProtocolError,
            ),
            (
                ProtocolError::ResetWithoutClosingHandshake,
                CloseReason::SocketError,
            ),
        ] {
            let shown = format!("{violation:?}");
            assert_eq!(of(Error::Protocol(violation)), reason, "{shown}");
        }
        assert_eq!(of(Error::ConnectionClosed), CloseReason::SocketError);
        let code = |r: CloseReason| r.frame().map(|(code, _)| code);
        assert_eq!(code(CloseReason::InvalidUtf8), Some(1007));
        for reason in [
            CloseReason::UnmaskedFrame,
            CloseReason::ReservedOpcode,
            CloseReason::ReservedBits,
            CloseReason::ControlTooBig,
            CloseReason::UnexpectedContinuation,
            CloseReason::ProtocolError,
        ] {
            assert_eq!(code(reason), Some(1002), "{reason:?}");
        }
    }

    #[test]
    fn a_slow_client_gets_a_short_goodbye() {
        let send_timeout = Duration::from_secs(5);
        assert_eq!(
            CloseReason::SlowClient.goodbye_bound(send_timeout),
            Duration::from_millis(250)
        );
        assert!(CloseReason::Draining.goodbye_bound(send_timeout) > send_timeout);
    }

    #[test]
    fn labels_are_distinct_and_reasons_fit_a_close_frame() {
        let mut labels: Vec<_> = CloseReason::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), CloseReason::ALL.len());
        for reason in CloseReason::ALL {
            assert!(reason.frame().is_none_or(|(_, text)| text.len() <= 123));
        }
    }
}
