//! What handlers share: cheap to clone, one allocation behind it.

use std::ops::Deref;
use std::sync::Arc;

use crate::config::Config;
use crate::hub::Hub;
use crate::lifecycle::Lifecycle;
use crate::live::LiveSessions;
use crate::metrics::Metrics;
use crate::migrate::MigrationGate;
use crate::store::SessionStore;

#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub store: SessionStore,
    pub hub: Arc<Hub>,
    pub lifecycle: Lifecycle,
    pub live: Arc<LiveSessions>,
    pub metrics: Arc<Metrics>,
    pub migrations: MigrationGate,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}
