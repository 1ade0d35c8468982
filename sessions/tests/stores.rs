//! One behaviour, two stores: every check runs against the memory store and against a real
//! `redis-server` (started per test on a unix socket; see `switchboard_testing::redis`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_sessions::{
    EndReason, Error, EventId, Lookup, MemoryStore, RedisStore, SessionId, SessionStore,
    StoreLimits, StreamKey,
};
use switchboard_testing::redis::RedisServer;

fn limits() -> StoreLimits {
    StoreLimits {
        idle_timeout: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(3600),
        max_per_principal: 3,
        event_log_size: 5,
    }
}

fn memory() -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new(limits()))
}

async fn redis_store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::connect(&server.url(), prefix, limits())
        .await
        .unwrap()
}

fn at(stream: &StreamKey, seq: u64) -> EventId {
    EventId {
        stream: stream.clone(),
        seq,
    }
}

fn payloads(replay: &switchboard_sessions::Replay) -> Vec<(u64, Vec<u8>)> {
    replay
        .events
        .iter()
        .map(|(id, p)| (id.seq, p.to_vec()))
        .collect()
}

async fn replay_is_exact(store: Arc<dyn SessionStore>) {
    let sid = SessionId::random();
    let a = StreamKey::new(sid, "get");
    let b = StreamKey::new(sid, "post/7");
    let mut a_ids = Vec::new();
    for i in 1..=3u8 {
        a_ids.push(store.append(&a, Bytes::from(vec![b'a', i])).await.unwrap());
        store.append(&b, Bytes::from(vec![b'b', i])).await.unwrap();
    }
    assert_eq!(a_ids.iter().map(|id| id.seq).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(a_ids[0].stream, a);

    let r = store.replay_after(&a_ids[0]).await.unwrap();
    assert!(r.complete);
    assert_eq!(
        payloads(&r),
        [(2, b"a\x02".to_vec()), (3, b"a\x03".to_vec())]
    );
    assert_eq!(r.events[0].0, a_ids[1]);

    let r = store.replay_after(&at(&a, 0)).await.unwrap();
    assert!(r.complete);
    assert_eq!(r.events.len(), 3);

    let r = store.replay_after(&a_ids[2]).await.unwrap();
    assert!(r.complete && r.events.is_empty());

    let r = store.replay_after(&at(&b, 2)).await.unwrap();
    assert_eq!(payloads(&r), [(3, b"b\x03".to_vec())]);

    // Ids survive the text form a client echoes back.
    let parsed: EventId = a_ids[1].to_string().parse().unwrap();
    let r = store.replay_after(&parsed).await.unwrap();
    assert_eq!(r.events.len(), 1);

    // Binary and multi-line payloads come back byte for byte.
    let odd = Bytes::from_static(b"line1\nline2\r\n\x00\xff");
    let id = store.append(&a, odd.clone()).await.unwrap();
    let r = store.replay_after(&at(&a, id.seq - 1)).await.unwrap();
    assert_eq!(r.events, vec![(id, odd)]);
}

async fn log_is_bounded(store: Arc<dyn SessionStore>) {
    let s = StreamKey::new(SessionId::random(), "get");
    for i in 1..=12u64 {
        let id = store.append(&s, Bytes::from(i.to_string())).await.unwrap();
        assert_eq!(id.seq, i);
    }
    // Only the newest five are kept: 8..=12.
    let r = store.replay_after(&at(&s, 7)).await.unwrap();
    assert!(r.complete, "nothing after 7 was dropped");
    assert_eq!(
        payloads(&r),
        (8..=12u64)
            .map(|i| (i, i.to_string().into_bytes()))
            .collect::<Vec<_>>()
    );
    let r = store.replay_after(&at(&s, 3)).await.unwrap();
    assert!(!r.complete, "4..=7 were dropped");
    assert_eq!(r.events.first().map(|e| e.0.seq), Some(8));
    assert_eq!(r.events.len(), 5);
    let r = store.replay_after(&at(&s, 11)).await.unwrap();
    assert_eq!(payloads(&r), [(12, b"12".to_vec())]);
}

async fn unknown_streams_are_incomplete(store: Arc<dyn SessionStore>) {
    let s = StreamKey::new(SessionId::random(), "get");
    let r = store.replay_after(&at(&s, 4)).await.unwrap();
    assert!(!r.complete && r.events.is_empty());
    store.append(&s, Bytes::from_static(b"x")).await.unwrap();
    // An id from the future (a previous incarnation of the stream).
    let r = store.replay_after(&at(&s, 9)).await.unwrap();
    assert!(!r.complete && r.events.is_empty());
}

async fn session_lifecycle(store: Arc<dyn SessionStore>) {
    let id = SessionId::random();
    assert_eq!(store.peek(id).await.unwrap(), Lookup::Missing);
    assert_eq!(store.touch(id, None).await.unwrap(), Lookup::Missing);
    assert!(!store.set_meta(id, Bytes::from_static(b"{}")).await.unwrap());

    store
        .create(id, Some("alice"), Bytes::from_static(b"{\"v\":1}"))
        .await
        .unwrap();
    assert_eq!(
        store.touch(id, Some("alice")).await.unwrap(),
        Lookup::Alive(Bytes::from_static(b"{\"v\":1}"))
    );
    assert!(
        store
            .set_meta(id, Bytes::from_static(b"{\"v\":2}"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.peek(id).await.unwrap(),
        Lookup::Alive(Bytes::from_static(b"{\"v\":2}"))
    );

    let mine = StreamKey::new(id, "get");
    let other_session = StreamKey::new(SessionId::random(), "get");
    store.append(&mine, Bytes::from_static(b"1")).await.unwrap();
    store
        .append(&other_session, Bytes::from_static(b"1"))
        .await
        .unwrap();

    store
        .end(id, Some("alice"), EndReason::Revoked)
        .await
        .unwrap();
    assert_eq!(
        store.peek(id).await.unwrap(),
        Lookup::Ended(EndReason::Revoked)
    );
    assert_eq!(
        store.touch(id, Some("alice")).await.unwrap(),
        Lookup::Ended(EndReason::Revoked)
    );
    assert!(!store.set_meta(id, Bytes::from_static(b"{}")).await.unwrap());
    // The session's logs went with it; other sessions' did not.
    let r = store.replay_after(&at(&mine, 0)).await.unwrap();
    assert!(r.events.is_empty() && !r.complete);
    let r = store.replay_after(&at(&other_session, 0)).await.unwrap();
    assert_eq!(r.events.len(), 1);

    let expired = SessionId::random();
    store.create(expired, None, Bytes::new()).await.unwrap();
    store.end(expired, None, EndReason::Expired).await.unwrap();
    assert_eq!(
        store.peek(expired).await.unwrap(),
        Lookup::Ended(EndReason::Expired)
    );
}

async fn principal_cap(store: Arc<dyn SessionStore>) {
    let ids: Vec<SessionId> = (0..4).map(|_| SessionId::random()).collect();
    for id in &ids[..3] {
        store
            .create(*id, Some("alice"), Bytes::new())
            .await
            .unwrap();
    }
    match store.create(ids[3], Some("alice"), Bytes::new()).await {
        Err(Error::TooManySessions { limit: 3 }) => {}
        other => panic!("expected TooManySessions, got {other:?}"),
    }
    // Others are not affected; anonymous sessions are not capped.
    store
        .create(SessionId::random(), Some("bob"), Bytes::new())
        .await
        .unwrap();
    for _ in 0..10 {
        store
            .create(SessionId::random(), None, Bytes::new())
            .await
            .unwrap();
    }
    // Touching a live session does not take another slot.
    store.touch(ids[0], Some("alice")).await.unwrap();
    store
        .end(ids[1], Some("alice"), EndReason::Revoked)
        .await
        .unwrap();
    store
        .create(ids[3], Some("alice"), Bytes::new())
        .await
        .unwrap();
    assert!(matches!(
        store
            .create(SessionId::random(), Some("alice"), Bytes::new())
            .await,
        Err(Error::TooManySessions { .. })
    ));
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod memory_store {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::memory()).await;
                }
            )*
        }
        mod redis_store {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(server) = RedisServer::start_or_skip(concat!("redis_store::", stringify!($name))) else {
                        return;
                    };
                    super::$name(Arc::new(redis_store(&server, "t:").await)).await;
                }
            )*
        }
    };
}

