//! Manager behaviour over the memory store, with paused tokio time.

use std::sync::Mutex;

use base64::Engine as _;
use prometheus_client::registry::Registry;

use super::*;

const IDLE: Duration = Duration::from_secs(30 * 60);

fn key(b: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([b; 32])
}

fn config(keys: &[u8]) -> SessionsConfig {
    SessionsConfig {
        keys: keys.iter().map(|b| key(*b)).collect(),
        replica: Some("replica-a".into()),
        ..Default::default()
    }
}

fn manager_on(cfg: &SessionsConfig, store: Arc<dyn SessionStore>) -> (SessionManager, Metrics) {
    let metrics = Metrics::new(&mut Registry::default());
    (
        SessionManager::new(cfg, store, metrics.clone()).unwrap(),
        metrics,
    )
}

/// Two managers (replicas) on one memory store, with one key.
fn two_replicas() -> (SessionManager, SessionManager) {
    let cfg = config(&[1]);
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::from_config(&cfg)));
    let (a, _) = manager_on(&cfg, store.clone());
    let (b, _) = manager_on(&cfg, store);
    (a, b)
}

fn manager(cfg: &SessionsConfig) -> (SessionManager, Metrics) {
    manager_on(
        cfg,
        Arc::new(MemoryStore::new(StoreLimits::from_config(cfg))),
    )
}

fn targets() -> Vec<TargetEntry> {
    vec![
        TargetEntry {
            name: "search".into(),
            upstream_session: Some("up-1".into()),
            endpoint: Some("http://10.0.0.1:3001/mcp".into()),
        },
        TargetEntry::new("everything"),
    ]
}

fn releases(m: &SessionManager) -> (Arc<Mutex<Vec<Release>>>, ReleaseSubscription) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let sub = m.on_release(move |r| sink.lock().unwrap().push(*r));
    (seen, sub)
}

fn rejected(m: &Metrics, reason: Rejection) -> u64 {
    m.rejected
        .get_or_create(&crate::metrics::ReasonLabel { reason })
        .get()
}

fn resumed(m: &Metrics, how: How) -> u64 {
    m.resumed
        .get_or_create(&crate::metrics::HowLabel { how })
        .get()
}

