//! The store on a real Redis Cluster (3 masters, 3 replicas) and a real Sentinel set-up (master,
//! replica, 3 sentinels): two replicas share sessions and `Last-Event-ID` logs, and keep doing
//! so across a coordinated failover of the master that holds the session's keys. And on one
//! server that is stopped, paused and restarted: calls fail within the timeout, the breaker
//! makes them fail at once, and the store comes back on its own.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use prometheus_client::registry::Registry;
use switchboard_sessions::{
    BreakerConfig, Error, How, Metrics, RedisConfig, SentinelConfig, SessionManager,
    SessionsConfig, StoreKind,
};
use switchboard_testing::redis::{RedisCluster, RedisSentinel, RedisServer};

fn config(redis: RedisConfig, replica: &str) -> SessionsConfig {
    SessionsConfig {
        store: StoreKind::Redis,
        redis: Some(redis),
        keys: vec![base64::engine::general_purpose::STANDARD.encode([1u8; 32])],
        replica: Some(replica.into()),
        max_per_principal: 3,
        ..Default::default()
    }
}

async fn replica(cfg: &SessionsConfig) -> (SessionManager, Registry) {
    assert!(
        cfg.validate("sessions").is_empty(),
        "{:?}",
        cfg.validate("sessions")
    );
    // The gateway's registry: every family is prefixed `switchboard_`.
    let mut registry = Registry::with_prefix("switchboard");
    let m = SessionManager::from_config(cfg, Metrics::new(&mut registry))
        .await
        .unwrap();
    (m, registry)
}

async fn pair(redis: RedisConfig) -> (SessionManager, SessionManager) {
    (
        replica(&config(redis.clone(), "a:8080")).await.0,
        replica(&config(redis, "b:8080")).await.0,
    )
}

