//! The Redis backend: `session:{<uuid>}` hashes, the apply and open scripts loaded once,
//! every call bounded end to end by REDIS_TIMEOUT_MS — waiting for a connection (or for
//! another caller's reconnect) and the replica acknowledgement included. The redis crate's
//! own response timeout is set to the same value, so there is one deadline.
//!
//! A call that fails before it was handed to a connection is `Unavailable` (certainly not
//! applied); once handed over, any failure but a refusal Redis sends before executing is
//! `OutcomeUnknown` (it may have been applied). A write not acknowledged by
//! REDIS_MIN_REPLICAS_ACKED replicas in time is `OutcomeUnknown` too: it is applied, but a
//! failover may still lose it, so the client resends the same seq.
//!
//! All sessions share one link (see `link`) so that concurrent calls from many sockets are
//! pipelined on one Redis socket (per node). A node link that fails, times out or answers
//! `READONLY` is dropped, so the next call builds a fresh one — after a Redis restart, or
//! from the sentinels after a failover — and recovery needs no restart here.

mod acks;
pub(crate) mod link;

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncCommands, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind,
    Value,
};
use uuid::Uuid;

use self::acks::Acks;
use self::link::{Connector, Link, Written};
use super::{Applied, LEGACY_MIGRATIONS_KEY, MIGRATIONS_KEY, Opened, StoreError, session_key};
use crate::config::RedisConfig;

/// How many connections this store has built: tells the connection a failed call used from
/// a newer one another caller has built since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Generation(u64);

/// The link every call shares, with its generation and its replica acknowledgements.
struct Shared {
    generation: Generation,
    link: Link,
    acks: Acks,
}

