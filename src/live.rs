//! Sessions held by open connections never expire: this task resets their TTL every third of
//! SESSION_TTL_SECS, in batches of one store round trip each. A session already gone is not
//! brought back (the refresh never creates one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::metrics::Metrics;
use crate::store::SessionStore;

/// Sessions per refresh call.
const BATCH: usize = 1000;

/// The ids of the sessions open connections hold, each with how many connections hold it.
#[derive(Debug, Default)]
pub struct LiveSessions {
    held: Mutex<HashMap<Uuid, usize>>,
}

/// Holds a session live while it exists.
#[derive(Debug)]
pub struct Held {
    live: Arc<LiveSessions>,
    id: Uuid,
}

impl LiveSessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, usize>> {
        // Each update is one map operation: a panic cannot leave it half-done.
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks `id` as held by one more connection until the returned guard is dropped.
    pub fn hold(self: &Arc<Self>, id: Uuid) -> Held {
        *self.lock().entry(id).or_default() += 1;
        Held {
            live: Arc::clone(self),
            id,
        }
    }

    /// The ids held now.
    pub fn ids(&self) -> Vec<Uuid> {
        self.lock().keys().copied().collect()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.live.lock();
        if let Some(count) = held.get_mut(&self.id) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.id);
            }
        }
    }
}

/// Refreshes every session `live` holds in `store` each third of `ttl` (SESSION_TTL_SECS)
/// until `stop`.
pub async fn run(
    live: &LiveSessions,
    store: &SessionStore,
    metrics: &Metrics,
    ttl: Duration,
    stop: CancellationToken,
) {
    let mut every = tokio::time::interval(ttl / 3);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        for batch in live.ids().chunks(BATCH) {
            if let Err(error) = store.refresh(batch).await {
                metrics.store_failed();
                tracing::warn!(%error, sessions = batch.len(), "cannot refresh the TTL of live sessions");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_held_while_any_connection_holds_it() {
        let live = Arc::new(LiveSessions::default());
        let id = Uuid::new_v4();
        let first = live.hold(id);
        let second = live.hold(id);
        assert_eq!(live.ids(), vec![id]);
        drop(first);
        assert_eq!(live.ids(), vec![id]);
        drop(second);
        assert!(live.ids().is_empty());
    }
}
