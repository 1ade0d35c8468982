//! Provider pools: attempt ordering (failover groups, weighted, least latency), retries with
//! jittered backoff that honour provider hints, failover, and outlier ejection with a half-open
//! probe. The pool knows nothing about HTTP: an attempt is a closure that reports how it went,
//! which keeps the policy testable with paused tokio time.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use crate::Error;
use crate::config::{LlmTimeouts, OutlierConfig, RetryConfig, Strategy};

/// How one attempt went.
#[derive(Debug)]
pub enum AttemptResult<T> {
    /// Success: serve `T`. Nothing has reached the client before this point, and nothing is
    /// retried after it.
    Ok(T),
    /// The request itself is at fault (4xx other than 429): serve `T` without retrying.
    Reject(T),
    /// A retryable failure (429, 5xx, 529). `T` is served if no later attempt succeeds.
    Retry {
        /// The provider's answer, translated for the caller.
        value: T,
        /// The wait the provider asked for (`retry-after-ms`, `retry-after`, body hint).
        retry_after: Option<Duration>,
        /// Counts towards outlier ejection (5xx, 529; not 429, which is the caller's quota).
        failure: bool,
    },
    /// The provider could not be reached.
    Err(Error),
}

/// Outcome of [`Pool::execute`].
#[derive(Debug)]
pub enum Outcome<T> {
    /// Member `index` served `T`.
    Served(usize, T),
    /// A provider's final answer that is not a success (rejected, or the last retryable one).
    Failed(usize, T),
    /// No provider answered.
    Unavailable(Error),
}

#[derive(Debug)]
struct MemberState {
    weight: u32,
    priority: u32,
    consecutive: AtomicU32,
    ejections: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
    probing: AtomicBool,
    ewma_us: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    strategy: Strategy,
    members: Vec<MemberState>,
    retry: RetryConfig,
    timeouts: LlmTimeouts,
    outlier: OutlierConfig,
}

/// A model's pool of providers (cheap to clone).
#[derive(Debug, Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

/// Whether a member may take a request now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Healthy.
    Up,
    /// Ejected until its period ends.
    Ejected,
    /// Ejection ended; the next request is the probe.
    Probe,
}

const EWMA_ALPHA: f64 = 0.3;

