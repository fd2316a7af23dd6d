//! `resume`: N sessions with one message each are closed, then all resumed at once; the
//! latency from connect to the `session` frame, and that every one resumed with its count.

use std::time::Instant;

use anyhow::bail;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::Common;
use crate::client::{Client, Target, open_many};
use crate::report::{histogram, latency, record};

pub(crate) async fn resume(common: &Common) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let (clients, _) = open_many(&target, common.connections, common.connect_concurrency).await?;
    let mut ids = Vec::with_capacity(clients.len());
    for (mut client, session) in clients {
        if client.send_acked(1).await?.map(|r| r["count"] == 1) != Ok(true) {
            bail!("first message of {} not counted", session.id);
        }
        ids.push(session.id);
    }
    let started = Instant::now();
    let results: Vec<_> = futures_util::stream::iter(ids.into_iter().enumerate())
        .map(|(i, id)| {
            let target = target.clone();
            async move {
                let began = Instant::now();
                let (_client, session) = Client::open(&target, i, Some(&id)).await?;
                anyhow::Ok((
                    began.elapsed(),
                    session.resumed && session.id == id && session.count == 1,
                ))
            }
        })
        .buffer_unordered(common.connect_concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut latencies = histogram();
    let mut resumed = 0;
    for result in results {
        let (took, ok) = result?;
        record(&mut latencies, took);
        resumed += usize::from(ok);
    }
    Ok(json!({
        "scenario": "resume",
        "connections": common.connections,
        "resumed": resumed,
        "seconds": elapsed.as_secs_f64(),
        "latency": latency(&latencies),
    }))
}
