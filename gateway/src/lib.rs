//! The Switchboard gateway: configuration, listeners, routing, policies, proxying and admin.
//!
//! A request flows through named stages, each its own type:
//! [`listener`] (the connection layer: accept, TLS, HTTP/1.1 or HTTP/2, connection limits and
//! timeouts) hands each request to the [`pipeline`]: [`head::RequestHead`] (the path
//! normalized and the one authority checked, written back so every later stage sees only
//! them) → [`router::Route`] (first route whose [`router::Matcher`] holds) → [`forwarding`]
//! (targets and framings refused, the allowed upgrade kept, hop-by-hop headers removed,
//! forwarding headers replaced unless from a trusted proxy) → the policy stage,
//! [`policy::RoutePolicies::admit`] (phases in the order of [`policy::Phase::REQUEST`]: CORS
//! preflight, forwarding, authentication in [`auth`] yielding an [`auth::Principal`],
//! route-level authorization in [`authz`], the credential boundary, the rate limit in
//! [`rate_limit`] (requests here, tokens through the context's meter), header
//! changes; on `llm` routes the context also carries the caller's [`spend`] meter, which
//! prices each request and charges key and team budgets), which yields the one
//! [`switchboard_core::RequestContext`] → [`backend::Backend`]
//! with a [`context::RequestCx`] (the `http` reverse proxy in [`backend::http`], MCP
//! federation from switchboard-mcp, LLM providers from switchboard-llm, the A2A proxy in
//! [`a2a`]; JSON bodies read through [`json_body`]; upstream connections from [`upstream`])
//! → the upstream. The response comes back through the response policies into a
//! [`body::ObservedBody`], which streams it frame by frame and writes the access log and
//! metrics when it ends.
//!
//! Errors: every stage of the pipeline and every backend fails with a
//! [`switchboard_core::Error`] (a cause, a public message, headers to carry; [`error`] builds
//! the ones the gateway itself produces), and the pipeline turns it into a response in one
//! place, [`error::render`], in the API format of the route the request reached (plain, OpenAI,
//! Anthropic or JSON-RPC). A backend writes an error itself only when it answers inside an
//! exchange: a JSON-RPC error for a known request id (the A2A proxy's [`a2a`] `errors`), an
//! error event in a stream.
//!
//! Configuration ([`config`]) is data: serde types parsed and validated into an immutable
//! generation (validation uses the leaf syntax modules [`cel`], [`cidr`] and [`head::path`]);
//! the runtime modules compile it, and the [`gateway::Gateway`] builds each generation into
//! per-listener runtimes held in `ArcSwap`s. [`reload`] swaps new generations in when the
//! file changes, [`control_plane`] when the controller pushes one. [`admin`] serves health,
//! readiness, metrics and the redacted config. [`peer`] forwards MCP requests of sessions
//! pinned to another replica (stdio targets) over a sealed hop, which that replica's
//! [`peer_listener`] serves. No two modules import each other
//! (`scripts/modcycles.py`, run by `make lint`).
//!
//! Security lives in [`auth`] (JWT/JWKS, API keys and the virtual keys managed at run time
//! through the admin API, the principal, the credential boundary),
//! [`authz`] (CEL rules that backends also apply per tool and model through the context's
//! access check), [`oauth_metadata`] (RFC 9728 documents for MCP clients) and [`json_body`]
//! (JSON depth, JSON-RPC batch and size bounds for the backends that parse bodies).
//! [`llm_cache`] is the Redis store of the `llm` backends' response cache.

// Nothing on the request path may panic on network data: unwraps, expects, indexing and
// panics are refused outside tests; each remaining exception carries its reason.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod a2a;
pub mod admin;
pub mod auth;
pub mod authz;
pub mod backend;
pub mod body;
pub mod cel;
pub mod cidr;
pub mod config;
pub mod context;
pub mod control_plane;
pub mod error;
pub mod forwarding;
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "fuzz and property harness, not the request path: a panic is how it reports a finding"
)]
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod gateway;
pub mod guardrails;
pub mod head;
pub mod json_body;
pub mod listener;
pub mod llm_cache;
pub mod metrics;
pub mod oauth_metadata;
pub mod otel;
pub mod peer;
pub mod peer_listener;
pub mod pipeline;
pub mod policy;
pub mod proxy_protocol;
pub mod rate_limit;
pub mod reload;
pub mod router;
pub mod spend;
pub mod telemetry;
pub mod tls;
pub mod upstream;
pub mod validate;
pub mod workers;

pub use error::{Error, Result};
pub use gateway::Gateway;

/// Installs ring as rustls' process-wide crypto provider (idempotent). Call early in `main`
/// and in tests, before anything builds a TLS config without naming a provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Resolves on SIGTERM or Ctrl-C: the signals both binaries (proxy and controller) stop on.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
