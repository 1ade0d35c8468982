//! MCP federation for Switchboard.
//!
//! A client talks to one endpoint, [`McpBackend::handle`]: the [`server`] module accepts
//! Streamable HTTP, stateless 2026-07-28 requests and legacy HTTP+SSE, keeps a small `session`
//! per client, and forwards raw JSON-RPC to the route's targets through the `upstream` clients
//! (stdio, streamable HTTP, legacy SSE). Only ids, progress tokens, names and URIs are
//! rewritten on the way ([`names`], [`jsonrpc`]): list requests fan out and merge, calls go to
//! the owning target, and whatever a target sends back — replies, progress, logging, sampling,
//! elicitation and roots requests, `list_changed` — is mapped back to the session and request
//! it belongs to. A JSON-RPC batch (protocol revisions up to 2025-03-26) is taken apart and
//! each member served as if posted alone. stdio targets run one shared child per target, or
//! with `sessions: per_session` one child per downstream session, initialized with that
//! client's capabilities and owned by it. [`config`] is the route's `mcp:` block; [`metrics`]
//! what it exports.
//!
//! Sessions: a Streamable HTTP session's `Mcp-Session-Id` is a token sealed by the gateway's
//! `switchboard_sessions::SessionManager` ([`McpShared::with_sessions`]), carrying each
//! target's upstream session id and URL, the route and the client's initialize parameters.
//! Every request resumes it (tampered, expired, revoked, foreign: 404); a replica that sees it
//! first rebuilds the upstream clients from it, reusing the upstream sessions. Messages of the
//! standalone GET stream, and of POST requests answered as SSE, are appended to the session's
//! event logs before they are sent, so a `Last-Event-ID` reconnect (on any replica, with the
//! Redis store) gets exactly what it missed; on drain the GET stream sends `retry:` and ends. Sessions of routes with stdio targets
//! are pinned to the replica running the children: another replica does not forward them but
//! answers HTTP 421 with JSON-RPC error [`server::PINNED_ELSEWHERE`] naming the owner, so a
//! sticky load balancer or the operator can route them back.
//!
//! Eras: 2026-07-28 multi round-trip requests (`input_required`) are translated to and from
//! session-era server-to-client requests where client and target speak different revisions
//! (`server::mrtr`), and tool parameters marked `x-mcp-header` travel as `Mcp-Param-*` headers,
//! mirrored to 2026-07-28 targets and checked on 2026-07-28 requests (`param_headers`).

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
pub mod jsonrpc;
pub mod metrics;
pub mod names;
mod outbox;
mod param_headers;
mod request;
pub mod revision;
pub mod server;
mod session;
mod upstream;

pub use config::McpConfig;
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
