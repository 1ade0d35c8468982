use std::sync::atomic::AtomicUsize;

use super::*;

fn pool(strategy: Strategy, members: &[(u32, u32)]) -> Pool {
    Pool::new(
        strategy,
        members,
        RetryConfig {
            attempts: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            max_retry_wait: Duration::from_secs(5),
        },
        LlmTimeouts {
            attempt: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
        },
        OutlierConfig {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        },
    )
}

#[tokio::test(start_paused = true)]
async fn honours_retry_after_then_succeeds() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let calls = AtomicUsize::new(0);
    let start = Instant::now();
    let out = p
        .execute(|i| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    AttemptResult::Retry {
                        value: "429",
                        retry_after: Some(Duration::from_millis(2500)),
                        failure: false,
                    }
                } else {
                    AttemptResult::Ok(if i == 0 { "primary" } else { "secondary" })
                }
            }
        })
        .await;
    assert!(matches!(out, Outcome::Served(0, "primary")), "{out:?}");
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
}

#[tokio::test(start_paused = true)]
async fn fails_over_when_the_wait_is_too_long() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let start = Instant::now();
    let out = p
        .execute(|i| async move {
            if i == 0 {
                AttemptResult::Retry {
                    value: "429",
                    retry_after: Some(Duration::from_secs(60)),
                    failure: false,
                }
            } else {
                AttemptResult::Ok("secondary")
            }
        })
        .await;
    assert!(matches!(out, Outcome::Served(1, "secondary")));
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_between_retries() {
    let p = pool(Strategy::Failover, &[(1, 0)]);
    let start = Instant::now();
    let out = p
        .execute(|_| async {
            AttemptResult::<&str>::Retry {
                value: "500",
                retry_after: None,
                failure: true,
            }
        })
        .await;
    assert!(matches!(out, Outcome::Failed(0, "500")));
    // Two waits: [50ms, 100ms] then [100ms, 200ms].
    let e = start.elapsed();
    assert!(
        e >= Duration::from_millis(150) && e <= Duration::from_millis(300),
        "{e:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_requests_are_not_retried() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let calls = AtomicUsize::new(0);
    let out = p
        .execute(|_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { AttemptResult::Reject("400") }
        })
        .await;
    assert!(matches!(out, Outcome::Failed(0, "400")));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn hung_provider_times_out_and_fails_over() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let start = Instant::now();
    let out = p
        .execute(|i| async move {
            if i == 0 {
                std::future::pending::<()>().await;
            }
            AttemptResult::Ok(i)
        })
        .await;
    assert!(matches!(out, Outcome::Served(1, 1)));
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(10),
        "one attempt timeout, no retry of the hung one"
    );
}

#[tokio::test(start_paused = true)]
async fn overall_deadline_bounds_everything() {
    let p = Pool::new(
        Strategy::Failover,
        &[(1, 0), (1, 1), (1, 2)],
        RetryConfig::default(),
        LlmTimeouts {
            attempt: Duration::from_secs(10),
            deadline: Duration::from_secs(15),
        },
        OutlierConfig::default(),
    );
    let start = Instant::now();
    let out = p
        .execute(|_| async {
            std::future::pending::<()>().await;
            AttemptResult::Ok(())
        })
        .await;
    assert!(
        matches!(out, Outcome::Unavailable(Error::Timeout)),
        "{out:?}"
    );
    assert_eq!(start.elapsed(), Duration::from_secs(15));
}

#[tokio::test(start_paused = true)]
async fn ejection_grows_and_half_open_probe_decides() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    for _ in 0..3 {
        p.on_failure(0);
    }
    assert_eq!(p.health(0), Health::Ejected);
    assert_eq!(p.plan(), vec![1], "ejected member is skipped");
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(p.health(0), Health::Probe);
    // Only one request may probe.
    assert!(p.acquire(0, false).is_some());
    assert!(p.acquire(0, false).is_none());
    // The probe fails: ejected again, for twice as long.
    p.on_failure(0);
    assert_eq!(p.health(0), Health::Ejected);
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(p.health(0), Health::Ejected);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(p.health(0), Health::Probe);
    // The probe succeeds: healthy, ejection count reset.
    assert!(p.acquire(0, false).is_some());
    p.on_success(0, Duration::from_millis(5));
    assert_eq!(p.health(0), Health::Up);
    assert_eq!(p.plan()[0], 0);
    for _ in 0..3 {
        p.on_failure(0);
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    assert_eq!(
        p.health(0),
        Health::Probe,
        "back to the base period after recovery"
    );
}

