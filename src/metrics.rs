//! Prometheus metrics: every family in this instance's own Registry, one method per event.
//! Label values are resolved once at start-up so the hot path touches only atomics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::config::Color;

/// What became of one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageResult {
    Counted,
    Duplicate,
    Failed,
}

pub struct Metrics {
    registry: Registry,
    connections_active: IntGauge,
    connections_opened: IntCounter,
    /// `connections_closed_total` by its `reason` label.
    closed: Vec<(&'static str, IntCounter)>,
    /// `upgrades_rejected_total` by its `reason` label.
    rejected: Vec<(&'static str, IntCounter)>,
    counted: IntCounter,
    duplicate: IntCounter,
    failed: IntCounter,
    message_duration: Histogram,
    heartbeat_fanout: Histogram,
    sessions_created: IntCounter,
    sessions_resumed: IntCounter,
    redis_errors: IntCounter,
    draining: IntGauge,
    drain_started: Gauge,
    ready: IntGauge,
    /// `redis_primary_info{topology, primary}`: 1 for each primary in use.
    redis_primary: IntGaugeVec,
}

/// The settings alert rules compare against, exported as gauges once at start-up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// MAX_CONNECTIONS; `None` (no cap) is exported as 0.
    pub max_connections: Option<usize>,
    pub drain_timeout: Duration,
    /// DESIRED_REPLICAS: instances of this color the deployment runs; 0 when not told.
    pub desired_replicas: u32,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// The configured limits as constant gauges, so rules compare a level with its own limit.
fn register_settings(r: &Registry, settings: Settings) {
    let gauge = |name: &str, help: &str, value: i64| {
        register(r, IntGauge::new(name, help).expect("valid")).set(value);
    };
    gauge(
        "max_connections",
        "MAX_CONNECTIONS, the most connections this instance holds; 0 when uncapped",
        settings
            .max_connections
            .map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)),
    );
    gauge(
        "drain_timeout_seconds",
        "DRAIN_TIMEOUT_SECS, the longest a drain may take",
        i64::try_from(settings.drain_timeout.as_secs()).unwrap_or(i64::MAX),
    );
    gauge(
        "desired_replicas",
        "DESIRED_REPLICAS, instances of this color the deployment runs; 0 when not told",
        i64::from(settings.desired_replicas),
    );
}

