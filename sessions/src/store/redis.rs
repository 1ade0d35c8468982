//! The shared store: the fleet's Redis (one server, a Cluster, or a Sentinel-managed master),
//! reached through a [`RedisLink`] (timeouts, circuit breaker).
//!
//! Keys (all under the configured prefix `P`, `ID` the session id). The `{ID}` in braces is a
//! Redis Cluster hash tag: every key of one session lives on one slot, so a script may touch
//! several of them.
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `P s:{ID}` | string | idle timeout | metadata (JSON) |
//! | `P t:{ID}` | string | max lifetime | tombstone: `r` revoked, `e` expired |
//! | `P e:{ID}:{stream}` | list | idle timeout | the newest `event_log_size` event payloads |
//! | `P n:{ID}:{stream}` | string | idle timeout | sequence number of the newest event |
//! | `P l:{ID}` | sorted set | idle timeout | stream names of the session by last write, at most [`MAX_STREAMS_PER_SESSION`] |
//! | `P p:{principal}` | sorted set | idle timeout | live session ids, score = idle deadline (ms) |
//! | `P a:key` | string | as put | an affinity value (e.g. A2A task id → agent replica) |
//!
//! Every operation on a session's keys is one Lua script (one round trip, atomic), so two
//! replicas racing on a session see a consistent state. The principal's set lives on another
//! slot, so it is updated by its own call: claiming a slot happens before the session is
//! written (a failed write leaves a slot that expires with the idle timeout), releasing it
//! after the session ended. Scores use the Redis server's clock (`TIME`), not the replicas',
//! so the principal cap does not depend on replica clock skew.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::{Cmd, FromRedisValue, Script, ToRedisArgs, Value};

use super::memory::MAX_STREAMS_PER_SESSION;
use super::{EndReason, Lookup, SessionStore, StoreLimits};
use crate::events::{EventId, Replay, StreamKey};
use crate::link::RedisLink;
use crate::token::SessionId;
use crate::{Error, Result};

// KEYS: principal set. ARGV: idle ms, id, max per principal. 1 when the id holds a slot.
const CLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

// KEYS: principal set. ARGV: idle ms, id. Restarts a live session's slot.
const REFRESH_SLOT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

// KEYS: meta, tombstone. ARGV: idle ms, refresh ('1'/'0').
const LOOKUP: &str = r"
local t = redis.call('GET', KEYS[2])
if t then return {t, ''} end
local m = redis.call('GET', KEYS[1])
if not m then return {'missing', ''} end
if ARGV[2] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return {'alive', m}
";

// KEYS: meta, tombstone, stream-name set. ARGV: reason, max lifetime ms, key prefix,
// `:{ID}:` (stream keys are prefix .. kind .. `:{ID}:` .. name).
const END: &str = r"
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  redis.call('DEL', ARGV[3] .. 'e' .. ARGV[4] .. name, ARGV[3] .. 'n' .. ARGV[4] .. name)
end
redis.call('DEL', KEYS[3])
return 1
";

// KEYS: events list, counter, stream-name set. ARGV: payload, max len, idle ms, stream name,
// max streams per session, key prefix, `:{ID}:`. The session keeps the most recently written
// streams only, as the memory store does.
const APPEND: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZADD', KEYS[3], now, ARGV[4])
local extra = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[5])
if extra > 0 then
  for _, name in ipairs(redis.call('ZRANGE', KEYS[3], 0, extra - 1)) do
    redis.call('DEL', ARGV[6] .. 'e' .. ARGV[7] .. name, ARGV[6] .. 'n' .. ARGV[7] .. name)
    redis.call('ZREM', KEYS[3], name)
  end
end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return n
";

const REPLAY: &str = r"
local n = redis.call('GET', KEYS[2])
if not n then return {-1} end
n = tonumber(n)
local len = redis.call('LLEN', KEYS[1])
local first = n - len + 1
local last = tonumber(ARGV[1])
local out = {n, first}
if last >= n then return out end
local from = math.max(last + 1, first)
local items = redis.call('LRANGE', KEYS[1], from - first, -1)
for i = 1, #items do out[#out + 1] = items[i] end
return out
";

