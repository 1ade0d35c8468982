//! Serving threads, one per core, nginx style: each runs its own current-thread tokio runtime,
//! and a client connection lives on one of them from accept to close, together with the
//! upstream connections its requests use (the upstream pools are per thread, see
//! [`crate::upstream::HttpClients`]). A proxied request then never hops between threads: on a
//! work-stealing runtime the client connection, the upstream connection's dispatcher task and
//! the body streams wake each other across cores, and those wake-ups, not request processing,
//! were most of the proxy's cost (BENCHMARKS.md).
//!
//! Accept loops stay on the main runtime and hand each accepted socket to the worker with the
//! fewest open connections, so one listener socket keeps ordinary bind semantics (no
//! `SO_REUSEPORT`: a second process binding the same port still fails) and a handful of
//! long-lived connections still spread evenly.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// The environment variable that sets the number of serving threads when `--workers` is not
/// given.
pub const WORKERS_ENV: &str = "SWITCHBOARD_WORKERS";

/// How many serving threads to run: `SWITCHBOARD_WORKERS` when set to a number, else one per
/// available core.
pub fn default_count() -> usize {
    std::env::var(WORKERS_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// The serving threads. Cheap to clone; the threads stop when the last clone is dropped
/// (anything still running on them is dropped with their runtimes).
#[derive(Clone)]
pub struct Workers {
    inner: Arc<Inner>,
}

struct Inner {
    workers: Vec<Worker>,
    stop: CancellationToken,
}

struct Worker {
    handle: Handle,
    /// Client connections currently served by this thread.
    open: Arc<AtomicUsize>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.inner.workers.len())
            .finish()
    }
}

/// Stack of a serving thread (the main thread's usual 8 MiB; std's default for other threads
/// is 2 MiB, which a debug build's deepest MCP call through the tracing middleware outgrew).
const WORKER_STACK: usize = 8 << 20;

impl Workers {
    /// Starts `count` serving threads (at least one).
    pub fn start(count: usize) -> std::io::Result<Workers> {
        let stop = CancellationToken::new();
        let mut workers = Vec::with_capacity(count.max(1));
        for i in 0..count.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name(format!("switchboard-worker-{i}"))
                // As deep as the main thread's: a request's future is polled here with the
                // whole middleware stack above it (and an MCP call's below it); unused stack
                // is only address space.
                .stack_size(WORKER_STACK)
                .spawn(move || {
                    rt.block_on(stop.cancelled());
                    // Dropping the runtime here (not in an async context) cancels what is left.
                    drop(rt);
                })?;
            workers.push(Worker {
                handle,
                open: Arc::new(AtomicUsize::new(0)),
            });
        }
        Ok(Workers {
            inner: Arc::new(Inner { workers, stop }),
        })
    }

    /// Number of serving threads.
    pub fn len(&self) -> usize {
        self.inner.workers.len()
    }

    /// Always false: there is at least one thread.
    pub fn is_empty(&self) -> bool {
        self.inner.workers.is_empty()
    }

    /// The least loaded thread, for a new connection. The returned guard counts the
    /// connection until dropped.
    #[allow(
        clippy::expect_used,
        reason = "Workers::new starts at least one thread and the list never shrinks"
    )]
    pub(crate) fn pick(&self) -> (&Handle, Placed) {
        let w = self
            .inner
            .workers
            .iter()
            .min_by_key(|w| w.open.load(Ordering::Relaxed))
            .expect("at least one worker");
        w.open.fetch_add(1, Ordering::Relaxed);
        (
            &w.handle,
            Placed {
                open: w.open.clone(),
            },
        )
    }
}

/// Counts one connection on a worker while alive.
pub(crate) struct Placed {
    open: Arc<AtomicUsize>,
}

impl Drop for Placed {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_spread_to_the_least_loaded_thread() {
        let w = Workers::start(2).unwrap();
        let (a, pa) = w.pick();
        let a = a.clone();
        let (b, pb) = w.pick();
        let b = b.clone();
        // Two fresh threads: the second pick goes to the other one.
        let ta = a.spawn(async { std::thread::current().name().map(str::to_owned) });
        let tb = b.spawn(async { std::thread::current().name().map(str::to_owned) });
        let (na, nb) = (ta.await.unwrap().unwrap(), tb.await.unwrap().unwrap());
        assert_ne!(na, nb);
        assert!(na.starts_with("switchboard-worker-"));
        drop(pa);
        // Thread a is empty again, so it gets the next one.
        let (c, _pc) = w.pick();
        let nc = c
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(nc, na);
        drop(pb);
    }
}
