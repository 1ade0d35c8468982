//! Two replicas (two managers, each with its own Redis connection) sharing one real
//! `redis-server`: what the gateway's two-process test relies on, checked at the library level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use prometheus_client::registry::Registry;
use switchboard_sessions::{
    Error, How, Metrics, RedisConfig, Release, ReleaseReason, SessionManager, SessionsConfig,
    StoreKind, TargetEntry,
};
use switchboard_testing::redis::RedisServer;

fn config(server: &RedisServer, replica: &str, keys: &[u8]) -> SessionsConfig {
    SessionsConfig {
        store: StoreKind::Redis,
        redis: Some(RedisConfig {
            prefix: "sb:".into(),
            ..RedisConfig::standalone(server.url())
        }),
        keys: keys
            .iter()
            .map(|b| base64::engine::general_purpose::STANDARD.encode([*b; 32]))
            .collect(),
        replica: Some(replica.into()),
        max_per_principal: 3,
        ..Default::default()
    }
}

async fn replica(cfg: &SessionsConfig) -> SessionManager {
    assert!(cfg.validate("sessions").is_empty());
    SessionManager::from_config(cfg, Metrics::new(&mut Registry::default()))
        .await
        .unwrap()
}

async fn pair(server: &RedisServer) -> (SessionManager, SessionManager) {
    (
        replica(&config(server, "a:8080", &[1])).await,
        replica(&config(server, "b:8080", &[1])).await,
    )
}

fn targets() -> Vec<TargetEntry> {
    vec![TargetEntry {
        name: "search".into(),
        upstream_session: Some("up-1".into()),
        endpoint: Some("http://10.0.0.9:3001/mcp".into()),
    }]
}

fn record(
    m: &SessionManager,
) -> (
    Arc<Mutex<Vec<Release>>>,
    switchboard_sessions::ReleaseSubscription,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, m.on_release(move |r| sink.lock().unwrap().push(*r)))
}

macro_rules! redis_or_skip {
    ($name:literal) => {
        match RedisServer::start_or_skip($name) {
            Some(server) => server,
            None => return,
        }
    };
}