/// Locks a member's ejection state; a poisoned lock (a panic elsewhere while holding it) still
/// holds a valid `Option<Instant>`.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pool {
    /// A pool of members given as `(weight, priority)`.
    pub fn new(
        strategy: Strategy,
        members: &[(u32, u32)],
        retry: RetryConfig,
        timeouts: LlmTimeouts,
        outlier: OutlierConfig,
    ) -> Self {
        let members = members
            .iter()
            .map(|&(weight, priority)| MemberState {
                weight,
                priority,
                consecutive: AtomicU32::new(0),
                ejections: AtomicU32::new(0),
                ejected_until: Mutex::new(None),
                probing: AtomicBool::new(false),
                ewma_us: AtomicU64::new(0),
            })
            .collect();
        Pool {
            shared: Arc::new(Shared {
                strategy,
                members,
                retry,
                timeouts,
                outlier,
            }),
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.shared.members.len()
    }

    /// True when the pool has no members.
    pub fn is_empty(&self) -> bool {
        self.shared.members.is_empty()
    }

    /// The member's health now.
    pub fn health(&self, i: usize) -> Health {
        let Some(m) = self.shared.members.get(i) else {
            return Health::Ejected;
        };
        match *lock(&m.ejected_until) {
            None => Health::Up,
            Some(until) if Instant::now() < until => Health::Ejected,
            Some(_) => Health::Probe,
        }
    }

    /// The member's latency EWMA (time to first byte).
    pub fn latency(&self, i: usize) -> Duration {
        Duration::from_micros(
            self.shared
                .members
                .get(i)
                .map_or(0, |m| m.ewma_us.load(Ordering::Relaxed)),
        )
    }

    /// The order in which members are tried for one request. Ejected members are left out
    /// unless every member is ejected, in which case all are tried (better a likely failure
    /// than a certain one).
    pub fn plan(&self) -> Vec<usize> {
        let s = &*self.shared;
        let mut available: Vec<usize> = (0..s.members.len())
            .filter(|&i| self.health(i) != Health::Ejected)
            .collect();
        if available.is_empty() {
            available = (0..s.members.len()).collect();
        }
        let mut rng = rand::rng();
        match s.strategy {
            Strategy::Failover => {
                let mut keyed: Vec<(u32, f64, usize)> = available
                    .iter()
                    .filter_map(|&i| {
                        let m = s.members.get(i)?;
                        Some((m.priority, weighted_key(&mut rng, m.weight), i))
                    })
                    .collect();
                keyed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
                keyed.into_iter().map(|k| k.2).collect()
            }
            Strategy::Weighted => {
                let mut keyed: Vec<(f64, usize)> = available
                    .iter()
                    .filter_map(|&i| Some((weighted_key(&mut rng, s.members.get(i)?.weight), i)))
                    .collect();
                keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
                keyed.into_iter().map(|k| k.1).collect()
            }
            Strategy::LeastLatency => {
                let lat = |i: usize| {
                    s.members
                        .get(i)
                        .map_or(u64::MAX, |m| m.ewma_us.load(Ordering::Relaxed))
                };
                let mut rest = available.clone();
                rest.sort_by_key(|&i| lat(i));
                if available.len() >= 2 {
                    // Power of two choices: two random members, the faster first. This spreads
                    // load instead of herding everything onto the single fastest provider.
                    let a = rng.random_range(0..available.len());
                    let mut b = rng.random_range(0..available.len() - 1);
                    if b >= a {
                        b += 1;
                    }
                    if let (Some(&x), Some(&y)) = (available.get(a), available.get(b)) {
                        let first = if lat(y) < lat(x) { y } else { x };
                        rest.retain(|&i| i != first);
                        rest.insert(0, first);
                    }
                }
                rest
            }
        }
    }

    /// Claims member `i` for an attempt: false when it is ejected or another request is
    /// already its half-open probe.
    /// Returns None when the member may not be used, else whether this request holds the
    /// member's half-open probe.
    fn acquire(&self, i: usize, panic_mode: bool) -> Option<bool> {
        match self.health(i) {
            Health::Up => Some(false),
            Health::Ejected => panic_mode.then_some(false),
            Health::Probe => {
                let m = self.shared.members.get(i)?;
                let won = m
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
                (won || panic_mode).then_some(won)
            }
        }
    }

    /// Records a success with its time to first byte.
    pub fn on_success(&self, i: usize, latency: Duration) {
        let Some(m) = self.shared.members.get(i) else {
            return;
        };
        m.consecutive.store(0, Ordering::Relaxed);
        let was_ejected = lock(&m.ejected_until).take().is_some();
        if was_ejected {
            m.ejections.store(0, Ordering::Relaxed);
        }
        m.probing.store(false, Ordering::Release);
        let sample = latency.as_micros() as u64;
        let old = m.ewma_us.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample
        } else {
            (EWMA_ALPHA * sample as f64 + (1.0 - EWMA_ALPHA) * old as f64) as u64
        };
        m.ewma_us.store(new.max(1), Ordering::Relaxed);
    }

    /// Records a failure; may eject the member. A failure while the member's probe is out
    /// counts as the probe's verdict.
    pub fn on_failure(&self, i: usize) {
        let was_probe = self
            .shared
            .members
            .get(i)
            .is_some_and(|m| m.probing.load(Ordering::Acquire));
        self.failure(i, was_probe);
    }

    fn failure(&self, i: usize, probe_failed: bool) {
        let s = &*self.shared;
        let Some(m) = s.members.get(i) else {
            return;
        };
        let n = m.consecutive.fetch_add(1, Ordering::Relaxed) + 1;
        if probe_failed {
            m.probing.store(false, Ordering::Release);
        }
        let threshold = s.outlier.consecutive_failures;
        if threshold == 0 || (!probe_failed && n < threshold) {
            return;
        }
        let mut until = lock(&m.ejected_until);
        if !probe_failed && until.is_some_and(|u| Instant::now() < u) {
            return;
        }
        let times = m.ejections.fetch_add(1, Ordering::Relaxed);
        let period = s
            .outlier
            .base_ejection
            .saturating_mul(1u32 << times.min(16))
            .min(s.outlier.max_ejection);
        *until = Some(Instant::now() + period);
        tracing::warn!(
            member = i,
            ?period,
            "provider ejected after consecutive failures"
        );
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let r = &self.shared.retry;
        let cap = r
            .backoff
            .saturating_mul(1u32 << attempt.min(16))
            .min(r.max_backoff);
        let lo = cap / 2;
        lo + cap.saturating_sub(lo).mul_f64(rand::rng().random::<f64>())
    }

    /// Runs one request over the pool: tries members in [`Pool::plan`] order, each up to
    /// `retry.attempts` times, with per-attempt timeouts inside the overall deadline.
    pub async fn execute<T, F, Fut>(&self, mut attempt: F) -> Outcome<T>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = AttemptResult<T>>,
    {
        let s = &*self.shared;
        let deadline = Instant::now() + s.timeouts.deadline;
        let plan = self.plan();
        let panic_mode = plan.iter().all(|&i| self.health(i) == Health::Ejected);
        let mut last: Option<(usize, T)> = None;
        let mut last_err: Option<Error> = None;
        'members: for i in plan {
            let Some(probe) = self.acquire(i, panic_mode) else {
                continue;
            };
            // Hands the probe back if this request is cancelled mid-attempt, so the member is
            // not left half-open forever.
            let mut claim = Claim {
                pool: self,
                i,
                probe,
            };
            for n in 0..s.retry.attempts.max(1) {
                let now = Instant::now();
                if now >= deadline {
                    last_err.get_or_insert(Error::Timeout);
                    break 'members;
                }
                let budget = s.timeouts.attempt.min(deadline - now);
                let wait = match tokio::time::timeout(budget, attempt(i)).await {
                    Ok(AttemptResult::Ok(v)) => {
                        claim.probe = false;
                        self.on_success(i, now.elapsed());
                        return Outcome::Served(i, v);
                    }
                    Ok(AttemptResult::Reject(v)) => {
                        return Outcome::Failed(i, v);
                    }
                    Ok(AttemptResult::Retry {
                        value,
                        retry_after,
                        failure,
                    }) => {
                        if failure {
                            self.failure(i, std::mem::take(&mut claim.probe));
                        } else {
                            claim.release();
                        }
                        last = Some((i, value));
                        retry_after.unwrap_or_else(|| self.backoff(n))
                    }
                    Ok(AttemptResult::Err(e)) => {
                        tracing::debug!(member = i, error = %e, "attempt failed");
                        self.failure(i, std::mem::take(&mut claim.probe));
                        last_err = Some(e);
                        self.backoff(n)
                    }
                    Err(_) => {
                        // A hung provider is unlikely to answer the next attempt either: fail
                        // over straight away.
                        self.failure(i, std::mem::take(&mut claim.probe));
                        last_err = Some(Error::Timeout);
                        continue 'members;
                    }
                };
                let last_attempt = n + 1 >= s.retry.attempts;
                if last_attempt
                    || wait > s.retry.max_retry_wait
                    || Instant::now() + wait >= deadline
                {
                    continue 'members;
                }
                tokio::time::sleep(wait).await;
                match self.acquire(i, panic_mode) {
                    Some(probe) => claim.probe = probe,
                    None => continue 'members,
                }
            }
        }
        match last {
            Some((i, v)) => Outcome::Failed(i, v),
            None => Outcome::Unavailable(
                last_err.unwrap_or_else(|| Error::Upstream("no provider available".into())),
            ),
        }
    }
}

/// A member taken for a request; holds the half-open probe when `probe` is set.
struct Claim<'a> {
    pool: &'a Pool,
    i: usize,
    probe: bool,
}

impl Claim<'_> {
    /// Gives the probe back without a verdict (429, a 4xx that is the caller's fault).
    fn release(&mut self) {
        if std::mem::take(&mut self.probe)
            && let Some(m) = self.pool.shared.members.get(self.i)
        {
            m.probing.store(false, Ordering::Release);
        }
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

/// Efraimidis–Spirakis key: sorting by it descending is a weighted random permutation.
fn weighted_key(rng: &mut impl Rng, weight: u32) -> f64 {
    if weight == 0 {
        return -1.0;
    }
    let u: f64 = rng.random_range(f64::EPSILON..1.0);
    u.powf(1.0 / weight as f64)
}

#[cfg(test)]
mod tests;
