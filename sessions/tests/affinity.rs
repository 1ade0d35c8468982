//! The affinity API (`put_affinity` / `get_affinity`) against the memory store and a real
//! `redis-server`: values round-trip, are replaced, expire, and are shared between two
//! connections to one Redis (two gateway replicas).

use std::sync::Arc;
use std::time::Duration;

use switchboard_sessions::{MemoryStore, RedisStore, SessionStore, StoreLimits};
use switchboard_testing::redis::RedisServer;

async fn round_trip_and_replace(store: Arc<dyn SessionStore>) {
    let ttl = Duration::from_secs(600);
    assert_eq!(store.get_affinity("a2a:r:t:1").await.unwrap(), None);
    store
        .put_affinity("a2a:r:t:1", "http://replica-a", ttl)
        .await
        .unwrap();
    store
        .put_affinity("a2a:r:t:2", "http://replica-b", ttl)
        .await
        .unwrap();
    assert_eq!(
        store.get_affinity("a2a:r:t:1").await.unwrap().as_deref(),
        Some("http://replica-a")
    );
    store
        .put_affinity("a2a:r:t:1", "http://replica-c", ttl)
        .await
        .unwrap();
    assert_eq!(
        store.get_affinity("a2a:r:t:1").await.unwrap().as_deref(),
        Some("http://replica-c")
    );
    assert_eq!(
        store.get_affinity("a2a:r:t:2").await.unwrap().as_deref(),
        Some("http://replica-b")
    );
}

#[tokio::test]
async fn memory_round_trip_and_replace() {
    round_trip_and_replace(Arc::new(MemoryStore::new(StoreLimits::default()))).await;
}

#[tokio::test(start_paused = true)]
async fn memory_values_expire() {
    let store = MemoryStore::new(StoreLimits::default());
    store
        .put_affinity("k", "v", Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(store.get_affinity("k").await.unwrap().as_deref(), Some("v"));
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(store.get_affinity("k").await.unwrap(), None);
    // A put restarts the expiry.
    store
        .put_affinity("k", "w", Duration::from_secs(10))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    store.sweep().await.unwrap();
    assert_eq!(store.get_affinity("k").await.unwrap().as_deref(), Some("w"));
}

#[tokio::test]
async fn redis_round_trip_shared_and_expiring() {
    let Some(server) = RedisServer::start_or_skip("affinity::redis_round_trip_shared_and_expiring")
    else {
        return;
    };
    let a = RedisStore::connect(&server.url(), "aff:", StoreLimits::default())
        .await
        .unwrap();
    round_trip_and_replace(Arc::new(a.clone())).await;

    // A second connection (another replica) sees what the first put.
    let b = RedisStore::connect(&server.url(), "aff:", StoreLimits::default())
        .await
        .unwrap();
    assert_eq!(
        b.get_affinity("a2a:r:t:1").await.unwrap().as_deref(),
        Some("http://replica-c")
    );
    // Another prefix is another namespace.
    let other = RedisStore::connect(&server.url(), "other:", StoreLimits::default())
        .await
        .unwrap();
    assert_eq!(other.get_affinity("a2a:r:t:1").await.unwrap(), None);

    // Expiry is Redis' own (real time, so a short TTL).
    a.put_affinity("short", "v", Duration::from_millis(50))
        .await
        .unwrap();
    let mut gone = false;
    for _ in 0..100 {
        if b.get_affinity("short").await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "the affinity value did not expire");
}