/// The Redis-backed store for fleets of replicas.
#[derive(Clone)]
pub struct RedisStore {
    link: RedisLink,
    prefix: String,
    limits: StoreLimits,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    claim: Script,
    refresh_slot: Script,
    lookup: Script,
    end: Script,
    append: Script,
    replay: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("link", &self.link)
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// One script or command argument, as Redis receives it.
fn arg(x: impl ToRedisArgs) -> Vec<u8> {
    x.to_redis_args().into_iter().next().unwrap_or_default()
}

impl RedisStore {
    /// Connects to one server at `url` (`redis://...`, `rediss://...` or `unix:///...`) with
    /// the default timeout and breaker (tests, tools). See [`RedisStore::with_link`].
    pub async fn connect(url: &str, prefix: &str, limits: StoreLimits) -> Result<Self> {
        let cfg = crate::RedisConfig {
            prefix: prefix.to_owned(),
            ..crate::RedisConfig::standalone(url)
        };
        let link = RedisLink::connect(&cfg, crate::Metrics::default()).await?;
        Ok(Self::with_link(link, prefix, limits))
    }

    /// The store over an established link (shared with the gateway's rate limits).
    pub fn with_link(link: RedisLink, prefix: &str, limits: StoreLimits) -> Self {
        RedisStore {
            link,
            prefix: prefix.to_owned(),
            limits,
            scripts: std::sync::Arc::new(Scripts {
                claim: Script::new(CLAIM),
                refresh_slot: Script::new(REFRESH_SLOT),
                lookup: Script::new(LOOKUP),
                end: Script::new(END),
                append: Script::new(APPEND),
                replay: Script::new(REPLAY),
            }),
        }
    }

    /// The link underneath.
    pub fn link(&self) -> &RedisLink {
        &self.link
    }

    async fn eval<T: FromRedisValue + Send>(
        &self,
        script: &Script,
        keys: &[String],
        args: &[Vec<u8>],
    ) -> Result<T> {
        self.link
            .run(|mut c| {
                let mut inv = script.prepare_invoke();
                for k in keys {
                    inv.key(k.as_str());
                }
                for a in args {
                    inv.arg(a.as_slice());
                }
                async move { inv.invoke_async(&mut c).await }
            })
            .await
    }

    async fn query<T: FromRedisValue + Send>(&self, cmd: Cmd) -> Result<T> {
        self.link
            .run(|mut c| {
                let cmd = cmd.clone();
                async move { cmd.query_async(&mut c).await }
            })
            .await
    }

    fn key(&self, kind: char, id: SessionId) -> String {
        format!("{}{kind}:{{{id}}}", self.prefix)
    }

    fn principal_key(&self, principal: &str) -> String {
        format!("{}p:{{{principal}}}", self.prefix)
    }

    /// The two parts around the kind letter of a session's stream keys: `P` and `:{ID}:`.
    fn stream_prefix(&self, id: SessionId) -> (String, String) {
        (self.prefix.clone(), format!(":{{{id}}}:"))
    }

    fn stream_keys(&self, stream: &StreamKey) -> (String, String) {
        let (p, s) = self.stream_prefix(stream.session);
        (
            format!("{p}e{s}{}", stream.name),
            format!("{p}n{s}{}", stream.name),
        )
    }

