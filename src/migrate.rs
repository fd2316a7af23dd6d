//! Redis keyspace migrations: embedded, listed in one place, applied in order by
//! `switchyard migrate` on any topology, each recorded once in the hash
//! `{switchyard}:migrations` (and in the name builds before the topologies used).
//! Migrations only add (expand, never contract), so both colors work while they share Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis::AsyncCommands;
use redis::Script;

use crate::config::RedisConfig;
use crate::store::redis::link::{Connector, Link};
use crate::store::{LEGACY_MIGRATIONS_KEY, MIGRATIONS_KEY, SessionStore, StoreError};

/// Held while a `migrate` runs, so two deploys cannot migrate at once (same slot as the record).
const LOCK_KEY: &str = "{switchyard}:migrations:lock";
/// Keys per SCAN page, and old keys imported at once.
const BATCH: usize = 500;

/// One migration: every key matching `scan` (on every primary) is read (GET, PTTL), and the
/// script runs on the key `target` names for it — one key, so one slot, per call — with the
/// value and the PTTL as arguments.
#[derive(Debug)]
pub struct Migration {
    pub name: &'static str,
    scan: &'static str,
    /// The key the script writes for a scanned key, or `None` to skip that key.
    target: fn(&str) -> Option<String>,
    script: &'static str,
}

/// Every migration this build knows, in order. `serve` is not ready until all are applied.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0001_import_django_sessions",
    scan: "session:*:count",
    target: django_session_target,
    script: include_str!("../migrations/0001_import_django_sessions.lua"),
}];

/// `session:<uuid>:count` → `session:{<uuid>}` (lower case); other keys are skipped.
fn django_session_target(old: &str) -> Option<String> {
    let id = old.strip_prefix("session:")?.strip_suffix(":count")?;
    // 36 characters: only the hyphenated form (try_parse also takes simple, braced and URN).
    if id.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(id)
        .ok()
        .map(crate::store::session_key)
}

/// The migrations not yet recorded as applied.
pub fn pending(applied: &HashSet<String>) -> Vec<&'static str> {
    MIGRATIONS
        .iter()
        .map(|m| m.name)
        .filter(|name| !applied.contains(*name))
        .collect()
}

/// Readiness's view of migrations: asks the store until every migration this build needs is
/// applied, then remembers (a migration is never un-applied).
#[derive(Debug, Default)]
pub struct MigrationGate {
    current: AtomicBool,
}

impl MigrationGate {
    /// The migrations this build needs that the store has not recorded.
    pub async fn pending(&self, store: &SessionStore) -> Result<Vec<&'static str>, StoreError> {
        if self.current.load(Ordering::Acquire) {
            return Ok(Vec::new());
        }
        let missing = match store.applied_migrations().await? {
            None => Vec::new(),
            Some(applied) => pending(&applied),
        };
        self.current.store(missing.is_empty(), Ordering::Release);
        Ok(missing)
    }
}

/// Applies every pending migration against the configured Redis (any topology), printing
/// progress; returns how many ran. REDIS_TIMEOUT_MS bounds connecting and each command, as it
/// does in `serve`.
pub async fn run(redis: &RedisConfig) -> anyhow::Result<usize> {
    let timeout = redis.timeout;
    let topology = &redis.topology;
    let connector = Connector::new(redis)
        .context("invalid Redis configuration (REDIS_TOPOLOGY and its variables)")?;
    let (mut link, primaries) = tokio::time::timeout(timeout, connector.connect(timeout))
        .await
        .with_context(|| format!("redis at {topology} did not answer within {timeout:?}"))?
        .with_context(|| format!("cannot connect to redis at {topology}"))?;
    let locked: bool = redis::cmd("SET")
        .arg(LOCK_KEY)
        .arg(std::process::id())
        .arg("NX")
        .arg("EX")
        .arg(600)
        .query_async(&mut link)
        .await?;
    if !locked {
        bail!(
            "another `switchyard migrate` holds {LOCK_KEY}; wait for it (or delete the key if it died)"
        );
    }
    let result = apply_pending(&mut link, &primaries).await;
    let _: () = link.del(LOCK_KEY).await?;
    result
}

