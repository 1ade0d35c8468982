//! Test support shared by the workspace's integration tests. A dev-dependency only: nothing here
//! is compiled into the gateway, the controller or any product library.
//!
//! - [`peers`]: where the test peers live (the `.venv` Python, Node and the npm packages in
//!   `node_modules`, `redis-server`) and [`peers::skip`], the one skip rule: a missing peer
//!   skips the test loudly on a developer's machine and **fails it when `CI` is set**.
//! - [`eventually`] / [`until`] / [`eventually_async`]: poll a condition until it holds or a deadline passes
//!   (for state that nothing can be awaited on: a child's exit, a metric, a store entry). They
//!   sleep on tokio's clock, so they work under `#[tokio::test(start_paused = true)]` too.
//! - [`ports`]: a port that refuses connections ([`ports::ClosedPort`]), held so nobody else
//!   takes it. Servers under test bind port 0 and report their address; there is deliberately
//!   no "free port" helper (pick-then-release races other tests).
//! - [`process::JsonLog`]: a spawned server's JSON log, and the addresses it reports having
//!   bound (how a test finds a `switchboard run` or a controller it started on port 0).
//! - [`redis::RedisServer`]: a throwaway `redis-server` on a unix socket; [`redis::RedisCluster`]
//!   (3 masters, 3 replicas) and [`redis::RedisSentinel`] (master, replica, 3 sentinels) on
//!   loopback ports, with failover, pause and restart.
//! - [`otlp::Receiver`]: an OTLP trace receiver (HTTP/protobuf and gRPC) that keeps the spans.
//! - [`assert_every_test_file_is_a_module`]: each file of a crate's `tests/` is compiled into
//!   its one test binary.

// Test support: failing loudly is the point here.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod otlp;
pub mod peers;
pub mod ports;
pub mod process;
pub mod redis;

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] and [`eventually_async`] look again.
pub const POLL: Duration = Duration::from_millis(20);

/// Polls `f` every [`POLL`] until it returns `Some`, and returns that value; panics with
/// "timed out waiting for `what`" once `within` has passed (tokio's clock).
pub async fn eventually<T>(what: &str, within: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} ({within:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition without a value: polls until `cond` holds.
pub async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    eventually(what, within, || cond().then_some(())).await;
}

/// [`eventually`] for an asynchronous condition (an HTTP probe, a store lookup).
pub async fn eventually_async<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what} ({within:?})"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Panics unless every file of `<manifest_dir>/tests` is a module of its one test binary:
/// each `tests/<name>.rs` and each `tests/<name>/mod.rs` must be declared `mod <name>;` in
/// `tests/integration.rs`. The crates build their integration tests as that one binary
/// (`autotests = false`), so a file left out of it would be neither compiled nor run, silently.
pub fn assert_every_test_file_is_a_module(manifest_dir: &str) {
    let dir = std::path::Path::new(manifest_dir).join("tests");
    let integration = std::fs::read_to_string(dir.join("integration.rs"))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join("integration.rs").display()));
    let declared: std::collections::BTreeSet<&str> = integration
        .lines()
        .filter_map(|l| l.trim().strip_prefix("mod ")?.strip_suffix(';'))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = if path.is_dir() {
            path.join("mod.rs")
                .exists()
                .then(|| path.file_name())
                .flatten()
        } else if path.extension().is_some_and(|x| x == "rs") {
            path.file_stem()
        } else {
            None
        };
        let Some(name) = name.and_then(|n| n.to_str()) else {
            continue;
        };
        if name != "integration" && !declared.contains(name) {
            missing.push(name.to_owned());
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "tests/{missing:?} are not declared in {}: add `mod <name>;` or they never run",
        dir.join("integration.rs").display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn eventually_returns_the_value_once_the_condition_holds() {
        let start = tokio::time::Instant::now();
        let mut n = 0;
        let v = eventually("n reaches 3", Duration::from_secs(1), || {
            n += 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(v, 3);
        assert_eq!(start.elapsed(), POLL * 2);
    }

    #[tokio::test(start_paused = true)]
    #[should_panic(expected = "timed out waiting for never")]
    async fn eventually_panics_after_the_deadline() {
        eventually("never", Duration::from_secs(1), || None::<()>).await;
    }

    #[tokio::test(start_paused = true)]
    async fn eventually_async_polls_a_future() {
        let mut n = 0;
        let v = eventually_async("n reaches 2", Duration::from_secs(1), || {
            n += 1;
            let n = n;
            async move { (n == 2).then_some("done") }
        })
        .await;
        assert_eq!(v, "done");
    }
}