both!(
    replay_is_exact,
    log_is_bounded,
    unknown_streams_are_incomplete,
    session_lifecycle,
    principal_cap,
);

// --- Redis specifics: key layout, TTLs, namespacing, real expiry ---

async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

#[tokio::test]
async fn redis_keys_are_namespaced_and_expire() {
    let Some(server) = RedisServer::start_or_skip("redis_keys_are_namespaced_and_expire") else {
        return;
    };
    let store = redis_store(&server, "fleet-a:").await;
    let mut conn = raw(&server).await;
    let id = SessionId::random();
    store
        .create(id, Some("alice"), Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let stream = StreamKey::new(id, "get");
    store
        .append(&stream, Bytes::from_static(b"e"))
        .await
        .unwrap();

    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.starts_with("fleet-a:"), "{k}");
        let ttl = pttl(&mut conn, k).await;
        assert!(
            ttl > 0 && ttl <= 600_000,
            "{k}: every key expires (pttl {ttl})"
        );
    }
    let meta_key = format!("fleet-a:s:{{{id}}}");
    assert!(keys.contains(&meta_key));

    // Ending leaves only the tombstone, living for the max lifetime.
    store
        .end(id, Some("alice"), EndReason::Revoked)
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, vec![format!("fleet-a:t:{{{id}}}")]);
    let ttl = pttl(&mut conn, &keys[0]).await;
    assert!(ttl > 600_000 && ttl <= 3_600_000, "{ttl}");

    // Another prefix is another world.
    let other = redis_store(&server, "fleet-b:").await;
    assert_eq!(other.peek(id).await.unwrap(), Lookup::Missing);
}

