//! RawSocket: a WebSocket spoken byte by byte over TCP, to send frames no well-behaved client
//! library would (unmasked, reserved bits, bad UTF-8, ...). Every read is bounded.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::client::FRAME_TIMEOUT;
use super::within;

/// The mask every frame of this client uses (any value will do; the server must unmask).
const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

pub(crate) struct RawSocket {
    tcp: TcpStream,
    /// Bytes read past the handshake or the last frame.
    buffer: Vec<u8>,
}

/// A frame as the server sent it.
#[derive(Debug)]
pub(crate) struct ServerFrame {
    pub(crate) opcode: u8,
    pub(crate) payload: Vec<u8>,
}

/// One frame's bytes: `first` is the FIN/RSV/opcode byte; masked with [`MASK`] when `masked`.
pub(crate) fn frame(first: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut bytes = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => bytes.push(mask_bit | len as u8),
        len @ 126..=65535 => {
            bytes.push(mask_bit | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(mask_bit | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        bytes.extend_from_slice(&MASK);
        bytes.extend(payload.iter().zip(MASK.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        bytes.extend_from_slice(payload);
    }
    bytes
}

impl RawSocket {
    /// Connects to `path` and completes the upgrade handshake.
    pub(crate) async fn connect(addr: SocketAddr, path: &str) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        let mut socket = RawSocket {
            tcp,
            buffer: Vec::new(),
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        socket.send(request.as_bytes()).await;
        let head = within(FRAME_TIMEOUT, "the upgrade response", async {
            loop {
                if let Some(end) = socket.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    return socket.buffer.drain(..end + 4).collect::<Vec<_>>();
                }
                assert!(
                    socket.fill().await,
                    "connection closed during the handshake"
                );
            }
        })
        .await;
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "upgrade refused: {head}");
        socket
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.expect("write");
    }

    /// Reads more bytes into the buffer; `false` at the end of the stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.tcp.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame the server sent, `None` when the connection ended first.
    pub(crate) async fn next_frame(&mut self) -> Option<ServerFrame> {
        within(FRAME_TIMEOUT, "a frame from the server", async {
            loop {
                if let Some(frame) = self.parse() {
                    return Some(frame);
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
    }

    fn parse(&mut self) -> Option<ServerFrame> {
        let b = &self.buffer;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "server frames are not masked");
        let (len, start) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => (
                usize::try_from(u64::from_be_bytes(b[2..10].try_into().expect("8 bytes")))
                    .expect("length fits"),
                10,
            ),
            126 | 127 => return None,
            len => (usize::from(len), 2),
        };
        if b.len() < start + len {
            return None;
        }
        let opcode = b[0] & 0x0f;
        let payload = b[start..start + len].to_vec();
        self.buffer.drain(..start + len);
        Some(ServerFrame { opcode, payload })
    }

    /// Skips data frames up to the server's close frame; returns its code, `None` when the
    /// connection ended without one.
    pub(crate) async fn close_code(&mut self) -> Option<u16> {
        while let Some(frame) = self.next_frame().await {
            if frame.opcode == 0x8 {
                let code = frame.payload.get(..2)?;
                return Some(u16::from_be_bytes([code[0], code[1]]));
            }
        }
        None
    }
}