    async fn lookup(
        &self,
        id: SessionId,
        principal: Option<&str>,
        refresh: bool,
    ) -> Result<Lookup> {
        let (status, meta): (String, Vec<u8>) = self
            .eval(
                &self.scripts.lookup,
                &[self.key('s', id), self.key('t', id)],
                &[
                    arg(ms(self.limits.idle_timeout)),
                    arg(if refresh { "1" } else { "0" }),
                ],
            )
            .await?;
        Ok(match status.as_str() {
            "alive" => {
                if refresh && let Some(p) = principal {
                    let _: i64 = self
                        .eval(
                            &self.scripts.refresh_slot,
                            &[self.principal_key(p)],
                            &[arg(ms(self.limits.idle_timeout)), arg(id.to_string())],
                        )
                        .await?;
                }
                Lookup::Alive(Bytes::from(meta))
            }
            "missing" => Lookup::Missing,
            "r" => Lookup::Ended(EndReason::Revoked),
            "e" => Lookup::Ended(EndReason::Expired),
            other => return Err(Error::Store(format!("unexpected lookup status {other:?}"))),
        })
    }
}

#[async_trait]
impl SessionStore for RedisStore {
    fn is_shared(&self) -> bool {
        true
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    async fn create(&self, id: SessionId, principal: Option<&str>, meta: Bytes) -> Result<()> {
        if let Some(p) = principal {
            let ok: i64 = self
                .eval(
                    &self.scripts.claim,
                    &[self.principal_key(p)],
                    &[
                        arg(ms(self.limits.idle_timeout)),
                        arg(id.to_string()),
                        arg(self.limits.max_per_principal),
                    ],
                )
                .await?;
            if ok != 1 {
                return Err(Error::TooManySessions {
                    limit: self.limits.max_per_principal,
                });
            }
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key('s', id))
            .arg(meta.as_ref())
            .arg("PX")
            .arg(ms(self.limits.idle_timeout));
        let _: Value = self.query(cmd).await?;
        Ok(())
    }

    async fn touch(&self, id: SessionId, principal: Option<&str>) -> Result<Lookup> {
        self.lookup(id, principal, true).await
    }

    async fn peek(&self, id: SessionId) -> Result<Lookup> {
        self.lookup(id, None, false).await
    }

    async fn set_meta(&self, id: SessionId, meta: Bytes) -> Result<bool> {
        // XX: only a live session; a concurrent expiry wins.
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key('s', id))
            .arg(meta.as_ref())
            .arg("PX")
            .arg(ms(self.limits.idle_timeout))
            .arg("XX");
        let reply: Value = self.query(cmd).await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn end(&self, id: SessionId, principal: Option<&str>, reason: EndReason) -> Result<()> {
        let (prefix, streams) = self.stream_prefix(id);
        let _: i64 = self
            .eval(
                &self.scripts.end,
                &[self.key('s', id), self.key('t', id), self.key('l', id)],
                &[
                    arg(match reason {
                        EndReason::Revoked => "r",
                        EndReason::Expired => "e",
                    }),
                    arg(ms(self.limits.max_lifetime)),
                    arg(prefix),
                    arg(streams),
                ],
            )
            .await?;
        if let Some(p) = principal {
            let mut cmd = redis::cmd("ZREM");
            cmd.arg(self.principal_key(p)).arg(id.to_string());
            let _: i64 = self.query(cmd).await?;
        }
        Ok(())
    }

    async fn append(&self, stream: &StreamKey, payload: Bytes) -> Result<EventId> {
        let (events, counter) = self.stream_keys(stream);
        let (prefix, streams) = self.stream_prefix(stream.session);
        let seq: u64 = self
            .eval(
                &self.scripts.append,
                &[events, counter, self.key('l', stream.session)],
                &[
                    payload.to_vec(),
                    arg(self.limits.event_log_size.max(1)),
                    arg(ms(self.limits.idle_timeout)),
                    arg(stream.name.as_ref()),
                    arg(MAX_STREAMS_PER_SESSION),
                    arg(prefix),
                    arg(streams),
                ],
            )
            .await?;
        Ok(EventId {
            stream: stream.clone(),
            seq,
        })
    }

    async fn put_affinity(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}a:{key}", self.prefix))
            .arg(value)
            .arg("PX")
            .arg(ms(ttl));
        let _: Value = self.query(cmd).await?;
        Ok(())
    }

    async fn get_affinity(&self, key: &str) -> Result<Option<String>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(format!("{}a:{key}", self.prefix));
        self.query(cmd).await
    }

    async fn replay_after(&self, last: &EventId) -> Result<Replay> {
        let (events, counter) = self.stream_keys(&last.stream);
        let reply: Vec<Value> = self
            .eval(&self.scripts.replay, &[events, counter], &[arg(last.seq)])
            .await?;
        let int = |v: Option<&Value>| match v {
            Some(Value::Int(i)) => Ok(*i),
            _ => Err(Error::Store("unexpected replay reply".to_owned())),
        };
        let newest = int(reply.first())?;
        if newest < 0 {
            return Ok(Replay::default());
        }
        let newest = newest as u64;
        if last.seq > newest {
            // An id from a previous incarnation of the stream (it expired and restarted).
            return Ok(Replay::default());
        }
        let first = int(reply.get(1))? as u64;
        let from = (last.seq + 1).max(first);
        let mut out = Vec::with_capacity(reply.len().saturating_sub(2));
        for (item, seq) in reply.into_iter().skip(2).zip(from..) {
            let Value::BulkString(payload) = item else {
                return Err(Error::Store("unexpected replay item".to_owned()));
            };
            out.push((
                EventId {
                    stream: last.stream.clone(),
                    seq,
                },
                Bytes::from(payload),
            ));
        }
        Ok(Replay {
            events: out,
            complete: last.seq + 1 >= first,
        })
    }
}
