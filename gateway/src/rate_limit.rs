//! `policies.rate_limit`: request and token limits over fixed windows, kept locally or in Redis
//! so a fleet shares one budget. One limiter per route, for every route kind.
//!
//! The policy stage checks the request limit ([`Limiter::check_request`]) for any route. Token
//! limits concern `llm` routes: the gateway hands the LLM backend the caller's budget as a
//! [`TokenBudget`] ([`switchboard_core::TokenMeter`]), which reserves an estimate of a request's
//! tokens before a provider is called ([`Limiter::charge_tokens`]) and settles it with the real
//! usage when the response or stream ends ([`TokenCharge::reconcile`]). A spent budget of
//! either kind is the same error ([`Decision::error`]). Windows are aligned to wall-clock
//! multiples of `per`, so every replica agrees on the current window.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use http::{HeaderMap, HeaderName, HeaderValue};

use switchboard_core::{TokenMeter, TokenReservation};

pub use crate::config::{LimitBy, RateLimitPolicy};

/// The outcome of a limit check, with the headers to send either way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Which limit this decision is about: `requests` or `tokens`.
    pub kind: &'static str,
    /// The limit.
    pub limit: u64,
    /// What is left in the window.
    pub remaining: u64,
    /// Time until the window resets.
    pub reset: Duration,
    /// Refused because the shared limit store could not be asked and the policy fails closed
    /// (`fail_open: false`); `reset` is then the store's circuit-breaker cool-down.
    pub unavailable: bool,
}

impl Decision {
    /// The wait to announce when denied.
    pub fn retry_after(&self) -> Option<Duration> {
        (!self.allowed).then_some(self.reset)
    }

    /// OpenAI-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` headers, plus
    /// `retry-after` (seconds, rounded up) and `retry-after-ms` when denied.
    pub fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |name: String, value: String| {
            if let (Ok(n), Ok(v)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
                h.insert(n, v);
            }
        };
        put(
            format!("x-ratelimit-limit-{}", self.kind),
            self.limit.to_string(),
        );
        put(
            format!("x-ratelimit-remaining-{}", self.kind),
            self.remaining.to_string(),
        );
        put(
            format!("x-ratelimit-reset-{}", self.kind),
            format!("{}ms", self.reset.as_millis()),
        );
        if let Some(wait) = self.retry_after() {
            put(
                "retry-after".into(),
                wait.as_secs_f64().ceil().max(1.0).to_string(),
            );
            put("retry-after-ms".into(), wait.as_millis().to_string());
        }
        h
    }

    /// The 429 for a spent budget: one error for the request and the token limit (and an API
    /// key's own limit, [`crate::error::rate_limited`]); `retry-after` and `x-ratelimit-*` say
    /// which limit and when.
    pub fn error(&self) -> switchboard_core::Error {
        if self.unavailable {
            let mut h = HeaderMap::new();
            if let Ok(v) =
                HeaderValue::try_from(self.reset.as_secs_f64().ceil().max(1.0).to_string())
            {
                h.insert(http::header::RETRY_AFTER, v);
            }
            return switchboard_core::Error::new(
                switchboard_core::Cause::Overloaded,
                "rate limit store unavailable; retry later",
            )
            .with_headers(h);
        }
        crate::error::rate_limited(self.headers())
    }
}

/// What a limit may be keyed by, of one request's caller ([`Limiter::key`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitCaller<'a> {
    /// The authenticated subject (JWT `sub` or API key name).
    pub subject: Option<&'a str>,
    /// The API key's name, for API-key callers.
    pub api_key: Option<&'a str>,
    /// The verified JWT's subject, for JWT callers.
    pub jwt_sub: Option<&'a str>,
    /// The caller's team.
    pub team: Option<&'a str>,
    /// The client's address.
    pub client: Option<std::net::IpAddr>,
    /// The request's headers (`by: header:NAME`).
    pub headers: Option<&'a HeaderMap>,
}

/// A header value as a budget key part: `v:` and the value when it is short printable ASCII,
/// else `h:` and its SHA-256 (so a key stays short and free of separators whatever is sent).
fn header_bucket(value: &[u8]) -> String {
    const MAX: usize = 128;
    if value.len() <= MAX && value.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("v:{}", String::from_utf8_lossy(value))
    } else {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(value);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("h:{hex}")
    }
}

