//! Prometheus metrics: every family in this instance's own Registry, one method per event.
//! Label values are resolved once at start-up so the hot path touches only atomics.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
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
    /// `redis_primary_info{topology, primary}`: 1 for each primary in use.
    redis_primary: IntGaugeVec,
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

impl Metrics {
    /// The metrics of an instance of `color`; every reason a connection may close for and an
    /// upgrade may be refused for is pre-registered, so each is exposed (as 0) before it happens.
    pub fn new(color: Color, close_reasons: &[&'static str], rejections: &[&'static str]) -> Self {
        let registry = Registry::new_custom(Some("switchyard".into()), None).expect("valid prefix");
        let r = &registry;
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

    pub fn set_draining(&self) {
        self.draining.set(1);
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
        let metrics = Metrics::new(Color::Green, &["draining"], &["draining"]);
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
            "switchyard_upgrades_rejected_total{reason=\"draining\"} 0",
            "switchyard_build_info{color=\"green\"",
        ] {
            assert!(text.contains(family), "missing {family} in\n{text}");
        }
    }
}