#[tokio::test]
async fn session_moves_between_replicas() {
    let server = redis_or_skip!("session_moves_between_replicas");
    let (a, b) = pair(&server).await;
    let mut s = a.create(Some("alice"), targets(), false).await.unwrap();

    // B has never seen it: rebuilt from the token, with the store's view of the targets.
    let on_b = b.resume(&s.token, Some("alice")).await.unwrap();
    assert_eq!(on_b.how, How::Token);
    assert_eq!(on_b.session.targets, targets());
    assert_eq!(
        b.resume(&s.token, Some("alice")).await.unwrap().how,
        How::Local
    );

    // What A learns later reaches B through the store.
    let learned = TargetEntry {
        name: "search".into(),
        upstream_session: Some("up-2".into()),
        endpoint: Some("http://10.0.0.9:3001/mcp".into()),
    };
    a.update_target(&mut s, learned.clone()).await.unwrap();
    let on_b = b.resume(&s.token, Some("alice")).await.unwrap();
    assert_eq!(on_b.session.target("search"), Some(&learned));

    // The principal binding holds on B as well.
    assert!(matches!(
        b.resume(&s.token, Some("mallory")).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn events_written_on_one_replica_replay_on_the_other() {
    let server = redis_or_skip!("events_written_on_one_replica_replay_on_the_other");
    let (a, b) = pair(&server).await;
    let s = a.create(None, vec![], false).await.unwrap();
    let get = s.stream("get");
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(
            a.append_event(&get, Bytes::from(format!("{{\"n\":{i}}}")))
                .await
                .unwrap(),
        );
    }
    // The client saw events 1 and 2, then A went away; it reconnects to B.
    let session_on_b = b.resume(&s.token, None).await.unwrap().session;
    let replay = b.replay(&session_on_b, &ids[1].to_string()).await.unwrap();
    assert!(replay.complete);
    assert_eq!(
        replay.events,
        (3..=5)
            .map(|i| (ids[i - 1].clone(), Bytes::from(format!("{{\"n\":{i}}}"))))
            .collect::<Vec<_>>()
    );
    // B continues the same stream: ids keep counting.
    let next = b
        .append_event(
            &session_on_b.stream("get"),
            Bytes::from_static(b"{\"n\":6}"),
        )
        .await
        .unwrap();
    assert_eq!(next.seq, 6);
    let replay = a.replay(&s, &ids[4].to_string()).await.unwrap();
    assert_eq!(
        replay.events,
        vec![(next, Bytes::from_static(b"{\"n\":6}"))]
    );
}

#[tokio::test]
async fn revocation_on_one_replica_ends_the_session_on_the_other() {
    let server = redis_or_skip!("revocation_on_one_replica_ends_the_session_on_the_other");
    let (a, b) = pair(&server).await;
    let (seen_a, _sub) = record(&a);
    let s = a.create(Some("alice"), vec![], false).await.unwrap();
    let on_b = b.resume(&s.token, Some("alice")).await.unwrap().session;
    b.revoke(&on_b).await.unwrap();
    assert!(matches!(
        a.resume(&s.token, Some("alice")).await,
        Err(Error::NotFound)
    ));
    assert_eq!(
        seen_a.lock().unwrap().as_slice(),
        &[Release {
            id: s.id,
            reason: ReleaseReason::Revoked
        }]
    );
    // A restarted replica (fresh manager, same keys) does not revive it either.
    let a2 = replica(&config(&server, "a:8080", &[1])).await;
    assert!(matches!(
        a2.resume(&s.token, Some("alice")).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn the_cap_is_fleet_wide() {
    let server = redis_or_skip!("the_cap_is_fleet_wide");
    let (a, b) = pair(&server).await;
    a.create(Some("alice"), vec![], false).await.unwrap();
    b.create(Some("alice"), vec![], false).await.unwrap();
    let third = a.create(Some("alice"), vec![], false).await.unwrap();
    assert!(matches!(
        b.create(Some("alice"), vec![], false).await,
        Err(Error::TooManySessions { limit: 3 })
    ));
    a.revoke(&third).await.unwrap();
    b.create(Some("alice"), vec![], false).await.unwrap();
}

#[tokio::test]
async fn rotated_keys_across_replicas() {
    let server = redis_or_skip!("rotated_keys_across_replicas");
    // A still runs the old config; B was rolled out with a new key first.
    let a = replica(&config(&server, "a:8080", &[1])).await;
    let b = replica(&config(&server, "b:8080", &[2, 1])).await;
    let old = a.create(None, targets(), false).await.unwrap();
    assert_eq!(b.resume(&old.token, None).await.unwrap().how, How::Token);
    // C lacks the old key entirely.
    let c = replica(&config(&server, "c:8080", &[2])).await;
    assert!(matches!(
        c.resume(&old.token, None).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test]
async fn pinned_session_names_its_replica_everywhere() {
    let server = redis_or_skip!("pinned_session_names_its_replica_everywhere");
    let (a, b) = pair(&server).await;
    let s = a.create(None, targets(), true).await.unwrap();
    let on_b = b.resume(&s.token, None).await.unwrap().session;
    assert_eq!(on_b.owned_elsewhere(b.replica_id()), Some("a:8080"));
    assert_eq!(s.owned_elsewhere(a.replica_id()), None);
}

#[tokio::test]
async fn idle_here_but_alive_elsewhere_is_released_not_expired() {
    let server = redis_or_skip!("idle_here_but_alive_elsewhere_is_released_not_expired");
    // Real time: Redis expires keys on its own clock, so this test waits out a short idle
    // timeout while B keeps the session busy.
    let idle = Duration::from_secs(1);
    let cfg = |name: &str| SessionsConfig {
        idle_timeout: idle,
        ..config(&server, name, &[1])
    };
    let a = replica(&cfg("a:8080")).await;
    let b = replica(&cfg("b:8080")).await;
    let (seen_a, _sub) = record(&a);
    let s = a.create(None, targets(), false).await.unwrap();
    b.resume(&s.token, None).await.unwrap();
    let started = tokio::time::Instant::now();
    while started.elapsed() < idle + idle / 2 {
        tokio::time::sleep(idle / 5).await;
        b.resume(&s.token, None).await.unwrap();
    }
    assert_eq!(a.reap().await.unwrap(), 0, "nothing expired fleet-wide");
    assert_eq!(
        seen_a.lock().unwrap().as_slice(),
        &[Release {
            id: s.id,
            reason: ReleaseReason::Moved
        }]
    );
    assert_eq!(a.local_sessions(), 0);
    b.resume(&s.token, None).await.unwrap();
    // Coming back to A is a first sight again.
    assert_eq!(a.resume(&s.token, None).await.unwrap().how, How::Token);

    // Once nobody touches it, it expires everywhere.
    tokio::time::sleep(idle + idle / 2).await;
    assert!(matches!(
        b.resume(&s.token, None).await,
        Err(Error::NotFound)
    ));
}
