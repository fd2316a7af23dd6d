//! Progress lines while a scenario runs, latency summaries, and the server's RSS.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// A counter printed once a second on stderr until stopped.
#[derive(Clone)]
pub(crate) struct Progress {
    done: Arc<AtomicU64>,
    stopped: Arc<AtomicBool>,
}

impl Progress {
    pub(crate) fn start(what: &'static str, total: usize) -> Self {
        let progress = Progress {
            done: Arc::default(),
            stopped: Arc::default(),
        };
        let (done, stopped) = (progress.done.clone(), progress.stopped.clone());
        let started = Instant::now();
        tokio::spawn(async move {
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            loop {
                tick.tick().await;
                if stopped.load(Ordering::Relaxed) {
                    return;
                }
                let now = done.load(Ordering::Relaxed);
                let of = if total > 0 {
                    format!("/{total}")
                } else {
                    String::new()
                };
                eprintln!(
                    "[{what}] {:>6.1} s  {now}{of}  {}/s",
                    started.elapsed().as_secs_f64(),
                    now - last
                );
                last = now;
            }
        });
        progress
    }

    pub(crate) fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }
}

/// A histogram of microseconds, 1 µs to 1 h.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

pub(crate) fn record(histogram: &mut Histogram<u64>, took: Duration) {
    histogram.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1));
}

/// p50, p99, p999 and max in milliseconds.
pub(crate) fn latency(histogram: &Histogram<u64>) -> Value {
    let ms = |q: f64| (histogram.value_at_quantile(q) as f64 / 1000.0 * 100.0).round() / 100.0;
    json!({
        "count": histogram.len(),
        "p50_ms": ms(0.5),
        "p99_ms": ms(0.99),
        "p999_ms": ms(0.999),
        "max_ms": (histogram.max() as f64 / 1000.0 * 100.0).round() / 100.0,
    })
}

/// Resident set size of a process in KiB, from /proc.
pub(crate) fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS for pid {pid}"))
}
