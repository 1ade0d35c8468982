//! The Redis store of `llm.cache: {store: redis}`: answers kept in the sessions store's Redis
//! (through its link: one timeout and one circuit breaker for everything the gateway keeps
//! there), so every replica of a fleet answers from one cache. A failed or refused call is a
//! miss (get) or a skipped write (put): the cache never fails a request.
//!
//! A miss costs no Redis round trip in steady state: each replica keeps an index
//! ([`CacheIndex`]) of the cache keys Redis holds and their expiry, fed by every replica's
//! writes. Each `SET` is pipelined with a `PUBLISH` of its key on `{prefix}llmcache:written`,
//! which every replica follows on a dedicated pub/sub connection; a replica that (re)connects
//! first subscribes, then seeds the index from what Redis already holds (`SCAN MATCH` on the
//! prefix, `PTTL` of each key), and only then trusts it. A lookup whose key the index does not
//! hold is a miss without asking Redis; one it holds does the `GET`. While the index is not
//! trusted (starting, subscription down, re-seeding, a Redis Cluster, or keys dropped from a
//! full index that may still live) every lookup asks Redis, as without an index. The index
//! errs only towards asking: a key it holds that Redis lost is one `GET` that misses (and is
//! forgotten), a key written while the subscription was down is re-seeded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use switchboard_llm::cache::CacheStore;
use switchboard_sessions::RedisLink;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Keys the index holds at most, for all routes of a replica together: about 40 bytes each,
/// so ~4 MiB. Beyond it, keys are not indexed and lookups ask Redis until they have expired.
pub const MAX_INDEX_ENTRIES: usize = 100_000;

/// How often the subscription is pinged: a connection that stopped answering is a dropped
/// subscription (the index is distrusted and rebuilt).
const PING_EVERY: Duration = Duration::from_secs(5);

/// Answers in Redis under `{prefix}{key}`, each with its TTL.
pub struct RedisCacheStore {
    link: RedisLink,
    prefix: String,
    index: CacheIndex,
}

impl RedisCacheStore {
    /// A store through `link`, keys under the `index`'s prefix, lookups filtered by `index`.
    pub fn new(link: RedisLink, index: CacheIndex) -> Self {
        RedisCacheStore {
            link,
            prefix: index.shared.prefix.clone(),
            index,
        }
    }
}

impl CacheStore for RedisCacheStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Bytes>> {
        let Ask::Redis(seen) = self.index.ask(key) else {
            return Box::pin(std::future::ready(None));
        };
        let k = format!("{}{key}", self.prefix);
        Box::pin(async move {
            let got: switchboard_sessions::Result<Option<Vec<u8>>> = self
                .link
                .run(|mut conn| {
                    let mut cmd = redis::cmd("GET");
                    cmd.arg(&k);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await;
            match got {
                Ok(Some(v)) => Some(Bytes::from(v)),
                Ok(None) => {
                    // Gone from Redis (evicted, deleted, or Redis restarted empty).
                    if let Some(seen) = seen {
                        self.index.forget(key, seen);
                    }
                    None
                }
                Err(e) => {
                    tracing::debug!(error = %e, "llm cache read failed");
                    None
                }
            }
        })
    }

    fn put(&self, key: String, value: Bytes, ttl: Duration) -> BoxFuture<'static, ()> {
        let link = self.link.clone();
        let index = self.index.clone();
        let k = format!("{}{key}", self.prefix);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let publish = link
            .supports_pubsub()
            .then(|| (index.shared.channel.clone(), format!("{key} {ms}")));
        Box::pin(async move {
            // Noted before the write: an identical request right after this one asks Redis
            // (its GET queues behind this SET on the shared connection) rather than missing.
            // Should the write fail, that GET misses and forgets the key.
            index.note(&key, ms);
            let done: switchboard_sessions::Result<()> = link
                .run(|mut conn| {
                    let mut pipe = redis::pipe();
                    pipe.cmd("SET")
                        .arg(&k)
                        .arg(value.as_ref())
                        .arg("PX")
                        .arg(ms)
                        .ignore();
                    if let Some((channel, message)) = &publish {
                        pipe.cmd("PUBLISH").arg(channel).arg(message).ignore();
                    }
                    async move { pipe.query_async(&mut conn).await }
                })
                .await;
            if let Err(e) = done {
                tracing::debug!(error = %e, "llm cache write failed");
            }
        })
    }
}

/// Whether a lookup must ask Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// No: the key is not in Redis (a miss).
    No,
    /// Yes; with the expiry the index holds for the key, if it holds it.
    Redis(Option<u64>),
}

