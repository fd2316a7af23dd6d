//! The store contract (also run against the memory backend in unit tests), against Redis.

use std::time::Duration;

use switchyard::config::StoreConfig;
use switchyard::store::{SessionStore, contract};

use crate::support::TestRedis;

async fn redis_store(redis: &TestRedis) -> SessionStore {
    let config = StoreConfig::Redis(redis.config(Duration::from_secs(1)));
    SessionStore::build(&config, Duration::from_secs(60)).expect("store")
}

#[tokio::test]
async fn redis_opens_new_sessions_for_unknown_ids() {
    let redis = TestRedis::start().await;
    contract::unknown_or_absent_ids_open_new_sessions(&redis_store(&redis).await).await;
}

#[tokio::test]
async fn redis_counts_and_resumes() {
    let redis = TestRedis::start().await;
    contract::messages_count_and_resume_keeps_the_count(&redis_store(&redis).await).await;
}

#[tokio::test]
async fn redis_applies_seqs_gaplessly() {
    let redis = TestRedis::start().await;
    contract::the_seq_rule_is_gapless(&redis_store(&redis).await).await;
}

#[tokio::test]
async fn redis_never_recreates_a_missing_session() {
    let redis = TestRedis::start().await;
    contract::a_missing_session_is_never_recreated(&redis_store(&redis).await).await;
}

#[tokio::test]
async fn redis_refreshes_live_sessions() {
    let redis = TestRedis::start().await;
    contract::refresh_keeps_live_sessions(&redis_store(&redis).await).await;
}

#[tokio::test]
async fn concurrent_applies_to_one_session_lose_nothing() {
    let redis = TestRedis::start().await;
    let store = std::sync::Arc::new(redis_store(&redis).await);
    let id = store.open(None).await.expect("open").id;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store.apply(id, None).await.expect("apply");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert_eq!(store.open(Some(id)).await.expect("resume").count, 400);
}
