//! `promote`: clients through Traefik send numbered messages, reconnecting with their
//! session_id whenever closed (the message in flight is acknowledged by the session frame's
//! last_seq, or resent with the same seq), while a deploy command runs. A session that is gone
//! (`session_expired`) is started over knowingly and counted. Counts failed connects, resumes
//! and reconnect latency, then compares every session's count in Redis with what was
//! acknowledged (lost = fewer, doubled = more).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::store::session_key;
use uuid::Uuid;

use crate::Common;
use crate::client::{Client, Target};
use crate::report::{Progress, histogram, latency, record};

/// What one client saw.
#[derive(Default)]
struct Outcome {
    session: String,
    acked: u64,
    failed_connects: u64,
    reconnects: u64,
    not_resumed: u64,
    expired: u64,
    wrong_counts: u64,
    closes: BTreeMap<u16, u64>,
    reconnect_latency: Vec<Duration>,
}

async fn run_client(
    target: Target,
    i: usize,
    interval: Duration,
    stop: Arc<AtomicBool>,
    progress: Progress,
) -> Outcome {
    let mut outcome = Outcome::default();
    let mut closed_at: Option<Instant> = None;
    let mut pending: Option<u64> = None;
    loop {
        if stop.load(Ordering::Relaxed) && pending.is_none() {
            return outcome;
        }
        let resume = (!outcome.session.is_empty()).then(|| outcome.session.clone());
        let (mut client, session) = match Client::open(&target, i, resume.as_deref()).await {
            Ok(opened) => opened,
            Err(_) => {
                outcome.failed_connects += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        if let Some(at) = closed_at.take() {
            outcome.reconnects += 1;
            outcome.reconnect_latency.push(at.elapsed());
            if !session.resumed || Some(&session.id) != resume.as_ref() {
                outcome.not_resumed += 1;
            }
        }
        if !session.resumed {
            // A new session (counted above as not resumed when one was asked for): from zero.
            outcome.acked = 0;
            pending = None;
        }
        outcome.session = session.id.clone();
        if let Some(seq) = pending.filter(|seq| session.last_seq >= *seq) {
            // Applied before the connection closed; only its reply was lost.
            outcome.acked = seq;
            pending = None;
            progress.add(1);
        }
        if session.count != outcome.acked {
            outcome.wrong_counts += 1;
        }
        loop {
            let seq = match pending {
                Some(seq) => seq,
                None if stop.load(Ordering::Relaxed) => return outcome,
                None => outcome.acked + 1,
            };
            pending = Some(seq);
            match client.send_acked(seq).await {
                Ok(Ok(reply)) if reply["type"] == "count" && reply["seq"] == seq => {
                    if reply["count"] != seq {
                        outcome.wrong_counts += 1;
                    }
                    outcome.acked = seq;
                    pending = None;
                    progress.add(1);
                    tokio::time::sleep(interval).await;
                }
                Ok(Ok(reply)) if reply["code"] == "session_expired" => {
                    // Gone: a new session, from zero, knowingly.
                    outcome.expired += 1;
                    outcome.session.clear();
                    outcome.acked = 0;
                    pending = None;
                    break;
                }
                Ok(Ok(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(Err(code)) => {
                    *outcome.closes.entry(code).or_default() += 1;
                    closed_at = Some(Instant::now());
                    break;
                }
                Err(_) => {
                    *outcome.closes.entry(1006).or_default() += 1;
                    closed_at = Some(Instant::now());
                    break;
                }
            }
        }
    }
}

pub(crate) async fn promote(
    common: &Common,
    promote_cmd: &str,
    redis_url: &str,
    interval: Duration,
    settle: Duration,
) -> anyhow::Result<Value> {
    let target = Target::resolve(common).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Progress::start("promote: messages", 0);
    let tasks: Vec<_> = (0..common.connections)
        .map(|i| {
            tokio::spawn(run_client(
                target.clone(),
                i,
                interval,
                stop.clone(),
                progress.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(settle).await;
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(promote_cmd)
        .status()
        .await?;
    let promote_ms = started.elapsed().as_millis();
    tokio::time::sleep(settle).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    progress.stop();

    let redis = redis::Client::open(redis_url)?;
    let mut conn = redis.get_multiplexed_async_connection().await?;
    // A client whose session was just started over holds none (and has nothing acknowledged).
    let held: Vec<(&Outcome, Uuid)> = outcomes
        .iter()
        .filter_map(|outcome| Some((outcome, Uuid::parse_str(&outcome.session).ok()?)))
        .collect();
    let mut pipe = redis::pipe();
    for (_, id) in &held {
        pipe.hget(session_key(*id), "count");
    }
    let stored: Vec<Option<u64>> = pipe.query_async(&mut conn).await?;
    let (mut lost, mut doubled) = (0u64, 0u64);
    for ((outcome, _), stored) in held.iter().zip(&stored) {
        let stored = stored.unwrap_or(0);
        lost += outcome.acked.saturating_sub(stored);
        doubled += stored.saturating_sub(outcome.acked);
    }
    let mut reconnect = histogram();
    let mut closes: BTreeMap<u16, u64> = BTreeMap::new();
    for outcome in &outcomes {
        outcome
            .reconnect_latency
            .iter()
            .for_each(|took| record(&mut reconnect, *took));
        for (code, n) in &outcome.closes {
            *closes.entry(*code).or_default() += n;
        }
    }
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let reconnects = sum(|o| o.reconnects);
    let not_resumed = sum(|o| o.not_resumed);
    Ok(json!({
        "scenario": "promote",
        "connections": common.connections,
        "promote_exit_code": status.code(),
        "promote_ms": promote_ms,
        "messages_acked": sum(|o| o.acked),
        "failed_connects": sum(|o| o.failed_connects),
        "reconnects": reconnects,
        "resumed_fraction": if reconnects == 0 { 1.0 } else { (reconnects - not_resumed) as f64 / reconnects as f64 },
        "wrong_counts": sum(|o| o.wrong_counts),
        "sessions_expired": sum(|o| o.expired),
        "lost": lost,
        "doubled": doubled,
        "close_codes": closes,
        "reconnect_latency": latency(&reconnect),
    }))
}
