//! Serving → Draining: the answer readiness and upgrades give, and the tracker of open
//! connections that shutdown waits for.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::task::TaskTracker;

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// One entry per accepted upgrade, from the upgrade response until the connection ends.
    connections: TaskTracker,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Enters Draining; `false` if it already had.
    pub fn begin_drain(&self) -> bool {
        let first = !self.draining.swap(true, Ordering::AcqRel);
        self.connections.close();
        first
    }

    pub fn connections(&self) -> &TaskTracker {
        &self.connections
    }
}