impl Metrics {
    /// The metrics of an instance of `color`; every reason a connection may close for and an
    /// upgrade may be refused for is pre-registered, so each is exposed (as 0) before it happens.
    pub fn new(
        color: Color,
        settings: Settings,
        close_reasons: &[&'static str],
        rejections: &[&'static str],
    ) -> Self {
        let registry = Registry::new_custom(Some("switchyard".into()), None).expect("valid prefix");
        let r = &registry;
        register_settings(r, settings);
        let build = register(
            r,
            IntGaugeVec::new(
                Opts::new("build_info", "Build and deployment of this instance"),
                &["color", "version"],
            )
            .expect("valid"),
        );
        build
            .with_label_values(&[color.as_str(), env!("CARGO_PKG_VERSION")])
            .set(1);
        let closed_vec = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "connections_closed_total",
                    "WebSocket connections closed, by reason",
                ),
                &["reason"],
            )
            .expect("valid"),
        );
        let rejected_vec = register(
            r,
            IntCounterVec::new(
                Opts::new(
                    "upgrades_rejected_total",
                    "WebSocket upgrades refused, by reason",
                ),
                &["reason"],
            )
            .expect("valid"),
        );
        let messages = register(
            r,
            IntCounterVec::new(
                Opts::new("messages_total", "Client messages, by result"),
                &["result"],
            )
            .expect("valid"),
        );
        let sessions = register(
            r,
            IntCounterVec::new(
                Opts::new("sessions_total", "Sessions opened, created or resumed"),
                &["kind"],
            )
            .expect("valid"),
        );
        Metrics {
            connections_active: register(
                r,
                IntGauge::new("connections_active", "Open WebSocket connections").expect("valid"),
            ),
            connections_opened: register(
                r,
                IntCounter::new("connections_opened_total", "WebSocket connections opened")
                    .expect("valid"),
            ),
            closed: close_reasons
                .iter()
                .map(|&reason| (reason, closed_vec.with_label_values(&[reason])))
                .collect(),
            rejected: rejections
                .iter()
                .map(|&reason| (reason, rejected_vec.with_label_values(&[reason])))
                .collect(),
            counted: messages.with_label_values(&["counted"]),
            duplicate: messages.with_label_values(&["duplicate"]),
            failed: messages.with_label_values(&["failed"]),
            message_duration: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "message_duration_seconds",
                        "From a client message read to its reply sent",
                    )
                    .buckets(vec![
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                        0.25, 1.0,
                    ]),
                )
                .expect("valid"),
            ),
            heartbeat_fanout: register(
                r,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "heartbeat_fanout_seconds",
                        "From a heartbeat's broadcast to its last delivery to a socket",
                    )
                    .buckets(vec![
                        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ]),
                )
                .expect("valid"),
            ),
            sessions_created: sessions.with_label_values(&["created"]),
            sessions_resumed: sessions.with_label_values(&["resumed"]),
            redis_errors: register(
                r,
                IntCounter::new("redis_errors_total", "Failed store calls").expect("valid"),
            ),
            draining: register(
                r,
                IntGauge::new("draining", "1 while this instance drains").expect("valid"),
            ),
            drain_started: register(
                r,
                Gauge::new(
                    "drain_started_timestamp_seconds",
                    "When this instance began to drain (Unix time); 0 before",
                )
                .expect("valid"),
            ),
            ready: register(
                r,
                IntGauge::new(
                    "ready",
                    "1 when this instance is ready for traffic, as /readyz would answer at this scrape",
                )
                .expect("valid"),
            ),
            redis_primary: register(
                r,
                IntGaugeVec::new(
                    Opts::new(
                        "redis_primary_info",
                        "The Redis topology and the primary (or cluster primaries) in use",
                    ),
                    &["topology", "primary"],
                )
                .expect("valid"),
            ),
            registry,
        }
    }

    /// A place in the hub was taken (an upgrade under way or a connection open).
    pub fn connection_registered(&self) {
        self.connections_active.inc();
    }

    pub fn connection_unregistered(&self) {
        self.connections_active.dec();
    }

    pub fn connection_opened(&self) {
        self.connections_opened.inc();
    }

    /// Counts a close under its pre-registered `reason` label.
    pub fn connection_closed(&self, reason: &str) {
        if let Some((_, counter)) = self.closed.iter().find(|(r, _)| *r == reason) {
            counter.inc();
        }
    }

    /// Counts a refused upgrade under its pre-registered `reason` label.
    pub fn upgrade_rejected(&self, reason: &str) {
        if let Some((_, counter)) = self.rejected.iter().find(|(r, _)| *r == reason) {
            counter.inc();
        }
    }

    pub fn session_opened(&self, resumed: bool) {
        if resumed {
            &self.sessions_resumed
        } else {
            &self.sessions_created
        }
        .inc();
    }

    pub fn message_handled(&self, result: MessageResult, took: Duration) {
        match result {
            MessageResult::Counted => self.counted.inc(),
            MessageResult::Duplicate => self.duplicate.inc(),
            MessageResult::Failed => self.failed.inc(),
        }
        self.message_duration.observe(took.as_secs_f64());
    }

    pub fn store_failed(&self) {
        self.redis_errors.inc();
    }

    pub fn heartbeat_fanned_out(&self, took: Duration) {
        self.heartbeat_fanout.observe(took.as_secs_f64());
    }

    /// Draining from now on: the flag, and the time it began.
    pub fn set_draining(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.drain_started.set(now.as_secs_f64());
        self.draining.set(1);
    }

    /// The readiness `/readyz` just answered (or a scrape just evaluated).
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The primaries now in use replace those shown before.
    pub fn set_redis_primaries(&self, topology: &str, primaries: &[String]) {
        self.redis_primary.reset();
        for primary in primaries {
            self.redis_primary
                .with_label_values(&[topology, primary.as_str()])
                .set(1);
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding cannot fail");
        String::from_utf8(out).expect("exposition is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_in_the_design_is_exposed() {
        let settings = Settings {
            max_connections: Some(500),
            drain_timeout: Duration::from_secs(25),
            desired_replicas: 3,
        };
        let metrics = Metrics::new(Color::Green, settings, &["draining"], &["draining"]);
        metrics.connection_registered();
        metrics.connection_opened();
        metrics.connection_closed("draining");
        metrics.connection_unregistered();
        metrics.message_handled(MessageResult::Counted, Duration::from_millis(1));
        let text = metrics.render();
        for family in [
            "switchyard_connections_active 0",
            "switchyard_connections_opened_total 1",
            "switchyard_connections_closed_total{reason=\"draining\"} 1",
            "switchyard_messages_total{result=\"counted\"} 1",
            "switchyard_message_duration_seconds_count 1",
            "switchyard_heartbeat_fanout_seconds_count 0",
            "switchyard_sessions_total{kind=\"created\"} 0",
            "switchyard_redis_errors_total 0",
            "switchyard_draining 0",
            "switchyard_drain_started_timestamp_seconds 0",
            "switchyard_ready 0",
            "switchyard_max_connections 500",
            "switchyard_drain_timeout_seconds 25",
            "switchyard_desired_replicas 3",
            "switchyard_upgrades_rejected_total{reason=\"draining\"} 0",
            "switchyard_build_info{color=\"green\"",
        ] {
            assert!(text.contains(family), "missing {family} in\n{text}");
        }
    }

    #[test]
    fn a_drain_records_when_it_began() {
        let metrics = Metrics::new(Color::Blue, Settings::default(), &[], &[]);
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        metrics.set_draining();
        let text = metrics.render();
        let started: f64 = text
            .lines()
            .find_map(|line| line.strip_prefix("switchyard_drain_started_timestamp_seconds "))
            .expect("the gauge")
            .parse()
            .expect("a number");
        assert!(
            started >= before.floor() && started < before + 60.0,
            "{started}"
        );
        assert!(text.contains("switchyard_draining 1"), "{text}");
        assert!(text.contains("switchyard_max_connections 0"), "{text}");
    }
}
