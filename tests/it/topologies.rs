//! Sentinel and Cluster topologies against real processes on loopback: the configuration
//! contract, the store contract, migrations, readiness and metrics naming the primaries, and a
//! primary killed (SIGKILL) while clients keep the resend rule — every acknowledged message is
//! counted exactly once, and acknowledgements resume within seconds.

use std::net::SocketAddr;
use std::time::Duration;

use redis::AsyncCommands;
use switchyard::config::{NodeAuth, RedisConfig, StoreConfig, Topology};
use switchyard::store::{Applied, SessionStore, StoreError, contract};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::support::binary::run_command;
use crate::support::topology::{MASTER_NAME, TestCluster, TestSentinel};
use crate::support::{Sender, TestBinary, within};

/// REDIS_TIMEOUT_MS of the servers and stores here.
const STORE_TIMEOUT_MS: u64 = 500;
/// Clients sending through a failover.
const CLIENTS: usize = 30;
/// Acknowledgements must resume this soon after the kill (Sentinel's down-after is 1 s).
const RECOVERY_BOUND: Duration = Duration::from_secs(10);

fn sentinel_config(sentinel: &TestSentinel) -> RedisConfig {
    let topology = Topology::sentinel(&sentinel.addrs(), MASTER_NAME.to_owned()).expect("valid");
    RedisConfig::with_topology(topology, STORE_TIMEOUT_MS, None).expect("valid")
}

fn cluster_config(cluster: &TestCluster) -> RedisConfig {
    let topology = Topology::cluster(&cluster.addrs()).expect("valid");
    RedisConfig::with_topology(topology, STORE_TIMEOUT_MS, None).expect("valid")
}

fn store(config: &RedisConfig) -> SessionStore {
    SessionStore::build(&StoreConfig::Redis(config.clone()), Duration::from_secs(60))
        .expect("store")
}

#[tokio::test]
async fn a_variable_of_another_topology_is_refused_by_name() {
    for (env, variable) in [
        (
            vec![("REDIS_SENTINELS", "127.0.0.1:26379")],
            "REDIS_SENTINELS",
        ),
        (
            vec![
                ("REDIS_TOPOLOGY", "sentinel"),
                ("REDIS_CLUSTER_NODES", "127.0.0.1:7000"),
            ],
            "REDIS_CLUSTER_NODES",
        ),
        (
            vec![
                ("REDIS_TOPOLOGY", "cluster"),
                ("REDIS_URL", "redis://127.0.0.1:6379"),
            ],
            "REDIS_URL",
        ),
        (vec![("REDIS_TOPOLOGY", "sentinel")], "REDIS_SENTINELS"),
        (
            vec![
                ("REDIS_TOPOLOGY", "cluster"),
                ("REDIS_CLUSTER_NODES", "127.0.0.1"),
            ],
            "REDIS_CLUSTER_NODES",
        ),
    ] {
        for command in ["serve", "migrate"] {
            let (status, output) = run_command(&[command], &env).await;
            assert_eq!(status.code(), Some(2), "{command} {env:?}: {output}");
            assert!(output.contains(variable), "{command} {env:?}: {output}");
        }
    }
}

#[tokio::test]
async fn check_config_names_the_topology_and_hides_passwords() {
    // Nothing listens on these: --check-config connects to nothing.
    let env = [
        ("REDIS_TOPOLOGY", "sentinel"),
        (
            "REDIS_SENTINELS",
            "sentinel-0.example:26379,sentinel-1.example:26379",
        ),
        ("REDIS_PASSWORD", "node-secret"),
        ("COLOR", "green"),
    ];
    let (status, output) = run_command(&["serve", "--check-config"], &env).await;
    assert!(status.success(), "{output}");
    assert!(output.contains("REDIS_TOPOLOGY=sentinel"), "{output}");
    assert!(output.contains("sentinel-1.example:26379"), "{output}");
    assert!(output.contains("color green"), "{output}");
    assert!(!output.contains("node-secret"), "{output}");
    let mut refused = env.to_vec();
    refused.push(("REDIS_URL", "redis://redis:6379"));
    let (status, output) = run_command(&["serve", "--check-config"], &refused).await;
    assert_eq!(status.code(), Some(2), "{output}");
    assert!(output.contains("REDIS_URL"), "{output}");
}