async fn not_found(m: &SessionManager, token: &str, principal: Option<&str>) {
    match m.resume(token, principal).await {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn create_then_resume_locally() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(Some("alice"), targets(), false).await.unwrap();
    assert_eq!(s.targets, targets());
    assert_eq!(s.principal.as_deref(), Some("alice"));
    assert_eq!(s.replica, None);
    let r = m.resume(&s.token, Some("alice")).await.unwrap();
    assert_eq!(r.how, How::Local);
    assert_eq!(r.session, s);
    assert!(
        !format!("{s:?}").contains(&*s.token),
        "Debug must not print the token"
    );
    assert_eq!(metrics.created.get(), 1);
    assert_eq!(metrics.open.get(), 1);
    assert_eq!(resumed(&metrics, How::Local), 1);
}

#[tokio::test(start_paused = true)]
async fn first_sight_rebuilds_from_token() {
    // Replica B has its own memory store and has never seen the session (a restart, or the
    // client moved): the token alone resumes it.
    let cfg = config(&[1]);
    let (a, _) = manager(&cfg);
    let (b, b_metrics) = manager(&cfg);
    let s = a.create(None, targets(), false).await.unwrap();
    let r = b.resume(&s.token, None).await.unwrap();
    assert_eq!(r.how, How::Token);
    assert_eq!(r.session.targets, targets());
    assert_eq!(r.session.id, s.id);
    assert_eq!(resumed(&b_metrics, How::Token), 1);
    assert_eq!(b.resume(&s.token, None).await.unwrap().how, How::Local);
    assert_eq!(b_metrics.open.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn idle_session_expires() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(None, vec![], false).await.unwrap();
    tokio::time::advance(IDLE - Duration::from_secs(1)).await;
    m.resume(&s.token, None).await.unwrap();
    // Resuming restarted the idle timer.
    tokio::time::advance(IDLE - Duration::from_secs(1)).await;
    m.resume(&s.token, None).await.unwrap();
    tokio::time::advance(IDLE + Duration::from_secs(1)).await;
    not_found(&m, &s.token, None).await;
    assert_eq!(rejected(&metrics, Rejection::Expired), 1);
    assert_eq!(metrics.open.get(), 0);
    assert_eq!(metrics.expired.get(), 1);
    // Not revived as a "first sight": the store remembers it expired.
    not_found(&m, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn expired_session_stays_dead_for_another_manager_on_the_store() {
    let (a, b) = two_replicas();
    let s = a.create(None, vec![], false).await.unwrap();
    tokio::time::advance(IDLE * 2).await;
    a.reap().await.unwrap();
    not_found(&b, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn max_lifetime_ends_even_active_sessions() {
    let cfg = SessionsConfig {
        idle_timeout: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(4 * 3600),
        ..config(&[1])
    };
    let (m, metrics) = manager(&cfg);
    // Built now so its clock follows the same (paused) time as `m`'s.
    let (other, _) = manager(&cfg);
    let s = m.create(Some("alice"), vec![], false).await.unwrap();
    for _ in 0..7 {
        tokio::time::advance(Duration::from_secs(1800)).await;
        m.resume(&s.token, Some("alice")).await.unwrap();
    }
    tokio::time::advance(Duration::from_secs(1800)).await;
    // 4h after issue: gone however busy.
    not_found(&m, &s.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Expired), 1);
    assert_eq!(m.local_sessions(), 0);
    // A token from another keyring-holder that never saw it is rejected too (the lifetime is
    // in the token).
    not_found(&other, &s.token, Some("alice")).await;
}

#[tokio::test(start_paused = true)]
async fn reaper_expires_idle_sessions_and_notifies() {
    let (m, metrics) = manager(&config(&[1]));
    let (seen, _sub) = releases(&m);
    let busy = m.create(None, vec![], false).await.unwrap();
    let idle = m.create(None, vec![], false).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let reaper = m.spawn_reaper(async move {
        let _ = stop_rx.await;
    });
    // Keep one busy by resuming it every 10 minutes; the other is left alone.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(600)).await;
        m.resume(&busy.token, None).await.unwrap();
    }
    // 40 minutes in: the reaper (every 60 s) has expired the idle one.
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Release {
            id: idle.id,
            reason: ReleaseReason::Expired
        }]
    );
    assert_eq!(metrics.expired.get(), 1);
    assert_eq!(metrics.open.get(), 1);
    assert_eq!(m.local_sessions(), 1);
    not_found(&m, &idle.token, None).await;
    stop_tx.send(()).unwrap();
    reaper.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn reaper_stops_when_manager_dropped() {
    let (m, _) = manager(&config(&[1]));
    let reaper = m.spawn_reaper(std::future::pending());
    drop(m);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(reaper.is_finished());
}

#[tokio::test(start_paused = true)]
async fn open_stream_keeps_session_alive() {
    let (m, _) = manager(&config(&[1]));
    let (seen, _sub) = releases(&m);
    let s = m.create(None, vec![], false).await.unwrap();
    let _reaper = m.spawn_reaper(std::future::pending());
    let guard = m.activity(&s);
    tokio::time::sleep(IDLE * 3).await;
    assert!(seen.lock().unwrap().is_empty());
    m.resume(&s.token, None).await.unwrap();
    // The idle clock starts when the stream closes.
    drop(guard);
    tokio::time::sleep(IDLE - Duration::from_secs(120)).await;
    assert!(seen.lock().unwrap().is_empty());
    tokio::time::sleep(Duration::from_secs(240)).await;
    assert_eq!(seen.lock().unwrap().len(), 1);
    not_found(&m, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn lifetime_ends_open_streams_too() {
    let cfg = SessionsConfig {
        max_lifetime: Duration::from_secs(3600),
        ..config(&[1])
    };
    let (m, _) = manager(&cfg);
    let (seen, _sub) = releases(&m);
    let s = m.create(None, vec![], false).await.unwrap();
    let _guard = m.activity(&s);
    tokio::time::advance(Duration::from_secs(3601)).await;
    assert_eq!(m.reap().await.unwrap(), 1);
    assert_eq!(seen.lock().unwrap()[0].reason, ReleaseReason::Expired);
    not_found(&m, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn key_rotation() {
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::default()));
    let (old, _) = manager_on(&config(&[1]), store.clone());
    let s = old.create(Some("alice"), targets(), false).await.unwrap();
    // New key first, old key still listed: old tokens open, new tokens use the new key.
    let (rotated, _) = manager_on(&config(&[2, 1]), store.clone());
    let r = rotated.resume(&s.token, Some("alice")).await.unwrap();
    assert_eq!(r.session.targets, targets());
    let fresh = rotated.create(Some("alice"), vec![], false).await.unwrap();
    not_found(&old, &fresh.token, Some("alice")).await;
    // A keyring that lacks the old key cannot open the old token.
    let (new_only, metrics) = manager_on(&config(&[2]), store);
    not_found(&new_only, &s.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Invalid), 1);
    new_only.resume(&fresh.token, Some("alice")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn tampered_token_is_not_found() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(None, vec![], false).await.unwrap();
    let mut bytes = s.token.as_bytes().to_vec();
    let mid = bytes.len() / 2;
    bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    not_found(&m, &tampered, None).await;
    not_found(&m, "", None).await;
    not_found(&m, "garbage!", None).await;
    assert_eq!(rejected(&metrics, Rejection::Invalid), 3);
    m.resume(&s.token, None).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn token_is_bound_to_its_principal() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(Some("alice"), vec![], false).await.unwrap();
    not_found(&m, &s.token, Some("bob")).await;
    not_found(&m, &s.token, None).await;
    let anon = m.create(None, vec![], false).await.unwrap();
    not_found(&m, &anon.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Principal), 3);
    m.resume(&s.token, Some("alice")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn revoked_session_is_not_found_everywhere_on_the_store() {
    let cfg = config(&[1]);
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::from_config(&cfg)));
    let (a, metrics) = manager_on(&cfg, store.clone());
    let (b, _) = manager_on(&cfg, store);
    let (seen, _sub) = releases(&a);
    let s = a.create(Some("alice"), vec![], false).await.unwrap();
    let events = s.stream("get");
    a.append_event(&events, Bytes::from_static(b"x"))
        .await
        .unwrap();
    a.revoke(&s).await.unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[Release {
            id: s.id,
            reason: ReleaseReason::Revoked
        }]
    );
    not_found(&a, &s.token, Some("alice")).await;
    not_found(&b, &s.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Revoked), 1);
    // Its event logs are gone with it.
    let gone = b
        .store()
        .replay_after(&EventId {
            stream: events,
            seq: 0,
        })
        .await
        .unwrap();
    assert!(gone.events.is_empty());
    // Revocation outlives the idle timeout: it lasts until the token's own lifetime ends.
    tokio::time::advance(IDLE * 10).await;
    a.reap().await.unwrap();
    not_found(&b, &s.token, Some("alice")).await;
}

#[tokio::test(start_paused = true)]
async fn revocation_seen_by_a_replica_that_served_the_session() {
    let (a, b) = two_replicas();
    let (seen_a, _sub) = releases(&a);
    let s = a.create(None, vec![], false).await.unwrap();
    let on_b = b.resume(&s.token, None).await.unwrap().session;
    b.revoke(&on_b).await.unwrap();
    not_found(&a, &s.token, None).await;
    assert_eq!(
        seen_a.lock().unwrap().as_slice(),
        &[Release {
            id: s.id,
            reason: ReleaseReason::Revoked
        }]
    );
    assert_eq!(a.local_sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn per_principal_cap() {
    let cfg = SessionsConfig {
        max_per_principal: 2,
        ..config(&[1])
    };
    let (m, _) = manager(&cfg);
    let s1 = m.create(Some("alice"), vec![], false).await.unwrap();
    let _s2 = m.create(Some("alice"), vec![], false).await.unwrap();
    match m.create(Some("alice"), vec![], false).await {
        Err(Error::TooManySessions { limit: 2 }) => {}
        other => panic!("expected TooManySessions, got {other:?}"),
    }
    m.create(Some("bob"), vec![], false).await.unwrap();
    for _ in 0..5 {
        m.create(None, vec![], false).await.unwrap();
    }
    // Deleting one frees a slot.
    m.revoke(&s1).await.unwrap();
    let s3 = m.create(Some("alice"), vec![], false).await.unwrap();
    // So does expiry.
    tokio::time::advance(IDLE + Duration::from_secs(1)).await;
    m.reap().await.unwrap();
    m.create(Some("alice"), vec![], false).await.unwrap();
    m.create(Some("alice"), vec![], false).await.unwrap();
    not_found(&m, &s3.token, Some("alice")).await;
}

#[tokio::test(start_paused = true)]
async fn a_session_resumed_again_follows_what_another_replica_learned() {
    // Resumes on `b` keep the session they built (keyed by the token and the store's
    // metadata); what `a` learns later changes that metadata and must reach `b`'s next
    // resume, and a revocation must still end it there.
    let (a, b) = two_replicas();
    let mut s = a.create(None, targets(), false).await.unwrap();
    a.update_target(&mut s, TargetEntry::new("first"))
        .await
        .unwrap();
    let first = b.resume(&s.token, None).await.unwrap();
    assert_eq!(first.how, How::Token);
    let again = b.resume(&s.token, None).await.unwrap();
    assert_eq!(again.how, How::Local);
    assert!(again.session == first.session);
    let learned = TargetEntry {
        name: "everything".into(),
        upstream_session: Some("up-3".into()),
        endpoint: Some("http://replica-2/mcp".into()),
    };
    a.update_target(&mut s, learned.clone()).await.unwrap();
    let later = b.resume(&s.token, None).await.unwrap();
    assert_eq!(later.how, How::Local);
    assert_eq!(later.session.target("everything"), Some(&learned));
    assert_eq!(
        later.session.target("first"),
        Some(&TargetEntry::new("first"))
    );
    a.revoke(&s).await.unwrap();
    not_found(&b, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn learned_target_state_reaches_later_resumes() {
    let (a, b) = two_replicas();
    let mut s = a.create(None, targets(), false).await.unwrap();
    let learned = TargetEntry {
        name: "everything".into(),
        upstream_session: Some("up-2".into()),
        endpoint: None,
    };
    a.update_target(&mut s, learned.clone()).await.unwrap();
    assert_eq!(s.target("everything"), Some(&learned));
    let r = b.resume(&s.token, None).await.unwrap();
    assert_eq!(r.how, How::Token);
    assert_eq!(r.session.target("everything"), Some(&learned));
    assert_eq!(r.session.target("search"), targets().first());
    // The token did not change.
    assert_eq!(r.session.token, s.token);
    a.revoke(&s).await.unwrap();
    assert!(matches!(
        a.update_target(&mut s, TargetEntry::new("x")).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test(start_paused = true)]
async fn pinned_sessions_name_their_replica() {
    let (a, _) = manager(&config(&[1]));
    let b_cfg = SessionsConfig {
        replica: Some("replica-b".into()),
        ..config(&[1])
    };
    let (b, _) = manager(&b_cfg);
    let s = a.create(None, targets(), true).await.unwrap();
    assert_eq!(s.replica.as_deref(), Some("replica-a"));
    assert_eq!(s.owned_elsewhere(a.replica_id()), None);
    let on_b = b.resume(&s.token, None).await.unwrap().session;
    assert_eq!(on_b.owned_elsewhere(b.replica_id()), Some("replica-a"));
    let unpinned = a.create(None, targets(), false).await.unwrap();
    assert_eq!(unpinned.owned_elsewhere("replica-b"), None);
}

#[tokio::test(start_paused = true)]
async fn replay_through_the_manager() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(None, vec![], false).await.unwrap();
    let other = m.create(None, vec![], false).await.unwrap();
    let key = s.stream("get");
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            m.append_event(&key, Bytes::from(format!("e{i}")))
                .await
                .unwrap(),
        );
    }
    let replay = m.replay(&s, &ids[1].to_string()).await.unwrap();
    assert!(replay.complete);
    assert_eq!(
        replay.events,
        vec![
            (ids[2].clone(), Bytes::from("e2")),
            (ids[3].clone(), Bytes::from("e3"))
        ]
    );
    assert_eq!(metrics.events_replayed.get(), 2);
    // Another session cannot read this stream, and garbage ids are refused.
    assert!(matches!(
        m.replay(&other, &ids[0].to_string()).await,
        Err(Error::InvalidEventId)
    ));
    assert!(matches!(
        m.replay(&s, "nonsense").await,
        Err(Error::InvalidEventId)
    ));
}

#[tokio::test(start_paused = true)]
async fn drain_flips_the_signal() {
    let (m, _) = manager(&config(&[1]));
    let mut rx = m.draining();
    assert!(!m.is_draining());
    let waiter = tokio::spawn(async move { rx.wait_for(|d| *d).await.map(|_| ()) });
    m.clone().drain();
    waiter.await.unwrap().unwrap();
    assert!(m.is_draining());
}

#[tokio::test(start_paused = true)]
async fn without_keys_a_random_key_is_used() {
    let cfg = SessionsConfig::default();
    let (a, _) = manager(&cfg);
    let (b, _) = manager(&cfg);
    let s = a.create(None, vec![], false).await.unwrap();
    a.resume(&s.token, None).await.unwrap();
    // Another process (a restart, another replica) has another random key.
    not_found(&b, &s.token, None).await;
}

#[tokio::test(start_paused = true)]
async fn release_subscription_unregisters_on_drop() {
    let (m, _) = manager(&config(&[1]));
    let (seen, sub) = releases(&m);
    drop(sub);
    let s = m.create(None, vec![], false).await.unwrap();
    m.revoke(&s).await.unwrap();
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn keys_reload_without_a_restart() {
    let (m, _) = manager(&config(&[1]));
    let old = m.create(None, vec![], false).await.unwrap();
    m.reload_keys(&config(&[2, 1])).unwrap();
    m.resume(&old.token, None).await.unwrap();
    let fresh = m.create(None, vec![], false).await.unwrap();
    m.reload_keys(&config(&[2])).unwrap();
    not_found(&m, &old.token, None).await;
    m.resume(&fresh.token, None).await.unwrap();
    assert!(
        m.reload_keys(&SessionsConfig {
            keys: vec!["short".into()],
            ..Default::default()
        })
        .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn open_gauge_counts_local_sessions() {
    let (m, metrics) = manager(&config(&[1]));
    let s = m.create(None, vec![], false).await.unwrap();
    m.revoke(&s).await.unwrap();
    assert_eq!(metrics.open.get(), 0);
    // An activity guard on a session no longer held re-registers it once.
    let g = m.activity(&s);
    let g2 = m.activity(&s);
    assert_eq!(metrics.open.get(), 1);
    drop((g, g2));
    tokio::time::advance(IDLE * 2).await;
    m.reap().await.unwrap();
    assert_eq!(metrics.open.get(), 0);
    assert_eq!(m.local_sessions(), 0);
}

#[tokio::test(start_paused = true)]
async fn state_too_large_for_a_token_is_refused_before_it_is_stored() {
    let (m, _) = manager(&config(&[1]));
    let mut big = targets();
    big[0].upstream_session = Some("x".repeat(crate::token::MAX_TOKEN_LEN));
    match m.create(Some("alice"), big, false).await {
        Err(Error::TokenTooLarge { len, limit }) => assert!(len > limit),
        other => panic!("expected TokenTooLarge, got {other:?}"),
    }
    assert_eq!(m.local_sessions(), 0);
    // Within the cap everything still works.
    let s = m.create(Some("alice"), targets(), false).await.unwrap();
    assert!(s.token.len() <= crate::token::MAX_TOKEN_LEN);
}

#[tokio::test(start_paused = true)]
async fn a_peer_hop_opens_once_within_its_lifetime_and_only_as_a_hop() {
    let cfg = config(&[1]);
    let (a, _) = manager(&cfg);
    // Another replica of the fleet: same keys, another id and store.
    let (b, _) = manager(&SessionsConfig {
        replica: Some("replica-b".into()),
        ..config(&[1])
    });
    let hop = a.seal_hop(b"payload");
    assert_eq!(b.open_hop(&hop).unwrap(), b"payload");
    // Single use: a replayed hop is refused.
    assert_eq!(b.open_hop(&hop), Err(HopError::Replayed));
    // A principal with large claims fits (a hop may be longer than a session token).
    let big = vec![b'x'; 20 * 1024];
    assert_eq!(b.open_hop(&a.seal_hop(&big)).unwrap(), big);
    // Expired.
    let late = a.seal_hop(b"late");
    tokio::time::advance(HOP_LIFETIME + Duration::from_secs(1)).await;
    assert_eq!(b.open_hop(&late), Err(HopError::Expired));
    // Another fleet's keys, a session token, garbage: unauthentic.
    let (other, _) = manager(&config(&[2]));
    assert_eq!(
        b.open_hop(&other.seal_hop(b"x")),
        Err(HopError::Unauthentic)
    );
    let session = a.create(None, targets(), true).await.unwrap();
    assert_eq!(b.open_hop(&session.token), Err(HopError::Unauthentic));
    assert_eq!(b.open_hop("not-a-hop"), Err(HopError::Unauthentic));
    // Nor does a hop open as a session token.
    assert!(matches!(
        b.resume(&a.seal_hop(b"x"), None).await,
        Err(Error::NotFound)
    ));
    // The pinned session's owner, seen from b, and not from a.
    assert_eq!(
        b.owner_elsewhere(&session.token).await.as_deref(),
        Some("replica-a")
    );
    assert_eq!(a.owner_elsewhere(&session.token).await, None);
}

#[tokio::test(start_paused = true)]
async fn peer_registration_expires_and_is_withdrawn() {
    let cfg = config(&[1]);
    let (a, _) = manager(&cfg);
    assert_eq!(a.peer_url("replica-a").await.unwrap(), None);
    a.register_peer("http://10.0.0.1:15010", Duration::from_secs(15))
        .await
        .unwrap();
    assert_eq!(
        a.peer_url("replica-a").await.unwrap().as_deref(),
        Some("http://10.0.0.1:15010")
    );
    tokio::time::advance(Duration::from_secs(16)).await;
    assert_eq!(a.peer_url("replica-a").await.unwrap(), None);
    a.register_peer("http://10.0.0.1:15010", Duration::from_secs(15))
        .await
        .unwrap();
    a.unregister_peer().await.unwrap();
    assert_eq!(a.peer_url("replica-a").await.unwrap(), None);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_session_is_owned_by_its_adopter_on_every_replica() {
    let cfg = config(&[1]);
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::from_config(&cfg)));
    let (a, _) = manager_on(&cfg, store.clone());
    let b_cfg = SessionsConfig {
        replica: Some("replica-b".into()),
        ..config(&[1])
    };
    let (b, _) = manager_on(&b_cfg, store);
    let created = a.create(None, targets(), true).await.unwrap();
    assert_eq!(
        b.owner_elsewhere(&created.token).await.as_deref(),
        Some("replica-a")
    );
    let mut s = b.resume(&created.token, None).await.unwrap().session;
    b.adopt(&mut s).await.unwrap();
    assert_eq!(b.owner_elsewhere(&created.token).await, None);
    assert_eq!(
        a.owner_elsewhere(&created.token).await.as_deref(),
        Some("replica-b")
    );
    // Learning a target later keeps the new owner.
    b.update_target(&mut s, TargetEntry::new("late"))
        .await
        .unwrap();
    let again = a.resume(&created.token, None).await.unwrap().session;
    assert_eq!(again.replica.as_deref(), Some("replica-b"));
    assert_eq!(again.owned_elsewhere("replica-a"), Some("replica-b"));
}

#[tokio::test(start_paused = true)]
async fn an_opened_token_kept_in_the_cache_changes_no_verdict() {
    let cfg = SessionsConfig {
        idle_timeout: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(2 * 3600),
        ..config(&[1])
    };
    let store: Arc<dyn SessionStore> = Arc::new(MemoryStore::new(StoreLimits::from_config(&cfg)));
    let (a, metrics) = manager_on(&cfg, store.clone());
    let (b, _) = manager_on(&cfg, store);
    let s = a.create(Some("alice"), vec![], false).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            a.resume(&s.token, Some("alice")).await.unwrap().how,
            How::Local
        );
    }
    assert_eq!(a.shared.keyring.load().len(), 1, "opened once, kept");
    // Every resume still counts, and still checks the principal.
    assert_eq!(resumed(&metrics, How::Local), 3);
    not_found(&a, &s.token, Some("mallory")).await;
    assert_eq!(rejected(&metrics, Rejection::Principal), 1);
    // A token that does not open is not kept.
    let mut tampered = s.token.to_string();
    tampered.pop();
    tampered.push(if s.token.ends_with('A') { 'B' } else { 'A' });
    not_found(&a, &tampered, Some("alice")).await;
    assert_eq!(a.shared.keyring.load().len(), 1);
    // Revoked on another replica: the next resume here is refused however often the token
    // opened before.
    let on_b = b.resume(&s.token, Some("alice")).await.unwrap().session;
    b.revoke(&on_b).await.unwrap();
    not_found(&a, &s.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Revoked), 1);
    // Past its lifetime: refused, though its opening is cached.
    let t = a.create(Some("alice"), vec![], false).await.unwrap();
    a.resume(&t.token, Some("alice")).await.unwrap();
    tokio::time::advance(Duration::from_secs(2 * 3600)).await;
    not_found(&a, &t.token, Some("alice")).await;
    assert_eq!(rejected(&metrics, Rejection::Expired), 1);
}

#[tokio::test(start_paused = true)]
async fn the_cache_of_opened_tokens_is_bounded() {
    let (m, metrics) = manager(&config(&[1]));
    let n = super::opened::CAPACITY + 10;
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        tokens.push(m.create(None, vec![], false).await.unwrap().token);
    }
    for t in &tokens {
        m.resume(t, None).await.unwrap();
    }
    assert_eq!(m.shared.keyring.load().len(), super::opened::CAPACITY);
    // Evicted or kept, every token still resumes.
    for t in &tokens {
        m.resume(t, None).await.unwrap();
    }
    assert_eq!(resumed(&metrics, How::Local), 2 * n as u64);
}
