//! Redis keyspace migrations: embedded, listed in one place, applied in order by
//! `switchyard migrate`, each recorded once in the hash `switchyard:migrations`.
//! Migrations only add (expand, never contract), so both colors work while they share Redis.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use redis::aio::MultiplexedConnection;
use redis::{AsyncCommands, Script};

use crate::config::RedisConfig;
use crate::store::{MIGRATIONS_KEY, SessionStore, StoreError};

/// Held while a `migrate` runs, so two deploys cannot migrate at once.
const LOCK_KEY: &str = "switchyard:migrations:lock";
/// Keys per script call.
const BATCH: usize = 500;

/// One migration: a Lua script applied to every key matching `scan`, in batches.
#[derive(Debug)]
pub struct Migration {
    pub name: &'static str,
    scan: &'static str,
    script: &'static str,
}

/// Every migration this build knows, in order. `serve` is not ready until all are applied.
pub const MIGRATIONS: &[Migration] = &[Migration {
    name: "0001_import_django_sessions",
    scan: "session:*:count",
    script: include_str!("../migrations/0001_import_django_sessions.lua"),
}];

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

/// Applies every pending migration against the configured Redis, printing progress; returns
/// how many ran. REDIS_TIMEOUT_MS bounds connecting and each command, as it does in `serve`.
pub async fn run(redis: &RedisConfig) -> anyhow::Result<usize> {
    let (url, timeout) = (redis.url.as_str(), redis.timeout);
    let client = redis::Client::open(url).with_context(|| format!("invalid REDIS_URL {url:?}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let mut redis = tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    .with_context(|| format!("redis at {url} did not answer within {timeout:?}"))?
    .with_context(|| format!("cannot connect to redis at {url}"))?;
    let locked: bool = redis::cmd("SET")
        .arg(LOCK_KEY)
        .arg(std::process::id())
        .arg("NX")
        .arg("EX")
        .arg(600)
        .query_async(&mut redis)
        .await?;
    if !locked {
        bail!(
            "another `switchyard migrate` holds {LOCK_KEY}; wait for it (or delete the key if it died)"
        );
    }
    let result = apply_pending(&mut redis).await;
    let _: () = redis.del(LOCK_KEY).await?;
    result
}

async fn apply_pending(redis: &mut MultiplexedConnection) -> anyhow::Result<usize> {
    let applied: HashSet<String> = redis.hkeys(MIGRATIONS_KEY).await?;
    let mut ran = 0;
    for migration in MIGRATIONS {
        if applied.contains(migration.name) {
            println!("{}: already applied", migration.name);
            continue;
        }
        let started = Instant::now();
        let (scanned, changed) = apply(redis, migration)
            .await
            .with_context(|| format!("migration {} failed", migration.name))?;
        let stamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)?;
        let _: () = redis.hset(MIGRATIONS_KEY, migration.name, stamp).await?;
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

/// SCANs the keyspace for the migration's keys and runs its script on each batch.
async fn apply(
    redis: &mut MultiplexedConnection,
    migration: &Migration,
) -> anyhow::Result<(u64, u64)> {
    let script = Script::new(migration.script);
    let (mut cursor, mut scanned, mut changed) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(migration.scan)
            .arg("COUNT")
            .arg(BATCH)
            .query_async(redis)
            .await?;
        for batch in keys.chunks(BATCH) {
            let mut invocation = script.prepare_invoke();
            for key in batch {
                invocation.key(key);
            }
            changed += invocation.invoke_async::<u64>(redis).await?;
            scanned += batch.len() as u64;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            println!(
                "{}: {scanned} keys scanned, {changed} changed so far",
                migration.name
            );
            last_report = Instant::now();
        }
        cursor = next;
        if cursor == 0 {
            return Ok((scanned, changed));
        }
    }
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
    fn pending_lists_what_is_not_recorded() {
        let none = HashSet::new();
        assert_eq!(pending(&none), vec!["0001_import_django_sessions"]);
        let all: HashSet<String> = MIGRATIONS.iter().map(|m| m.name.to_owned()).collect();
        assert!(pending(&all).is_empty());
    }
}
