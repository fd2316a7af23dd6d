//! How the store reaches Redis in each topology, through the redis crate's own clients:
//!
//! - single: a multiplexed connection to REDIS_URL, created by deadpool-redis with bounded
//!   timeouts (as before topologies existed);
//! - sentinel: the sentinels are asked for the primary of REDIS_MASTER_NAME (the crate checks
//!   its `ROLE`) every time a connection is built; the store drops a connection on an I/O
//!   error, a timeout or `READONLY`, so after a failover the next call asks again and reaches
//!   the new primary;
//! - cluster: the crate's cluster connection, which follows `MOVED`/`ASK`, refreshes slots
//!   and reconnects by itself.

use std::time::Duration;

use deadpool_redis::{Config as PoolConfig, Connection, Pool, Runtime};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisConnectionInfo,
    RedisFuture, Value,
};

use crate::config::{NodeAuth, RedisConfig, Topology};
use crate::store::StoreError;

/// One connection to the deployment: a node's multiplexed connection, or a cluster connection
/// (one multiplexed connection per node inside). Cheap to clone; clones share the socket(s).
#[derive(Clone)]
pub(crate) enum Link {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// On a cluster: the connection a write travelled on — the node (`CLUSTER MYID`) and this
/// link's client on it (`CLIENT ID`) — which a `WAIT` must match to count for the write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct NodeClient {
    pub(crate) node: String,
    pub(crate) client: i64,
}

/// A cluster write: the connection that applied it, and its key (whose slot routes its `WAIT`).
#[derive(Debug, Clone)]
pub(crate) struct Written {
    pub(crate) by: NodeClient,
    pub(crate) key: String,
}

/// `cmd` (a write on `key`) then `CLUSTER MYID` and `CLIENT ID`, in one pipeline to the
/// primary of `key`'s slot: the write's answer (a server error included, for the caller to
/// judge) and the connection that applied it.
pub(crate) async fn write_on_key(
    cluster: &mut ClusterConnection,
    cmd: Cmd,
    key: &str,
) -> redis::RedisResult<(Value, NodeClient)> {
    let mut pipe = redis::pipe();
    pipe.add_command(cmd);
    identified(cluster, pipe, key).await
}

/// Runs `pipe` (one command) followed by `CLUSTER MYID` and `CLIENT ID` on the primary of
/// `key`'s slot, on one connection: the command's answer and that connection.
async fn identified(
    cluster: &mut ClusterConnection,
    mut pipe: Pipeline,
    key: &str,
) -> redis::RedisResult<(Value, NodeClient)> {
    pipe.cmd("CLUSTER").arg("MYID").cmd("CLIENT").arg("ID");
    let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key, SlotAddr::Master));
    let answers = cluster.route_pipeline(pipe, 0, 3, route).await?;
    let [answer, node, client]: [Value; 3] =
        answers.try_into().map_err(|answers: Vec<Value>| {
            redis::RedisError::from((
                redis::ErrorKind::Client,
                "a pipeline of 3 commands got another number of answers",
                answers.len().to_string(),
            ))
        })?;
    let by = NodeClient {
        node: redis::FromRedisValue::from_redis_value(node)?,
        client: redis::FromRedisValue::from_redis_value(client)?,
    };
    Ok((answer, by))
}