/// One caller's token budget on a route: the limiter and the caller's key in it. What the
/// gateway hands an `llm` backend as [`switchboard_core::RequestContext::tokens`].
#[derive(Debug, Clone)]
pub struct TokenBudget {
    limiter: Limiter,
    key: Arc<str>,
}

impl TokenBudget {
    /// The budget of `key` (see [`Limiter::key`]) in `limiter`.
    pub fn new(limiter: Limiter, key: Arc<str>) -> Self {
        TokenBudget { limiter, key }
    }
}

#[async_trait::async_trait]
impl TokenMeter for TokenBudget {
    async fn reserve(&self, estimate: u64) -> switchboard_core::Result<Box<dyn TokenReservation>> {
        match self.limiter.charge_tokens(&self.key, estimate).await {
            (d, _) if !d.allowed => Err(d.error()),
            (_, Some(charge)) => Ok(Box::new(charge)),
            // No token limit in the policy: nothing to reserve or settle.
            (_, None) => Ok(Box::new(Unmetered)),
        }
    }
}

#[async_trait::async_trait]
impl TokenReservation for TokenCharge {
    async fn settle(self: Box<Self>, actual: u64) {
        self.reconcile(actual).await;
    }

    fn reserved(&self) -> u64 {
        self.charged
    }
}

/// The reservation under a policy without a token limit.
struct Unmetered;

#[async_trait::async_trait]
impl TokenReservation for Unmetered {
    async fn settle(self: Box<Self>, _actual: u64) {}

    fn reserved(&self) -> u64 {
        0
    }
}

/// A token charge to reconcile with the real usage.
#[derive(Debug, Clone)]
pub struct TokenCharge {
    limiter: Limiter,
    key: Arc<str>,
    window: u64,
    charged: u64,
}

impl TokenCharge {
    /// Replaces the up-front estimate with `actual` tokens (in the same window; a charge whose
    /// window has passed is left alone).
    pub async fn reconcile(self, actual: u64) {
        let delta = actual as i64 - self.charged as i64;
        if delta == 0 {
            return;
        }
        self.limiter.adjust(&self.key, self.window, delta).await;
    }

    /// Tokens charged up front.
    pub fn charged(&self) -> u64 {
        self.charged
    }
}

type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Default, Debug, Clone, Copy)]
struct Window {
    index: u64,
    requests: u64,
    tokens: u64,
}

enum Store {
    Local(DashMap<Arc<str>, Window>),
    Redis {
        link: switchboard_sessions::RedisLink,
        prefix: String,
    },
}

struct Shared {
    policy: RateLimitPolicy,
    store: Store,
    clock: Clock,
    swept: AtomicU64,
}

/// What one charge did.
struct Charged {
    allowed: bool,
    /// The window's use after the charge (0 when unknown).
    used: u64,
    /// Refused because the store could not be asked (fail closed): the wait to announce.
    unavailable: Option<Duration>,
}

impl Charged {
    fn counted(allowed: bool, used: u64) -> Self {
        Charged {
            allowed,
            used,
            unavailable: None,
        }
    }
}

/// Local key count above which ended windows are swept.
const SWEEP_AT: usize = 1024;

/// A rate limiter for one policy (cheap to clone). Keep it across config reloads while the
/// policy is unchanged so local windows survive.
#[derive(Clone)]
pub struct Limiter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("policy", &self.shared.policy)
            .finish_non_exhaustive()
    }
}

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

// Checks and charges atomically: KEYS[1] counter; ARGV amount, limit, ttl_ms, strict.
// strict=1: deny when used + amount > limit (requests). strict=0: deny only when the budget is
// already spent (tokens: an estimate may overshoot by at most one request).
const CHARGE_LUA: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if (ARGV[4] == '1' and used + amount > limit) or (ARGV[4] == '0' and used >= limit) then
  return {0, used}
end
used = redis.call('INCRBY', KEYS[1], amount)
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {1, used}
";

impl Limiter {
    /// A limiter with in-process windows.
    pub fn local(policy: RateLimitPolicy) -> Self {
        Self::with_clock(policy, Arc::new(system_ms))
    }

    /// A local limiter with an injected millisecond clock (tests).
    pub fn with_clock(policy: RateLimitPolicy, clock: Clock) -> Self {
        Limiter {
            shared: Arc::new(Shared {
                policy,
                store: Store::Local(DashMap::new()),
                clock,
                swept: AtomicU64::new(0),
            }),
        }
    }

