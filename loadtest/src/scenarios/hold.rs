//! `hold`: N idle sessions; connect rate and the server's RSS per session.

use std::time::Duration;

use serde_json::{Value, json};

use crate::Common;
use crate::client::{Target, open_many};
use crate::report::rss_kib;

pub(crate) async fn hold(
    common: &Common,
    server_pid: Option<u32>,
    hold_for: Duration,
) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let before = server_pid.map(rss_kib).transpose()?;
    let (clients, took) =
        open_many(&target, common.connections, common.connect_concurrency).await?;
    // Let the server settle (allocator caches, the first heartbeat) before reading its RSS.
    tokio::time::sleep(hold_for).await;
    let after = server_pid.map(rss_kib).transpose()?;
    let per_session = match (before, after) {
        (Some(before), Some(after)) => Some(
            ((after.saturating_sub(before)) as f64 / clients.len() as f64 * 100.0).round() / 100.0,
        ),
        _ => None,
    };
    drop(clients);
    Ok(json!({
        "scenario": "hold",
        "connections": common.connections,
        "open_seconds": took.as_secs_f64(),
        "connects_per_second": (common.connections as f64 / took.as_secs_f64()).round(),
        "server_rss_before_kib": before,
        "server_rss_after_kib": after,
        "server_rss_per_session_kib": per_session,
    }))
}
