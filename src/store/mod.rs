//! Session state: open or resume a session, apply a message exactly once. The backend is
//! chosen explicitly (`STORE`); nothing falls back from Redis to memory.

mod memory;
pub(crate) mod redis;

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use uuid::Uuid;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;
use crate::config::StoreConfig;

/// The result of opening a connection's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub id: Uuid,
    pub count: u64,
    /// The last seq applied (0 for a new session): the client's next seq is `last_seq + 1`.
    pub last_seq: i64,
    pub resumed: bool,
}

/// What applying one message did. The seq rule is gapless: only `last_seq + 1` is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Counted once; `count` is the new count.
    Counted { count: u64 },
    /// The seq was not greater than the last applied: nothing was counted.
    Duplicate { count: u64 },
    /// The seq skipped ahead: nothing was changed; `expected` is the seq to send next.
    SeqGap { expected: i64 },
    /// The session does not exist (expired, or lost): nothing was changed or created.
    SessionExpired,
}

/// A store call that did not complete. The two kinds tell the client whether to trust that
/// nothing happened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Nothing reached Redis (no connection, connect refused or timed out, pool empty, or a
    /// refusal before executing): the call was certainly not applied.
    #[error("store unavailable (not applied): {0}")]
    Unavailable(String),
    /// The call was sent but no answer came by the deadline (or the connection broke): it may
    /// have been applied.
    #[error("store outcome unknown (may have been applied): {0}")]
    OutcomeUnknown(String),
    /// The Redis configuration (REDIS_URL, REDIS_SENTINELS, REDIS_CLUSTER_NODES) cannot be used.
    #[error("invalid Redis configuration: {0}")]
    InvalidUrl(String),
}

/// The session store, one of the backends.
#[derive(Debug)]
pub enum SessionStore {
    // Boxed: one per process, and much larger than the memory store.
    Redis(Box<RedisStore>),
    Memory(MemoryStore),
}

impl SessionStore {
    /// Builds the configured backend. Does not connect: readiness reports whether Redis answers.
    pub fn build(config: &StoreConfig, ttl: Duration) -> Result<Self, StoreError> {
        Ok(match config {
            StoreConfig::Redis(redis) => {
                SessionStore::Redis(Box::new(RedisStore::new(redis, ttl)?))
            }
            StoreConfig::Memory => SessionStore::Memory(MemoryStore::new(ttl)),
        })
    }

    /// Resumes `requested` if it names a live session, else creates a new session with a fresh id.
    pub async fn open(&self, requested: Option<Uuid>) -> Result<Opened, StoreError> {
        match self {
            SessionStore::Redis(store) => store.open(requested).await,
            SessionStore::Memory(store) => Ok(store.open(requested)),
        }
    }

    /// Counts one message under the gapless seq rule and refreshes the TTL, atomically; never
    /// creates a session.
    pub async fn apply(&self, id: Uuid, seq: Option<i64>) -> Result<Applied, StoreError> {
        match self {
            SessionStore::Redis(store) => store.apply(id, seq).await,
            SessionStore::Memory(store) => Ok(store.apply(id, seq)),
        }
    }

    /// Resets the TTL of each of these sessions that still exists, in one round trip; a
    /// session that is gone stays gone.
    pub async fn refresh(&self, ids: &[Uuid]) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(store) => store.refresh(ids).await,
            SessionStore::Memory(store) => {
                store.refresh(ids);
                Ok(())
            }
        }
    }

    /// Names of the keyspace migrations recorded as applied; `None` for a store that has no
    /// keyspace to migrate (memory).
    pub async fn applied_migrations(&self) -> Result<Option<HashSet<String>>, StoreError> {
        match self {
            SessionStore::Redis(store) => store.applied_migrations().await.map(Some),
            SessionStore::Memory(_) => Ok(None),
        }
    }

    /// Which Redis deployment is in use and its primary (or primaries) as host:port, as of the
    /// last connection (or ping, on a cluster); `None` for the memory store.
    pub fn redis_primaries(&self) -> Option<(&'static str, Vec<String>)> {
        match self {
            SessionStore::Redis(store) => Some((store.topology(), store.primaries())),
            SessionStore::Memory(_) => None,
        }
    }

    /// Whether the store answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(store) => store.ping().await,
            SessionStore::Memory(_) => Ok(()),
        }
    }

    /// Runs several store calls under one REDIS_TIMEOUT_MS deadline (each call is bounded by it
    /// already; this bounds their sum). Only for reads: running out is reported as unavailable.
    pub async fn read_within_deadline<T>(
        &self,
        reads: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self {
            SessionStore::Redis(store) => tokio::time::timeout(store.timeout(), reads)
                .await
                .unwrap_or_else(|_| {
                    Err(StoreError::Unavailable(format!(
                        "no answer within {:?} (REDIS_TIMEOUT_MS)",
                        store.timeout()
                    )))
                }),
            SessionStore::Memory(_) => reads.await,
        }
    }
}

/// The Redis hash recording applied keyspace migrations (field: name, value: when). Hash-tagged,
/// so it and the migration lock share a slot on a cluster.
pub const MIGRATIONS_KEY: &str = "{switchyard}:migrations";

/// Where builds before the topologies recorded migrations: still read (so a deployment they
/// migrated is not migrated again) and still written (so they see what later builds applied).
pub const LEGACY_MIGRATIONS_KEY: &str = "switchyard:migrations";

/// The Redis key of a session; the braces make it a cluster hash tag.
pub fn session_key(id: Uuid) -> String {
    format!("session:{{{id}}}")
}