/// Failovers take a moment for the clients to notice (MOVED, READONLY, a new master from the
/// sentinels): calls are retried the way a client retries a 503.
async fn retrying<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = switchboard_sessions::Result<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) => {
                assert!(Instant::now() < deadline, "{what}: still failing: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The two-replica scenario, with `fail_over` run in the middle: a session created on A moves
/// to B, events written on A replay on B after the failover, the stream keeps counting, and
/// the principal cap still holds fleet-wide.
async fn two_replicas_across_a_failover(redis: RedisConfig, fail_over: impl FnOnce(&str)) {
    let (a, b) = pair(redis.clone()).await;
    let s = a.create(Some("alice"), vec![], false).await.unwrap();
    let on_b = b.resume(&s.token, Some("alice")).await.unwrap();
    assert_eq!(on_b.how, How::Token);
    let get = s.stream("get");
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(
            a.append_event(&get, Bytes::from(format!("{i}")))
                .await
                .unwrap(),
        );
    }

    // The keys of this session live on one slot (hash tag = session id): fail over its master.
    let prefix = &redis.prefix;
    fail_over(&format!("{prefix}s:{{{}}}", s.id));

    // B resumes the session and replays what the client missed, from the promoted replica.
    let session_on_b = retrying("resume on b", || b.resume(&s.token, Some("alice")))
        .await
        .session;
    let seen = ids[1].to_string();
    let replay = retrying("replay on b", || b.replay(&session_on_b, &seen)).await;
    assert!(replay.complete);
    assert_eq!(
        replay.events,
        (3..=5)
            .map(|i| (ids[i - 1].clone(), Bytes::from(format!("{i}"))))
            .collect::<Vec<_>>(),
        "every acknowledged event survived the failover"
    );
    let get_on_b = session_on_b.stream("get");
    let next = retrying("append on b", || {
        b.append_event(&get_on_b, Bytes::from_static(b"6"))
    })
    .await;
    assert_eq!(next.seq, 6, "the stream keeps counting");
    let seen = ids[4].to_string();
    let replay = retrying("replay on a", || a.replay(&s, &seen)).await;
    assert_eq!(replay.events, vec![(next, Bytes::from_static(b"6"))]);

    // The cap (3) is still fleet-wide: alice holds one, two more fit, the fourth is refused.
    retrying("create on a", || a.create(Some("alice"), vec![], false)).await;
    retrying("create on b", || b.create(Some("alice"), vec![], false)).await;
    assert!(matches!(
        b.create(Some("alice"), vec![], false).await,
        Err(Error::TooManySessions { limit: 3 })
    ));
}

fn cluster_config(cluster: &RedisCluster) -> RedisConfig {
    RedisConfig {
        url: None,
        cluster: cluster.seeds(),
        timeout: Duration::from_secs(1),
        ..RedisConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_sessions_and_event_logs_survive_a_master_failover() {
    let Some(cluster) =
        RedisCluster::start_or_skip("cluster_sessions_and_event_logs_survive_a_master_failover")
    else {
        return;
    };
    two_replicas_across_a_failover(cluster_config(&cluster), |key| {
        let (before, _) = cluster.master_and_replica_of(key);
        let before = before.port();
        let after = cluster.fail_over_master_of(key);
        assert_ne!(before, after);
    })
    .await;
}

/// Sessions spread over every master: each session's scripts run on its own slot (a
/// cross-slot script would fail with CROSSSLOT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_spreads_sessions_over_every_master() {
    let Some(cluster) = RedisCluster::start_or_skip("cluster_spreads_sessions_over_every_master")
    else {
        return;
    };
    let (a, b) = pair(cluster_config(&cluster)).await;
    let mut masters = std::collections::HashSet::new();
    for i in 0..24 {
        let principal = format!("user-{i}");
        let s = a.create(Some(&principal), vec![], false).await.unwrap();
        let e = a
            .append_event(&s.stream(format!("post/{i}")), Bytes::from_static(b"x"))
            .await
            .unwrap();
        let on_b = b.resume(&s.token, Some(&principal)).await.unwrap().session;
        let replay = b
            .replay(&on_b, &format!("{}", EventIdZero(&e)))
            .await
            .unwrap();
        assert_eq!(replay.events.len(), 1);
        b.revoke(&on_b).await.unwrap();
        assert!(matches!(
            a.resume(&s.token, Some(&principal)).await,
            Err(Error::NotFound)
        ));
        masters.insert(
            cluster
                .master_and_replica_of(&format!("switchboard:s:{{{}}}", s.id))
                .0
                .port(),
        );
    }
    assert_eq!(masters.len(), 3, "sessions landed on every master");
}

/// The id of the event before `e` in its stream (seq 0: replay everything).
struct EventIdZero<'a>(&'a switchboard_sessions::EventId);

impl std::fmt::Display for EventIdZero<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let zero = switchboard_sessions::EventId {
            stream: self.0.stream.clone(),
            seq: 0,
        };
        write!(f, "{zero}")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_sessions_and_event_logs_survive_a_failover() {
    let Some(sentinel) =
        RedisSentinel::start_or_skip("sentinel_sessions_and_event_logs_survive_a_failover")
    else {
        return;
    };
    let redis = RedisConfig {
        url: None,
        sentinel: Some(SentinelConfig {
            master: RedisSentinel::MASTER.into(),
            nodes: sentinel.sentinel_urls(),
        }),
        timeout: Duration::from_secs(1),
        ..RedisConfig::default()
    };
    two_replicas_across_a_failover(redis, |_| {
        let before = sentinel.master_port();
        // Acknowledged writes reach the replica before the failover (asynchronous
        // replication: `WAIT` here is the test making sure, not the store).
        let out = sentinel.master().cli(&["WAIT", "1", "2000"]);
        assert_eq!(out.trim(), "1", "replica acknowledged");
        let after = sentinel.failover();
        assert_ne!(before, after);
    })
    .await;
}

fn metric(registry: &Registry, name: &str) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
    out.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or("")
        .to_owned()
}

fn fast_breaker(server: &RedisServer) -> RedisConfig {
    RedisConfig {
        timeout: Duration::from_millis(200),
        breaker: BreakerConfig {
            failures: 2,
            cool_down: Duration::from_millis(500),
        },
        ..RedisConfig::standalone(server.url())
    }
}

