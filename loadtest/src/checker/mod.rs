//! The one checker of "clients keep going through a deploy or a failover, and nothing is lost
//! or doubled", used by every end-to-end test (through scripts/e2e-lib.sh) and by the
//! `promote` benchmark.
//!
//! Each client opens a session, then sends numbered messages (`{"seq": n}`, gapless) one at a
//! time. When its connection closes it reconnects with its session_id; the session frame's
//! last_seq acknowledges the message in flight if it was applied, else it is resent with the
//! same seq, as it is after `store_unavailable` or `outcome_unknown` (the resend rule of
//! [`action`]). A session that is gone (`session_expired`, or a resume that opens a new
//! session) is reported and started over knowingly. When stopped, each client finishes its
//! message in flight and closes; then every session's count in Redis is compared with what
//! was acknowledged to it.

mod action;
mod counts;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

pub(crate) use self::action::{Action, action};
pub(crate) use self::counts::Counts;
use crate::Common;
use crate::client::{Client, Target};
use crate::report::{Progress, histogram, latency, record};

/// Pause before retrying a failed connect or resending after a store error.
const RETRY_DELAY: Duration = Duration::from_millis(50);
/// How long clients may take, once stopped, to finish their message in flight.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);
/// Problems kept for the report.
const PROBLEMS_KEPT: usize = 10;

/// Counters the scripts watch while the clients run.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Clients that have opened their first session.
    pub(crate) connected: AtomicU64,
    pub(crate) closes: AtomicU64,
    pub(crate) failed_connects: AtomicU64,
    pub(crate) acked: AtomicU64,
}

impl Live {
    pub(crate) fn snapshot(&self) -> Value {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        json!({
            "connected": get(&self.connected),
            "closes": get(&self.closes),
            "failed_connects": get(&self.failed_connects),
            "acked": get(&self.acked),
        })
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct Outcome {
    /// The session it holds; empty when it holds none (just started over, or never opened).
    session: String,
    /// The last seq acknowledged to it: the session's count must equal it.
    acked: u64,
    /// Stopped without finishing its message in flight (the server never answered it).
    unfinished: bool,
    connects: u64,
    failed_connects: u64,
    reconnects: u64,
    not_resumed: u64,
    expired: u64,
    wrong_counts: u64,
    duplicates: u64,
    store_errors: u64,
    closes: BTreeMap<u16, u64>,
    reconnect_latency: Vec<Duration>,
    /// The longest time between two acknowledgements (a promote's or a failover's stall).
    longest_ack_gap: Duration,
    problems: Vec<String>,
}

impl Outcome {
    fn problem(&mut self, what: String) {
        self.wrong_counts += 1;
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(what);
        }
    }
}

/// One client's state while it runs.
struct Runner {
    target: Target,
    i: usize,
    interval: Duration,
    /// When the clients were told to stop (unset while they run).
    stopped_at: Arc<OnceLock<Instant>>,
    live: Arc<Live>,
    progress: Progress,
    outcome: Outcome,
    /// The seq sent and not yet acknowledged.
    pending: Option<u64>,
    last_ack: Option<Instant>,
}

impl Runner {
    fn stopping(&self) -> bool {
        self.stopped_at.get().is_some()
    }

    fn gave_up(&self) -> bool {
        self.stopped_at
            .get()
            .is_some_and(|at| at.elapsed() > FINISH_TIMEOUT)
    }

    fn ack(&mut self, seq: u64) {
        let now = Instant::now();
        if let Some(last) = self.last_ack.replace(now) {
            self.outcome.longest_ack_gap = self.outcome.longest_ack_gap.max(now - last);
        }
        self.outcome.acked = seq;
        self.pending = None;
        self.live.acked.fetch_add(1, Ordering::Relaxed);
        self.progress.add(1);
    }

    fn start_over(&mut self) {
        self.outcome.session.clear();
        self.outcome.acked = 0;
        self.pending = None;
    }

    fn closed(&mut self, code: u16) -> Instant {
        *self.outcome.closes.entry(code).or_default() += 1;
        self.live.closes.fetch_add(1, Ordering::Relaxed);
        Instant::now()
    }

