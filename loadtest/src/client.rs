//! One protocol-v1 client connection: open (or resume) a session from a spread source
//! address, send numbered messages (resending the same seq after a store error), read replies.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::{TcpSocket, TcpStream, lookup_host};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, client_async_with_config};

use crate::Common;
use crate::checker::{Action, action};

/// How long any single frame may take.
pub(crate) const FRAME_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause before resending a seq the store failed on.
const RESEND_DELAY: Duration = Duration::from_millis(20);

/// Where to connect: resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    addr: SocketAddr,
    url: String,
    sources: usize,
}

impl Target {
    pub(crate) async fn resolve(common: &Common) -> anyhow::Result<Self> {
        let rest = common
            .url
            .strip_prefix("ws://")
            .ok_or_else(|| anyhow!("--url must start with ws://"))?;
        let host = rest.split('/').next().unwrap_or(rest);
        let addr = lookup_host(host)
            .await?
            .next()
            .ok_or_else(|| anyhow!("cannot resolve {host}"))?;
        Ok(Target {
            addr,
            url: common.url.clone(),
            sources: common.source_addresses.max(1),
        })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Source address for connection `i`: 127.0.X.Y, spread so no one address runs out of ports.
    fn source(&self, i: usize) -> SocketAddr {
        let host = i % self.sources;
        let ip = Ipv4Addr::new(127, 0, 1 + (host / 250) as u8, 1 + (host % 250) as u8);
        SocketAddr::new(IpAddr::V4(ip), 0)
    }
}

/// What the server said when the session opened.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) id: String,
    pub(crate) count: u64,
    /// The last seq the session applied: the next one to send is `last_seq + 1`.
    pub(crate) last_seq: u64,
    pub(crate) resumed: bool,
}

pub(crate) struct Client {
    pub(crate) ws: WebSocketStream<TcpStream>,
}

/// Why a connection ended: the server's close code, or 1006 for an abrupt end.
pub(crate) type CloseCode = u16;

impl Client {
    /// Connects as client `i` and reads the session frame.
    pub(crate) async fn open(
        target: &Target,
        i: usize,
        session: Option<&str>,
    ) -> anyhow::Result<(Self, Session)> {
        let socket = TcpSocket::new_v4()?;
        if target.addr.ip().is_loopback() {
            socket.bind(target.source(i))?;
        }
        let tcp = tokio::time::timeout(FRAME_TIMEOUT, socket.connect(target.addr))
            .await
            .context("connect timed out")??;
        tcp.set_nodelay(true)?;
        let url = match session {
            Some(id) => format!("{}?session_id={id}", target.url),
            None => target.url.clone(),
        };
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        let (ws, _) = tokio::time::timeout(
            FRAME_TIMEOUT,
            client_async_with_config(url, tcp, Some(config)),
        )
        .await
        .context("handshake timed out")??;
        let mut client = Client { ws };
        let frame = client
            .next_json()
            .await?
            .ok_or_else(|| anyhow!("closed before the session frame"))?;
        if frame["type"] != "session" {
            bail!("first frame is not a session: {frame}");
        }
        let session = Session {
            id: frame["session_id"].as_str().unwrap_or_default().to_owned(),
            count: frame["count"].as_u64().unwrap_or(0),
            last_seq: frame["last_seq"].as_u64().unwrap_or(0),
            resumed: frame["resumed"].as_bool().unwrap_or(false),
        };
        Ok((client, session))
    }

    /// Sends `seq` once and returns its reply (heartbeats skipped) or the close code.
    pub(crate) async fn send(&mut self, seq: u64) -> anyhow::Result<Result<Value, CloseCode>> {
        self.ws
            .send(Message::text(format!("{{\"seq\":{seq}}}")))
            .await?;
        self.next_reply().await
    }

    /// Sends `seq` and returns its reply, resending the same seq while the server answers
    /// `store_unavailable` (not counted) or `outcome_unknown` (maybe counted: a repeat is then
    /// answered as a duplicate). Any other reply, or the close code, is returned.
    pub(crate) async fn send_acked(
        &mut self,
        seq: u64,
    ) -> anyhow::Result<Result<Value, CloseCode>> {
        loop {
            match self.send(seq).await? {
                Ok(reply) if action(&reply, seq) == Action::Resend => {
                    tokio::time::sleep(RESEND_DELAY).await;
                }
                other => return Ok(other),
            }
        }
    }

    /// The next JSON frame (heartbeats included); `None` when the server closed.
    pub(crate) async fn next_json(&mut self) -> anyhow::Result<Option<Value>> {
        match self.next_event().await? {
            Ok(frame) => Ok(Some(frame)),
            Err(_) => Ok(None),
        }
    }

    /// The next JSON frame, or the close code that ended the connection.
    pub(crate) async fn next_event(&mut self) -> anyhow::Result<Result<Value, CloseCode>> {
        loop {
            let next = tokio::time::timeout(FRAME_TIMEOUT, self.ws.next())
                .await
                .context("no frame within 15 s")?;
            return Ok(match next {
                Some(Ok(Message::Text(text))) => Ok(serde_json::from_str(&text)?),
                Some(Ok(Message::Close(frame))) => Err(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => Err(1006),
            });
        }
    }

    /// The next reply that is not a heartbeat, or the close code.
    pub(crate) async fn next_reply(&mut self) -> anyhow::Result<Result<Value, CloseCode>> {
        loop {
            match self.next_event().await? {
                Ok(frame) if frame["type"] == "heartbeat" => continue,
                other => return Ok(other),
            }
        }
    }
}

/// Opens `n` sessions with bounded concurrency; returns them in index order and the time it took.
pub(crate) async fn open_many(
    target: &Target,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<(Client, Session)>, Duration)> {
    let started = std::time::Instant::now();
    let progress = crate::report::Progress::start("open", n);
    let results: Vec<_> = futures_util::stream::iter(0..n)
        .map(|i| {
            let target = target.clone();
            let progress = progress.clone();
            async move {
                let opened = Client::open(&target, i, None).await;
                progress.add(1);
                opened
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    progress.stop();
    let elapsed = started.elapsed();
    let clients = results.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    Ok((clients, elapsed))
}