/// Which cache keys Redis holds, as this replica knows from the publishes it followed and the
/// last seed (cheap to clone; one per gateway, shared by all its routes). Its follower task
/// ends with the gateway's shutdown or when the last handle is dropped.
#[derive(Clone)]
pub struct CacheIndex {
    shared: Arc<Shared>,
}

struct Shared {
    table: Arc<Mutex<Table>>,
    prefix: String,
    channel: String,
    _stop: DropGuard,
}

impl std::fmt::Debug for CacheIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = lock(&self.shared.table);
        f.debug_struct("CacheIndex")
            .field("prefix", &self.shared.prefix)
            .field("entries", &t.entries.len())
            .field("trusted", &t.trusted)
            .finish()
    }
}

impl CacheIndex {
    /// An index of the keys under `prefix` (`{sessions.redis.prefix}llmcache:`), following
    /// `link`'s publishes until `shutdown`. It is trusted once subscribed and seeded; on a
    /// Redis Cluster never (every lookup asks Redis).
    pub fn start(
        link: RedisLink,
        prefix: String,
        shutdown: &CancellationToken,
        metrics: &crate::metrics::Metrics,
    ) -> Self {
        let stop = shutdown.child_token();
        let gauges = metrics.with_registry(IndexMetrics::new);
        let table = Arc::new(Mutex::new(Table::new(MAX_INDEX_ENTRIES, gauges)));
        let channel = format!("{prefix}written");
        if link.supports_pubsub() {
            tokio::spawn(follow(
                Follower {
                    link,
                    table: table.clone(),
                    prefix: prefix.clone(),
                    channel: channel.clone(),
                },
                stop.clone(),
            ));
        }
        CacheIndex {
            shared: Arc::new(Shared {
                table,
                prefix,
                channel,
                _stop: stop.drop_guard(),
            }),
        }
    }