pub struct RedisStore {
    connector: Connector,
    topology: &'static str,
    /// The link every call uses; `None` after a failure until the next call rebuilds it.
    shared: Mutex<Option<Arc<Shared>>>,
    /// The generation of the last link built; locked while one caller rebuilds the link, so an
    /// outage is not met with a stampede.
    last_generation: tokio::sync::Mutex<Generation>,
    /// The primary (or cluster primaries) the last link reached, as host:port.
    primaries: Mutex<Vec<String>>,
    timeout: Duration,
    min_replicas_acked: u32,
    /// SESSION_TTL_SECS as the script argument, formatted once.
    ttl_secs: String,
    apply: Lua,
    open: Lua,
    create: Lua,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("topology", &self.topology)
            .field("timeout", &self.timeout)
            .field("min_replicas_acked", &self.min_replicas_acked)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

/// Whether a failed call leaves the link it used unusable (or, for `READONLY`, pointed at a
/// node that is no longer the primary).
fn breaks_link(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_unrecoverable_error()
        || error.is_timeout()
        || error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl RedisStore {
    pub fn new(config: &RedisConfig, ttl: Duration) -> Result<Self, StoreError> {
        Ok(RedisStore {
            connector: Connector::new(config)?,
            topology: config.topology.name(),
            shared: Mutex::new(None),
            last_generation: tokio::sync::Mutex::default(),
            primaries: Mutex::new(Vec::new()),
            timeout: config.timeout,
            min_replicas_acked: config.min_replicas_acked,
            ttl_secs: ttl.as_secs().max(1).to_string(),
            apply: Lua::new(include_str!("apply.lua")),
            open: Lua::new(include_str!("open.lua")),
            create: Lua::new(include_str!("create.lua")),
        })
    }

    /// REDIS_TOPOLOGY: single, sentinel or cluster.
    pub fn topology(&self) -> &'static str {
        self.topology
    }

    /// The primary (or the cluster's primaries) in use, as host:port; empty before the first
    /// connection.
    pub fn primaries(&self) -> Vec<String> {
        self.primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn current(&self) -> Option<Arc<Shared>> {
        self.shared
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    async fn connection(&self) -> Result<Arc<Shared>, StoreError> {
        match self.current() {
            Some(shared) => Ok(shared),
            // Boxed: connecting is rare, and its state machine would otherwise sit in every
            // store call's future.
            None => Box::pin(self.rebuild()).await,
        }
    }

    async fn rebuild(&self) -> Result<Arc<Shared>, StoreError> {
        let mut generation = self.last_generation.lock().await;
        if let Some(shared) = self.current() {
            return Ok(shared);
        }
        let (link, primaries) = self.connector.connect(self.timeout).await?;
        *generation = Generation(generation.0 + 1);
        let shared = Arc::new(Shared {
            generation: *generation,
            link,
            acks: Acks::new(self.min_replicas_acked),
        });
        *self
            .primaries
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = primaries;
        *self.shared.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&shared));
        Ok(shared)
    }

    /// Drops a link that failed, unless it repairs itself (the cluster's).
    fn discard(&self, used: &Shared) {
        if !used.link.heals_itself() {
            self.discard_stuck(used);
        }
    }

    /// Drops a link that gave no answer in time, whatever its kind: a cluster connection seen
    /// stuck after a failover under load (every call timing out long after the new primary
    /// was serving) is rebuilt rather than trusted to repair itself.
    fn discard_stuck(&self, used: &Shared) {
        let mut shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        if shared
            .as_ref()
            .is_some_and(|s| s.generation == used.generation)
        {
            *shared = None;
        }
    }

    /// REDIS_TIMEOUT_MS: the bound of every store call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The deadline of a store operation starting now.
    fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// Runs one call on the shared link, the whole of it (connection included) by `deadline`;
    /// a failed link is discarded. Returns the link used with the answer.
    async fn call_on<T, F, Fut>(
        &self,
        deadline: Instant,
        call: F,
    ) -> Result<(T, Arc<Shared>), StoreError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let shared = match tokio::time::timeout_at(deadline, self.connection()).await {
            Ok(connected) => connected?,
            Err(_) => {
                return Err(StoreError::Unavailable(format!(
                    "no connection within {:?}",
                    self.timeout
                )));
            }
        };
        match tokio::time::timeout_at(deadline, call(shared.link.clone())).await {
            Ok(Ok(value)) => Ok((value, shared)),
            Ok(Err(error)) => {
                if error.is_timeout() {
                    self.discard_stuck(&shared);
                } else if breaks_link(&error) {
                    self.discard(&shared);
                }
                Err(classify(error))
            }
            Err(_) => {
                self.discard_stuck(&shared);
                Err(StoreError::OutcomeUnknown(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
        }
    }

    async fn call<T, F, Fut>(&self, deadline: Instant, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Link) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.call_on(deadline, call).await.map(|(value, _)| value)
    }

    /// Waits, by `deadline`, until REDIS_MIN_REPLICAS_ACKED replicas have every write `used`
    /// carried so far (on a cluster, every write of the connection that applied `written`):
    /// an applied write not known to be on them is of unknown outcome.
    async fn replicated(
        &self,
        used: &Shared,
        written: Option<&Written>,
        deadline: Instant,
    ) -> Result<(), StoreError> {
        let confirmed = used.acks.confirm(&used.link, written, deadline);
        match tokio::time::timeout_at(deadline, confirmed).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_acked)) => {
                if not_acked.broken {
                    self.discard(used);
                }
                Err(StoreError::OutcomeUnknown(not_acked.reason))
            }
            Err(_) => Err(StoreError::OutcomeUnknown(format!(
                "replicas did not acknowledge within {:?}",
                self.timeout
            ))),
        }
    }

    /// Resume or create: both calls (and the replica acknowledgement of a creation) bounded
    /// by one deadline.
    pub async fn open(&self, requested: Option<Uuid>) -> Result<Opened, StoreError> {
        let deadline = self.deadline();
        if let Some(id) = requested {
            let (found, _, _): (Option<(u64, i64)>, _, _) = self
                .eval(deadline, &self.open, session_key(id), &[&self.ttl_secs])
                .await?;
            if let Some((count, last_seq)) = found {
                return Ok(Opened {
                    id,
                    count,
                    last_seq,
                    resumed: true,
                });
            }
        }
        let id = Uuid::new_v4();
        let (_, used, written): (i64, _, _) = self
            .eval(deadline, &self.create, session_key(id), &[&self.ttl_secs])
            .await?;
        self.replicated(&used, written.as_ref(), deadline).await?;
        Ok(Opened {
            id,
            count: 0,
            last_seq: 0,
            resumed: false,
        })
    }

    pub async fn apply(&self, id: Uuid, seq: Option<i64>) -> Result<Applied, StoreError> {
        let deadline = self.deadline();
        let seq = seq.map(|s| s.to_string()).unwrap_or_default();
        let ((outcome, value), used, written): ((u8, i64), _, _) = self
            .eval(
                deadline,
                &self.apply,
                session_key(id),
                &[&self.ttl_secs, &seq],
            )
            .await?;
        let count = || u64::try_from(value).unwrap_or_default();
        let applied = match outcome {
            0 => Applied::Counted { count: count() },
            1 => Applied::Duplicate { count: count() },
            2 => return Ok(Applied::SeqGap { expected: value }),
            3 => return Ok(Applied::SessionExpired),
            other => {
                return Err(StoreError::OutcomeUnknown(format!(
                    "apply.lua answered an unknown outcome {other}"
                )));
            }
        };
        // A duplicate too: the first attempt's write may not be on the replicas yet (the
        // duplicate's own EXPIRE, a write, comes after it on this primary, so WAIT covers it).
        self.replicated(&used, written.as_ref(), deadline).await?;
        Ok(applied)
    }

    /// `EXPIRE key ttl` (which never creates a key) for the whole batch: one pipeline on a
    /// node; on a cluster, where a pipeline must stay in one slot, the commands go out together
    /// and the crate routes each to its key's node.
    pub async fn refresh(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let expire = |id: &Uuid| {
            let mut cmd = redis::cmd("EXPIRE");
            cmd.arg(session_key(*id)).arg(&self.ttl_secs);
            cmd
        };
        self.call(self.deadline(), |mut c| async move {
            if let Link::Node(_) = c {
                let mut pipe = redis::pipe();
                for id in ids {
                    pipe.add_command(expire(id)).ignore();
                }
                return pipe.query_async::<()>(&mut c).await;
            }
            let each = ids.iter().map(|id| {
                let mut c = c.clone();
                async move { expire(id).query_async::<()>(&mut c).await }
            });
            futures_util::future::try_join_all(each).await.map(drop)
        })
        .await
    }

    /// EVALSHA of a script on one key. A plain command keeps the hot path's future small
    /// (redis's `ScriptInvocation` future is ~7 KiB). When the node has not got the script
    /// (a Redis restart emptied its cache, or a failover or reshard moved the key to a node
    /// that never ran it) the script's source is sent with EVAL, on the same key — so a
    /// cluster routes it to the key's node — which also caches it there. On a cluster it also
    /// returns the connection that applied the write (see `acks`).
    async fn eval<T: FromRedisValue>(
        &self,
        deadline: Instant,
        script: &Lua,
        key: String,
        args: &[&str],
    ) -> Result<(T, Arc<Shared>, Option<Written>), StoreError> {
        let key = key.as_str();
        let command = |cached: bool| {
            let mut cmd = if cached {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(&script.sha);
                cmd
            } else {
                let mut cmd = redis::cmd("EVAL");
                cmd.arg(script.source);
                cmd
            };
            cmd.arg(1).arg(key).arg(args);
            cmd
        };
        // Only a write whose WAIT must be sent needs to know the connection that applied it.
        let identify = self.min_replicas_acked > 0;
        let ((value, written), shared) = self
            .call_on(deadline, |mut c| async move {
                match &mut c {
                    Link::Cluster(cluster) if identify => {
                        Box::pin(eval_on_cluster(cluster, command, key))
                            .await
                            .map(|(value, written)| (value, Some(written)))
                    }
                    _ => match command(true).query_async(&mut c).await {
                        Err(error)
                            if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) =>
                        {
                            Box::pin(command(false).query_async(&mut c)).await
                        }
                        result => result,
                    }
                    .map(|value| (value, None)),
                }
            })
            .await?;
        Ok((value, shared, written))
    }

    pub async fn applied_migrations(&self) -> Result<HashSet<String>, StoreError> {
        self.call(self.deadline(), |mut c| async move {
            let mut applied: HashSet<String> = c.hkeys(MIGRATIONS_KEY).await?;
            applied.extend(c.hkeys::<_, HashSet<String>>(LEGACY_MIGRATIONS_KEY).await?);
            Ok(applied)
        })
        .await
    }

    /// Whether the deployment answers (every primary, on a cluster), refreshing which
    /// primaries a cluster has.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let (primaries, _) = self
            .call_on(self.deadline(), |mut c| async move {
                redis::cmd("PING").query_async::<()>(&mut c).await?;
                match &mut c {
                    Link::Cluster(cluster) => link::cluster_primaries(cluster).await.map(Some),
                    Link::Node(_) => Ok(None),
                }
            })
            .await?;
        if let Some(primaries) = primaries {
            *self
                .primaries
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = primaries;
        }
        Ok(())
    }
}

