//! The explicit `STORE=memory` backend: sessions in this process only, for one instance.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Applied, Opened};

/// Sweep expired sessions once this many have been created since the last sweep.
const SWEEP_EVERY: u32 = 1024;

#[derive(Debug)]
struct Entry {
    count: u64,
    last_seq: i64,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Sessions {
    entries: HashMap<Uuid, Entry>,
    created_since_sweep: u32,
}

/// Sessions kept in a map behind a short-held lock.
#[derive(Debug)]
pub struct MemoryStore {
    ttl: Duration,
    sessions: Mutex<Sessions>,
}

impl MemoryStore {
    pub fn new(ttl: Duration) -> Self {
        MemoryStore {
            ttl,
            sessions: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        // A panic while holding this lock cannot leave an entry half-written, so poison is ignored.
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn open(&self, requested: Option<Uuid>) -> Opened {
        let now = Instant::now();
        let expires = now + self.ttl;
        let mut sessions = self.lock();
        if let Some(id) = requested
            && let Some(entry) = sessions.entries.get_mut(&id).filter(|e| e.expires > now)
        {
            entry.expires = expires;
            return Opened {
                id,
                count: entry.count,
                last_seq: entry.last_seq,
                resumed: true,
            };
        }
        sessions.created_since_sweep += 1;
        if sessions.created_since_sweep >= SWEEP_EVERY {
            sessions.created_since_sweep = 0;
            sessions.entries.retain(|_, e| e.expires > now);
        }
        let id = Uuid::new_v4();
        sessions.entries.insert(
            id,
            Entry {
                count: 0,
                last_seq: 0,
                expires,
            },
        );
        Opened {
            id,
            count: 0,
            last_seq: 0,
            resumed: false,
        }
    }

    /// The same rule as `apply.lua`: gapless seqs, and a missing session is never recreated.
    pub fn apply(&self, id: Uuid, seq: Option<i64>) -> Applied {
        let now = Instant::now();
        let mut sessions = self.lock();
        let Some(entry) = sessions.entries.get_mut(&id).filter(|e| e.expires > now) else {
            sessions.entries.remove(&id);
            return Applied::SessionExpired;
        };
        if let Some(seq) = seq {
            if seq <= entry.last_seq {
                entry.expires = now + self.ttl;
                return Applied::Duplicate { count: entry.count };
            }
            if seq != entry.last_seq + 1 {
                return Applied::SeqGap {
                    expected: entry.last_seq + 1,
                };
            }
            entry.last_seq = seq;
        }
        entry.count += 1;
        entry.expires = now + self.ttl;
        Applied::Counted { count: entry.count }
    }

    /// Resets the TTL of each live session among `ids`.
    pub fn refresh(&self, ids: &[Uuid]) {
        let now = Instant::now();
        let mut sessions = self.lock();
        for id in ids {
            if let Some(entry) = sessions.entries.get_mut(id).filter(|e| e.expires > now) {
                entry.expires = now + self.ttl;
            }
        }
    }
}