impl Link {
    /// `WAIT replicas timeout_ms` on a node link: the replicas that have its writes.
    pub(crate) async fn wait(self, replicas: u32, timeout_ms: u64) -> redis::RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        let mut link = self;
        wait.query_async(&mut link).await
    }

    /// `WAIT replicas timeout_ms` on the primary of the slot of `written`'s key: the replicas
    /// that have its writes, if that primary is the node, and this the connection, that
    /// applied `written` (otherwise an error: the `WAIT` would not cover it).
    pub(crate) async fn wait_on(
        self,
        written: &Written,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<i64> {
        let Link::Cluster(mut cluster) = self else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "a cluster write's WAIT on a node link",
            )));
        };
        let mut pipe = redis::pipe();
        pipe.cmd("WAIT").arg(replicas).arg(timeout_ms);
        let (answer, by) = identified(&mut cluster, pipe, &written.key).await?;
        if by != written.by {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Client,
                "the write's connection is gone (its slot moved, or its node was reconnected), so no WAIT can cover it",
                format!("written by {:?}, WAIT reached {by:?}", written.by),
            )));
        }
        match answer {
            Value::ServerError(error) => Err(error.into()),
            answer => Ok(redis::FromRedisValue::from_redis_value(answer)?),
        }
    }

    /// Whether the link recovers from node failures by itself (the cluster connection), so the
    /// store must not drop it on an error.
    pub(crate) fn heals_itself(&self) -> bool {
        matches!(self, Link::Cluster(_))
    }
}

impl Link {
    /// One `SCAN cursor MATCH pattern COUNT count` page of `node` (a host:port this link
    /// reaches; a node link has one node and ignores it).
    pub(crate) async fn scan(
        &mut self,
        node: &str,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> redis::RedisResult<(u64, Vec<String>)> {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count);
        match self {
            Link::Node(c) => scan.query_async(c).await,
            Link::Cluster(c) => {
                let (host, port) = node
                    .rsplit_once(':')
                    .and_then(|(host, port)| Some((host.to_owned(), port.parse().ok()?)))
                    .ok_or_else(|| {
                        redis::RedisError::from((
                            redis::ErrorKind::Client,
                            "a cluster node is not host:port",
                            node.to_owned(),
                        ))
                    })?;
                let page = c
                    .route_command(
                        scan,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port }),
                    )
                    .await?;
                Ok(redis::FromRedisValue::from_redis_value(page)?)
            }
        }
    }
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Link::Node(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Link::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Node(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// Builds links for the configured topology.
pub(crate) enum Connector {
    Single {
        pool: Pool,
        /// host:port of REDIS_URL, for readiness and metrics.
        primary: String,
    },
    Sentinel {
        /// Asked for the primary on every connect; locked by the one caller that connects.
        sentinel: Box<tokio::sync::Mutex<Sentinel>>,
        master_name: String,
        /// How to log in to the primary it names (REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB).
        node: SentinelNodeConnectionInfo,
    },
    Cluster(Box<ClusterClient>),
}

/// The login and database of a sentinel's primary.
fn node_login(auth: &NodeAuth) -> RedisConnectionInfo {
    let mut login = RedisConnectionInfo::default().set_db(auth.db.into());
    if let Some(username) = &auth.username {
        login = login.set_username(username);
    }
    if let Some(password) = &auth.password {
        login = login.set_password(password);
    }
    login
}

fn invalid(error: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidUrl(error.to_string())
}

fn cannot_connect(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot connect: {error}"))
}

impl Connector {
    /// Checks the configuration; connects nothing yet.
    pub(crate) fn new(config: &RedisConfig) -> Result<Self, StoreError> {
        let timeout = config.timeout;
        let auth = &config.auth;
        Ok(match &config.topology {
            Topology::Single { url } => {
                let pool = PoolConfig::from_url(url.as_str())
                    .builder()
                    .map_err(invalid)?
                    .max_size(2)
                    .wait_timeout(Some(timeout))
                    .create_timeout(Some(timeout))
                    .recycle_timeout(Some(timeout))
                    .runtime(Runtime::Tokio1)
                    .build()
                    .map_err(invalid)?;
                let primary = url
                    .as_str()
                    .into_connection_info()
                    .map_err(invalid)?
                    .addr()
                    .to_string();
                Connector::Single { pool, primary }
            }
            Topology::Sentinel {
                sentinels,
                master_name,
            } => {
                let sentinels = sentinels
                    .iter()
                    .map(|s| {
                        let info = format!("redis://{s}").into_connection_info()?;
                        let redis = info.redis_settings().clone();
                        Ok(match &auth.sentinel_password {
                            Some(password) => info.set_redis_settings(redis.set_password(password)),
                            None => info,
                        })
                    })
                    .collect::<redis::RedisResult<Vec<ConnectionInfo>>>()
                    .map_err(invalid)?;
                Connector::Sentinel {
                    sentinel: Box::new(tokio::sync::Mutex::new(
                        Sentinel::build(sentinels).map_err(invalid)?,
                    )),
                    master_name: master_name.clone(),
                    node: SentinelNodeConnectionInfo::default()
                        .set_redis_connection_info(node_login(auth)),
                }
            }
            Topology::Cluster { nodes } => {
                let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
                let mut builder = ClusterClient::builder(urls)
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if let Some(username) = &auth.username {
                    builder = builder.username(username);
                }
                if let Some(password) = &auth.password {
                    builder = builder.password(password);
                }
                Connector::Cluster(Box::new(builder.build().map_err(invalid)?))
            }
        })
    }

    /// A new link, and the primary (or primaries) it reaches.
    pub(crate) async fn connect(
        &self,
        timeout: Duration,
    ) -> Result<(Link, Vec<String>), StoreError> {
        match self {
            Connector::Single { pool, primary } => {
                let pooled = pool.get().await.map_err(cannot_connect)?;
                let mut connection = Connection::take(pooled);
                connection.set_response_timeout(timeout);
                Ok((Link::Node(connection), vec![primary.clone()]))
            }
            Connector::Sentinel {
                sentinel,
                master_name,
                node,
            } => {
                let client = sentinel
                    .lock()
                    .await
                    .async_master_for(master_name, Some(node))
                    .await
                    .map_err(|e| {
                        StoreError::Unavailable(format!(
                            "the sentinels name no reachable primary for {master_name:?}: {e}"
                        ))
                    })?;
                let primary = client.get_connection_info().addr().to_string();
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout));
                let connection = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await
                    .map_err(cannot_connect)?;
                Ok((Link::Node(connection), vec![primary]))
            }
            Connector::Cluster(client) => {
                let mut connection = client
                    .get_async_connection()
                    .await
                    .map_err(cannot_connect)?;
                let primaries = cluster_primaries(&mut connection)
                    .await
                    .map_err(cannot_connect)?;
                Ok((Link::Cluster(connection), primaries))
            }
        }
    }
}

