//! The replica acknowledgement (REDIS_MIN_REPLICAS_ACKED), batched: `WAIT` covers every write
//! its client connection made before it, so one `WAIT` answers for all the sessions whose
//! writes completed before it was sent. One `WAIT` is in flight per connection at a time (it
//! blocks the connection's other commands in Redis while it waits); callers that arrive
//! meanwhile are covered by the next one, so a burst of N writes costs about two `WAIT`s, not N.
//!
//! On a node link (single, sentinel) there is one connection, so one batch. On a cluster each
//! write's `WAIT` goes only to the primary that applied it, batched per connection to that
//! primary: a shard whose primary lacks replicas (just promoted, its old node not back yet)
//! holds up its own writes, not every shard's. Why a confirmation is never false:
//!
//! - `WAIT` counts the replicas that have every write made *on the connection it is sent on*
//!   (the client's own replication offset). So the write and its `WAIT` must travel on the
//!   same connection to the same node process. The cluster connection routes by its slot map
//!   and may reconnect a node or move a slot (failover) between the two, so neither is
//!   assumed: the write goes in one pipeline with `CLUSTER MYID` and `CLIENT ID`, which name
//!   the node and this connection on it (`Written`), and the `WAIT` goes in one pipeline with
//!   the same two, routed to the primary of the write's slot. Only a `WAIT` whose node and
//!   client id match the write's counts for it; any other answer is "not acknowledged".
//! - After a failover the slot's primary is another node (its `CLUSTER MYID` differs); if the
//!   crate still routes to the old node, that node is dead (an error) or a replica now
//!   (`WAIT cannot be used with replica instances`, an error). A reconnected connection to the
//!   same node has a new client id (client ids only grow within a process; a restarted
//!   process starts them again, the one gap: a restart between the write and its `WAIT` that
//!   hands the new connection the old one's id — the restarted node would also have to have
//!   lost the write, which it had answered, and have replicas that never saw it).
//! - Not acknowledged means `outcome_unknown`: the client resends the same seq, which the
//!   store answers as a duplicate (a write too: its `EXPIRE`), and that one's `WAIT` counts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError};

use redis::RedisError;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::link::{Link, NodeClient, Written};

/// The batching of a link's `WAIT`s: one batch for a node link, one per node connection for a
/// cluster (a `WAIT` sent on another connection would not cover a connection's writes).
#[derive(Debug)]
pub(super) struct Acks {
    replicas: u32,
    /// A node link's batch.
    node: Batch,
    /// A cluster link's batches, by the connection the writes travelled on; a node's batch is
    /// replaced when its connection is (its old one is never used again).
    cluster: std::sync::Mutex<HashMap<NodeClient, Arc<Batch>>>,
}

/// One connection's `WAIT`s, one at a time.
#[derive(Debug, Default)]
struct Batch {
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
            node: Batch::default(),
            cluster: std::sync::Mutex::default(),
        }
    }

    /// Returns once a `WAIT` sent after this call began (so after the caller's write was
    /// answered) on the write's connection counted enough replicas, by `deadline` (the caller
    /// bounds the call with it). `written`: on a cluster, which connection applied the write.
    pub(super) async fn confirm(
        &self,
        link: &Link,
        written: Option<&Written>,
        deadline: Instant,
    ) -> Result<(), NotAcked> {
        if self.replicas == 0 {
            return Ok(());
        }
        let replicas = self.replicas;
        match (link, written) {
            (Link::Node(_), _) => {
                let wait = |timeout_ms| link.clone().wait(replicas, timeout_ms);
                self.node.confirm(replicas, deadline, wait).await
            }
            (Link::Cluster(_), Some(written)) => {
                let batch = self.batch_of(&written.by);
                let wait = |timeout_ms| link.clone().wait_on(written, replicas, timeout_ms);
                batch.confirm(replicas, deadline, wait).await
            }
            (Link::Cluster(_), None) => Err(NotAcked {
                reason: "the write's node is unknown, so no WAIT can cover it".to_owned(),
                broken: false,
            }),
        }
    }

    /// The batch of a cluster connection, created on its first write; the batches of the
    /// node's earlier connections are dropped (their callers hold them until they finish).
    fn batch_of(&self, by: &NodeClient) -> Arc<Batch> {
        let mut batches = self.cluster.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(batch) = batches.get(by) {
            return Arc::clone(batch);
        }
        batches.retain(|other, _| other.node != by.node);
        Arc::clone(batches.entry(by.clone()).or_default())
    }
}

impl Batch {
    /// Waits for this connection's next `WAIT` (`wait(timeout_ms)`), starting it unless one
    /// started after this call began is already in flight or done.
    async fn confirm<F, Fut>(
        &self,
        replicas: u32,
        deadline: Instant,
        wait: F,
    ) -> Result<(), NotAcked>
    where
        F: FnOnce(u64) -> Fut,
        Fut: Future<Output = Result<i64, RedisError>>,
    {
        let needed = self.started.load(Ordering::Acquire) + 1;
        let mut last = self.last.lock().await;
        if last.id < needed {
            let id = self.started.fetch_add(1, Ordering::AcqRel) + 1;
            let left = deadline.saturating_duration_since(Instant::now());
            // WAIT's timeout 0 would block for ever: at least 1 ms.
            let timeout_ms = left.as_millis().clamp(1, u64::MAX.into()) as u64;
            *last = match wait(timeout_ms).await {
                Ok(acked) => Finished {
                    id,
                    replicas: Ok(acked),
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
            Ok(acked) if *acked >= i64::from(replicas) => Ok(()),
            Ok(acked) => Err(NotAcked {
                reason: format!(
                    "{acked} of the {replicas} replicas required (REDIS_MIN_REPLICAS_ACKED) acknowledged the write in time",
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