#[tokio::test(start_paused = true)]
async fn burst_against_failing_primary_all_served_by_secondary() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let primary_calls = AtomicUsize::new(0);
    for _ in 0..20 {
        let out = p
            .execute(|i| {
                if i == 0 {
                    primary_calls.fetch_add(1, Ordering::SeqCst);
                }
                async move {
                    if i == 0 {
                        AttemptResult::Retry {
                            value: "500",
                            retry_after: None,
                            failure: true,
                        }
                    } else {
                        AttemptResult::Ok("ok")
                    }
                }
            })
            .await;
        assert!(matches!(out, Outcome::Served(1, "ok")));
    }
    assert_eq!(
        primary_calls.load(Ordering::SeqCst),
        3,
        "ejected after three failures"
    );
}

#[test]
fn all_ejected_means_all_tried() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..2 {
            for _ in 0..3 {
                p.on_failure(i);
            }
        }
        assert_eq!(p.plan(), vec![0, 1]);
    });
}

#[test]
fn failover_respects_priority_groups() {
    let p = pool(Strategy::Failover, &[(1, 2), (1, 0), (5, 1), (1, 1)]);
    for _ in 0..50 {
        let plan = p.plan();
        assert_eq!(plan[0], 1);
        assert!(plan[1] == 2 || plan[1] == 3);
        assert_eq!(plan[3], 0);
    }
}

#[test]
fn weighted_follows_weights() {
    let p = pool(Strategy::Weighted, &[(1, 0), (9, 0)]);
    let firsts = (0..2000).filter(|_| p.plan()[0] == 1).count();
    assert!((1600..=1950).contains(&firsts), "{firsts}");
}

#[test]
fn least_latency_prefers_the_faster() {
    let p = pool(Strategy::LeastLatency, &[(1, 0), (1, 0), (1, 0)]);
    p.on_success(0, Duration::from_millis(500));
    p.on_success(1, Duration::from_millis(20));
    p.on_success(2, Duration::from_millis(900));
    let mut counts = [0; 3];
    for _ in 0..3000 {
        counts[p.plan()[0]] += 1;
    }
    // P2C: the fastest wins every pair it is in (2/3), the slowest never leads.
    assert!(counts[1] > 1800, "{counts:?}");
    assert_eq!(counts[2], 0, "{counts:?}");
    assert!(counts[0] > 700, "{counts:?}");
}

#[tokio::test(start_paused = true)]
async fn cancelled_probe_is_handed_back() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    for _ in 0..3 {
        p.on_failure(0);
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    // The probe request is cancelled while its attempt is in flight.
    let fut = p.execute(|_| async {
        std::future::pending::<()>().await;
        AttemptResult::Ok(())
    });
    let _ = tokio::time::timeout(Duration::from_secs(1), fut).await;
    assert_eq!(p.health(0), Health::Probe);
    assert!(p.acquire(0, false).is_some(), "the next request may probe");
}

#[tokio::test(start_paused = true)]
async fn failed_probe_during_execute_re_ejects_for_longer() {
    let p = pool(Strategy::Failover, &[(1, 0), (1, 1)]);
    for _ in 0..3 {
        p.on_failure(0);
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    let out = p
        .execute(|i| async move {
            if i == 0 {
                AttemptResult::Retry {
                    value: i,
                    retry_after: None,
                    failure: true,
                }
            } else {
                AttemptResult::Ok(i)
            }
        })
        .await;
    assert!(matches!(out, Outcome::Served(1, 1)));
    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(p.health(0), Health::Ejected, "second ejection lasts 60s");
}
