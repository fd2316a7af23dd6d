//! Session state: open or resume a session, apply a message exactly once. The backend is
//! chosen explicitly (`STORE`); nothing falls back from Redis to memory.

mod memory;
mod redis;

use std::collections::HashSet;
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
    pub resumed: bool,
}

/// The result of applying one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub count: u64,
    /// The message's seq was not greater than the last applied: nothing was counted.
    pub duplicate: bool,
}

/// The store could not answer; nothing was changed that the caller was told about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("redis connection pool: {0}")]
    Pool(String),
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
            StoreConfig::Redis { url, timeout } => {
                SessionStore::Redis(Box::new(RedisStore::new(url, *timeout, ttl)?))
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

    /// Counts one message (unless its seq was already applied) and refreshes the TTL, atomically.
    pub async fn apply(&self, id: Uuid, seq: Option<i64>) -> Result<Applied, StoreError> {
        match self {
            SessionStore::Redis(store) => store.apply(id, seq).await,
            SessionStore::Memory(store) => Ok(store.apply(id, seq)),
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

    /// Whether the store answers now.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            SessionStore::Redis(store) => store.ping().await,
            SessionStore::Memory(_) => Ok(()),
        }
    }
}

/// The Redis hash recording applied keyspace migrations (field: name, value: when).
pub const MIGRATIONS_KEY: &str = "switchyard:migrations";

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
        assert_eq!(fresh.count, 0);
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
            assert_eq!(
                applied,
                Applied {
                    count: expected,
                    duplicate: false
                }
            );
        }
        let resumed = store.open(Some(opened.id)).await.expect("resume");
        assert_eq!(
            resumed,
            Opened {
                id: opened.id,
                count: 3,
                resumed: true
            }
        );
    }

    pub async fn a_repeated_seq_is_not_counted_again(store: &SessionStore) {
        let id = store.open(None).await.expect("open").id;
        assert_eq!(store.apply(id, Some(1)).await.expect("apply").count, 1);
        assert_eq!(store.apply(id, Some(2)).await.expect("apply").count, 2);
        assert_eq!(
            store.apply(id, Some(2)).await.expect("apply"),
            Applied {
                count: 2,
                duplicate: true
            }
        );
        assert_eq!(
            store.apply(id, Some(1)).await.expect("apply"),
            Applied {
                count: 2,
                duplicate: true
            }
        );
        assert_eq!(
            store.apply(id, None).await.expect("apply"),
            Applied {
                count: 3,
                duplicate: false
            }
        );
        assert_eq!(
            store.apply(id, Some(5)).await.expect("apply"),
            Applied {
                count: 4,
                duplicate: false
            }
        );
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
    async fn memory_does_not_count_a_repeated_seq() {
        contract::a_repeated_seq_is_not_counted_again(&memory()).await;
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
