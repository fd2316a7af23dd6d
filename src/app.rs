//! The composition root: build the state, bind, serve with the heartbeat and the live-session
//! refresh running, and on the
//! shutdown trigger drain (readiness 503, spread 1001s, bounded wait) before stopping.

use std::future::Future;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, StoreConfig, Topology, redacted};
use crate::http::{self, HttpServer};
use crate::hub::Hub;
use crate::lifecycle::Lifecycle;
use crate::metrics::{Metrics, Settings};
use crate::migrate::MigrationGate;
use crate::state::{AppState, Shared};
use crate::store::SessionStore;
use crate::ws::close::CloseReason;
use crate::ws::reject::Rejection;
use crate::{heartbeat, live};

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct App {
    listener: TcpListener,
    state: AppState,
}

/// How the drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections open when the drain began.
    pub connections: usize,
    /// Connections still open at DRAIN_TIMEOUT_SECS, cut without a goodbye.
    pub cut: usize,
    /// HTTP connections (requests not finished, e.g. headers never completed) cut at
    /// DRAIN_TIMEOUT_SECS.
    pub http_cut: usize,
}

impl App {
    /// Builds the store and binds the listener (PORT 0 picks a free port).
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let listener = listen(config.addr)
            .with_context(|| format!("cannot listen on {} (BIND, PORT)", config.addr))?;
        let store = SessionStore::build(&config.store, config.session_ttl)
            .context("invalid Redis configuration (REDIS_TOPOLOGY and its variables)")?;
        let metrics = Arc::new(Metrics::new(
            config.color,
            Settings {
                max_connections: config.limits.max_connections.map(NonZeroUsize::get),
                drain_timeout: config.drain_timeout,
                desired_replicas: config.desired_replicas,
            },
            &CloseReason::ALL.map(CloseReason::label),
            &Rejection::ALL.map(Rejection::code),
        ));
        let hub = Arc::new(Hub::new(
            config.limits.max_connections,
            Arc::clone(&metrics),
        ));
        let state = AppState::new(Shared {
            config,
            store,
            hub,
            lifecycle: Lifecycle::default(),
            live: Arc::default(),
            metrics,
            migrations: MigrationGate::default(),
        });
        Ok(App { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then drains and stops.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<DrainReport> {
        let App { listener, state } = self;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let heartbeat = tokio::spawn(heartbeat::run(
            Arc::clone(&state.hub),
            Arc::clone(&state.metrics),
            state.config.heartbeat_interval,
            stop.clone(),
        ));
        let refresh = tokio::spawn({
            let (state, stop) = (state.clone(), stop.clone());
            async move {
                let ttl = state.config.session_ttl;
                live::run(&state.live, &state.store, &state.metrics, ttl, stop).await;
            }
        });
        let server = HttpServer::spawn(
            listener,
            http::router(state.clone()),
            state.config.http_header_timeout,
        );
        tracing::info!(%addr, color = state.config.color.as_str(), version = env!("CARGO_PKG_VERSION"), "listening");
        tokio::spawn(warn_if_store_unreachable(state.clone()));

        shutdown.await;
        let deadline = Instant::now() + state.config.drain_timeout;
        let (connections, cut) = drain(&state, deadline).await;
        stop.cancel();
        let http_cut = server
            .shutdown(deadline)
            .await
            .context("server task failed")?;
        let report = DrainReport {
            connections,
            cut,
            http_cut,
        };
        heartbeat.await.context("heartbeat task failed")?;
        refresh.await.context("session refresh task failed")?;
        tracing::info!(
            connections = report.connections,
            cut = report.cut,
            http_cut = report.http_cut,
            "stopped"
        );
        Ok(report)
    }
}

/// A server started without its Redis serves nothing useful: say so once, naming the setting.
async fn warn_if_store_unreachable(state: AppState) {
    let (Err(error), StoreConfig::Redis(redis)) = (state.store.ping().await, &state.config.store)
    else {
        return;
    };
    match &redis.topology {
        Topology::Single { url } => tracing::warn!(
            redis_url = %redacted(url),
            %error,
            "Redis is unreachable (REDIS_URL): /readyz answers 503 and messages are refused until it answers"
        ),
        Topology::Sentinel {
            sentinels,
            master_name,
        } => tracing::warn!(
            redis_sentinels = %sentinels.join(","),
            redis_master_name = %master_name,
            %error,
            "no Redis primary reachable through the sentinels (REDIS_SENTINELS, REDIS_MASTER_NAME): /readyz answers 503 and messages are refused until one answers"
        ),
        Topology::Cluster { nodes } => tracing::warn!(
            redis_cluster_nodes = %nodes.join(","),
            %error,
            "the Redis Cluster is unreachable (REDIS_CLUSTER_NODES): /readyz answers 503 and messages are refused until it answers"
        ),
    }
}

/// Pending connections the kernel queues for accept: deep enough for a reconnect wave (the
/// kernel caps it at net.core.somaxconn), where tokio's default of 1024 drops SYNs.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Readiness and upgrades turn 503 at once; every connection is told to close, spread over
/// DRAIN_SPREAD_MS; the wait for them ends at `deadline` (DRAIN_TIMEOUT_SECS from the signal).
/// Returns how many connections there were and how many were cut.
async fn drain(state: &AppState, deadline: Instant) -> (usize, usize) {
    state.lifecycle.begin_drain();
    state.metrics.set_draining();
    let connections = state.hub.active();
    let config = &state.config;
    tracing::info!(
        connections,
        spread_ms = config.drain_spread.as_millis() as u64,
        timeout_s = config.drain_timeout.as_secs(),
        "draining"
    );
    let tracked = state.lifecycle.connections();
    let all_closed = async {
        tokio::join!(state.hub.notify_spread(config.drain_spread), tracked.wait());
    };
    let cut = match tokio::time::timeout_at(deadline, all_closed).await {
        Ok(()) => 0,
        Err(_) => {
            tracing::warn!(
                remaining = tracked.len(),
                "drain timeout: cutting the remaining connections"
            );
            tracked.len()
        }
    };
    (connections, cut)
}
