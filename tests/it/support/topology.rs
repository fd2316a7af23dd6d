//! Replicated Redis deployments on loopback, every process owned by the test (killed on drop):
//! a Sentinel set (1 primary, 2 replicas, 3 `redis-sentinel`s) and a Cluster (3 primaries,
//! 3 replicas, made by `redis-cli --cluster create`). Every wait is bounded and polls the
//! state it waits for.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::redis::{TestRedis, free_port};
use super::within;

/// How long a deployment may take to form (replication, sentinel discovery, cluster gossip).
const FORM_TIMEOUT: Duration = Duration::from_secs(30);
/// Sentinel's and the cluster's failure detection: small, so a failover takes seconds.
const DOWN_AFTER_MS: &str = "1000";

/// The master name the sentinels monitor (REDIS_MASTER_NAME's default).
pub(crate) const MASTER_NAME: &str = "switchyard";

/// Faster full syncs, so replicas are up quickly.
fn replication_args() -> Vec<String> {
    [
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]
    .map(String::from)
    .to_vec()
}

async fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(Duration::from_secs(1)));
    let mut connection = client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    cmd.query_async(&mut connection).await
}

/// A field of `INFO <section>` on the node at `port` (`None` if unreachable or absent).
pub(crate) async fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let text: String = query(port, redis::cmd("INFO").arg(section)).await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// A field of `CLUSTER INFO` on the node at `port` (`None` if unreachable or absent).
async fn cluster_field(port: u16, field: &str) -> Option<String> {
    let text: String = query(port, redis::cmd("CLUSTER").arg("INFO")).await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .map(|value| value.trim().to_owned())
}

/// Puts every node behind `password`: replicas first learn it for replication (`masterauth`),
/// then every node requires it. `sentinels` (their ports) learn it first, so they never see a
/// refused PING and take the primary for down.
async fn require_password(nodes: &[TestRedis], sentinels: &[u16], password: &str) {
    for port in sentinels {
        let _: () = query(
            *port,
            redis::cmd("SENTINEL")
                .arg("SET")
                .arg(MASTER_NAME)
                .arg("auth-pass")
                .arg(password),
        )
        .await
        .expect("SENTINEL SET auth-pass");
    }
    for setting in ["masterauth", "requirepass"] {
        for node in nodes {
            let _: () = query(
                node.port(),
                redis::cmd("CONFIG").arg("SET").arg(setting).arg(password),
            )
            .await
            .expect("CONFIG SET");
        }
    }
}

