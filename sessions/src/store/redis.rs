//! The shared store: one Redis server for the fleet.
//!
//! Keys (all under the configured prefix `P`, `{id}` the session id):
//!
//! | key | type | TTL | holds |
//! |---|---|---|---|
//! | `P s:{id}` | string | idle timeout | metadata (JSON) |
//! | `P t:{id}` | string | max lifetime | tombstone: `r` revoked, `e` expired |
//! | `P p:{principal}` | sorted set | idle timeout | live session ids, score = idle deadline (ms) |
//! | `P e:{id}:{stream}` | list | idle timeout | the newest `event_log_size` event payloads |
//! | `P n:{id}:{stream}` | string | idle timeout | sequence number of the newest event |
//! | `P x:{id}` | set | idle timeout | stream names of the session, to delete them with it |
//! | `P a:{key}` | string | as put | an affinity value (e.g. A2A task id → agent replica) |
//!
//! Every operation is one Lua script (one round trip, atomic), so two replicas racing on a
//! session see a consistent state. Scores use the Redis server's clock (`TIME`), not the
//! replicas', so the principal cap does not depend on replica clock skew.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};

use super::{EndReason, Lookup, SessionStore, StoreLimits};
use crate::events::{EventId, Replay, StreamKey};
use crate::token::SessionId;
use crate::{Error, Result};

const CREATE: &str = r"
if ARGV[5] == '1' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], ARGV[2]) and redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[4]) then
    return 0
  end
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[1])
return 1
";

// KEYS: meta, tombstone, principal set. ARGV: idle ms, id, refresh ('1'/'0'), has principal.
const LOOKUP: &str = r"
local t = redis.call('GET', KEYS[2])
if t then return {t, ''} end
local m = redis.call('GET', KEYS[1])
if not m then return {'missing', ''} end
if ARGV[3] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  if ARGV[4] == '1' then
    local tm = redis.call('TIME')
    local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[1]), ARGV[2])
    redis.call('PEXPIRE', KEYS[3], ARGV[1])
  end
end
return {'alive', m}
";

// KEYS: meta, tombstone, principal set, stream-name set. ARGV: reason, max lifetime ms, id,
// has principal, key prefix, `:{id}:` (stream keys are prefix .. kind .. `:{id}:` .. name).
const END: &str = r"
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
if ARGV[4] == '1' then redis.call('ZREM', KEYS[3], ARGV[3]) end
for _, name in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  redis.call('DEL', ARGV[5] .. 'e' .. ARGV[6] .. name, ARGV[5] .. 'n' .. ARGV[6] .. name)
end
redis.call('DEL', KEYS[4])
return 1
";

// KEYS: events list, counter, stream-name set. ARGV: payload, max len, idle ms, stream name.
const APPEND: &str = r"
local n = redis.call('INCR', KEYS[2])
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return n
";

// KEYS: events list, counter. ARGV: last seen seq. Returns {newest seq, first kept seq, events...}
// or {-1} for an unknown stream.
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
    conn: ConnectionManager,
    prefix: String,
    limits: StoreLimits,
    scripts: std::sync::Arc<Scripts>,
}

