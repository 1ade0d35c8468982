//! The Switchboard gateway: configuration, listeners, routing, policies, proxying and admin.
//!
//! A request flows through named stages, each its own type:
//! [`listener`] (accept, TLS, HTTP/1.1 or HTTP/2, limits) → [`router::Route`] (first route whose
//! [`router::Matcher`] holds) → [`policy::RoutePolicies`] (headers, CORS, timeouts) →
//! [`backend::Backend`] (the `http` reverse proxy in [`proxy`]) → the upstream. The response
//! comes back through the policies into a [`body::ObservedBody`], which streams it frame by
//! frame and writes the access log and metrics when it ends. Failures anywhere become
//! responses in one place, [`error::ProxyError::into_response`].
//!
//! Configuration ([`config`]) is parsed and validated into an immutable generation; the
//! [`gateway::Gateway`] builds it into per-listener runtimes held in `ArcSwap`s, and
//! [`reload`] swaps new generations in when the file changes. [`admin`] serves health,
//! readiness, metrics and the redacted config.

pub mod admin;
pub mod backend;
pub mod body;
pub mod config;
pub mod control_plane;
pub mod error;
pub mod gateway;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod router;
pub mod telemetry;
pub mod tls;

pub use error::{Error, Result};
pub use gateway::Gateway;

/// Installs ring as rustls' process-wide crypto provider (idempotent). Call early in `main`
/// and in tests, before anything builds a TLS config without naming a provider.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
