//! Session tokens, stores, resumption, expiry and drain for Switchboard.
//!
//! How data flows: on an MCP `initialize` the MCP layer calls [`SessionManager::create`] with what
//! it knows of each target (upstream session id, pinned endpoint); the manager records the
//! session in the [`store`] and seals a [`token`] (AES-256-GCM) that becomes the downstream
//! `Mcp-Session-Id`. Every later request carries the token: [`SessionManager::resume`] opens it
//! with the [`Keyring`] (any configured key), checks lifetime, principal, revocation and idle
//! expiry against the store, and returns the [`Session`] — marked `Local` when this replica
//! already serves it, `Token` when it must rebuild upstream clients from the session's targets
//! (a restart, or a client that moved replicas). Upstream state learned later (a lazily
//! initialized target) goes to the store with [`SessionManager::update_target`]; the token never
//! changes, since clients keep their session id. Events sent on a session's SSE streams are
//! appended to bounded per-stream logs ([`events`]) and framed with their ids ([`sse`]), so a
//! `Last-Event-ID` replays exactly what was missed, on any replica when the store is Redis. The
//! reaper expires idle and over-age sessions and tells the MCP layer to release their upstream
//! connections and stdio children ([`SessionManager::on_release`]); [`SessionManager::drain`]
//! tells open streams to send a `retry:` hint and close.
//!
//! With a Redis store every call to Redis (the session store's, and the gateway's shared rate
//! limits') goes through one [`link::RedisLink`]: one server, a Cluster or a Sentinel-managed
//! master, each call under `sessions.redis.timeout`, behind a circuit breaker whose state
//! `/readyz` and the `store_up` metric report.
//!
//! Design choices worth knowing:
//! - The token carries what was known at creation; the store carries later updates. With the
//!   memory store those updates stay on one replica, so a client that moves gets its targets
//!   re-initialized from the token's entries (HTTP targets without an upstream session id in the
//!   token start a fresh upstream session).
//! - With the memory store a token seen for the first time is accepted when authentic and within
//!   its lifetime (sessions survive restarts when keys are configured); revocation and idle
//!   expiry are then per replica. With Redis every replica sees one truth, and a session missing
//!   from Redis is expired.
//! - Sessions with stdio targets are pinned to the replica that spawned the children
//!   ([`Session::owned_elsewhere`]); the gateway forwards their requests there over an
//!   authenticated hop ([`SessionManager::seal_hop`], [`SessionManager::open_hop`]) to the
//!   address the owner registered ([`SessionManager::register_peer`]). When the owner is gone,
//!   another replica adopts the session ([`SessionManager::adopt`], recorded in the store) or
//!   ends it, as the MCP layer decides.
//! - A POST stream's log ends with [`END_MARKER`]; a replica resuming a stream another one
//!   still produces follows the log to it (the producer keeps a liveness mark,
//!   [`SessionManager::mark_stream_live`]), so a call handed to the log on drain is not lost.

// Network data must never panic the gateway: no unwrap/expect, no indexing or slicing that
// can go out of bounds, no panic! outside tests. A true invariant gets a local
// `#[allow(...)]` with the reason written next to it.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod config;
pub mod error;
pub mod events;
pub mod link;
pub mod manager;
pub mod metrics;
pub mod sse;
pub mod store;
pub mod token;

pub use config::{
    BreakerConfig, PeerConfig, RedisConfig, SentinelConfig, SessionsConfig, StoreKind,
};
pub use error::{Error, Result};
pub use events::{END_MARKER, EventId, Replay, StreamKey};
pub use link::RedisLink;
pub use manager::{
    ActivityGuard, DEFAULT_RETRY, HOP_LIFETIME, HopError, ProducerGuard, Release, ReleaseReason,
    ReleaseSubscription, Resumed, Session, SessionManager,
};
pub use metrics::{How, Metrics, StoreFailure};
pub use store::{EndReason, Lookup, MemoryStore, RedisStore, SessionStore, StoreLimits};
pub use token::{Claims, Keyring, SessionId, TargetEntry};