struct Scripts {
    create: Script,
    lookup: Script,
    end: Script,
    append: Script,
    replay: Script,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisStore {
    /// Connects to `url` (`redis://...` or `unix:///...`). Fails when the server does not answer
    /// within a few seconds; afterwards the connection is re-established in the background
    /// and operations fail fast while Redis is away.
    pub async fn connect(url: &str, prefix: &str, limits: StoreLimits) -> Result<Self> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)))
            .set_number_of_retries(2);
        let conn = ConnectionManager::new_with_config(client, config).await?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_owned(),
            limits,
            scripts: std::sync::Arc::new(Scripts {
                create: Script::new(CREATE),
                lookup: Script::new(LOOKUP),
                end: Script::new(END),
                append: Script::new(APPEND),
                replay: Script::new(REPLAY),
            }),
        })
    }

    /// The store described by a `sessions:` block with `store: redis`.
    pub async fn from_config(cfg: &crate::SessionsConfig) -> Result<Self> {
        let redis = cfg
            .redis
            .as_ref()
            .ok_or_else(|| Error::Config("redis: required when store is redis".to_owned()))?;
        Self::connect(&redis.url, &redis.prefix, StoreLimits::from_config(cfg)).await
    }

    fn key(&self, kind: char, id: SessionId) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }

    fn principal_key(&self, principal: Option<&str>) -> String {
        format!("{}p:{}", self.prefix, principal.unwrap_or(""))
    }

    /// The two parts around the kind letter of a session's stream keys: `P` and `:{id}:`.
    fn stream_prefix(&self, id: SessionId) -> (String, String) {
        (self.prefix.clone(), format!(":{id}:"))
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
            .scripts
            .lookup
            .key(self.key('s', id))
            .key(self.key('t', id))
            .key(self.principal_key(principal))
            .arg(ms(self.limits.idle_timeout))
            .arg(id.to_string())
            .arg(if refresh { "1" } else { "0" })
            .arg(if principal.is_some() { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(match status.as_str() {
            "alive" => Lookup::Alive(Bytes::from(meta)),
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
        let ok: i64 = self
            .scripts
            .create
            .key(self.key('s', id))
            .key(self.principal_key(principal))
            .arg(ms(self.limits.idle_timeout))
            .arg(id.to_string())
            .arg(meta.as_ref())
            .arg(self.limits.max_per_principal)
            .arg(if principal.is_some() { "1" } else { "0" })
            .invoke_async(&mut self.conn.clone())
            .await?;
        if ok == 1 {
            Ok(())
        } else {
            Err(Error::TooManySessions {
                limit: self.limits.max_per_principal,
            })
        }
    }

    async fn touch(&self, id: SessionId, principal: Option<&str>) -> Result<Lookup> {
        self.lookup(id, principal, true).await
    }

    async fn peek(&self, id: SessionId) -> Result<Lookup> {
        self.lookup(id, None, false).await
    }

    async fn set_meta(&self, id: SessionId, meta: Bytes) -> Result<bool> {
        // XX: only a live session; a concurrent expiry wins.
        let reply: Value = redis::cmd("SET")
            .arg(self.key('s', id))
            .arg(meta.as_ref())
            .arg("PX")
            .arg(ms(self.limits.idle_timeout))
            .arg("XX")
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(!matches!(reply, Value::Nil))
    }

    async fn end(&self, id: SessionId, principal: Option<&str>, reason: EndReason) -> Result<()> {
        let (prefix, streams) = self.stream_prefix(id);
        let _: i64 = self
            .scripts
            .end
            .key(self.key('s', id))
            .key(self.key('t', id))
            .key(self.principal_key(principal))
            .key(self.key('x', id))
            .arg(match reason {
                EndReason::Revoked => "r",
                EndReason::Expired => "e",
            })
            .arg(ms(self.limits.max_lifetime))
            .arg(id.to_string())
            .arg(if principal.is_some() { "1" } else { "0" })
            .arg(prefix)
            .arg(streams)
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn append(&self, stream: &StreamKey, payload: Bytes) -> Result<EventId> {
        let (events, counter) = self.stream_keys(stream);
        let seq: u64 = self
            .scripts
            .append
            .key(events)
            .key(counter)
            .key(self.key('x', stream.session))
            .arg(payload.as_ref())
            .arg(self.limits.event_log_size.max(1))
            .arg(ms(self.limits.idle_timeout))
            .arg(stream.name.as_ref())
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(EventId {
            stream: stream.clone(),
            seq,
        })
    }

    async fn put_affinity(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let _: Value = redis::cmd("SET")
            .arg(format!("{}a:{key}", self.prefix))
            .arg(value)
            .arg("PX")
            .arg(ms(ttl))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn get_affinity(&self, key: &str) -> Result<Option<String>> {
        Ok(redis::cmd("GET")
            .arg(format!("{}a:{key}", self.prefix))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    async fn replay_after(&self, last: &EventId) -> Result<Replay> {
        let (events, counter) = self.stream_keys(&last.stream);
        let reply: Vec<Value> = self
            .scripts
            .replay
            .key(events)
            .key(counter)
            .arg(last.seq)
            .invoke_async(&mut self.conn.clone())
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
