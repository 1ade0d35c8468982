//! The in-process store: sharded maps, no lock held across an `.await` (nothing here awaits).
//!
//! Time is tokio's clock, so tests drive expiry with paused time. Expired entries are dropped
//! lazily on access and by [`sweep`](SessionStore::sweep), which the manager's reaper calls.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use dashmap::DashMap;
use tokio::time::Instant;

use super::{EndReason, Lookup, SessionStore, StoreLimits};
use crate::events::{EventId, Replay, StreamKey};
use crate::token::SessionId;
use crate::{Error, Result};

#[derive(Debug)]
struct Entry {
    meta: Bytes,
    principal: Option<Arc<str>>,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Log {
    /// Sequence number of the newest event (0: none yet).
    last: u64,
    events: VecDeque<Bytes>,
    deadline: Option<Instant>,
    /// The session's write count at this log's last append (see [`Logs::writes`]).
    written: u64,
}

/// A session's event logs.
#[derive(Debug, Default)]
struct Logs {
    by_name: HashMap<Arc<str>, Log>,
    /// Appends in order, as (stream, the session's write count then). An entry whose count is
    /// its log's `written` is that log's last write, so the first such entry from the front
    /// names the least recently written log: evicting one is not a scan of every log (each
    /// POST answered as SSE makes a new log, and with [`MAX_STREAMS_PER_SESSION`] of them each
    /// call scanned them all). Entries of logs written again since are stale; they are
    /// dropped when met at the front, and all at once when the queue reaches twice the limit.
    writes: VecDeque<(Arc<str>, u64)>,
    /// Appends to this session's logs so far.
    clock: u64,
}

impl Logs {
    /// Forgets the least recently written log.
    fn evict_oldest(&mut self) {
        while let Some((name, at)) = self.writes.pop_front() {
            if self.by_name.get(&name).is_some_and(|l| l.written == at) {
                self.by_name.remove(&name);
                return;
            }
        }
    }

