//! The fault suite: the real binary against a real redis-server, a few hundred clients that
//! keep the resend rule (support/sender.rs) while Redis is frozen, killed and restarted, the
//! server is killed, and all of it at random. Asserted: every message counted exactly once
//! (Redis's count == acknowledged sends, per session), every "not applied" reply really not
//! applied, readiness within the deadline, connected sessions never expire.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use tokio::sync::{Barrier, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::support::sender::Tally;
use crate::support::{Sender, TestBinary, TestRedis, WsClient, session_key, within};

/// REDIS_TIMEOUT_MS of the servers here: the one deadline of every store call.
const STORE_TIMEOUT_MS: u64 = 500;
/// What scheduling on a loaded test machine may add to a bounded answer: 300 clients and the
/// other tests share two cores here (seen: up to 640 ms for a 500 ms deadline). An unbounded
/// wait (what this guards against) takes seconds.
const MARGIN: Duration = Duration::from_millis(500);
/// Every client's messages must be acknowledged by then.
const FLUSH_DEADLINE: Duration = Duration::from_secs(30);

async fn server(redis: &TestRedis, extra: &[(&str, &str)]) -> TestBinary {
    redis.migrate().await;
    let url = redis.url();
    let timeout = STORE_TIMEOUT_MS.to_string();
    let env = [
        &[
            ("REDIS_URL", url.as_str()),
            ("REDIS_TIMEOUT_MS", timeout.as_str()),
        ],
        extra,
    ]
    .concat();
    TestBinary::start(&env).await
}

/// `n` senders on new sessions.
async fn open_senders(addr: SocketAddr, n: usize) -> Vec<Sender> {
    let mut opening = JoinSet::new();
    for _ in 0..n {
        opening.spawn(async move { Sender::open(addr).await.expect("open a session") });
    }
    within(
        Duration::from_secs(20),
        "every client to open",
        opening.join_all(),
    )
    .await
}

/// Senders sending bursts of pipelined messages until told to stop.
struct Clients {
    stop: watch::Sender<bool>,
    first_round: Arc<Barrier>,
    running: JoinHandle<Vec<Sender>>,
}

impl Clients {
    /// Each sender sends bursts of `burst` messages, 20 ms apart, until `finish`.
    fn start(senders: Vec<Sender>, burst: i64) -> Self {
        let (stop, stopped) = watch::channel(false);
        let first_round = Arc::new(Barrier::new(senders.len() + 1));
        let mut running = JoinSet::new();
        for mut sender in senders {
            let (stopped, first_round) = (stopped.clone(), Arc::clone(&first_round));
            running.spawn(async move {
                let deadline = Instant::now() + FLUSH_DEADLINE;
                for round in 0.. {
                    let last_round = *stopped.borrow();
                    sender.queue(burst);
                    sender.flush(burst, deadline, None).await.expect("flush");
                    if round == 0 {
                        first_round.wait().await;
                    }
                    if last_round {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                sender
            });
        }
        Clients {
            stop,
            first_round,
            running: tokio::spawn(running.join_all()),
        }
    }

    /// Returns once every sender has had its first burst acknowledged.
    async fn all_sending(&self) {
        within(
            Duration::from_secs(20),
            "every client's first burst",
            self.first_round.wait(),
        )
        .await;
    }

    /// Each sender sends one last burst and flushes; returns them all.
    async fn finish(self) -> Vec<Sender> {
        self.stop.send(true).expect("clients running");
        within(
            FLUSH_DEADLINE + Duration::from_secs(5),
            "every client to finish",
            self.running,
        )
        .await
        .expect("clients")
    }
}

/// Checks each sender against Redis and merges their tallies.
async fn verify(redis: &TestRedis, senders: &[Sender]) -> Tally {
    let mut connection = redis.connection().await;
    let mut total = Tally::default();
    for sender in senders {
        let key = session_key(&sender.session_id);
        let (count, last_seq): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
            .arg(&key)
            .arg("count")
            .arg("last_seq")
            .query_async(&mut connection)
            .await
            .expect("HMGET");
        assert_eq!(
            sender.acked, sender.numbered,
            "{}: all acknowledged",
            sender.session_id
        );
        assert_eq!(
            (count, last_seq),
            (Some(sender.acked), Some(sender.acked)),
            "{}: Redis holds exactly the acknowledged sends (0 lost, 0 doubled)",
            sender.session_id
        );
        total
            .violations
            .extend(sender.tally.violations.iter().cloned());
        for (code, n) in &sender.tally.errors {
            *total.errors.entry(code.clone()).or_default() += n;
        }
        total.reconnects += sender.tally.reconnects;
        total.slowest_reply = total.slowest_reply.max(sender.tally.slowest_reply);
    }
    assert!(
        total.violations.is_empty(),
        "broken claims: {:#?}",
        total.violations
    );
    total
}

async fn readiness(addr: SocketAddr) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let response = within(
        Duration::from_secs(5),
        "/readyz to answer",
        reqwest::get(format!("http://{addr}/readyz")),
    )
    .await
    .expect("GET /readyz");
    let status = response.status().as_u16();
    let body = response.json().await.expect("JSON body");
    (status, body, started.elapsed())
}

fn messages(senders: &[Sender]) -> i64 {
    senders.iter().map(|s| s.acked).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_loses_nothing_doubles_nothing_and_readiness_answers_in_time() {
    let _alone = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let redis = TestRedis::start().await;
    let app = server(&redis, &[]).await;
    assert_eq!(readiness(app.addr).await.0, 200);
    let clients = Clients::start(open_senders(app.addr, 300).await, 4);
    clients.all_sending().await;

    redis.freeze();
    let frozen = Instant::now();
    let mut probes = Vec::new();
    while frozen.elapsed() < Duration::from_millis(1500) {
        let (status, body, took) = readiness(app.addr).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("store_unavailable")),
            "{body}"
        );
        probes.push(took);
    }
    let upgrade = Instant::now();
    let refused = WsClient::try_connect(app.addr, None, None).await.err();
    let upgrade_took = upgrade.elapsed();
    redis.thaw();
    // Under load for a while after the thaw too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let senders = clients.finish().await;

