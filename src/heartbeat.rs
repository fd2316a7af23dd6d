//! The one heartbeat broadcaster: each interval it serialises the frame once, offers it to
//! every connection through the hub, and observes how long the previous beat took to reach
//! them all. Half an interval later it sends a liveness probe (pings go out then), so pings
//! and pongs never compete with the heartbeat's fan-out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use time::OffsetDateTime;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::ws::protocol::ServerFrame;

/// One heartbeat: the serialised frame every connection shares, and when it reached the last one.
#[derive(Debug)]
pub struct Beat {
    pub frame: Utf8Bytes,
    sent: Instant,
    /// Nanoseconds from `sent` to the latest delivery so far (0: none yet).
    last_delivery: AtomicU64,
}

impl Beat {
    fn now() -> Self {
        let frame = ServerFrame::Heartbeat {
            ts: &rfc3339_millis(OffsetDateTime::now_utc()),
        }
        .to_json();
        Beat {
            frame: frame.into(),
            sent: Instant::now(),
            last_delivery: AtomicU64::new(0),
        }
    }

    /// Records that this beat reached one more socket.
    pub fn delivered(&self) {
        let nanos = u64::try_from(self.sent.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.last_delivery.fetch_max(nanos, Ordering::Relaxed);
    }

    /// From the broadcast to the last delivery, if any connection received it.
    fn fanout(&self) -> Option<Duration> {
        match self.last_delivery.load(Ordering::Relaxed) {
            0 => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }
}

/// What the broadcaster offers every connection.
#[derive(Debug, Clone)]
pub enum Tick {
    /// Send this heartbeat.
    Beat(Arc<Beat>),
    /// Close the connection if it has been silent too long, ping it if it has been quiet.
    Probe,
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
        let beat = Arc::new(Beat::now());
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

    #[test]
    fn fanout_is_the_latest_delivery() {
        let beat = Beat::now();
        assert_eq!(beat.fanout(), None);
        beat.delivered();
        let first = beat.fanout().expect("delivered");
        beat.delivered();
        assert!(beat.fanout().expect("delivered") >= first);
    }
}
