//! `echo`: closed-loop numbered messages; throughput and latency, every count checked to be
//! exactly the previous one plus one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::Common;
use crate::client::{Target, open_many};
use crate::report::{Progress, histogram, latency, record};

pub(crate) async fn echo(common: &Common, duration: Duration) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let (clients, _) = open_many(&target, common.connections, common.connect_concurrency).await?;
    let start = Arc::new(Barrier::new(clients.len() + 1));
    let progress = Progress::start("echo", 0);
    let mut tasks = Vec::with_capacity(clients.len());
    for (mut client, session) in clients {
        let (start, progress) = (start.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = histogram();
            let mut count = session.count;
            let mut seq = 0;
            start.wait().await;
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline {
                seq += 1;
                let sent = Instant::now();
                let reply = match client.send_acked(seq).await? {
                    Ok(reply) => reply,
                    Err(code) => bail!("closed with {code} during the run"),
                };
                record(&mut latencies, sent.elapsed());
                if reply["type"] != "count" || reply["seq"] != seq || reply["count"] != count + 1 {
                    bail!("seq {seq}: expected count {}, got {reply}", count + 1);
                }
                count += 1;
                progress.add(1);
            }
            anyhow::Ok(latencies)
        }));
    }
    start.wait().await;
    let started = Instant::now();
    let mut all = histogram();
    for task in tasks {
        all.add(task.await??)?;
    }
    let elapsed = started.elapsed();
    progress.stop();
    Ok(json!({
        "scenario": "echo",
        "connections": common.connections,
        "seconds": elapsed.as_secs_f64(),
        "messages": all.len(),
        "messages_per_second": (all.len() as f64 / elapsed.as_secs_f64()).round(),
        "latency": latency(&all),
        "counts_checked": progress.count(),
    }))
}
