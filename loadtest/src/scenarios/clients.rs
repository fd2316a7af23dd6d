//! `clients`: the checker's clients for an end-to-end test that does things to the stack
//! while they run (promotes, a killed replica, a Redis failover). The test waits for the ready
//! file (every client has its session), watches the progress file (rewritten every 100 ms:
//! connected, closes, failed_connects, acked), creates the stop file when done, and reads the
//! verdict on stdout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use crate::Common;
use crate::checker::{Counts, Fleet};

/// How often the progress file is rewritten and the stop file looked for.
const POLL: Duration = Duration::from_millis(100);

/// The files a test drives the clients with.
#[derive(Debug)]
pub(crate) struct Files {
    pub(crate) ready: PathBuf,
    pub(crate) stop: PathBuf,
    pub(crate) progress: PathBuf,
}

pub(crate) async fn clients(
    common: &Common,
    files: &Files,
    counts: &Counts,
    interval: Duration,
    max: Duration,
) -> anyhow::Result<Value> {
    let fleet = Fleet::start(common, interval).await?;
    let started = Instant::now();
    let mut ready = false;
    while !files.stop.exists() {
        if started.elapsed() > max {
            anyhow::bail!(
                "no stop file {} within --max-secs {}",
                files.stop.display(),
                max.as_secs()
            );
        }
        let live = fleet.live().snapshot();
        write_atomically(&files.progress, &live.to_string())?;
        if !ready && live["connected"].as_u64() == Some(common.connections as u64) {
            write_atomically(&files.ready, "")?;
            ready = true;
        }
        tokio::time::sleep(POLL).await;
    }
    let mut result = fleet.finish(counts).await?;
    result["scenario"] = "clients".into();
    Ok(result)
}

/// Replaces `path` with `text` so a reader never sees half of it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}
