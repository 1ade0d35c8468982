//! The Switchboard gateway: configuration, listeners, routing, policies, proxying and admin.
//!
//! A request flows through named stages, each its own type:
//! [`listener`] (accept, TLS, HTTP/1.1 or HTTP/2, limits) → [`head::RequestHead`] (the path
//! normalized and the one authority checked, written back so every later stage sees only
//! them) → [`router::Route`] (first route whose [`router::Matcher`] holds) → [`forwarding`]
//! (targets and framings refused, the allowed upgrade kept, hop-by-hop headers removed,
//! forwarding headers replaced unless from a trusted proxy) → [`policy::RoutePolicies`]
//! (CORS, authentication in [`auth`]
//! yielding a [`auth::Principal`], route-level authorization in [`authz`], client credentials
//! stripped and upstream credentials set, header changes, timeouts) →
//! [`backend::Backend`] (the `http` reverse proxy in [`proxy`], MCP federation from
//! switchboard-mcp, LLM providers from switchboard-llm, the A2A proxy in [`a2a`]) → the
//! upstream. The response
//! comes back through the policies into a [`body::ObservedBody`], which streams it frame by
//! frame and writes the access log and metrics when it ends. Failures anywhere become
//! responses in one place, [`error::ProxyError::into_response`].
//!
//! Configuration ([`config`]) is parsed and validated into an immutable generation; the
//! [`gateway::Gateway`] builds it into per-listener runtimes held in `ArcSwap`s, and
//! [`reload`] swaps new generations in when the file changes. [`admin`] serves health,
//! readiness, metrics and the redacted config.
//!
//! Security lives in [`auth`] (JWT/JWKS, API keys, the principal, the credential boundary),
//! [`authz`] (CEL rules that backends also call per tool and model), [`oauth_metadata`] (RFC
//! 9728 documents for MCP clients) and [`input`] (JSON depth, JSON-RPC batch and size bounds
//! for the backends that parse bodies).

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
pub mod config;
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
pub mod head;
pub mod input;
pub mod listener;
pub mod metrics;
pub mod oauth_metadata;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod telemetry;
pub mod tls;
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