    /// Drops the stale entries of `writes`, keeping one per log.
    fn compact(&mut self) {
        let by_name = &self.by_name;
        self.writes
            .retain(|(name, at)| by_name.get(name).is_some_and(|l| l.written == *at));
    }
}

/// Event logs kept per session (its GET stream and its most recent POST streams).
pub const MAX_STREAMS_PER_SESSION: usize = 64;

/// The default store: everything in this process.
#[derive(Debug)]
pub struct MemoryStore {
    limits: StoreLimits,
    sessions: DashMap<SessionId, Entry>,
    tombstones: DashMap<SessionId, (Instant, EndReason)>,
    /// Live sessions per principal, each with its idle deadline.
    principals: DashMap<Arc<str>, HashMap<SessionId, Instant>>,
    /// Event logs, grouped by session so ending a session drops them all at once.
    logs: DashMap<SessionId, Logs>,
    /// Affinity values with their deadlines.
    affinity: DashMap<Box<str>, (Box<str>, Instant)>,
    /// Puts since the last purge of expired affinity entries (a store without a reaper, such
    /// as the A2A proxy's default one, must not grow without bound).
    affinity_puts: std::sync::atomic::AtomicU32,
}

/// Expired affinity entries are purged every this many puts.
const AFFINITY_PURGE_EVERY: u32 = 4096;

impl MemoryStore {
    /// An empty store enforcing `limits`.
    pub fn new(limits: StoreLimits) -> Self {
        MemoryStore {
            limits,
            sessions: DashMap::new(),
            tombstones: DashMap::new(),
            principals: DashMap::new(),
            logs: DashMap::new(),
            affinity: DashMap::new(),
            affinity_puts: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Sessions held (live or expired but not swept yet); for tests and gauges.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn tombstone(&self, id: SessionId, reason: EndReason) {
        self.tombstones
            .insert(id, (Instant::now() + self.limits.max_lifetime, reason));
    }

    fn drop_principal_slot(&self, principal: &str, id: SessionId) {
        if let dashmap::Entry::Occupied(mut e) = self.principals.entry(Arc::from(principal)) {
            e.get_mut().remove(&id);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    /// The tombstone reason if one is live.
    fn ended(&self, id: SessionId, now: Instant) -> Option<EndReason> {
        let (until, reason) = *self.tombstones.get(&id)?;
        (until > now).then_some(reason)
    }

    /// Removes an idle-expired entry, leaving a tombstone; returns what the lookup saw.
    fn lookup(&self, id: SessionId, refresh: bool) -> Lookup {
        let now = Instant::now();
        if let Some(reason) = self.ended(id, now) {
            return Lookup::Ended(reason);
        }
        let expired_principal = match self.sessions.get_mut(&id) {
            None => return Lookup::Missing,
            Some(mut e) if e.deadline > now => {
                if refresh {
                    e.deadline = now + self.limits.idle_timeout;
                    if let Some(p) = &e.principal
                        && let Some(mut set) = self.principals.get_mut(p)
                    {
                        set.insert(id, e.deadline);
                    }
                }
                return Lookup::Alive(e.meta.clone());
            }
            Some(e) => e.principal.clone(),
        };
        // Expired: the shard guard above is released before we take others.
        self.sessions.remove(&id);
        self.logs.remove(&id);
        if let Some(p) = expired_principal {
            self.drop_principal_slot(&p, id);
        }
        self.tombstone(id, EndReason::Expired);
        Lookup::Ended(EndReason::Expired)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    fn is_shared(&self) -> bool {
        false
    }

    fn limits(&self) -> &StoreLimits {
        &self.limits
    }

    async fn create(&self, id: SessionId, principal: Option<&str>, meta: Bytes) -> Result<()> {
        let now = Instant::now();
        let deadline = now + self.limits.idle_timeout;
        let principal: Option<Arc<str>> = principal.map(Arc::from);
        if let Some(p) = &principal {
            // The guard is dropped before touching `sessions`: `lookup` takes the two maps in
            // the other order.
            let mut set = self.principals.entry(p.clone()).or_default();
            set.retain(|_, d| *d > now);
            if !set.contains_key(&id) && set.len() >= self.limits.max_per_principal as usize {
                return Err(Error::TooManySessions {
                    limit: self.limits.max_per_principal,
                });
            }
            set.insert(id, deadline);
        }
        self.sessions.insert(
            id,
            Entry {
                meta,
                principal,
                deadline,
            },
        );
        Ok(())
    }

    async fn touch(&self, id: SessionId, _principal: Option<&str>) -> Result<Lookup> {
        Ok(self.lookup(id, true))
    }

    async fn peek(&self, id: SessionId) -> Result<Lookup> {
        Ok(self.lookup(id, false))
    }

    async fn set_meta(&self, id: SessionId, meta: Bytes) -> Result<bool> {
        if !matches!(self.lookup(id, true), Lookup::Alive(_)) {
            return Ok(false);
        }
        Ok(match self.sessions.get_mut(&id) {
            Some(mut e) => {
                e.meta = meta;
                true
            }
            None => false,
        })
    }

    async fn end(&self, id: SessionId, principal: Option<&str>, reason: EndReason) -> Result<()> {
        let removed = self.sessions.remove(&id);
        self.logs.remove(&id);
        let principal = principal
            .map(Arc::from)
            .or(removed.and_then(|(_, e)| e.principal));
        if let Some(p) = principal {
            self.drop_principal_slot(&p, id);
        }
        self.tombstone(id, reason);
        Ok(())
    }

    async fn append(&self, stream: &StreamKey, payload: Bytes) -> Result<EventId> {
        let cap = self.limits.event_log_size.max(1) as usize;
        let mut entry = self.logs.entry(stream.session).or_default();
        let logs = &mut *entry;
        if !logs.by_name.contains_key(&stream.name) && logs.by_name.len() >= MAX_STREAMS_PER_SESSION
        {
            // Every POST answered as SSE is a stream of its own: without a bound, a long-lived
            // session that makes many calls would keep every one of their logs until it ends.
            // Forget the least recently written one; resuming it then replays nothing.
            logs.evict_oldest();
        }
        if logs.writes.len() >= 2 * MAX_STREAMS_PER_SESSION {
            logs.compact();
        }
        logs.clock += 1;
        let at = logs.clock;
        logs.writes.push_back((stream.name.clone(), at));
        let log = logs.by_name.entry(stream.name.clone()).or_default();
        log.last += 1;
        log.written = at;
        if log.events.len() == cap {
            log.events.pop_front();
        }
        log.events.push_back(payload);
        log.deadline = Some(Instant::now() + self.limits.idle_timeout);
        Ok(EventId {
            stream: stream.clone(),
            seq: log.last,
        })
    }

    async fn replay_after(&self, last: &EventId) -> Result<Replay> {
        let now = Instant::now();
        let Some(logs) = self.logs.get(&last.stream.session) else {
            return Ok(Replay::default());
        };
        let Some(log) = logs.by_name.get(&last.stream.name) else {
            return Ok(Replay::default());
        };
        if log.deadline.is_some_and(|d| d <= now) || last.seq > log.last {
            return Ok(Replay::default());
        }
        let first = log.last + 1 - log.events.len() as u64;
        let from = (last.seq + 1).max(first);
        let skip = (from - first) as usize;
        let events = log
            .events
            .iter()
            .skip(skip)
            .zip(from..)
            .map(|(payload, seq)| {
                (
                    EventId {
                        stream: last.stream.clone(),
                        seq,
                    },
                    payload.clone(),
                )
            })
            .collect();
        Ok(Replay {
            events,
            complete: last.seq + 1 >= first,
        })
    }

    async fn put_affinity(&self, key: &str, value: &str, ttl: Duration) -> Result<()> {
        let now = Instant::now();
        let puts = self
            .affinity_puts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if puts % AFFINITY_PURGE_EVERY == AFFINITY_PURGE_EVERY - 1 {
            self.affinity.retain(|_, (_, until)| *until > now);
        }
        self.affinity.insert(key.into(), (value.into(), now + ttl));
        Ok(())
    }

    async fn get_affinity(&self, key: &str) -> Result<Option<String>> {
        let now = Instant::now();
        Ok(self
            .affinity
            .get(key)
            .filter(|e| e.1 > now)
            .map(|e| e.0.to_string()))
    }

    async fn sweep(&self) -> Result<()> {
        let now = Instant::now();
        self.affinity.retain(|_, (_, until)| *until > now);
        let mut expired = Vec::new();
        self.sessions.retain(|id, e| {
            if e.deadline > now {
                return true;
            }
            expired.push((*id, e.principal.clone()));
            false
        });
        for (id, principal) in expired {
            self.logs.remove(&id);
            if let Some(p) = principal {
                self.drop_principal_slot(&p, id);
            }
            self.tombstone(id, EndReason::Expired);
        }
        self.tombstones.retain(|_, (until, _)| *until > now);
        self.principals.retain(|_, set| {
            set.retain(|_, d| *d > now);
            !set.is_empty()
        });
        self.logs.retain(|_, logs| {
            logs.by_name
                .retain(|_, log| log.deadline.is_none_or(|d| d > now));
            logs.compact();
            !logs.by_name.is_empty()
        });
        Ok(())
    }
}
