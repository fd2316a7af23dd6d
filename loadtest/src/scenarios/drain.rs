//! `drain`: SIGTERM the server under N sessions; when each client got its close frame, which
//! codes, and when the process was gone.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Common;
use crate::client::{Target, open_many};

pub(crate) async fn drain(common: &Common, server_pid: u32) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let (clients, _) = open_many(&target, common.connections, common.connect_concurrency).await?;
    let signalled = Instant::now();
    let mut tasks = Vec::with_capacity(clients.len());
    for (mut client, _) in clients {
        tasks.push(tokio::spawn(async move {
            loop {
                match client.next_event().await {
                    Ok(Ok(_)) => continue,
                    Ok(Err(code)) => return (code, signalled.elapsed()),
                    Err(_) => return (0, signalled.elapsed()),
                }
            }
        }));
    }
    let status = tokio::process::Command::new("kill")
        .arg("-TERM")
        .arg(server_pid.to_string())
        .status()
        .await?;
    anyhow::ensure!(status.success(), "could not signal pid {server_pid}");
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    let mut first = Duration::MAX;
    let mut last = Duration::ZERO;
    for task in tasks {
        let (code, at) = task.await?;
        *codes.entry(code).or_default() += 1;
        first = first.min(at);
        last = last.max(at);
    }
    let exit_deadline = signalled + Duration::from_secs(60);
    while std::path::Path::new(&format!("/proc/{server_pid}")).exists()
        && Instant::now() < exit_deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let gone = !std::path::Path::new(&format!("/proc/{server_pid}")).exists();
    Ok(json!({
        "scenario": "drain",
        "connections": common.connections,
        "close_codes": codes,
        "first_close_ms": first.as_millis(),
        "last_close_ms": last.as_millis(),
        "process_exit_ms": gone.then(|| signalled.elapsed().as_millis()),
    }))
}