/// A script's write on a cluster (`command(cached)`: EVALSHA, or EVAL when the node lacks the
/// script) with the connection that applied it. A write the node refused (`MOVED` after a
/// failover, …) is followed by a plain command on the key, so that the cluster connection
/// follows the redirect and refreshes its slot map (a pipeline's answers are not inspected by
/// it), and the refusal is returned: nothing was applied, the client resends.
async fn eval_on_cluster<T: FromRedisValue>(
    cluster: &mut ClusterConnection,
    command: impl Fn(bool) -> redis::Cmd,
    key: &str,
) -> RedisResult<(T, Written)> {
    let (mut answer, mut by) = link::write_on_key(cluster, command(true), key).await?;
    if let Value::ServerError(error) = &answer
        && error.kind() == Some(ServerErrorKind::NoScript)
    {
        (answer, by) = link::write_on_key(cluster, command(false), key).await?;
    }
    if let Value::ServerError(error) = answer {
        if matches!(
            error.kind(),
            Some(ServerErrorKind::Moved | ServerErrorKind::Ask)
        ) {
            let _: RedisResult<Value> = redis::cmd("EXISTS").arg(key).query_async(cluster).await;
        }
        return Err(error.into());
    }
    let written = Written {
        by,
        key: key.to_owned(),
    };
    Ok((T::from_redis_value(answer)?, written))
}

/// A script of this store: its source (sent with EVAL when a node lacks it) and its hash.
struct Lua {
    source: &'static str,
    sha: String,
}

impl Lua {
    fn new(source: &'static str) -> Self {
        Lua {
            source,
            sha: Script::new(source).get_hash().to_owned(),
        }
    }
}

/// A failed call that was handed to the connection: only a refusal Redis sends before
/// executing anything is certainly not applied.
fn classify(error: RedisError) -> StoreError {
    let refused_before_running = matches!(
        error.kind(),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
                | ServerErrorKind::NoScript
                | ServerErrorKind::ReadOnly
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::CrossSlot
                | ServerErrorKind::NoPerm
        )
    );
    if refused_before_running {
        StoreError::Unavailable(format!("redis refused: {error}"))
    } else {
        StoreError::OutcomeUnknown(format!("redis: {error}"))
    }
}