    let tally = verify(&redis, &senders).await;
    let slowest_probe = probes.iter().max().copied().unwrap_or_default();
    println!(
        "frozen redis: {} clients, {} messages, errors {:?}, readyz during the freeze {:?}..{:?} \
         ({} probes), upgrade refused 503 in {upgrade_took:?}, slowest first reply of a round {:?} \
         (REDIS_TIMEOUT_MS={STORE_TIMEOUT_MS})",
        senders.len(),
        messages(&senders),
        tally.errors,
        probes.iter().min().copied().unwrap_or_default(),
        slowest_probe,
        probes.len(),
        tally.slowest_reply,
    );
    let deadline = Duration::from_millis(STORE_TIMEOUT_MS) + MARGIN;
    assert!(slowest_probe <= deadline, "readyz took {slowest_probe:?}");
    assert_eq!(
        refused,
        Some(503),
        "no session can be opened during the freeze"
    );
    assert!(
        upgrade_took <= deadline,
        "the refused upgrade took {upgrade_took:?}"
    );
    assert!(
        tally.slowest_reply <= deadline,
        "a reply took {:?}",
        tally.slowest_reply
    );
    assert!(
        tally.errors.contains_key("outcome_unknown"),
        "the freeze was met: {:?}",
        tally.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_and_restarted_redis_loses_nothing_and_doubles_nothing() {
    let _alone = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    // appendonly with appendfsync always: every write Redis acknowledged is on disk before
    // its reply, so a kill -9 loses nothing that was acknowledged.
    let mut redis = TestRedis::start_persistent().await;
    let app = server(&redis, &[]).await;
    let clients = Clients::start(open_senders(app.addr, 300).await, 4);
    clients.all_sending().await;

    redis.kill().await;
    // Down for 0.7 s under load, then under load again for 0.5 s after the restart.
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.restart().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let senders = clients.finish().await;

    let tally = verify(&redis, &senders).await;
    println!(
        "killed redis: {} clients, {} messages, errors {:?}",
        senders.len(),
        messages(&senders),
        tally.errors
    );
    assert!(
        tally.errors.contains_key("store_unavailable"),
        "the outage was met: {:?}",
        tally.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_kill_9_every_client_resumes_with_its_acknowledged_count() {
    let _alone = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let redis = TestRedis::start().await;
    let mut app = server(&redis, &[]).await;
    let mut senders = open_senders(app.addr, 300).await;
    let deadline = Instant::now() + FLUSH_DEADLINE;
    for sender in &mut senders {
        sender.queue(3);
    }
    let mut running = JoinSet::new();
    for mut sender in senders {
        running.spawn(async move {
            sender.flush(3, deadline, None).await.expect("flush");
            sender
        });
    }
    let mut senders = running.join_all().await;

    let port = app.addr.port().to_string();
    app.kill9().await;
    let app = server(&redis, &[("PORT", port.as_str())]).await;
    let mut resuming = JoinSet::new();
    for sender in senders.drain(..) {
        resuming.spawn(async move {
            let mut sender = sender;
            let session = sender.resume(deadline).await.expect("resume");
            assert_eq!(
                session["count"], sender.acked,
                "resumed with its acknowledged count"
            );
            sender.queue(2);
            sender.flush(2, deadline, None).await.expect("flush");
            sender
        });
    }
    let senders = within(
        FLUSH_DEADLINE,
        "every client to resume",
        resuming.join_all(),
    )
    .await;
    verify(&redis, &senders).await;
    assert!(senders.iter().all(|s| s.acked == 5));
    drop(app);
}

/// SplitMix64: a seeded generator, so a failing run can be replayed with FAULT_SEED.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_stalls_failures_and_drops_count_every_message_exactly_once() {
    let _alone = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let seed = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        });
    println!("randomized faults: FAULT_SEED={seed}");
    let mut redis = TestRedis::start_persistent().await;
    let app = server(&redis, &[]).await;
    let senders = open_senders(app.addr, 60).await;
    let deadline = Instant::now() + FLUSH_DEADLINE;
    let mut running = JoinSet::new();
    for (i, mut sender) in senders.into_iter().enumerate() {
        let mut rng = Rng(seed ^ (i as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        running.spawn(async move {
            for _ in 0..12 {
                sender.queue(1 + rng.below(8) as i64);
                let window = 1 + rng.below(8) as i64;
                let drop_after = (rng.below(10) == 0).then(|| rng.below(window as u64) as usize);
                sender
                    .flush(window, deadline, drop_after)
                    .await
                    .expect("flush");
                if rng.below(4) == 0 {
                    tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
                }
            }
            sender
        });
    }
    let mut rng = Rng(seed);
    let mut faults = Vec::new();
    let faults_until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < faults_until {
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        match rng.below(3) {
            0 => {
                let stall = Duration::from_millis(100 + rng.below(900));
                redis.freeze();
                tokio::time::sleep(stall).await;
                redis.thaw();
                faults.push(format!("freeze {stall:?}"));
            }
            1 => {
                redis.kill().await;
                let down = Duration::from_millis(rng.below(500));
                tokio::time::sleep(down).await;
                redis.restart().await;
                faults.push(format!("kill -9, down {down:?}"));
            }
            _ => faults.push("none".to_owned()),
        }
    }
    let senders = within(FLUSH_DEADLINE, "every client to finish", running.join_all()).await;
    let tally = verify(&redis, &senders).await;
    println!(
        "randomized faults (FAULT_SEED={seed}): {faults:?}; {} messages, errors {:?}, {} reconnects",
        messages(&senders),
        tally.errors,
        tally.reconnects
    );
}

#[tokio::test]
async fn a_connected_session_outlives_its_ttl_and_a_lost_one_is_never_restarted() {
    let redis = TestRedis::start().await;
    let app = server(
        &redis,
        &[("SESSION_TTL_SECS", "2"), ("HEARTBEAT_INTERVAL_SECS", "1")],
    )
    .await;
    let (mut client, session) = WsClient::open(app.addr, None).await;
    let id = session["session_id"].as_str().expect("id").to_owned();
    for seq in 1..=3 {
        assert_eq!(client.send_seq(seq).await["count"], seq);
    }
    // Idle and connected for 2.5 TTLs, reading heartbeats (which also keep the socket alive).
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(5) {
        let frame = client.next_reply_or_heartbeat().await;
        assert_eq!(frame["type"], "heartbeat", "{frame}");
    }
    assert_eq!(
        client.send_seq(4).await,
        serde_json::json!({"type": "count", "count": 4, "seq": 4})
    );

    // Lost under the connection (as a Redis that lost its data would): explicit, not restarted.
    let key = session_key(&id);
    let mut connection = redis.connection().await;
    let _: () = connection.del(&key).await.expect("DEL");
    assert_eq!(
        client.send_seq(5).await,
        serde_json::json!({"type": "error", "code": "session_expired", "seq": 5})
    );
    let exists: bool = connection.exists(&key).await.expect("EXISTS");
    assert!(!exists, "the message did not recreate the session");
    let (_again, fresh) = WsClient::open(app.addr, Some(&id)).await;
    assert_eq!(
        (&fresh["resumed"], &fresh["count"]),
        (&false.into(), &0.into())
    );
    assert_ne!(fresh["session_id"], id.as_str());
}