    async fn run(mut self) -> Outcome {
        let mut closed_at: Option<Instant> = None;
        loop {
            if (self.stopping() && self.pending.is_none()) || self.outcome.unfinished {
                return self.outcome;
            }
            if self.gave_up() {
                self.outcome.unfinished = true;
                return self.outcome;
            }
            let resume = (!self.outcome.session.is_empty()).then(|| self.outcome.session.clone());
            let (mut client, session) =
                match Client::open(&self.target, self.i, resume.as_deref()).await {
                    Ok(opened) => opened,
                    Err(error) => {
                        self.outcome.failed_connects += 1;
                        self.live.failed_connects.fetch_add(1, Ordering::Relaxed);
                        if self.outcome.failed_connects == 1 {
                            self.outcome
                                .problems
                                .push(format!("connect failed: {error:#}"));
                        }
                        tokio::time::sleep(RETRY_DELAY).await;
                        continue;
                    }
                };
            self.outcome.connects += 1;
            if self.outcome.connects == 1 {
                self.live.connected.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(at) = closed_at.take() {
                self.outcome.reconnects += 1;
                self.outcome.reconnect_latency.push(at.elapsed());
            }
            if let Some(asked) = &resume
                && (!session.resumed || &session.id != asked)
            {
                self.outcome.not_resumed += 1;
                self.outcome.problem(format!("session {asked} not resumed"));
                // Gone: start over knowingly; the lost session is not compared with Redis.
                self.start_over();
            }
            self.outcome.session = session.id.clone();
            if let Some(seq) = self.pending.filter(|seq| session.last_seq >= *seq) {
                // Applied before the connection closed; only its reply was lost.
                self.ack(seq);
            }
            if session.count != self.outcome.acked {
                let expected = self.outcome.acked;
                self.outcome.problem(format!(
                    "session {} opened with count {}, expected {expected}",
                    session.id, session.count
                ));
            }
            match self.converse(&mut client).await {
                Ok(()) => {
                    // Closing is a courtesy: the verdict does not depend on it.
                    let _ = client.ws.close(None).await;
                    return self.outcome;
                }
                Err(Some(code)) => closed_at = Some(self.closed(code)),
                Err(None) => {}
            }
        }
    }

    /// Sends numbered messages on one connection until stopped (`Ok`), closed (`Err(code)`)
    /// or the session must be started over (`Err(None)`).
    async fn converse(&mut self, client: &mut Client) -> Result<(), Option<u16>> {
        loop {
            let seq = match self.pending {
                Some(seq) => seq,
                None if self.stopping() => return Ok(()),
                None => self.outcome.acked + 1,
            };
            self.pending = Some(seq);
            let reply = match client.send(seq).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(code)) => return Err(Some(code)),
                Err(_) => return Err(Some(1006)),
            };
            match action(&reply, seq) {
                Action::Ack => {
                    if reply["duplicate"] == true {
                        self.outcome.duplicates += 1;
                    }
                    if reply["count"] != seq {
                        self.outcome
                            .problem(format!("seq {seq} answered with count {}", reply["count"]));
                    }
                    self.ack(seq);
                    tokio::time::sleep(self.interval).await;
                }
                Action::Resend => {
                    self.outcome.store_errors += 1;
                    if self.gave_up() {
                        return Err(None);
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                Action::StartOver => {
                    self.outcome.expired += 1;
                    let id = self.outcome.session.clone();
                    self.outcome.problem(format!("session {id} expired"));
                    self.start_over();
                    return Err(None);
                }
                Action::Report => {
                    // Nothing sensible follows for this client: it stops, and the verdict
                    // fails on it.
                    self.outcome.problem(format!("sent seq {seq}, got {reply}"));
                    self.outcome.unfinished = true;
                    return Ok(());
                }
            }
        }
    }
}

/// N clients running until stopped.
pub(crate) struct Fleet {
    clients: usize,
    stopped_at: Arc<OnceLock<Instant>>,
    live: Arc<Live>,
    progress: Progress,
    tasks: Vec<JoinHandle<Outcome>>,
}

impl Fleet {
    /// Starts `common.connections` clients, each sending a message every `interval`.
    pub(crate) async fn start(common: &Common, interval: Duration) -> anyhow::Result<Self> {
        let target = Target::resolve(common).await?;
        let stopped_at = Arc::new(OnceLock::new());
        let live = Arc::new(Live::default());
        let progress = Progress::start("messages acknowledged", 0);
        let tasks = (0..common.connections)
            .map(|i| {
                tokio::spawn(
                    Runner {
                        target: target.clone(),
                        i,
                        interval,
                        stopped_at: stopped_at.clone(),
                        live: live.clone(),
                        progress: progress.clone(),
                        outcome: Outcome::default(),
                        pending: None,
                        last_ack: None,
                    }
                    .run(),
                )
            })
            .collect();
        Ok(Fleet {
            clients: common.connections,
            stopped_at,
            live,
            progress,
            tasks,
        })
    }