/// Every store contract, then the 0001 import (old keys written through `write_old`).
async fn store_contract_and_migration(
    config: &RedisConfig,
    mut old: impl redis::aio::ConnectionLike + Send + Sync,
) {
    let store = store(config);
    contract::unknown_or_absent_ids_open_new_sessions(&store).await;
    contract::messages_count_and_resume_keeps_the_count(&store).await;
    contract::the_seq_rule_is_gapless(&store).await;
    contract::a_missing_session_is_never_recreated(&store).await;
    contract::refresh_keeps_live_sessions(&store).await;

    let ids: Vec<uuid::Uuid> = (0..40).map(|_| uuid::Uuid::new_v4()).collect();
    for (n, id) in ids.iter().enumerate() {
        let _: () = old
            .set_ex(format!("session:{id}:count"), n, 600)
            .await
            .expect("SET an old session");
    }
    assert_eq!(switchyard::migrate::run(config).await.expect("migrate"), 1);
    for (n, id) in ids.iter().enumerate() {
        let opened = store.open(Some(*id)).await.expect("open");
        assert!(opened.resumed, "{id} was imported");
        assert_eq!(opened.count, n as u64);
    }
    assert_eq!(
        switchyard::migrate::run(config)
            .await
            .expect("migrate again"),
        0,
        "recorded once"
    );
    assert!(
        store
            .applied_migrations()
            .await
            .expect("read")
            .expect("redis")
            .contains("0001_import_django_sessions")
    );
}

/// A store with `auth` keeps the contract; without the nodes' password its calls fail
/// naming the refusal (never a silent success).
async fn passwords_are_needed_and_used(config: RedisConfig, auth: NodeAuth) -> SessionStore {
    let without = store(&config);
    let error = without.open(None).await.expect_err("no password");
    assert!(
        error.to_string().contains("NOAUTH") || error.to_string().contains("AUTH"),
        "{error}"
    );
    let with = store(&config.with_auth(auth).expect("valid"));
    contract::messages_count_and_resume_keeps_the_count(&with).await;
    with
}

#[tokio::test]
async fn sentinel_nodes_and_sentinels_behind_passwords() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let sentinel = TestSentinel::start().await;
    sentinel
        .require_passwords("node-secret", "sentinel-secret")
        .await;
    let auth = NodeAuth {
        password: Some("node-secret".into()),
        db: 3,
        sentinel_password: Some("sentinel-secret".into()),
        ..NodeAuth::default()
    };
    let with = passwords_are_needed_and_used(sentinel_config(&sentinel), auth.clone()).await;
    // REDIS_DB is where the sessions go (the first node is the primary still).
    let id = with.open(None).await.expect("open").id;
    let primary = sentinel.nodes[0].port();
    for (db, expected) in [(3, true), (0, false)] {
        let mut node =
            redis::Client::open(format!("redis://:node-secret@127.0.0.1:{primary}/{db}"))
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect with the password");
        let exists: bool = node
            .exists(switchyard::store::session_key(id))
            .await
            .expect("EXISTS");
        assert_eq!(exists, expected, "the session in database {db}");
    }
    // The sentinels' password is needed too: without it no primary is named.
    let wrong = NodeAuth {
        sentinel_password: None,
        ..auth
    };
    let error = store(&sentinel_config(&sentinel).with_auth(wrong).expect("valid"))
        .open(None)
        .await
        .expect_err("the sentinels refuse");
    assert!(error.to_string().contains("sentinels"), "{error}");
}

#[tokio::test]
async fn cluster_nodes_behind_a_password() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let cluster = TestCluster::start().await;
    cluster.require_password("node-secret").await;
    let auth = NodeAuth {
        password: Some("node-secret".into()),
        ..NodeAuth::default()
    };
    passwords_are_needed_and_used(cluster_config(&cluster), auth).await;
}

#[tokio::test]
async fn sentinel_keeps_the_store_contract_and_migrates() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let sentinel = TestSentinel::start().await;
    let primary = sentinel.primary_port().await;
    let old = redis::Client::open(format!("redis://127.0.0.1:{primary}"))
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    store_contract_and_migration(&sentinel_config(&sentinel), old).await;
}

#[tokio::test]
async fn cluster_keeps_the_store_contract_and_migrates() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let cluster = TestCluster::start().await;
    let old = redis::cluster::ClusterClient::new(
        cluster
            .addrs()
            .split(',')
            .map(|a| format!("redis://{a}"))
            .collect::<Vec<_>>(),
    )
    .expect("cluster client")
    .get_async_connection()
    .await
    .expect("connect");
    store_contract_and_migration(&cluster_config(&cluster), old).await;
}

#[tokio::test]
async fn cluster_without_the_replica_acknowledgement_keeps_the_store_contract() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let cluster = TestCluster::start().await;
    let topology = Topology::cluster(&cluster.addrs()).expect("valid");
    let config = RedisConfig::with_topology(topology, STORE_TIMEOUT_MS, Some(0)).expect("valid");
    let store = store(&config);
    contract::messages_count_and_resume_keeps_the_count(&store).await;
    contract::the_seq_rule_is_gapless(&store).await;
    contract::a_missing_session_is_never_recreated(&store).await;
}

