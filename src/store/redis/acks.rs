//! The replica acknowledgement (REDIS_MIN_REPLICAS_ACKED), batched: `WAIT` covers every write
//! this client connection made before it, so one `WAIT` answers for all the sessions whose
//! writes completed before it was sent. One `WAIT` is in flight per connection at a time (it
//! blocks the connection's other commands in Redis while it waits); callers that arrive
//! meanwhile are covered by the next one, so a burst of N writes costs about two `WAIT`s, not N.
//! On a cluster connection `WAIT` goes to every primary (each covering the writes this client
//! made on it) and every primary must answer with enough replicas.

use std::sync::atomic::{AtomicU64, Ordering};

use redis::RedisError;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::link::Link;

/// The batcher of one connection: a `WAIT` sent on another connection would not cover this
/// one's writes.
#[derive(Debug)]
pub(super) struct Acks {
    replicas: u32,
    /// How many `WAIT`s have been started on this connection.
    started: AtomicU64,
    /// The last `WAIT` to finish; held while one is in flight.
    last: Mutex<Finished>,
}

#[derive(Debug)]
struct Finished {
    /// Its number in `started` order (0: none yet).
    id: u64,
    /// Replicas that acknowledged, or why none could be counted.
    replicas: Result<i64, String>,
    /// Whether it failed on the connection (which must then be dropped).
    broken: bool,
}

impl Default for Finished {
    fn default() -> Self {
        Finished {
            id: 0,
            replicas: Ok(0),
            broken: false,
        }
    }
}

/// Why a write is not known to be on enough replicas.
#[derive(Debug)]
pub(super) struct NotAcked {
    pub(super) reason: String,
    /// The connection failed, or its primary lacks replicas: drop it, so the next call
    /// connects again (and, with Sentinel, asks which node is the primary now).
    pub(super) broken: bool,
}

impl Acks {
    pub(super) fn new(replicas: u32) -> Self {
        Acks {
            replicas,
            started: AtomicU64::new(0),
            last: Mutex::new(Finished::default()),
        }
    }

    /// Returns once a `WAIT` sent after this call began (so after the caller's write was
    /// answered) counted enough replicas, by `deadline` (the caller bounds the call with it).
    /// `primaries`: how many primaries must answer (a cluster's).
    pub(super) async fn confirm(
        &self,
        link: &Link,
        primaries: usize,
        deadline: Instant,
    ) -> Result<(), NotAcked> {
        if self.replicas == 0 {
            return Ok(());
        }
        let needed = self.started.load(Ordering::Acquire) + 1;
        let mut last = self.last.lock().await;
        if last.id < needed {
            let id = self.started.fetch_add(1, Ordering::AcqRel) + 1;
            let left = deadline.saturating_duration_since(Instant::now());
            // WAIT's timeout 0 would block for ever: at least 1 ms.
            let timeout_ms = left.as_millis().clamp(1, u64::MAX.into()) as u64;
            let answer: Result<Vec<i64>, RedisError> =
                link.clone().wait(self.replicas, timeout_ms).await;
            *last = match answer {
                Ok(answers) if answers.len() < primaries.max(1) => Finished {
                    id,
                    replicas: Err(format!(
                        "WAIT reached {} of the {primaries} primaries",
                        answers.len()
                    )),
                    broken: false,
                },
                Ok(answers) => Finished {
                    id,
                    replicas: Ok(answers.into_iter().min().unwrap_or_default()),
                    broken: false,
                },
                Err(error) => Finished {
                    id,
                    broken: error.is_io_error()
                        || error.is_connection_dropped()
                        || error.is_unrecoverable_error()
                        || error.is_timeout(),
                    replicas: Err(error.to_string()),
                },
            };
        }
        match &last.replicas {
            Ok(acked) if *acked >= i64::from(self.replicas) => Ok(()),
            Ok(acked) => Err(NotAcked {
                reason: format!(
                    "{acked} of the {} replicas required (REDIS_MIN_REPLICAS_ACKED) acknowledged the write in time",
                    self.replicas
                ),
                // A primary cut off from its replicas may have been replaced meanwhile (it
                // would go on taking writes no one else sees): a new connection asks again.
                broken: true,
            }),
            Err(error) => Err(NotAcked {
                reason: format!("WAIT for replicas failed: {error}"),
                broken: last.broken,
            }),
        }
    }
}