#[tokio::test]
async fn redis_idle_ttl_is_real() {
    let Some(server) = RedisServer::start_or_skip("redis_idle_ttl_is_real") else {
        return;
    };
    let store = RedisStore::connect(
        &server.url(),
        "t:",
        StoreLimits {
            idle_timeout: Duration::from_millis(300),
            ..limits()
        },
    )
    .await
    .unwrap();
    let id = SessionId::random();
    store.create(id, Some("alice"), Bytes::new()).await.unwrap();
    let mut conn = raw(&server).await;
    // Touch restarts the TTL.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(matches!(
        store.touch(id, Some("alice")).await.unwrap(),
        Lookup::Alive(_)
    ));
    assert!(pttl(&mut conn, &format!("t:s:{{{id}}}")).await > 200);
    // Redis expires the key on its own; the store then reports the session missing and the
    // principal's slot free.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        store.touch(id, Some("alice")).await.unwrap(),
        Lookup::Missing
    );
    let card: i64 = redis::cmd("ZCARD")
        .arg("t:p:{alice}")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(card, 0, "the principal set expired with its last member");
}

#[tokio::test]
async fn redis_down_is_an_error_not_a_hang() {
    let Some(server) = RedisServer::start_or_skip("redis_down_is_an_error_not_a_hang") else {
        return;
    };
    let store = redis_store(&server, "t:").await;
    drop(server);
    let err = store.peek(SessionId::random()).await.unwrap_err();
    assert!(
        matches!(err, Error::Redis(_) | Error::Unavailable(_)),
        "{err:?}"
    );
    // And connecting to nothing fails instead of waiting forever.
    assert!(
        RedisStore::connect("unix:///nonexistent/redis.sock", "t:", limits())
            .await
            .is_err()
    );
}

/// A session that makes many calls answered as SSE gets one stream log per call: the memory
/// store keeps only the most recently written `MAX_STREAMS_PER_SESSION` of them, so memory
/// stays bounded however long the session lives.
#[tokio::test(start_paused = true)]
async fn memory_store_bounds_stream_logs_per_session() {
    use switchboard_sessions::store::memory::MAX_STREAMS_PER_SESSION;
    let store = memory();
    let session = SessionId::random();
    let first = StreamKey::new(session, "post/first");
    let first_id = store
        .append(&first, Bytes::from_static(b"a"))
        .await
        .unwrap();
    store
        .append(&first, Bytes::from_static(b"b"))
        .await
        .unwrap();
    let mut last = None;
    for i in 0..(MAX_STREAMS_PER_SESSION * 3) {
        // Each write is later than the one before, so "least recently written" is well defined.
        tokio::time::advance(Duration::from_millis(1)).await;
        let key = StreamKey::new(session, format!("post/{i}"));
        last = Some(
            store
                .append(&key, Bytes::from(format!("ev{i}")))
                .await
                .unwrap(),
        );
    }
    // The oldest stream was forgotten: resuming it replays nothing and says so.
    let r = store.replay_after(&first_id).await.unwrap();
    assert!(r.events.is_empty() && !r.complete, "{r:?}");
    // The newest streams are all still there.
    let newest = last.unwrap();
    let before = EventId {
        stream: newest.stream.clone(),
        seq: 0,
    };
    let r = store.replay_after(&before).await.unwrap();
    assert_eq!(r.events.len(), 1);
    assert!(r.complete);
}