/// The primaries a cluster node knows as healthy, sorted (`CLUSTER NODES` on any node).
pub(crate) async fn cluster_primaries(
    connection: &mut ClusterConnection,
) -> redis::RedisResult<Vec<String>> {
    let nodes = connection
        .route_command(
            redis::cmd("CLUSTER").arg("NODES").clone(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let text: String = redis::FromRedisValue::from_redis_value(nodes)?;
    Ok(primaries_of(&text))
}

/// Parses `CLUSTER NODES`: the `host:port` of every master that serves slots and is not
/// flagged as failing (the nodes a fan-out to all primaries reaches).
fn primaries_of(nodes: &str) -> Vec<String> {
    let mut primaries: Vec<String> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serves_slots = fields.len() > 8;
            let is_primary = flags.split(',').any(|f| f == "master")
                && !flags.split(',').any(|f| f == "fail" || f == "fail?")
                && serves_slots;
            let address = fields.get(1)?.split('@').next()?;
            is_primary.then(|| address.to_owned())
        })
        .collect();
    primaries.sort_unstable();
    primaries
}

#[cfg(test)]
mod tests {
    use super::primaries_of;

    #[test]
    fn cluster_nodes_yield_the_healthy_primaries() {
        let nodes = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002 master - 0 1 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected
d4 127.0.0.1:7004@17004 slave a1 0 1 1 connected
e5 127.0.0.1:7005@17005 master - 0 1 4 connected 10923-16383
f6 127.0.0.1:7006@17006 master - 0 1 5 connected
";
        assert_eq!(
            primaries_of(nodes),
            ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7005"]
        );
    }
}