    pub(crate) fn live(&self) -> &Live {
        &self.live
    }

    /// Stops every client, waits for each to finish its message in flight (at most
    /// FINISH_TIMEOUT), and compares every session's count in `counts` with what was
    /// acknowledged to it.
    pub(crate) async fn finish(self, counts: &Counts) -> anyhow::Result<Value> {
        self.stopped_at.get_or_init(Instant::now);
        let mut outcomes = Vec::with_capacity(self.tasks.len());
        for task in self.tasks {
            outcomes.push(task.await?);
        }
        self.progress.stop();
        verdict(self.clients, &self.live, &outcomes, counts).await
    }
}

async fn verdict(
    clients: usize,
    live: &Live,
    outcomes: &[Outcome],
    counts: &Counts,
) -> anyhow::Result<Value> {
    // A client that holds no session (just started over) has nothing acknowledged; one that
    // did not finish its message in flight cannot be compared.
    let held: Vec<(&Outcome, Uuid)> = outcomes
        .iter()
        .filter(|outcome| !outcome.unfinished)
        .filter_map(|outcome| Some((outcome, Uuid::parse_str(&outcome.session).ok()?)))
        .collect();
    let ids: Vec<Uuid> = held.iter().map(|(_, id)| *id).collect();
    let stored = counts.fetch(&ids).await?;
    let (mut lost, mut doubled) = (0u64, 0u64);
    for ((outcome, _), stored) in held.iter().zip(&stored) {
        lost += outcome.acked.saturating_sub(*stored);
        doubled += stored.saturating_sub(outcome.acked);
    }
    let (mut reconnect, mut ack_gap) = (histogram(), histogram());
    let mut closes: BTreeMap<u16, u64> = BTreeMap::new();
    for outcome in outcomes {
        for took in &outcome.reconnect_latency {
            record(&mut reconnect, *took);
        }
        record(&mut ack_gap, outcome.longest_ack_gap);
        for (code, n) in &outcome.closes {
            *closes.entry(*code).or_default() += n;
        }
    }
    let sum = |f: fn(&Outcome) -> u64| outcomes.iter().map(f).sum::<u64>();
    let reconnects = sum(|o| o.reconnects);
    let not_resumed = sum(|o| o.not_resumed);
    let problems: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| &o.problems)
        .take(PROBLEMS_KEPT)
        .collect();
    Ok(json!({
        "clients": clients,
        "sessions": held.len(),
        "unfinished": outcomes.iter().filter(|o| o.unfinished).count(),
        "connects": sum(|o| o.connects),
        "failed_connects": live.failed_connects.load(Ordering::Relaxed),
        "reconnects": reconnects,
        "not_resumed": not_resumed,
        "resumed_fraction": if reconnects == 0 { 1.0 } else { (reconnects - not_resumed) as f64 / reconnects as f64 },
        "messages_acked": live.acked.load(Ordering::Relaxed),
        "duplicates_answered": sum(|o| o.duplicates),
        "store_errors": sum(|o| o.store_errors),
        "sessions_expired": sum(|o| o.expired),
        "wrong_counts": sum(|o| o.wrong_counts),
        "lost": lost,
        "doubled": doubled,
        "close_codes": closes,
        "reconnect_latency": latency(&reconnect),
        "longest_ack_gap": latency(&ack_gap),
        "problems": problems,
    }))
}
