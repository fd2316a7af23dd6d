//! Every way a connection ends: its close code, reason text and metric label, in one table.

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
    /// The socket failed (protocol violation or I/O error).
    SocketError,
}

impl CloseReason {
    /// Every reason, for pre-registering metric labels.
    pub const ALL: [CloseReason; 8] = [
        CloseReason::ClientClosed,
        CloseReason::Draining,
        CloseReason::DeadPeer,
        CloseReason::Binary,
        CloseReason::TooBig,
        CloseReason::RateLimited,
        CloseReason::SlowClient,
        CloseReason::SocketError,
    ];

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