/// Redis stopped, then restarted: calls fail with a store error (never hang), after
/// `breaker.failures` of them the breaker opens and calls fail at once without asking Redis,
/// the gauge says down; once Redis is back, the next probe closes the breaker on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_redis_fails_fast_and_recovers_on_its_own() {
    let Some(mut server) =
        RedisServer::start_or_skip("stopped_redis_fails_fast_and_recovers_on_its_own")
    else {
        return;
    };
    let (m, registry) = replica(&config(fast_breaker(&server), "a")).await;
    let link = m.redis_link().unwrap().clone();
    let s = m.create(None, vec![], false).await.unwrap();
    assert_eq!(
        metric(&registry, "switchboard_store_up"),
        "switchboard_store_up 1"
    );

    server.stop();
    for _ in 0..2 {
        let t = Instant::now();
        let err = m.resume(&s.token, None).await.unwrap_err();
        assert!(
            matches!(err, Error::Redis(_) | Error::Unavailable(_)),
            "{err:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    assert!(!link.is_up(), "two failures open the breaker");
    assert_eq!(
        metric(&registry, "switchboard_store_up"),
        "switchboard_store_up 0"
    );
    // An open breaker answers without asking Redis: each of these is counted as refused by
    // the breaker (below), none as a Redis failure.
    for _ in 0..50 {
        assert!(matches!(
            m.resume(&s.token, None).await,
            Err(Error::Unavailable(_))
        ));
    }
    assert!(
        metric(
            &registry,
            "switchboard_store_failures_total{reason=\"breaker_open\"}"
        )
        .ends_with(" 50")
    );
    assert!(
        metric(
            &registry,
            "switchboard_store_failures_total{reason=\"error\"}"
        )
        .ends_with(" 2"),
        "only the two calls before the breaker opened reached Redis"
    );

    // Back (empty: no persistence). No request is needed for the breaker to close: the
    // prober asks after each cool-down.
    server.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !link.is_up() {
        assert!(Instant::now() < deadline, "breaker still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(&registry, "switchboard_store_up"),
        "switchboard_store_up 1"
    );
    // Redis lost its data (no persistence): the session is gone, a new one works.
    assert!(matches!(
        m.resume(&s.token, None).await,
        Err(Error::NotFound)
    ));
    m.create(None, vec![], false).await.unwrap();
}

/// Redis frozen (SIGSTOP, or busy in `DEBUG SLEEP`): a call fails after the timeout, not when
/// the kernel gives up on the connection; the breaker then fails calls at once; thawed, the
/// store serves again with its data intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_costs_one_timeout_then_fails_fast() {
    let Some(server) = RedisServer::start_or_skip("paused_redis_costs_one_timeout_then_fails_fast")
    else {
        return;
    };
    let cfg = fast_breaker(&server);
    let timeout = cfg.timeout;
    let (m, registry) = replica(&config(cfg, "a")).await;
    let s = m.create(None, vec![], false).await.unwrap();

    server.pause();
    for _ in 0..2 {
        let t = Instant::now();
        assert!(matches!(
            m.resume(&s.token, None).await,
            Err(Error::Unavailable(_))
        ));
        let took = t.elapsed();
        assert!(took >= timeout && took < timeout * 5, "{took:?}");
    }
    // The breaker is open: the third call is refused without waiting for Redis.
    assert!(matches!(
        m.resume(&s.token, None).await,
        Err(Error::Unavailable(_))
    ));
    assert!(
        metric(
            &registry,
            "switchboard_store_failures_total{reason=\"timeout\"}"
        )
        .ends_with(" 2")
    );
    assert!(
        metric(
            &registry,
            "switchboard_store_failures_total{reason=\"breaker_open\"}"
        )
        .ends_with(" 1")
    );
    server.resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match m.resume(&s.token, None).await {
            Ok(r) => {
                assert_eq!(r.session.id, s.id, "data intact after a pause");
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "not back: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // DEBUG SLEEP: the server is busy, not frozen; same outcome.
    let sleeper = {
        let socket = server.socket().to_owned();
        std::thread::spawn(move || {
            std::process::Command::new("redis-cli")
                .arg("-s")
                .arg(socket)
                .args(["DEBUG", "SLEEP", "1"])
                .output()
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t = Instant::now();
    assert!(m.resume(&s.token, None).await.is_err());
    assert!(t.elapsed() < timeout * 5, "{:?}", t.elapsed());
    sleeper.join().unwrap();
}