/// The readiness body and the primary-info metric name the topology and its primaries.
async fn assert_names_primaries(addr: SocketAddr, topology: &str, primaries: &[u16]) {
    let ready: serde_json::Value = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("GET /readyz")
        .json()
        .await
        .expect("JSON");
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["redis"]["topology"], topology, "{ready}");
    let mut named: Vec<String> = primaries.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    named.sort();
    assert_eq!(
        ready["redis"]["primaries"],
        serde_json::json!(named),
        "{ready}"
    );
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("text");
    for primary in &named {
        let sample = format!(
            "switchyard_redis_primary_info{{primary=\"{primary}\",topology=\"{topology}\"}} 1"
        );
        assert!(metrics.contains(&sample), "no {sample} in\n{metrics}");
    }
}

/// Clients sending numbered messages (the resend rule) until told to stop, each recording
/// when its first acknowledgement after the kill came.
struct Clients {
    stop: watch::Sender<bool>,
    running: JoinSet<(Sender, Option<Instant>)>,
    /// Rounds acknowledged so far, all clients together.
    rounds: watch::Receiver<u64>,
}

impl Clients {
    async fn start(addr: SocketAddr, killed: &watch::Receiver<Option<Instant>>) -> Self {
        let mut opening = JoinSet::new();
        for _ in 0..CLIENTS {
            opening.spawn(async move { Sender::open(addr).await.expect("open a session") });
        }
        let senders = within(
            Duration::from_secs(20),
            "every client to open",
            opening.join_all(),
        )
        .await;
        let (stop, stopped) = watch::channel(false);
        let (round_done, rounds) = watch::channel(0u64);
        let round_done = std::sync::Arc::new(round_done);
        let mut running = JoinSet::new();
        for mut sender in senders {
            let (stopped, killed) = (stopped.clone(), killed.clone());
            let round_done = round_done.clone();
            running.spawn(async move {
                let mut first_after_kill = None;
                loop {
                    let last_round = *stopped.borrow();
                    sender.queue(2);
                    let deadline = Instant::now() + Duration::from_secs(30);
                    if let Err(error) = sender.flush(2, deadline, None).await {
                        panic!("{error}; tally {:?}", sender.tally);
                    }
                    round_done.send_modify(|n| *n += 1);
                    let now = Instant::now();
                    if first_after_kill.is_none() && killed.borrow().is_some_and(|k| now > k) {
                        first_after_kill = Some(now);
                    }
                    if last_round {
                        return (sender, first_after_kill);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
        Clients {
            stop,
            running,
            rounds,
        }
    }

    /// Waits until every client (on average) has had two more rounds acknowledged: traffic
    /// flows now.
    async fn flowing(&self) {
        let target = *self.rounds.borrow() + 2 * CLIENTS as u64;
        let mut rounds = self.rounds.clone();
        within(
            Duration::from_secs(30),
            "the clients' messages to be acknowledged",
            rounds.wait_for(|n| *n >= target),
        )
        .await
        .expect("the clients run");
    }

    async fn finish(self) -> Vec<(Sender, Option<Instant>)> {
        self.stop.send_replace(true);
        within(
            Duration::from_secs(60),
            "every client to finish",
            self.running.join_all(),
        )
        .await
    }
}

/// Every session's count in the store equals its acknowledged messages, no claim was broken,
/// and acknowledgements resumed within RECOVERY_BOUND of `killed_at`.
async fn assert_exactly_once(
    config: &RedisConfig,
    finished: Vec<(Sender, Option<Instant>)>,
    killed_at: Instant,
) {
    let store = store(config);
    let mut recoveries = Vec::new();
    for (sender, first_after_kill) in &finished {
        let id = uuid::Uuid::parse_str(&sender.session_id).expect("uuid");
        let stored = store.open(Some(id)).await.expect("read the session");
        assert!(
            sender.tally.violations.is_empty(),
            "session {id}: {:?}; stored {stored:?}",
            sender.tally
        );
        assert_eq!(sender.acked, sender.numbered);
        assert!(stored.resumed, "session {id} survived");
        assert_eq!(
            (stored.count, stored.last_seq),
            (sender.acked as u64, sender.acked),
            "session {id}: stored vs acknowledged ({:?})",
            sender.tally
        );
        recoveries.push(first_after_kill.expect("acknowledged after the kill") - killed_at);
    }
    recoveries.sort();
    let (p50, max) = (
        recoveries[recoveries.len() / 2],
        recoveries[recoveries.len() - 1],
    );
    let errors: std::collections::BTreeMap<&str, u64> = finished
        .iter()
        .flat_map(|(s, _)| s.tally.errors.iter())
        .fold(Default::default(), |mut sum, (code, n)| {
            *sum.entry(code.as_str()).or_default() += n;
            sum
        });
    let messages: i64 = finished.iter().map(|(s, _)| s.acked).sum();
    eprintln!(
        "failover: {messages} messages in {} sessions, 0 lost, 0 doubled; first ack after the kill p50 {p50:?} max {max:?}; errors {errors:?}",
        finished.len()
    );
    assert!(
        max < RECOVERY_BOUND,
        "acknowledgements resumed only after {max:?}"
    );
}

fn server_env(topology: &str, variable: &'static str, addrs: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_TOPOLOGY", topology.to_owned()),
        (variable, addrs.to_owned()),
        ("REDIS_TIMEOUT_MS", STORE_TIMEOUT_MS.to_string()),
    ]
}

async fn serve(env: &[(&'static str, String)]) -> TestBinary {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestBinary::start(&env).await
}

#[tokio::test]
async fn a_sentinel_failover_loses_and_doubles_nothing() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let mut sentinel = TestSentinel::start().await;
    let config = sentinel_config(&sentinel);
    switchyard::migrate::run(&config).await.expect("migrate");
    let server = serve(&server_env(
        "sentinel",
        "REDIS_SENTINELS",
        &sentinel.addrs(),
    ))
    .await;
    let old = sentinel.primary_port().await;
    assert_names_primaries(server.addr, "sentinel", &[old]).await;

    let (killed, killed_rx) = watch::channel(None);
    let clients = Clients::start(server.addr, &killed_rx).await;
    clients.flowing().await; // traffic before the kill
    sentinel.kill_primary().await;
    let killed_at = Instant::now();
    killed.send_replace(Some(killed_at));
    let new = sentinel.failed_over_from(old).await;
    clients.flowing().await; // traffic after the failover
    let finished = clients.finish().await;
    assert_exactly_once(&config, finished, killed_at).await;
    assert_names_primaries(server.addr, "sentinel", &[new]).await;
}

#[tokio::test]
async fn a_cluster_primary_killed_loses_and_doubles_nothing() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let mut cluster = TestCluster::start().await;
    let config = cluster_config(&cluster);
    switchyard::migrate::run(&config).await.expect("migrate");
    let server = serve(&server_env(
        "cluster",
        "REDIS_CLUSTER_NODES",
        &cluster.addrs(),
    ))
    .await;
    assert_names_primaries(server.addr, "cluster", &cluster.primaries().await).await;

    let (killed, killed_rx) = watch::channel(None);
    let clients = Clients::start(server.addr, &killed_rx).await;
    clients.flowing().await; // traffic before the kill
    let index = cluster.kill_a_primary().await;
    let killed_at = Instant::now();
    killed.send_replace(Some(killed_at));
    cluster.failed_over_from(index).await;
    // The promoted replica has no replica of its own until the old primary rejoins: until
    // then its writes cannot be acknowledged by REDIS_MIN_REPLICAS_ACKED=1.
    cluster.rejoin(index).await;
    clients.flowing().await; // traffic after the failover
    let finished = clients.finish().await;
    assert_exactly_once(&config, finished, killed_at).await;
    assert_names_primaries(server.addr, "cluster", &cluster.primaries().await).await;
}

/// The replica acknowledgement asks only the primary that applied a write: with one shard's
/// replica gone, that shard's writes are not acknowledged (`outcome_unknown`, resent by the
/// client), and the other shards' writes are (with one `WAIT` to every primary they were not).
#[tokio::test]
async fn a_shard_without_replica_holds_up_only_its_own_acknowledgements() {
    let _one = crate::support::ONE_HEAVY_TEST_AT_A_TIME.lock().await;
    let mut cluster = TestCluster::start().await;
    let store = store(&cluster_config(&cluster));
    let mut sessions = Vec::new();
    for _ in 0..24 {
        let id = store.open(None).await.expect("open").id;
        let port = cluster.primary_holding(&format!("session:{{{id}}}")).await;
        sessions.push((id, port));
    }
    let broken = sessions[0].1;
    let (stalled, _) = sessions[0];
    let (healthy, _) = *sessions
        .iter()
        .find(|(_, port)| *port != broken)
        .expect("24 new sessions fall on more than one of 3 shards");
    cluster.kill_the_replica_of(broken).await;

    assert_eq!(
        store.apply(healthy, Some(1)).await.expect("acknowledged"),
        Applied::Counted { count: 1 }
    );
    let unacked = store.apply(stalled, Some(1)).await;
    assert!(
        matches!(&unacked, Err(StoreError::OutcomeUnknown(_))),
        "{unacked:?}"
    );
    // Resent with the same seq: counted once, still not acknowledged.
    let resent = store.apply(stalled, Some(1)).await;
    assert!(
        matches!(&resent, Err(StoreError::OutcomeUnknown(_))),
        "{resent:?}"
    );
    // The healthy shard goes on.
    assert_eq!(
        store.apply(healthy, Some(2)).await.expect("acknowledged"),
        Applied::Counted { count: 2 }
    );
}
