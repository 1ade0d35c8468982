//! MCP federation for Switchboard: a client talks to one endpoint, the route's targets (stdio,
//! streamable HTTP, legacy SSE) look like one MCP server behind it.
//!
//! Where things are, in the order a client message goes through them:
//!
//! - [`server`]: [`McpBackend`], the route's endpoint, and [`McpShared`], what outlives a
//!   reload. Its submodules are the stages: transports (Streamable HTTP, legacy HTTP+SSE,
//!   batches, stateless 2026-07-28 requests), sessions (`initialize`, tokens and event logs),
//!   dispatch (authorize and route), federation (fan-out, merge, name resolution), forward
//!   (one request to one target), input rounds across protocol eras. Its module docs list them.
//! - `request`: the parse stage. Each JSON-RPC message is parsed once into a `Message`
//!   (request, notification, reply) and a request's method into a `Method` with its routing
//!   facts; payloads stay JSON and pass through untouched.
//! - [`error`]: every error the backend makes. Target failures ([`Error`]), the one
//!   constructor of in-protocol JSON-RPC errors ([`ProtocolError`], with its table of codes),
//!   and the HTTP-level refusals returned to the gateway as [`switchboard_core::Error`]s.
//! - `session`: what the gateway remembers of one client between requests (upstream
//!   connections, open streams, id maps in both directions), and the registry of sessions.
//! - `upstream`: the clients of the targets, one module per transport. They know nothing of
//!   downstream sessions: what a target sends besides replies goes into an `upstream::Sink`.
//!   To add a transport, add a module there and a variant of `upstream::Upstream`.
//! - [`names`] (prefixing, namespacing, shortening, composite cursors) and [`jsonrpc`] (ids,
//!   progress tokens): the only rewriting done on the way.
//! - [`revision`]: the protocol revisions spoken (sessions 2024-11-05 to 2025-11-25, batches up
//!   to 2025-03-26, stateless 2026-07-28). `param_headers`: 2026-07-28 `Mcp-Param-*` headers.
//! - `outbox`: the bounded queues toward clients' streams (a client that falls behind is cut
//!   and resumes from the event log).
//! - `trace`: the request's OpenTelemetry span as a task-local, the per-request and
//!   per-target spans, and `traceparent` propagation (headers, or `params._meta` for stdio).
//! - [`config`]: the route's `mcp:` block; [`metrics`]: what it exports; [`credentials`]: the
//!   upstream credentials the gateway hands the backend, resolved per upstream request.
//!
//! Sessions: a Streamable HTTP session's `Mcp-Session-Id` is a token sealed by the gateway's
//! `switchboard_sessions::SessionManager` ([`McpShared::with_sessions`]), carrying each
//! target's upstream session id and URL, the route and the client's initialize parameters.
//! Every request resumes it (tampered, expired, revoked, foreign: 404); a replica that sees it
//! first rebuilds the upstream clients from it, reusing the upstream sessions. Messages of the
//! standalone GET stream, and of POST requests answered as SSE, are appended to the session's
//! event logs before they are sent, so a `Last-Event-ID` reconnect (on any replica, with the
//! Redis store) gets exactly what it missed; on drain the GET stream sends `retry:` and ends.
//! Sessions of routes with stdio targets are pinned to the replica running the children:
//! another replica answers HTTP 421 with JSON-RPC error [`error::PINNED_ELSEWHERE`] naming the
//! owner. stdio targets run one shared child per target, or with `sessions: per_session` one
//! child per downstream session, initialized with that client's capabilities and owned by it.

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

mod checks;
pub mod config;
pub mod credentials;
pub mod error;
pub mod jsonrpc;
pub mod metrics;
pub mod names;
mod outbox;
mod param_headers;
mod request;
pub mod revision;
pub mod server;
mod session;
mod trace;
mod upstream;

pub use config::McpConfig;
pub use credentials::{TargetCredentials, UpstreamCredential};
pub use error::{Error, ProtocolError, Result};
pub use metrics::Metrics;
pub use outbox::DEFAULT_MAX_QUEUED_MESSAGES;
pub use server::{McpBackend, McpShared};
pub use switchboard_core::{Access, Item, RequestContext};
pub use upstream::stdio::StdioPool;

/// A poisoned lock (a thread panicked while holding it) still holds consistent data here: every
/// critical section is a map or option update. Taking it anyway keeps one panic from turning
/// into a panic on every later request.
pub(crate) trait LockExt<T> {
    /// Lock, ignoring poisoning.
    fn locked(&self) -> std::sync::MutexGuard<'_, T>;
}

impl<T> LockExt<T> for std::sync::Mutex<T> {
    fn locked(&self) -> std::sync::MutexGuard<'_, T> {
        self.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
