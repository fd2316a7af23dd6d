//! `promote`: the checker's clients through Traefik while a deploy command runs, with a few
//! seconds of load before and after it (the benchmark of a promote under load).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Common;
use crate::checker::{Counts, Fleet};

pub(crate) async fn promote(
    common: &Common,
    promote_cmd: &str,
    counts: &Counts,
    interval: Duration,
    settle: Duration,
) -> anyhow::Result<Value> {
    let fleet = Fleet::start(common, interval).await?;
    tokio::time::sleep(settle).await;
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(promote_cmd)
        .status()
        .await?;
    let promote_ms = started.elapsed().as_millis();
    tokio::time::sleep(settle).await;
    let mut result = fleet.finish(counts).await?;
    result["scenario"] = "promote".into();
    result["promote_exit_code"] = status.code().into();
    result["promote_ms"] = u64::try_from(promote_ms).unwrap_or(u64::MAX).into();
    Ok(result)
}
