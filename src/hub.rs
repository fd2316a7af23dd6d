//! Registry of live connections: capacity, the shared heartbeat broadcast, and drain notices
//! delivered in spread-out batches. Holds O(1) state per connection: a bucket index.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::metrics::Metrics;
use crate::tick::Tick;

/// Connections are spread over this many drain buckets, round-robin; the drain releases
/// occupied buckets one by one across DRAIN_SPREAD_MS.
const DRAIN_BUCKETS: usize = 128;

/// Ticks a lagging connection may miss before it skips to the newest.
const BEAT_BACKLOG: usize = 4;

struct Bucket {
    members: AtomicUsize,
    /// Becomes `true` when this bucket's connections must close.
    notice: watch::Sender<bool>,
}

pub struct Hub {
    max_connections: Option<NonZeroUsize>,
    active: AtomicUsize,
    next_bucket: AtomicUsize,
    buckets: Box<[Bucket]>,
    beats: broadcast::Sender<Tick>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("active", &self.active())
            .finish()
    }
}

/// A connection's place in the hub; dropping it frees the place (even on panic).
pub struct Registration {
    hub: Arc<Hub>,
    bucket: usize,
}

/// What a registered connection listens to besides its socket.
pub struct Subscriptions {
    /// Every heartbeat (shared) and liveness probe.
    pub beats: broadcast::Receiver<Tick>,
    /// Turns `true` when this connection's turn in the drain comes.
    pub drain: watch::Receiver<bool>,
}

impl Hub {
    pub fn new(max_connections: Option<NonZeroUsize>, metrics: Arc<Metrics>) -> Self {
        let buckets = (0..DRAIN_BUCKETS)
            .map(|_| Bucket {
                members: AtomicUsize::new(0),
                notice: watch::Sender::new(false),
            })
            .collect();
        Hub {
            max_connections,
            active: AtomicUsize::new(0),
            next_bucket: AtomicUsize::new(0),
            buckets,
            beats: broadcast::Sender::new(BEAT_BACKLOG),
            metrics,
        }
    }

    /// Connections registered now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Reserves a place for one connection; `None` at MAX_CONNECTIONS.
    pub fn try_register(self: &Arc<Self>) -> Option<(Registration, Subscriptions)> {
        let cap = self.max_connections.map_or(usize::MAX, NonZeroUsize::get);
        self.active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()?;
        self.metrics.connection_registered();
        let bucket = self.next_bucket.fetch_add(1, Ordering::Relaxed) % DRAIN_BUCKETS;
        self.buckets[bucket].members.fetch_add(1, Ordering::Relaxed);
        let subscriptions = Subscriptions {
            beats: self.beats.subscribe(),
            drain: self.buckets[bucket].notice.subscribe(),
        };
        Some((
            Registration {
                hub: Arc::clone(self),
                bucket,
            },
            subscriptions,
        ))
    }

    /// Offers one tick to every connection; never waits for any of them.
    pub fn broadcast(&self, tick: Tick) -> usize {
        self.beats.send(tick).unwrap_or(0)
    }

    /// Tells every connection to close, occupied buckets one after another evenly across
    /// `spread`, then every bucket once more for connections that registered meanwhile.
    pub async fn notify_spread(&self, spread: Duration) {
        let occupied: Vec<&Bucket> = self
            .buckets
            .iter()
            .filter(|b| b.members.load(Ordering::Relaxed) > 0)
            .collect();
        let start = Instant::now();
        let steps = u32::try_from(occupied.len()).unwrap_or(u32::MAX).max(1);
        for (i, bucket) in (0u32..).zip(occupied) {
            tokio::time::sleep_until(start + spread * i / steps).await;
            bucket.notice.send_replace(true);
        }
        for bucket in &self.buckets {
            bucket.notice.send_replace(true);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.buckets[self.bucket]
            .members
            .fetch_sub(1, Ordering::Relaxed);
        self.hub.active.fetch_sub(1, Ordering::AcqRel);
        self.hub.metrics.connection_unregistered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Color;

    fn hub(cap: Option<usize>) -> Arc<Hub> {
        Arc::new(Hub::new(
            cap.and_then(NonZeroUsize::new),
            Arc::new(Metrics::new(Color::Blue, Default::default(), &[], &[])),
        ))
    }

    #[test]
    fn registrations_stop_at_the_cap_and_free_their_place_on_drop() {
        let hub = hub(Some(2));
        let first = hub.try_register().expect("room");
        let _second = hub.try_register().expect("room");
        assert!(hub.try_register().is_none());
        drop(first);
        assert_eq!(hub.active(), 1);
        assert!(hub.try_register().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_notices_are_spread_over_the_window() {
        let hub = hub(None);
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(hub.try_register().expect("room"));
        }
        let start = Instant::now();
        let drain = tokio::spawn({
            let hub = Arc::clone(&hub);
            async move { hub.notify_spread(Duration::from_millis(400)).await }
        });
        let mut offsets = Vec::new();
        for (_, subscriptions) in &mut held {
            subscriptions
                .drain
                .wait_for(|closing| *closing)
                .await
                .expect("hub alive");
            offsets.push(start.elapsed().as_millis());
        }
        drain.await.expect("drain task");
        assert_eq!(offsets, vec![0, 100, 200, 300]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_registered_after_the_drain_began_is_still_told() {
        let hub = hub(None);
        hub.notify_spread(Duration::from_millis(100)).await;
        let (_registration, subscriptions) = hub.try_register().expect("room");
        assert!(*subscriptions.drain.borrow());
    }
}
