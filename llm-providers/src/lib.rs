//! LLM API formats, translation and providers for Switchboard.
//!
//! Data flow: the gateway hands an HTTP request on an `llm` route to [`LlmBackend::handle`].
//! The backend works out the caller's API format from the path suffix ([`Front`]: OpenAI chat
//! completions, Anthropic messages, embeddings, models, responses), parses the body into the
//! [`format`](mod@format) types, looks the requested model name up in its [`pool`] of providers and asks the
//! pool for an attempt order (failover groups, weighted, least latency; ejected outliers are
//! skipped). Each attempt translates the request into the provider's native API ([`translate`],
//! one [`provider`] module per upstream API), sends it with the gateway's shared HTTP client and,
//! on a retryable failure before any byte reached the client, backs off or fails over.
//! A successful response is translated back into the caller's format; streams go through a
//! stateful per-event translator ([`translate::stream`]) so bytes flow to the client as they
//! arrive. When the response or stream ends, the observed usage feeds [`metrics`] and reconciles
//! the token budget charged up front by [`limits`].
//!
//! Gateway integration, in one place:
//!
//! * once per process: `LlmDeps { client: ProviderClients::new(build_reqwest_client), metrics: Metrics::new(&mut registry) }`;
//! * per config load: `LlmBackend::new(&route.llm, deps.clone())` (or `old.reload(..)` to keep
//!   provider health), after `LlmConfig::validate("…llm")` issues were reported;
//! * per route with `policies.rate_limit`: `Limiter::local(policy)` or
//!   `Limiter::redis(policy, url, prefix).await`, kept while the policy is unchanged; the
//!   gateway calls `limiter.check_request(&limiter.key(route, subject, api_key))` itself and
//!   passes the limiter in [`RequestContext`] so the backend can charge tokens;
//! * per request: `backend.handle(req, &ctx).await` with the full original path and the body
//!   already read and bounded by the caller (the gateway's `limits.json`); the backend bounds
//!   what it reads from providers itself (`max_response_bytes`, `max_event_bytes`).

// Everything here handles provider replies and client bodies: no panics on network data, by
// construction. An exception is an `#[allow]` with the invariant that makes it safe.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod backend;
pub mod config;
pub mod error;
pub mod eventstream;
pub mod format;
pub mod metrics;
pub mod pool;
pub mod provider;
pub mod sse;
pub mod translate;

pub use backend::{Front, LlmBackend, LlmDeps, ProviderClients};
pub use config::{LlmConfig, Secret};
pub use error::{Error, Result};
pub use metrics::Metrics;