async fn apply_pending(link: &mut Link, primaries: &[String]) -> anyhow::Result<usize> {
    let mut applied: HashSet<String> = link.hkeys(MIGRATIONS_KEY).await?;
    applied.extend(
        link.hkeys::<_, HashSet<String>>(LEGACY_MIGRATIONS_KEY)
            .await?,
    );
    let mut ran = 0;
    for migration in MIGRATIONS {
        if applied.contains(migration.name) {
            println!("{}: already applied", migration.name);
            continue;
        }
        let started = Instant::now();
        let (scanned, changed) = apply(link, primaries, migration)
            .await
            .with_context(|| format!("migration {} failed", migration.name))?;
        let stamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        for record in [MIGRATIONS_KEY, LEGACY_MIGRATIONS_KEY] {
            let _: () = link.hset(record, migration.name, &stamp).await?;
        }
        println!(
            "{}: applied in {} ms ({scanned} keys scanned, {changed} changed)",
            migration.name,
            started.elapsed().as_millis()
        );
        ran += 1;
    }
    println!(
        "migrations: {ran} applied, {} already in place",
        MIGRATIONS.len() - ran
    );
    Ok(ran)
}

/// SCANs every primary for the migration's keys and imports each page.
async fn apply(
    link: &mut Link,
    primaries: &[String],
    migration: &Migration,
) -> anyhow::Result<(u64, u64)> {
    let script = Script::new(migration.script);
    let (mut scanned, mut changed) = (0u64, 0u64);
    let mut last_report = Instant::now();
    for node in primaries {
        let mut cursor = 0u64;
        loop {
            let (next, keys) = link
                .scan(node, cursor, migration.scan, BATCH)
                .await
                .with_context(|| format!("SCAN of {node}"))?;
            let each = keys.iter().map(|key| {
                let (link, script) = (link.clone(), &script);
                async move { import(link, script, migration, key).await }
            });
            changed += futures_util::future::try_join_all(each)
                .await?
                .into_iter()
                .sum::<u64>();
            scanned += keys.len() as u64;
            if last_report.elapsed() >= Duration::from_secs(1) {
                println!(
                    "{}: {scanned} keys scanned, {changed} changed so far",
                    migration.name
                );
                last_report = Instant::now();
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok((scanned, changed))
}

/// Reads one scanned key and runs the script on its target; 1 when it changed something.
async fn import(
    mut link: Link,
    script: &Script,
    migration: &Migration,
    key: &str,
) -> redis::RedisResult<u64> {
    let Some(target) = (migration.target)(key) else {
        return Ok(0);
    };
    let (value, pttl): (Option<String>, i64) = redis::pipe()
        .cmd("GET")
        .arg(key)
        .cmd("PTTL")
        .arg(key)
        .query_async(&mut link)
        .await?;
    let Some(value) = value else {
        return Ok(0);
    };
    script
        .key(target)
        .arg(value)
        .arg(pttl)
        .invoke_async(&mut link)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_in_order_and_unique() {
        let names: Vec<_> = MIGRATIONS.iter().map(|m| m.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        assert!(
            names
                .iter()
                .all(|n| n.len() > 5 && n[..4].chars().all(|c| c.is_ascii_digit()))
        );
    }

    #[test]
    fn only_old_session_keys_have_a_target() {
        let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
        assert_eq!(
            django_session_target(&format!("session:{id}:count")).as_deref(),
            Some("session:{6f9619ff-8b86-d011-b42d-00c04fc964ff}")
        );
        for other in [
            "session:not-a-uuid:count",
            "session:6f9619ff8b86d011b42d00c04fc964ff:count",
            "session:{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
            "session:6f9619ff-8b86-d011-b42d-00c04fc964ff:other",
        ] {
            assert_eq!(django_session_target(other), None, "{other}");
        }
    }

    #[test]
    fn pending_lists_what_is_not_recorded() {
        let none = HashSet::new();
        assert_eq!(pending(&none), vec!["0001_import_django_sessions"]);
        let all: HashSet<String> = MIGRATIONS.iter().map(|m| m.name.to_owned()).collect();
        assert!(pending(&all).is_empty());
    }
}
