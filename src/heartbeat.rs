//! The one heartbeat broadcaster: each interval it serialises the frame once, offers it to
//! every connection through the hub, and observes how long the previous beat took to reach
//! them all. Half an interval later it sends a liveness probe (pings go out then), so pings
//! and pongs never compete with the heartbeat's fan-out.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::tick::{Beat, Tick};
use crate::ws::protocol::ServerFrame;

/// The heartbeat frame for time `t`.
fn heartbeat_frame(t: OffsetDateTime) -> String {
    ServerFrame::Heartbeat {
        ts: &rfc3339_millis(t),
    }
    .to_json()
}

/// `2026-11-22T13:00:00.123Z`: RFC 3339, UTC, milliseconds.
fn rfc3339_millis(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Beats every `interval`, probes half an interval after each beat, until `stop` is cancelled.
pub async fn run(
    hub: Arc<Hub>,
    metrics: Arc<Metrics>,
    interval: Duration,
    stop: CancellationToken,
) {
    let half = interval / 2;
    let mut ticker = tokio::time::interval_at(Instant::now() + interval, half);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut previous: Option<Arc<Beat>> = None;
    let mut beat_next = true;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        if !beat_next {
            hub.broadcast(Tick::Probe);
            beat_next = true;
            continue;
        }
        beat_next = false;
        // Observed one interval late, once every connection has had its chance to take it.
        if let Some(took) = previous.take().and_then(|beat| beat.fanout()) {
            metrics.heartbeat_fanned_out(took);
        }
        let beat = Arc::new(Beat::new(heartbeat_frame(OffsetDateTime::now_utc())));
        hub.broadcast(Tick::Beat(Arc::clone(&beat)));
        previous = Some(beat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(1_795_000_000_123_456_789).expect("valid");
        assert_eq!(rfc3339_millis(t), "2026-11-18T11:06:40.123Z");
    }
}
