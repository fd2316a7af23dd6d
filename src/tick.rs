//! What the heartbeat broadcaster offers every connection through the hub: a shared
//! heartbeat (which records how long it took to reach the last socket) or a liveness probe.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

/// One heartbeat: the serialised frame every connection shares, and when it reached the last one.
#[derive(Debug)]
pub struct Beat {
    /// The frame's JSON text, serialised once and shared by every connection (UTF-8: it is
    /// made from a `String`).
    pub text: Bytes,
    sent: Instant,
    /// Nanoseconds from `sent` to the latest delivery so far (0: none yet).
    last_delivery: AtomicU64,
}

impl Beat {
    /// A beat whose frame is `text`, sent now.
    pub fn new(text: String) -> Self {
        Beat {
            text: Bytes::from(text),
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
    pub fn fanout(&self) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_is_the_latest_delivery() {
        let beat = Beat::new("{}".into());
        assert_eq!(beat.fanout(), None);
        beat.delivered();
        let first = beat.fanout().expect("delivered");
        beat.delivered();
        assert!(beat.fanout().expect("delivered") >= first);
    }
}
