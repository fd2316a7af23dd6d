//! Serving → Draining: the answer readiness and upgrades give, and the tracker of live sessions
//! that shutdown waits for.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::task::TaskTracker;

#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    /// One entry per accepted upgrade, from the upgrade response until the session ends.
    sessions: TaskTracker,
}

impl Lifecycle {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Enters Draining; `false` if it already had.
    pub fn begin_drain(&self) -> bool {
        let first = !self.draining.swap(true, Ordering::AcqRel);
        self.sessions.close();
        first
    }

    pub fn sessions(&self) -> &TaskTracker {
        &self.sessions
    }
}