/// The contract every backend keeps, run against memory here and against Redis in `tests/it`.
#[cfg(any(test, feature = "test-support"))]
pub mod contract {
    use super::*;

    pub async fn unknown_or_absent_ids_open_new_sessions(store: &SessionStore) {
        let fresh = store.open(None).await.expect("open");
        assert!(!fresh.resumed);
        assert_eq!((fresh.count, fresh.last_seq), (0, 0));
        let unknown = Uuid::new_v4();
        let opened = store.open(Some(unknown)).await.expect("open");
        assert!(!opened.resumed);
        assert_ne!(
            opened.id, unknown,
            "a client never chooses a new session's id"
        );
    }

    pub async fn messages_count_and_resume_keeps_the_count(store: &SessionStore) {
        let opened = store.open(None).await.expect("open");
        for expected in 1..=3 {
            let applied = store.apply(opened.id, None).await.expect("apply");
            assert_eq!(applied, Applied::Counted { count: expected });
        }
        assert_eq!(
            store.apply(opened.id, Some(1)).await.expect("apply"),
            Applied::Counted { count: 4 }
        );
        let resumed = store.open(Some(opened.id)).await.expect("resume");
        assert_eq!(
            resumed,
            Opened {
                id: opened.id,
                count: 4,
                last_seq: 1,
                resumed: true
            }
        );
    }

    pub async fn the_seq_rule_is_gapless(store: &SessionStore) {
        let id = store.open(None).await.expect("open").id;
        let apply = |seq| async move { store.apply(id, Some(seq)).await.expect("apply") };
        assert_eq!(apply(1).await, Applied::Counted { count: 1 });
        assert_eq!(apply(2).await, Applied::Counted { count: 2 });
        assert_eq!(apply(2).await, Applied::Duplicate { count: 2 });
        assert_eq!(apply(1).await, Applied::Duplicate { count: 2 });
        assert_eq!(apply(0).await, Applied::Duplicate { count: 2 });
        assert_eq!(apply(5).await, Applied::SeqGap { expected: 3 });
        assert_eq!(apply(4).await, Applied::SeqGap { expected: 3 });
        assert_eq!(
            store.apply(id, None).await.expect("apply"),
            Applied::Counted { count: 3 },
            "a message without seq is counted and leaves last_seq alone"
        );
        assert_eq!(apply(3).await, Applied::Counted { count: 4 });
        assert_eq!(apply(4).await, Applied::Counted { count: 5 });
        let resumed = store.open(Some(id)).await.expect("resume");
        assert_eq!((resumed.count, resumed.last_seq), (5, 4));
    }

    pub async fn a_missing_session_is_never_recreated(store: &SessionStore) {
        let gone = Uuid::new_v4();
        assert_eq!(
            store.apply(gone, Some(1)).await.expect("apply"),
            Applied::SessionExpired
        );
        assert_eq!(
            store.apply(gone, None).await.expect("apply"),
            Applied::SessionExpired
        );
        store.refresh(&[gone]).await.expect("refresh");
        let opened = store.open(Some(gone)).await.expect("open");
        assert!(!opened.resumed, "neither apply nor refresh created it");
        assert_ne!(opened.id, gone);
    }

    pub async fn refresh_keeps_live_sessions(store: &SessionStore) {
        let a = store.open(None).await.expect("open").id;
        let b = store.open(None).await.expect("open").id;
        store.apply(a, Some(1)).await.expect("apply");
        store
            .refresh(&[a, b, Uuid::new_v4()])
            .await
            .expect("refresh");
        store.refresh(&[]).await.expect("an empty batch");
        assert_eq!(store.open(Some(a)).await.expect("resume").count, 1);
        assert!(store.open(Some(b)).await.expect("resume").resumed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory() -> SessionStore {
        SessionStore::Memory(MemoryStore::new(Duration::from_secs(60)))
    }

    #[tokio::test]
    async fn memory_opens_new_sessions_for_unknown_ids() {
        contract::unknown_or_absent_ids_open_new_sessions(&memory()).await;
    }

    #[tokio::test]
    async fn memory_counts_and_resumes() {
        contract::messages_count_and_resume_keeps_the_count(&memory()).await;
    }

    #[tokio::test]
    async fn memory_applies_seqs_gaplessly() {
        contract::the_seq_rule_is_gapless(&memory()).await;
    }

    #[tokio::test]
    async fn memory_never_recreates_a_missing_session() {
        contract::a_missing_session_is_never_recreated(&memory()).await;
    }

    #[tokio::test]
    async fn memory_refreshes_live_sessions() {
        contract::refresh_keeps_live_sessions(&memory()).await;
    }

    #[tokio::test]
    async fn memory_sessions_expire_without_refresh_and_are_not_recreated() {
        // Time passing is what is tested: two TTLs go by, `kept` refreshed every quarter TTL.
        let store = SessionStore::Memory(MemoryStore::new(Duration::from_millis(200)));
        let kept = store.open(None).await.expect("open").id;
        let lapsed = store.open(None).await.expect("open").id;
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            store.refresh(&[kept]).await.expect("refresh");
        }
        assert_eq!(
            store.apply(kept, Some(1)).await.expect("apply"),
            Applied::Counted { count: 1 }
        );
        assert_eq!(
            store.apply(lapsed, Some(1)).await.expect("apply"),
            Applied::SessionExpired
        );
    }

    #[test]
    fn keys_use_a_hash_tag() {
        let id = Uuid::nil();
        assert_eq!(
            session_key(id),
            "session:{00000000-0000-0000-0000-000000000000}"
        );
    }
}
