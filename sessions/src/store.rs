//! Where sessions live between requests: metadata with idle expiry, tombstones of revoked and
//! expired sessions, per-principal session sets for the cap, and bounded event logs.
//!
//! [`SessionStore`] is object-safe (`Arc<dyn SessionStore>`); the manager is the only caller in
//! the gateway. Two implementations: [`MemoryStore`] (default) and [`RedisStore`] (fleets).

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Result;
use crate::events::{EventId, Replay, StreamKey};
use crate::token::SessionId;

pub mod memory;
pub mod redis;

pub use self::memory::MemoryStore;
pub use self::redis::RedisStore;

/// The limits a store enforces, fixed at construction (from [`SessionsConfig`]).
///
/// [`SessionsConfig`]: crate::SessionsConfig
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Metadata, principal slots and event logs expire this long after their last refresh.
    pub idle_timeout: Duration,
    /// Tombstones (revoked or expired sessions) are kept this long, so a token cannot come back
    /// to life before it expires on its own.
    pub max_lifetime: Duration,
    /// Live sessions per principal.
    pub max_per_principal: u32,
    /// Events kept per stream.
    pub event_log_size: u32,
}

impl StoreLimits {
    /// The limits of a `sessions:` block.
    pub fn from_config(cfg: &crate::SessionsConfig) -> Self {
        StoreLimits {
            idle_timeout: cfg.idle_timeout,
            max_lifetime: cfg.max_lifetime,
            max_per_principal: cfg.max_per_principal,
            event_log_size: cfg.event_log_size,
        }
    }
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits::from_config(&crate::SessionsConfig::default())
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// The client (or an operator) deleted it.
    Revoked,
    /// Idle too long or past its maximum lifetime.
    Expired,
}

/// What the store knows about a session id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Live, with its metadata blob.
    Alive(Bytes),
    /// Never seen here (or forgotten, e.g. a memory store after a restart).
    Missing,
    /// Ended; stays so until its maximum lifetime has passed.
    Ended(EndReason),
}

/// Session and event storage. Implementations must be safe to share between replicas when
/// [`is_shared`](SessionStore::is_shared) says so.
#[async_trait]
pub trait SessionStore: Send + Sync + fmt::Debug + 'static {
    /// True when other replicas see the same data (then a missing session is an ended one).
    fn is_shared(&self) -> bool;

    /// The limits this store enforces.
    fn limits(&self) -> &StoreLimits;

    /// Records a new live session with its metadata, taking one of `principal`'s slots.
    /// Fails with [`Error::TooManySessions`](crate::Error::TooManySessions) when the principal
    /// has `max_per_principal` live sessions already.
    async fn create(&self, id: SessionId, principal: Option<&str>, meta: Bytes) -> Result<()>;

    /// Looks the session up and, when alive, restarts its idle timer (and its principal slot's).
    async fn touch(&self, id: SessionId, principal: Option<&str>) -> Result<Lookup>;

    /// Looks the session up without refreshing anything.
    async fn peek(&self, id: SessionId) -> Result<Lookup>;

    /// Replaces the metadata of a live session (and refreshes its idle timer). Returns false when
    /// the session is not alive.
    async fn set_meta(&self, id: SessionId, meta: Bytes) -> Result<bool>;

    /// Ends a session: drops its metadata, event logs and principal slot, and leaves a tombstone
    /// for `max_lifetime` so its token stays dead.
    async fn end(&self, id: SessionId, principal: Option<&str>, reason: EndReason) -> Result<()>;

    /// Appends an event to a stream's log (trimmed to `event_log_size`, expiring after
    /// `idle_timeout` without appends) and returns its id. Ids in one stream are 1, 2, 3, ...
    async fn append(&self, stream: &StreamKey, payload: Bytes) -> Result<EventId>;

    /// The events stored after `last` in its stream, in order.
    async fn replay_after(&self, last: &EventId) -> Result<Replay>;

    /// Records a small affinity value under `key` for `ttl` (replacing any previous value and
    /// restarting its expiry): which upstream replica owns something, e.g. an A2A task id →
    /// the agent replica that created it. Keys live in their own namespace, apart from sessions.
    async fn put_affinity(&self, key: &str, value: &str, ttl: Duration) -> Result<()>;

    /// The affinity value under `key`, if one was put and has not expired.
    async fn get_affinity(&self, key: &str) -> Result<Option<String>>;

    /// Drops what expired; the manager's reaper calls it. Stores whose backend expires keys on
    /// its own (Redis) do nothing.
    async fn sweep(&self) -> Result<()> {
        Ok(())
    }
}