    /// Whether the index is trusted now (subscribed and seeded).
    pub fn is_trusted(&self) -> bool {
        lock(&self.shared.table).trusted
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        lock(&self.shared.table).entries.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ask(&self, key: &str) -> Ask {
        match digest(key) {
            Some(d) => {
                let mut t = lock(&self.shared.table);
                let ask = t.ask(d, now_ms());
                t.sync();
                ask
            }
            None => Ask::Redis(None),
        }
    }

    fn note(&self, key: &str, ttl_ms: u64) {
        if let Some(d) = digest(key) {
            let mut t = lock(&self.shared.table);
            t.note(d, now_ms().saturating_add(ttl_ms), now_ms());
            t.sync();
        }
    }

    fn forget(&self, key: &str, seen: u64) {
        if let Some(d) = digest(key) {
            let mut t = lock(&self.shared.table);
            t.forget(d, seen);
            t.sync();
        }
    }
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    // No code panics while holding it; a poisoned table is still a usable one.
    t.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Milliseconds on a process-wide monotonic clock (tokio's, so paused-time tests can move it).
fn now_ms() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A cache key (the hex SHA-256 of [`switchboard_llm::cache::ResponseCache::key`]) as its
/// first 128 bits; `None` for anything else (such keys always ask Redis). Two keys sharing
/// 128 bits would cost one `GET` that misses, never a wrong answer.
fn digest(key: &str) -> Option<u128> {
    if key.len() != 64 {
        return None;
    }
    u128::from_str_radix(key.get(..32)?, 16).ok()
}

/// What the index exposes on `/metrics`.
#[derive(Clone, Default)]
struct IndexMetrics {
    entries: Gauge,
    trusted: Gauge,
    seeds: Counter,
}

impl IndexMetrics {
    /// Registers `switchboard_llm_cache_index_*` (the gateway's registry adds `switchboard_`).
    fn new(registry: &mut prometheus_client::registry::Registry) -> Self {
        let m = IndexMetrics::default();
        registry.register(
            "llm_cache_index_entries",
            "Cache keys in Redis this replica's index holds (llm.cache store redis)",
            m.entries.clone(),
        );
        registry.register(
            "llm_cache_index_trusted",
            "1 while the index is subscribed and seeded (a miss asks no Redis), else 0",
            m.trusted.clone(),
        );
        registry.register(
            "llm_cache_index_seeds",
            "Times the index was (re)seeded from Redis after (re)subscribing",
            m.seeds.clone(),
        );
        m
    }
}

/// The index proper: key digest → expiry (ms on [`now_ms`]'s clock).
struct Table {
    metrics: IndexMetrics,
    entries: HashMap<u128, u64>,
    max: usize,
    /// Subscribed and seeded: a key it does not hold is not in Redis.
    trusted: bool,
    /// Keys not held for want of room may live in Redis until then: until then, ask.
    dropped_until: u64,
    /// No entry expires before this (a lower bound): purging earlier frees nothing.
    next_purge: u64,
}

impl Table {
    fn new(max: usize, metrics: IndexMetrics) -> Self {
        Table {
            metrics,
            entries: HashMap::new(),
            max,
            trusted: false,
            dropped_until: 0,
            next_purge: u64::MAX,
        }
    }

    /// Publishes the size and trust on the metrics.
    fn sync(&self) {
        self.metrics
            .entries
            .set(i64::try_from(self.entries.len()).unwrap_or(i64::MAX));
        self.metrics.trusted.set(i64::from(self.trusted));
    }

    fn set_trusted(&mut self, trusted: bool) {
        self.trusted = trusted;
        self.sync();
    }

    fn ask(&mut self, d: u128, now: u64) -> Ask {
        match self.entries.get(&d) {
            Some(&exp) if exp > now => Ask::Redis(Some(exp)),
            Some(_) => {
                self.entries.remove(&d);
                self.ask_unknown(now)
            }
            None => self.ask_unknown(now),
        }
    }

    fn ask_unknown(&self, now: u64) -> Ask {
        if self.trusted && self.dropped_until <= now {
            Ask::No
        } else {
            Ask::Redis(None)
        }
    }

    fn note(&mut self, d: u128, expires: u64, now: u64) {
        if let Some(exp) = self.entries.get_mut(&d) {
            *exp = (*exp).max(expires);
            return;
        }
        if self.entries.len() >= self.max && now >= self.next_purge {
            self.entries.retain(|_, exp| *exp > now);
            self.next_purge = self.entries.values().copied().min().unwrap_or(u64::MAX);
        }
        if self.entries.len() < self.max {
            self.entries.insert(d, expires);
            self.next_purge = self.next_purge.min(expires);
        } else {
            self.dropped_until = self.dropped_until.max(expires);
        }
    }

    fn forget(&mut self, d: u128, seen: u64) {
        if self.entries.get(&d) == Some(&seen) {
            self.entries.remove(&d);
        }
    }
}

/// What the follower task needs (not the handle: the task must not keep the index alive).
struct Follower {
    link: RedisLink,
    table: Arc<Mutex<Table>>,
    prefix: String,
    channel: String,
}

/// Follows the publishes until `stop`: subscribe, seed, trust; on any failure distrust and
/// start over after a short back-off.
async fn follow(f: Follower, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let started = Instant::now();
        let outcome = tokio::select! {
            _ = stop.cancelled() => return,
            r = f.session() => r,
        };
        lock(&f.table).set_trusted(false);
        if let Err(e) = outcome {
            tracing::debug!(error = %e, "llm cache index: subscription lost; lookups ask redis");
        }
        backoff = if started.elapsed() > Duration::from_secs(30) {
            Duration::from_millis(100)
        } else {
            (backoff * 2).min(Duration::from_secs(2))
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
    }
}

impl Follower {
    /// One subscription: returns (with the reason) when it fails.
    async fn session(&self) -> Result<(), String> {
        let pubsub = self.link.pubsub().await.map_err(|e| e.to_string())?;
        let (mut sink, mut stream) = pubsub.split();
        let within = Duration::from_secs(3);
        tokio::time::timeout(within, sink.subscribe(&self.channel))
            .await
            .map_err(|_| "subscribe timed out".to_string())?
            .map_err(|e| e.to_string())?;
        // Publishes queue on the connection meanwhile: none is lost between seed and trust.
        let seeded = self.seed().await?;
        while let Some(Some(msg)) = stream.next().now_or_never() {
            self.apply(&msg);
        }
        {
            let mut t = lock(&self.table);
            t.metrics.seeds.inc();
            t.set_trusted(true);
        }
        tracing::debug!(seeded, "llm cache index: subscribed and seeded");
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(msg) => self.apply(&msg),
                    None => return Err("subscription connection closed".into()),
                },
                _ = ping.tick() => {
                    tokio::time::timeout(within, sink.ping::<redis::Value>())
                        .await
                        .map_err(|_| "subscription ping timed out".to_string())?
                        .map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// Indexes every key Redis holds under the prefix, with its TTL; returns how many.
    async fn seed(&self) -> Result<usize, String> {
        let pattern = format!("{}*", glob_escape(&self.prefix));
        let mut cursor = 0u64;
        let mut seeded = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .link
                .run(|mut conn| {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await
                .map_err(|e| e.to_string())?;
            if !keys.is_empty() {
                let ttls: Vec<i64> = self
                    .link
                    .run(|mut conn| {
                        let mut pipe = redis::pipe();
                        for k in &keys {
                            pipe.cmd("PTTL").arg(k);
                        }
                        async move { pipe.query_async(&mut conn).await }
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                let now = now_ms();
                let mut t = lock(&self.table);
                for (k, ttl) in keys.iter().zip(ttls) {
                    let Some(d) = k.strip_prefix(&self.prefix).and_then(digest) else {
                        continue;
                    };
                    // -1: no expiry (not written by a gateway); -2: gone meanwhile.
                    let expires = match ttl {
                        -1 => u64::MAX,
                        t if t > 0 => now.saturating_add(t.unsigned_abs()),
                        _ => continue,
                    };
                    t.note(d, expires, now);
                    seeded += 1;
                }
                t.sync();
            }
            if next == 0 {
                return Ok(seeded);
            }
            cursor = next;
        }
    }

    /// A publish: `{key} {ttl in ms}`; anything else is ignored.
    fn apply(&self, msg: &redis::Msg) {
        let payload = msg.get_payload_bytes();
        if payload.len() > 128 {
            return;
        }
        let Some((key, ms)) = std::str::from_utf8(payload)
            .ok()
            .and_then(|p| p.split_once(' '))
        else {
            return;
        };
        if let (Some(d), Ok(ms)) = (digest(key), ms.parse::<u64>()) {
            let now = now_ms();
            let mut t = lock(&self.table);
            t.note(d, now.saturating_add(ms), now);
            t.sync();
        }
    }
}

/// `s` with Redis glob metacharacters escaped, for `SCAN MATCH`.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u128 = 1;
    const B: u128 = 2;
    const C: u128 = 3;

    #[test]
    fn untrusted_asks_redis_for_every_key() {
        let mut t = Table::new(10, IndexMetrics::default());
        assert_eq!(t.ask(A, 0), Ask::Redis(None));
        t.note(A, 100, 0);
        assert_eq!(t.ask(A, 0), Ask::Redis(Some(100)));
    }

    #[test]
    fn trusted_answers_unknown_and_expired_keys_without_redis() {
        let mut t = Table::new(10, IndexMetrics::default());
        t.trusted = true;
        assert_eq!(t.ask(A, 0), Ask::No);
        t.note(A, 100, 0);
        assert_eq!(t.ask(A, 99), Ask::Redis(Some(100)));
        assert_eq!(t.ask(A, 100), Ask::No, "expired");
        assert!(t.entries.is_empty(), "and dropped");
    }

    #[test]
    fn a_later_write_extends_the_expiry_and_forget_spares_it() {
        let mut t = Table::new(10, IndexMetrics::default());
        t.trusted = true;
        t.note(A, 100, 0);
        t.note(A, 200, 50);
        assert_eq!(t.ask(A, 150), Ask::Redis(Some(200)));
        t.forget(A, 100);
        assert_eq!(t.ask(A, 150), Ask::Redis(Some(200)), "a newer write stays");
        t.forget(A, 200);
        assert_eq!(t.ask(A, 150), Ask::No);
    }

    #[test]
    fn a_full_index_asks_redis_until_the_keys_it_dropped_expire() {
        let mut t = Table::new(2, IndexMetrics::default());
        t.trusted = true;
        t.note(A, 100, 0);
        t.note(B, 300, 0);
        t.note(C, 500, 0);
        assert_eq!(t.entries.len(), 2);
        assert_eq!(t.ask(C, 10), Ask::Redis(None), "dropped: may be in redis");
        assert_eq!(t.ask(99, 10), Ask::Redis(None), "so may any unknown key");
        // A expired: its room goes to the next key.
        t.note(C, 600, 150);
        assert_eq!(t.ask(C, 160), Ask::Redis(Some(600)));
        assert_eq!(t.ask(99, 499), Ask::Redis(None));
        assert_eq!(t.ask(99, 500), Ask::No, "every dropped key has expired");
    }

    #[test]
    fn only_cache_keys_are_indexed() {
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(digest(key), Some(0x0123456789abcdef0123456789abcdef));
        assert_eq!(digest("abc"), None);
        assert_eq!(digest(&key.replace('0', "g")), None);
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
