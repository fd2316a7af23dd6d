//! The Redis backend: `session:{<uuid>}` hashes, the apply and open scripts loaded once,
//! every call bounded end to end by REDIS_TIMEOUT_MS — waiting for a connection (or for
//! another caller's reconnect) included. The redis crate's own response timeout is set to the
//! same value, so there is one deadline.
//!
//! A call that fails before it was handed to a connection is `Unavailable` (certainly not
//! applied); once handed over, any failure but a refusal Redis sends before executing is
//! `OutcomeUnknown` (it may have been applied).
//!
//! All sessions share one multiplexed connection so that concurrent calls from many sockets
//! are pipelined on one Redis socket. deadpool-redis creates (and health-checks) that
//! connection with bounded timeouts; a connection that fails or times out is dropped, so the
//! next call builds a fresh one and recovery after a Redis restart needs no restart here.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use deadpool_redis::{Config as PoolConfig, Connection, Pool, Runtime};
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncCommands, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ServerErrorKind,
};
use uuid::Uuid;

use super::{Applied, MIGRATIONS_KEY, Opened, StoreError, session_key};

/// How many connections this store has built: tells the connection a failed call used from
/// a newer one another caller has built since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Generation(u64);

/// The connection every call shares, with the generation it belongs to.
type SharedConnection = Option<(Generation, MultiplexedConnection)>;

pub struct RedisStore {
    /// Creates connections with connect/create timeouts.
    pool: Pool,
    /// The connection every call uses; `None` after a failure until the next call rebuilds it.
    shared: Mutex<SharedConnection>,
    /// The generation of the last connection built; locked while one caller rebuilds the
    /// connection, so an outage is not met with a stampede.
    last_generation: tokio::sync::Mutex<Generation>,
    timeout: Duration,
    /// SESSION_TTL_SECS as the script argument, formatted once.
    ttl_secs: String,
    apply: Script,
    open: Script,
    create: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("timeout", &self.timeout)
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl RedisStore {
    pub fn new(url: &str, timeout: Duration, ttl: Duration) -> Result<Self, StoreError> {
        let pool = PoolConfig::from_url(url)
            .builder()
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?
            .max_size(2)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
        Ok(RedisStore {
            pool,
            shared: Mutex::new(None),
            last_generation: tokio::sync::Mutex::default(),
            timeout,
            ttl_secs: ttl.as_secs().max(1).to_string(),
            apply: Script::new(include_str!("apply.lua")),
            open: Script::new(include_str!("open.lua")),
            create: Script::new(include_str!("create.lua")),
        })
    }

    fn current(&self) -> SharedConnection {
        self.shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    async fn connection(&self) -> Result<(Generation, MultiplexedConnection), StoreError> {
        match self.current() {
            Some(shared) => Ok(shared),
            // Boxed: connecting is rare, and its ~7 KiB state machine would otherwise sit in
            // every store call's future.
            None => Box::pin(self.rebuild()).await,
        }
    }

    async fn rebuild(&self) -> Result<(Generation, MultiplexedConnection), StoreError> {
        let mut generation = self.last_generation.lock().await;
        if let Some(shared) = self.current() {
            return Ok(shared);
        }
        let pooled = self
            .pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("cannot connect: {e}")))?;
        *generation = Generation(generation.0 + 1);
        let mut connection = Connection::take(pooled);
        connection.set_response_timeout(self.timeout);
        let shared = (*generation, connection);
        *self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(shared.clone());
        Ok(shared)
    }

    fn discard(&self, generation: Generation) {
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if shared.as_ref().is_some_and(|(g, _)| *g == generation) {
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

    /// Runs one call on the shared connection, the whole of it (connection included) by
    /// `deadline`; a failed connection is discarded.
    async fn call<T, F, Fut>(&self, deadline: Instant, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let (generation, connection) =
            match tokio::time::timeout_at(deadline, self.connection()).await {
                Ok(connected) => connected?,
                Err(_) => {
                    return Err(StoreError::Unavailable(format!(
                        "no connection within {:?}",
                        self.timeout
                    )));
                }
            };
        match tokio::time::timeout_at(deadline, call(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if error.is_io_error()
                    || error.is_connection_dropped()
                    || error.is_unrecoverable_error()
                    || error.is_timeout()
                {
                    self.discard(generation);
                }
                Err(classify(error))
            }
            Err(_) => {
                self.discard(generation);
                Err(StoreError::OutcomeUnknown(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
        }
    }

    /// Resume or create: both calls together bounded by one deadline.
    pub async fn open(&self, requested: Option<Uuid>) -> Result<Opened, StoreError> {
        let deadline = self.deadline();
        if let Some(id) = requested {
            let found: Option<(u64, i64)> = self
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
        let _: i64 = self
            .eval(deadline, &self.create, session_key(id), &[&self.ttl_secs])
            .await?;
        Ok(Opened {
            id,
            count: 0,
            last_seq: 0,
            resumed: false,
        })
    }

    pub async fn apply(&self, id: Uuid, seq: Option<i64>) -> Result<Applied, StoreError> {
        let seq = seq.map(|s| s.to_string()).unwrap_or_default();
        let (outcome, value): (u8, i64) = self
            .eval(
                self.deadline(),
                &self.apply,
                session_key(id),
                &[&self.ttl_secs, &seq],
            )
            .await?;
        let count = || u64::try_from(value).unwrap_or_default();
        match outcome {
            0 => Ok(Applied::Counted { count: count() }),
            1 => Ok(Applied::Duplicate { count: count() }),
            2 => Ok(Applied::SeqGap { expected: value }),
            3 => Ok(Applied::SessionExpired),
            other => Err(StoreError::OutcomeUnknown(format!(
                "apply.lua answered an unknown outcome {other}"
            ))),
        }
    }

    /// One pipeline of `EXPIRE key ttl` (which never creates a key) for the whole batch.
    pub async fn refresh(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("EXPIRE")
                .arg(session_key(*id))
                .arg(&self.ttl_secs)
                .ignore();
        }
        self.call(self.deadline(), |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }
    /// EVALSHA of a script on one key. A plain command keeps the hot path's future small
    /// (redis's `ScriptInvocation` future is ~7 KiB); after a Redis restart has emptied the
    /// script cache, the script is loaded once and the call retried.
    async fn eval<T: FromRedisValue>(
        &self,
        deadline: Instant,
        script: &Script,
        key: String,
        args: &[&str],
    ) -> Result<T, StoreError> {
        let mut evalsha = redis::cmd("EVALSHA");
        evalsha.arg(script.get_hash()).arg(1).arg(&key).arg(args);
        self.call(deadline, |mut c| async move {
            match evalsha.query_async(&mut c).await {
                Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                    Box::pin(async {
                        script.load_async(&mut c).await?;
                        evalsha.query_async(&mut c).await
                    })
                    .await
                }
                result => result,
            }
        })
        .await
    }

    pub async fn applied_migrations(&self) -> Result<HashSet<String>, StoreError> {
        self.call(self.deadline(), |mut c| async move {
            c.hkeys(MIGRATIONS_KEY).await
        })
        .await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.call(self.deadline(), |mut c| async move {
            redis::cmd("PING").query_async::<()>(&mut c).await
        })
        .await
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