/// "Least recently written" counts every write, not a log's creation: a session's GET stream,
/// created first and written between every call, outlives many calls' POST logs, and the POST
/// log forgotten is the oldest one.
#[tokio::test(start_paused = true)]
async fn memory_store_keeps_a_stream_written_again() {
    use switchboard_sessions::store::memory::MAX_STREAMS_PER_SESSION;
    let store = memory();
    let session = SessionId::random();
    let get = StreamKey::new(session, "get");
    let calls = MAX_STREAMS_PER_SESSION * 5;
    for i in 0..calls {
        tokio::time::advance(Duration::from_millis(1)).await;
        store
            .append(&get, Bytes::from(format!("note{i}")))
            .await
            .unwrap();
        let post = StreamKey::new(session, format!("post/{i}"));
        store
            .append(&post, Bytes::from_static(b"reply"))
            .await
            .unwrap();
        store
            .append(&post, Bytes::from_static(b"end"))
            .await
            .unwrap();
    }
    let from_start = |name: String| EventId {
        stream: StreamKey::new(session, name),
        seq: 0,
    };
    // The GET stream is there with its newest events (the log keeps `event_log_size`: 5).
    let r = store.replay_after(&from_start("get".into())).await.unwrap();
    let events: Vec<_> = r.events.iter().map(|(_, p)| p.clone()).collect();
    assert_eq!(
        events.last(),
        Some(&Bytes::from(format!("note{}", calls - 1)))
    );
    assert_eq!(events.len(), 5);
    // With it, the newest MAX - 1 POST logs are kept whole; the one before them is gone.
    let kept = calls - (MAX_STREAMS_PER_SESSION - 1);
    let r = store
        .replay_after(&from_start(format!("post/{kept}")))
        .await
        .unwrap();
    assert_eq!(r.events.len(), 2, "{r:?}");
    assert!(r.complete);
    let r = store
        .replay_after(&from_start(format!("post/{}", kept - 1)))
        .await
        .unwrap();
    assert!(r.events.is_empty() && !r.complete, "{r:?}");
}

/// The Redis store bounds a session's stream logs as the memory store does: the most recently
/// written `MAX_STREAMS_PER_SESSION` streams are kept, older ones (their events and counters)
/// deleted from Redis, not left to their TTL.
#[tokio::test]
async fn redis_store_bounds_stream_logs_per_session() {
    use switchboard_sessions::store::memory::MAX_STREAMS_PER_SESSION;
    let Some(server) = RedisServer::start_or_skip("redis_store_bounds_stream_logs_per_session")
    else {
        return;
    };
    let store = redis_store(&server, "t:").await;
    let session = SessionId::random();
    let first = StreamKey::new(session, "post/first");
    let first_id = store
        .append(&first, Bytes::from_static(b"a"))
        .await
        .unwrap();
    let mut last = None;
    for i in 0..(MAX_STREAMS_PER_SESSION * 2) {
        let key = StreamKey::new(session, format!("post/{i}"));
        last = Some(
            store
                .append(&key, Bytes::from(format!("ev{i}")))
                .await
                .unwrap(),
        );
    }
    let r = store.replay_after(&first_id).await.unwrap();
    assert!(r.events.is_empty() && !r.complete, "{r:?}");
    let newest = last.unwrap();
    let r = store
        .replay_after(&EventId {
            stream: newest.stream.clone(),
            seq: 0,
        })
        .await
        .unwrap();
    assert_eq!(r.events.len(), 1);
    let mut conn = raw(&server).await;
    let lists: Vec<String> = redis::cmd("KEYS")
        .arg(format!("t:e:{{{session}}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(lists.len(), MAX_STREAMS_PER_SESSION);
    let counters: Vec<String> = redis::cmd("KEYS")
        .arg(format!("t:n:{{{session}}}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(counters.len(), MAX_STREAMS_PER_SESSION);
}