    /// A limiter whose windows live in Redis, shared by every replica using the same `prefix`.
    /// Calls go through `link` (the session store's: one timeout and one circuit breaker for
    /// everything the gateway keeps in Redis). Keys hold one counter each, so they may live
    /// on any Redis Cluster slot.
    pub fn redis(
        policy: RateLimitPolicy,
        link: switchboard_sessions::RedisLink,
        prefix: &str,
    ) -> Self {
        Limiter {
            shared: Arc::new(Shared {
                policy,
                store: Store::Redis {
                    link,
                    prefix: prefix.to_string(),
                },
                clock: Arc::new(system_ms),
                swept: AtomicU64::new(0),
            }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &RateLimitPolicy {
        &self.shared.policy
    }

    /// The budget key of `caller`'s request on `route`. Callers lacking what the policy is
    /// keyed by (no subject, key, JWT, team or header) share one budget, `{route}:{kind}:-`.
    pub fn key(&self, route: &str, caller: &LimitCaller<'_>) -> Arc<str> {
        match &self.shared.policy.by {
            LimitBy::Route => format!("{route}:route").into(),
            LimitBy::Subject => format!("{route}:sub:{}", caller.subject.unwrap_or("-")).into(),
            LimitBy::ApiKey => format!("{route}:key:{}", caller.api_key.unwrap_or("-")).into(),
            LimitBy::Client => match caller.client {
                Some(ip) => format!("{route}:ip:{ip}").into(),
                None => format!("{route}:ip:-").into(),
            },
            LimitBy::JwtSub => format!("{route}:jwt:{}", caller.jwt_sub.unwrap_or("-")).into(),
            LimitBy::Team => format!("{route}:team:{}", caller.team.unwrap_or("-")).into(),
            LimitBy::Header(name) => {
                let value = caller
                    .headers
                    .and_then(|h| h.get(name.as_str()))
                    .map(|v| header_bucket(v.as_bytes()));
                format!("{route}:hdr:{name}:{}", value.as_deref().unwrap_or("-")).into()
            }
        }
    }

    fn window(&self) -> (u64, Duration) {
        let per = self.shared.policy.per.as_millis().max(1) as u64;
        let now = (self.shared.clock)();
        (now / per, Duration::from_millis(per - now % per))
    }

    /// Counts one request against the request limit (always allowed without one).
    pub async fn check_request(&self, key: &str) -> Decision {
        let Some(limit) = self.shared.policy.requests else {
            return Decision {
                allowed: true,
                kind: "requests",
                limit: u64::MAX,
                remaining: u64::MAX,
                reset: Duration::ZERO,
                unavailable: false,
            };
        };
        let (window, reset) = self.window();
        let c = self.charge(key, window, "r", 1, limit, true).await;
        Decision {
            allowed: c.allowed,
            kind: "requests",
            limit,
            remaining: limit.saturating_sub(c.used),
            reset: c.unavailable.unwrap_or(reset),
            unavailable: c.unavailable.is_some(),
        }
    }

    /// Charges `estimate` tokens up front. Allowed while the window's budget is not spent;
    /// returns the charge to reconcile when allowed (None without a token limit).
    pub async fn charge_tokens(&self, key: &str, estimate: u64) -> (Decision, Option<TokenCharge>) {
        let Some(limit) = self.shared.policy.tokens else {
            let d = Decision {
                allowed: true,
                kind: "tokens",
                limit: u64::MAX,
                remaining: u64::MAX,
                reset: Duration::ZERO,
                unavailable: false,
            };
            return (d, None);
        };
        let (window, reset) = self.window();
        let c = self.charge(key, window, "t", estimate, limit, false).await;
        let d = Decision {
            allowed: c.allowed,
            kind: "tokens",
            limit,
            remaining: limit.saturating_sub(c.used),
            reset: c.unavailable.unwrap_or(reset),
            unavailable: c.unavailable.is_some(),
        };
        let charge = c.allowed.then(|| TokenCharge {
            limiter: self.clone(),
            key: key.into(),
            window,
            charged: estimate,
        });
        (d, charge)
    }

    async fn charge(
        &self,
        key: &str,
        window: u64,
        suffix: &str,
        amount: u64,
        limit: u64,
        strict: bool,
    ) -> Charged {
        match &self.shared.store {
            Store::Local(map) => {
                // Keys of callers seen once (subjects, API keys) would otherwise pile up: once
                // per window, drop windows that have ended.
                if map.len() >= SWEEP_AT
                    && self.shared.swept.swap(window, Ordering::Relaxed) != window
                {
                    map.retain(|_, w| w.index + 1 >= window);
                }
                let mut w = map.entry(key.into()).or_default();
                if w.index != window {
                    *w = Window {
                        index: window,
                        ..Default::default()
                    };
                }
                let used = if suffix == "r" {
                    &mut w.requests
                } else {
                    &mut w.tokens
                };
                let deny = if strict {
                    *used + amount > limit
                } else {
                    *used >= limit
                };
                if deny {
                    return Charged::counted(false, *used);
                }
                *used += amount;
                Charged::counted(true, *used)
            }
            Store::Redis { link, prefix } => {
                let ttl = self.shared.policy.per.as_millis() as u64 * 2;
                let k = format!("{prefix}:{key}:{window}:{suffix}");
                let res: switchboard_sessions::Result<Vec<i64>> = link
                    .run(|mut conn| {
                        let mut cmd = redis::cmd("EVAL");
                        cmd.arg(CHARGE_LUA)
                            .arg(1)
                            .arg(&k)
                            .arg(amount)
                            .arg(limit)
                            .arg(ttl)
                            .arg(if strict { "1" } else { "0" });
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await;
                match res {
                    Ok(v) if v.len() == 2 => Charged::counted(
                        v.first() == Some(&1),
                        v.get(1).copied().unwrap_or(0).max(0) as u64,
                    ),
                    other => {
                        let error = match other {
                            Err(e) => e.to_string(),
                            Ok(v) => format!("unexpected reply {v:?}"),
                        };
                        if self.shared.policy.fail_open {
                            // A broken limit store must not take the route down: unmetered
                            // while Redis is away (the breaker makes this fast).
                            tracing::debug!(%error, "rate limit store unavailable; allowing request (fail_open)");
                            Charged::counted(true, 0)
                        } else {
                            tracing::debug!(%error, "rate limit store unavailable; refusing request (fail_open: false)");
                            Charged {
                                allowed: false,
                                used: 0,
                                unavailable: Some(link.cool_down()),
                            }
                        }
                    }
                }
            }
        }
    }

    async fn adjust(&self, key: &str, window: u64, delta: i64) {
        match &self.shared.store {
            Store::Local(map) => {
                if let Some(mut w) = map.get_mut(key)
                    && w.index == window
                {
                    w.tokens = w.tokens.saturating_add_signed(delta);
                }
            }
            Store::Redis { link, prefix } => {
                let k = format!("{prefix}:{key}:{window}:t");
                // Only adjust a window that still exists (XX-like semantics via EXISTS).
                let script = "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('INCRBY', KEYS[1], ARGV[1]) end return 0";
                let res: switchboard_sessions::Result<i64> = link
                    .run(|mut conn| {
                        let mut cmd = redis::cmd("EVAL");
                        cmd.arg(script).arg(1).arg(&k).arg(delta);
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await;
                if let Err(e) = res {
                    tracing::warn!(error = %e, "rate limit reconcile failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    fn policy(requests: Option<u64>, tokens: Option<u64>) -> RateLimitPolicy {
        RateLimitPolicy {
            requests,
            tokens,
            per: Duration::from_secs(60),
            by: LimitBy::Subject,
            fail_open: true,
        }
    }

    fn clocked(p: RateLimitPolicy) -> (Limiter, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(120_000));
        let n = now.clone();
        (
            Limiter::with_clock(p, Arc::new(move || n.load(Ordering::SeqCst))),
            now,
        )
    }

    #[tokio::test]
    async fn requests_per_window() {
        let (l, now) = clocked(policy(Some(2), None));
        let k = l.key(
            "r",
            &LimitCaller {
                subject: Some("alice"),
                ..Default::default()
            },
        );
        assert!(l.check_request(&k).await.allowed);
        assert!(l.check_request(&k).await.allowed);
        now.fetch_add(15_000, Ordering::SeqCst);
        let d = l.check_request(&k).await;
        assert!(!d.allowed);
        assert_eq!(d.retry_after(), Some(Duration::from_secs(45)));
        let h = d.headers();
        assert_eq!(h["retry-after"], "45");
        assert_eq!(h["x-ratelimit-remaining-requests"], "0");
        assert_eq!(h["x-ratelimit-limit-requests"], "2");
        // Another subject has its own budget.
        assert!(
            l.check_request(&l.key(
                "r",
                &LimitCaller {
                    subject: Some("bob"),
                    ..Default::default()
                }
            ))
            .await
            .allowed
        );
        // Next window.
        now.fetch_add(45_000, Ordering::SeqCst);
        assert!(l.check_request(&k).await.allowed);
    }

    #[tokio::test]
    async fn tokens_charge_estimate_then_reconcile() {
        let (l, _now) = clocked(policy(None, Some(1000)));
        let k = l.key("r", &LimitCaller::default());
        let (d, charge) = l.charge_tokens(&k, 800).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 200);
        // The real request used 100 tokens: 900 left.
        charge.unwrap().reconcile(100).await;
        let (d, c2) = l.charge_tokens(&k, 500).await;
        assert!(d.allowed);
        assert_eq!(d.remaining, 400);
        // Budget now at 600 of 1000 in flight; one more may overshoot, then it is spent.
        let (d, c3) = l.charge_tokens(&k, 500).await;
        assert!(d.allowed);
        let (d, _) = l.charge_tokens(&k, 1).await;
        assert!(!d.allowed);
        assert_eq!(d.headers()["x-ratelimit-remaining-tokens"], "0");
        c2.unwrap().reconcile(50).await;
        c3.unwrap().reconcile(50).await;
        assert!(l.charge_tokens(&k, 1).await.0.allowed);
    }

    #[tokio::test]
    async fn ended_windows_of_one_off_keys_are_swept() {
        let (l, now) = clocked(policy(Some(5), None));
        for i in 0..SWEEP_AT {
            assert!(l.check_request(&format!("k{i}")).await.allowed);
        }
        now.fetch_add(120_000, Ordering::SeqCst);
        assert!(l.check_request("fresh").await.allowed);
        let Store::Local(map) = &l.shared.store else {
            unreachable!()
        };
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn validation_rules() {
        let mut p = policy(None, None);
        assert_eq!(p.validate("p")[0].0, "p");
        p.requests = Some(0);
        assert!(p.validate("p").iter().any(|i| i.0 == "p.requests"));
        p.requests = Some(1);
        p.per = Duration::from_millis(10);
        assert_eq!(p.validate("p")[0].0, "p.per");
        let parsed: RateLimitPolicy = serde_json::from_value(
            serde_json::json!({"requests": 100, "tokens": 200000, "per": "1m", "by": "api_key"}),
        )
        .unwrap();
        assert_eq!(parsed.by, LimitBy::ApiKey);
        assert!(
            serde_json::from_value::<RateLimitPolicy>(serde_json::json!({"per": "1m", "burst": 1}))
                .is_err()
        );
    }

    #[test]
    fn every_by_spelling_parses_and_round_trips() {
        for (yaml, by) in [
            ("route", LimitBy::Route),
            ("subject", LimitBy::Subject),
            ("api_key", LimitBy::ApiKey),
            ("client", LimitBy::Client),
            ("jwt.sub", LimitBy::JwtSub),
            ("team", LimitBy::Team),
            ("header:X-Tenant", LimitBy::Header("x-tenant".into())),
        ] {
            let parsed: LimitBy = serde_json::from_value(serde_json::json!(yaml)).unwrap();
            assert_eq!(parsed, by);
            let back = serde_json::to_value(&parsed).unwrap();
            assert_eq!(back, serde_json::json!(yaml.to_ascii_lowercase()));
        }
        for bad in ["apikey", "header:", "header:bad name", "jwt"] {
            let e = serde_json::from_value::<LimitBy>(serde_json::json!(bad)).unwrap_err();
            assert!(!e.to_string().is_empty(), "{bad}");
        }
    }

    #[test]
    fn header_values_key_budgets_and_odd_values_are_hashed() {
        let mut p = policy(Some(1), None);
        p.by = LimitBy::Header("x-tenant".into());
        let l = Limiter::local(p);
        let mut h = HeaderMap::new();
        h.insert("x-tenant", HeaderValue::from_static("acme"));
        let caller = LimitCaller {
            headers: Some(&h),
            ..Default::default()
        };
        assert_eq!(&*l.key("r", &caller), "r:hdr:x-tenant:v:acme");
        assert_eq!(&*l.key("r", &LimitCaller::default()), "r:hdr:x-tenant:-");
        h.insert("x-tenant", HeaderValue::from_bytes(&[b'a'; 300]).unwrap());
        let long = l.key(
            "r",
            &LimitCaller {
                headers: Some(&h),
                ..Default::default()
            },
        );
        assert!(
            long.starts_with("r:hdr:x-tenant:h:") && long.len() < 100,
            "{long}"
        );
    }
}
