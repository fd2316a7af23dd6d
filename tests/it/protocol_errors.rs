//! Frames that break RFC 6455, sent byte by byte: each is answered with its close code
//! (1007 or 1002, §7.4.1) and counted under its own reason; a client's close is answered.

use crate::support::raw::frame;
use crate::support::{RawSocket, TestApp, metric};

/// FIN bit, and the opcodes used below.
const FIN: u8 = 0x80;
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;

/// Each violation: the frame, the close code it must get, the metric label it is counted under.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    vec![
        (
            "invalid_utf8",
            frame(FIN | TEXT, &[0x68, 0xff, 0xfe], true),
            1007,
        ),
        ("unmasked_frame", frame(FIN | TEXT, b"{}", false), 1002),
        ("reserved_opcode", frame(FIN | 0x3, b"{}", true), 1002),
        ("reserved_bits", frame(FIN | 0x40 | TEXT, b"{}", true), 1002),
        ("control_too_big", frame(FIN | PING, &[7; 126], true), 1002),
        (
            "unexpected_continuation",
            frame(FIN | CONTINUATION, b"{}", true),
            1002,
        ),
        // A ping without FIN: control frames must not be fragmented.
        ("protocol_error", frame(PING, b"", true), 1002),
    ]
}

fn closed_sample(label: &str) -> String {
    format!("switchyard_connections_closed_total{{reason=\"{label}\"}}")
}

#[tokio::test]
async fn each_protocol_violation_closes_with_its_code_and_is_counted() {
    let app = TestApp::spawn(&[]).await;
    for (label, bytes, code) in violations() {
        let mut socket = RawSocket::connect(app.addr, "/ws/chat/").await;
        let hello = socket.next_frame().await.expect("the session frame");
        assert_eq!(hello.opcode, TEXT, "{label}: the session frame comes first");
        socket.send(&bytes).await;
        assert_eq!(socket.close_code().await, Some(code), "{label}");
        assert_eq!(
            metric(app.addr, &closed_sample(label)).await,
            1.0,
            "{label}"
        );
    }
    assert_eq!(
        metric(app.addr, &closed_sample("socket_error")).await,
        0.0,
        "no violation is taken for a broken socket"
    );
}

#[tokio::test]
async fn a_client_close_frame_is_answered() {
    let app = TestApp::spawn(&[]).await;
    let mut socket = RawSocket::connect(app.addr, "/ws/chat/").await;
    socket.next_frame().await.expect("the session frame");
    let mut goodbye = 1000u16.to_be_bytes().to_vec();
    goodbye.extend_from_slice(b"bye");
    socket.send(&frame(FIN | CLOSE, &goodbye, true)).await;
    assert_eq!(socket.close_code().await, Some(1000), "the close is echoed");
    assert_eq!(
        socket.next_frame().await.map(|f| f.opcode),
        None,
        "then the server closes the TCP connection"
    );
    assert_eq!(metric(app.addr, &closed_sample("client_closed")).await, 1.0);
}
