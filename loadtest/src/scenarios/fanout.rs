//! `fanout`: for each heartbeat, the spread between its first and last receipt across all
//! sessions (which includes this generator's own time to read N sockets).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::Common;
use crate::client::{Target, open_many};

/// The server's own view: (sum, count) of `switchyard_heartbeat_fanout_seconds`, from its
/// `/metrics` on the same host and port as the WebSocket URL.
async fn server_fanout(target: &Target) -> anyhow::Result<(f64, f64)> {
    let mut stream = TcpStream::connect(target.addr()).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: load\r\n\r\n")
        .await?;
    let mut body = String::new();
    stream.read_to_string(&mut body).await?;
    let sample = |name: &str| {
        body.lines()
            .find_map(|line| {
                line.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    Ok((
        sample("switchyard_heartbeat_fanout_seconds_sum"),
        sample("switchyard_heartbeat_fanout_seconds_count"),
    ))
}

pub(crate) async fn fanout(common: &Common, beats: usize) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let before = server_fanout(&target).await.ok();
    let (clients, _) = open_many(&target, common.connections, common.connect_concurrency).await?;
    let mut tasks = Vec::with_capacity(clients.len());
    for (mut client, _) in clients {
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(beats);
            // The first beat may have been on its way while sessions were still opening: skip it.
            while seen.len() < beats + 1 {
                match client.next_event().await? {
                    Ok(frame) if frame["type"] == "heartbeat" => {
                        seen.push((
                            frame["ts"].as_str().unwrap_or_default().to_owned(),
                            Instant::now(),
                        ));
                    }
                    Ok(_) => {}
                    Err(code) => bail!("closed with {code} while waiting for heartbeats"),
                }
            }
            seen.remove(0);
            // Kept open until every client has its beats: closing early would load the server
            // while it still fans out the last beat.
            anyhow::Ok((seen, client))
        }));
    }
    let mut by_beat: BTreeMap<String, (Instant, Instant, usize)> = BTreeMap::new();
    let mut open = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (seen, client) = task.await??;
        open.push(client);
        for (ts, at) in seen {
            let entry = by_beat.entry(ts).or_insert((at, at, 0));
            entry.0 = entry.0.min(at);
            entry.1 = entry.1.max(at);
            entry.2 += 1;
        }
    }
    drop(open);
    let complete: Vec<Duration> = by_beat
        .values()
        .filter(|(_, _, receipts)| *receipts == common.connections)
        .map(|(first, last, _)| *last - *first)
        .collect();
    let ms = |d: &Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    // The server observes a beat's fan-out (broadcast → last socket write) at the next tick.
    let server_mean_ms = match (before, server_fanout(&target).await.ok()) {
        (Some((sum0, n0)), Some((sum1, n1))) if n1 > n0 => {
            Some(((sum1 - sum0) / (n1 - n0) * 1000.0 * 100.0).round() / 100.0)
        }
        _ => None,
    };
    Ok(json!({
        "scenario": "fanout",
        "connections": common.connections,
        "beats_observed": complete.len(),
        "spread_ms": complete.iter().map(ms).collect::<Vec<_>>(),
        "max_spread_ms": complete.iter().max().map(ms),
        "server_fanout_mean_ms": server_mean_ms,
    }))
}
