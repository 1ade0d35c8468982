//! The Redis store of `llm.cache: {store: redis}`: answers kept in the sessions store's Redis
//! (through its link: one timeout and one circuit breaker for everything the gateway keeps
//! there), so every replica of a fleet answers from one cache. A failed or refused call is a
//! miss (get) or a skipped write (put): the cache never fails a request.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use switchboard_llm::cache::CacheStore;

/// Answers in Redis under `{prefix}{key}`, each with its TTL.
pub struct RedisCacheStore {
    link: switchboard_sessions::RedisLink,
    prefix: String,
}

impl RedisCacheStore {
    /// A store through `link`, keys under `prefix`.
    pub fn new(link: switchboard_sessions::RedisLink, prefix: String) -> Self {
        RedisCacheStore { link, prefix }
    }
}

impl CacheStore for RedisCacheStore {
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Option<Bytes>> {
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
                Ok(v) => v.map(Bytes::from),
                Err(e) => {
                    tracing::debug!(error = %e, "llm cache read failed");
                    None
                }
            }
        })
    }

    fn put(&self, key: String, value: Bytes, ttl: Duration) -> BoxFuture<'static, ()> {
        let link = self.link.clone();
        let k = format!("{}{key}", self.prefix);
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Box::pin(async move {
            let done: switchboard_sessions::Result<()> = link
                .run(|mut conn| {
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(&k).arg(value.as_ref()).arg("PX").arg(ms);
                    async move { cmd.query_async(&mut conn).await }
                })
                .await;
            if let Err(e) = done {
                tracing::debug!(error = %e, "llm cache write failed");
            }
        })
    }
}
