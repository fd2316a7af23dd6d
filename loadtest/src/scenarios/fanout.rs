//! `fanout`: for each heartbeat, the spread between its first and last receipt across all
//! sessions (which includes this generator's own time to read N sockets).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use crate::Common;
use crate::client::{Target, open_many};

pub(crate) async fn fanout(common: &Common, beats: usize) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
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
            anyhow::Ok(seen)
        }));
    }
    let mut by_beat: BTreeMap<String, (Instant, Instant, usize)> = BTreeMap::new();
    for task in tasks {
        for (ts, at) in task.await?? {
            let entry = by_beat.entry(ts).or_insert((at, at, 0));
            entry.0 = entry.0.min(at);
            entry.1 = entry.1.max(at);
            entry.2 += 1;
        }
    }
    let complete: Vec<Duration> = by_beat
        .values()
        .filter(|(_, _, receipts)| *receipts == common.connections)
        .map(|(first, last, _)| *last - *first)
        .collect();
    let ms = |d: &Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    Ok(json!({
        "scenario": "fanout",
        "connections": common.connections,
        "beats_observed": complete.len(),
        "spread_ms": complete.iter().map(ms).collect::<Vec<_>>(),
        "max_spread_ms": complete.iter().max().map(ms),
    }))
}