/// Polls `check` every 50 ms until it holds (bounded by the caller's `within`).
async fn until<F, Fut>(mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while !check().await {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (FORM_TIMEOUT at most) until the primary on `port` counts `count` connected replicas.
async fn replicas_become(port: u16, count: usize, what: &str) {
    let count = count.to_string();
    within(
        FORM_TIMEOUT,
        what,
        until(|| async {
            info_field(port, "replication", "connected_slaves")
                .await
                .is_some_and(|n| n == count)
        }),
    )
    .await;
}

/// A `redis-sentinel` process and its configuration directory.
struct SentinelProcess {
    port: u16,
    child: Child,
    dir: PathBuf,
}

impl Drop for SentinelProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub(crate) struct TestSentinel {
    /// The nodes; the first is the primary at start.
    pub(crate) nodes: Vec<TestRedis>,
    sentinels: Vec<SentinelProcess>,
}

impl TestSentinel {
    /// 1 primary, 2 replicas in sync, 3 sentinels that know each other and the replicas.
    pub(crate) async fn start() -> Self {
        let primary = TestRedis::start_with(free_port(), replication_args()).await;
        let primary_port = primary.port();
        let mut nodes = vec![primary];
        for _ in 0..2 {
            let mut args = replication_args();
            args.extend([
                "--replicaof".into(),
                "127.0.0.1".into(),
                primary_port.to_string(),
            ]);
            nodes.push(TestRedis::start_with(free_port(), args).await);
        }
        replicas_become(primary_port, 2, "both replicas to sync").await;
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(start_sentinel(primary_port).await);
        }
        let ports: Vec<u16> = sentinels.iter().map(|s| s.port).collect();
        within(
            FORM_TIMEOUT,
            "the sentinels to know each other and the replicas",
            until(|| async {
                for port in &ports {
                    let others: redis::RedisResult<Vec<redis::Value>> = query(
                        *port,
                        redis::cmd("SENTINEL").arg("SENTINELS").arg(MASTER_NAME),
                    )
                    .await;
                    let replicas: redis::RedisResult<Vec<redis::Value>> = query(
                        *port,
                        redis::cmd("SENTINEL").arg("REPLICAS").arg(MASTER_NAME),
                    )
                    .await;
                    if !matches!((others, replicas), (Ok(o), Ok(r)) if o.len() == 2 && r.len() == 2)
                    {
                        return false;
                    }
                }
                true
            }),
        )
        .await;
        TestSentinel { nodes, sentinels }
    }

    /// REDIS_SENTINELS.
    pub(crate) fn addrs(&self) -> String {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every node requires `password` from now on; with `sentinel_password`, the sentinels
    /// require that one from their clients (the `default` user's password).
    pub(crate) async fn require_passwords(&self, password: &str, sentinel_password: &str) {
        let ports: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        require_password(&self.nodes, &ports, password).await;
        for port in ports {
            let _: () = query(
                port,
                redis::cmd("ACL")
                    .arg("SETUSER")
                    .arg("default")
                    .arg("resetpass")
                    .arg(format!(">{sentinel_password}")),
            )
            .await
            .expect("ACL SETUSER on a sentinel");
        }
    }

    /// The primary's port, as the first sentinel reports it.
    pub(crate) async fn primary_port(&self) -> u16 {
        let (_, port): (String, u16) = query(
            self.sentinels[0].port,
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER_NAME),
        )
        .await
        .expect("the sentinel answers");
        port
    }

    /// SIGKILLs the current primary; returns its port.
    pub(crate) async fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().await;
        let node = self
            .nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .expect("the primary is one of the nodes");
        node.kill().await;
        port
    }

    /// Waits until every sentinel names a primary other than `old` that has a replica in sync.
    pub(crate) async fn failed_over_from(&self, old: u16) -> u16 {
        within(FORM_TIMEOUT, "Sentinel to promote a replica", async {
            loop {
                let port = self.primary_port().await;
                if port != old
                    && info_field(port, "replication", "role").await.as_deref() == Some("master")
                    && info_field(port, "replication", "connected_slaves")
                        .await
                        .as_deref()
                        >= Some("1")
                {
                    return port;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }
}

async fn start_sentinel(primary_port: u16) -> SentinelProcess {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("switchyard-sentinel-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create sentinel dir");
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {port}\nbind 127.0.0.1\ndir {dir}\n\
             sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {MASTER_NAME} 5000\n\
             sentinel parallel-syncs {MASTER_NAME} 2\n",
            dir = dir.display()
        ),
    )
    .expect("write sentinel.conf");
    let child = Command::new("redis-sentinel")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-sentinel is installed (scripts/lib.sh ensure_redis installs it)");
    let sentinel = SentinelProcess { port, child, dir };
    within(
        Duration::from_secs(10),
        "redis-sentinel to answer",
        until(|| async { query::<String>(port, &redis::cmd("PING")).await.is_ok() }),
    )
    .await;
    sentinel
}

pub(crate) struct TestCluster {
    pub(crate) nodes: Vec<TestRedis>,
}

impl TestCluster {
    /// 3 primaries and 3 replicas, every slot covered, every replica in sync.
    pub(crate) async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let mut args = replication_args();
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    DOWN_AFTER_MS,
                ]
                .map(String::from),
            );
            nodes.push(TestRedis::start_with(free_port(), args).await);
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port()));
        }
        create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = within(FORM_TIMEOUT, "redis-cli --cluster create", create.output())
            .await
            .expect("redis-cli runs");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = TestCluster { nodes };
        within(
            FORM_TIMEOUT,
            "the cluster to be ok with every replica in sync",
            until(|| async {
                for node in &cluster.nodes {
                    let port = node.port();
                    if cluster_field(port, "cluster_state").await.as_deref() != Some("ok")
                        || cluster_field(port, "cluster_known_nodes").await.as_deref() != Some("6")
                    {
                        return false;
                    }
                    if info_field(port, "replication", "role").await.as_deref() == Some("slave")
                        && info_field(port, "replication", "master_link_status")
                            .await
                            .as_deref()
                            != Some("up")
                    {
                        return false;
                    }
                }
                true
            }),
        )
        .await;
        cluster
    }

    /// Every node requires `password` from now on.
    pub(crate) async fn require_password(&self, password: &str) {
        require_password(&self.nodes, &[], password).await;
    }

    /// REDIS_CLUSTER_NODES.
    pub(crate) fn addrs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The ports of the nodes that are primaries now.
    pub(crate) async fn primaries(&self) -> Vec<u16> {
        let mut primaries = Vec::new();
        for node in &self.nodes {
            if info_field(node.port(), "replication", "role")
                .await
                .as_deref()
                == Some("master")
            {
                primaries.push(node.port());
            }
        }
        primaries
    }

    /// SIGKILLs one primary; returns its index in `nodes`.
    pub(crate) async fn kill_a_primary(&mut self) -> usize {
        let port = self.primaries().await[0];
        let index = self
            .nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a node");
        self.nodes[index].kill().await;
        index
    }

    /// Waits until the cluster is ok again without the node at `index` among its primaries.
    pub(crate) async fn failed_over_from(&self, index: usize) {
        let dead = self.nodes[index].port();
        within(
            FORM_TIMEOUT,
            "the cluster to promote a replica",
            until(|| async {
                let alive: Vec<&TestRedis> =
                    self.nodes.iter().filter(|n| n.port() != dead).collect();
                let mut primaries = 0;
                for node in alive {
                    if cluster_field(node.port(), "cluster_state").await.as_deref() != Some("ok") {
                        return false;
                    }
                    if info_field(node.port(), "replication", "role")
                        .await
                        .as_deref()
                        == Some("master")
                    {
                        primaries += 1;
                    }
                }
                primaries == 3
            }),
        )
        .await;
    }

    /// The port of the primary that holds `key` (the others answer `MOVED`).
    pub(crate) async fn primary_holding(&self, key: &str) -> u16 {
        for port in self.primaries().await {
            if query::<i64>(port, redis::cmd("EXISTS").arg(key)).await == Ok(1) {
                return port;
            }
        }
        panic!("no primary holds {key}");
    }

    /// SIGKILLs the replica of the primary on `primary` and waits until that primary counts
    /// no replica: its writes can no longer be acknowledged.
    pub(crate) async fn kill_the_replica_of(&mut self, primary: u16) {
        let mut replica = None;
        for (index, node) in self.nodes.iter().enumerate() {
            if info_field(node.port(), "replication", "master_port")
                .await
                .as_deref()
                == Some(primary.to_string().as_str())
            {
                replica = Some(index);
            }
        }
        let index = replica.expect("the primary has a replica");
        self.nodes[index].kill().await;
        replicas_become(primary, 0, "the primary to see its replica gone").await;
    }

    /// Restarts the killed node (it rejoins as a replica of its promoted one) and waits until
    /// every primary has a replica in sync again.
    pub(crate) async fn rejoin(&mut self, index: usize) {
        self.nodes[index].restart().await;
        let port = self.nodes[index].port();
        within(
            FORM_TIMEOUT,
            "the old primary to rejoin as a replica",
            until(|| async {
                info_field(port, "replication", "role").await.as_deref() == Some("slave")
                    && info_field(port, "replication", "master_link_status")
                        .await
                        .as_deref()
                        == Some("up")
            }),
        )
        .await;
    }
}
