//! LLM API formats, translation and providers for Switchboard.
//!
//! Data flow: the gateway hands an HTTP request on an `llm` route to [`LlmBackend::handle`],
//! with the [`switchboard_core::RequestContext`] its policy stage built. The HTTP front
//! ([`backend`]) works out the endpoint from the path suffix ([`Front`]: OpenAI chat
//! completions, Anthropic messages, embeddings, models, responses), parses the body into the
//! [`format`](mod@format) types, looks the model up and checks the caller may use it. The
//! execution engine ([`backend`]'s `execute`) reserves the caller's tokens through
//! `ctx.tokens` and runs the request through the model's [`pool`] of providers (attempt order:
//! failover groups, weighted, least latency; ejected outliers skipped; retries and failover
//! before any byte reached the client). Each attempt translates the request into the
//! provider's API ([`translate`]) and sends it through its [`provider`]. A complete answer is
//! translated back into the caller's format; a stream goes through a stateful per-event
//! translator ([`translate::stream`]) so bytes flow to the client as they arrive. When the
//! response or stream ends, the observed usage feeds [`metrics`] and settles the token
//! reservation.
//!
//! Failures known before the response starts are [`Error`]s, mapped onto the gateway's error
//! model in one `From` ([`error`]) and rendered by the gateway in the caller's format
//! ([`Front::format_for_path`]); failures after it started are error events in the stream
//! ([`translate::errors`]).
//!
//! To add a provider, open [`provider`]: one module per upstream API implements
//! [`provider::Provider`] (URLs, authentication, native format), and `provider::build` maps a
//! [`config::ProviderKind`] to it. A provider speaking a new API also needs its wire types in
//! [`format`](mod@format) and its translation in [`translate`].
//!
//! Modules:
//!
//! * [`backend`]: the `llm` route backend: HTTP front, execution engine, streaming hand-off;
//! * [`cache`]: response caching (`cache`): keys, stores, streamed answers assembled and replayed;
//! * [`config`]: the `llm:` block (schema, validation rules, secrets);
//! * [`error`]: the crate's error and its causes;
//! * [`estimate`]: the gateway's own token estimates (counting, routing rules);
//! * [`format`](mod@format): wire types of the APIs spoken and called;
//! * [`translate`]: requests, responses, streams and stream errors between formats;
//! * [`provider`]: one module per upstream API;
//! * [`pool`]: attempt order, retries, failover, outlier ejection;
//! * [`routing`]: model routing rules (`virtual_models`), CEL conditions on the request;
//! * [`rule`]: the CEL dialect of routing rules (compiled for validation and routing);
//! * [`sse`], [`eventstream`]: the stream framings read from providers;
//! * [`metrics`]: `gen_ai` metrics and cost.
//!
//! Gateway integration, in one place:
//!
//! * once per process: `LlmDeps { client: ProviderClients::new(build_reqwest_client), metrics: Metrics::new(&mut registry) }`;
//! * per config load: `LlmBackend::new(&route.llm, deps.clone())` (or `old.reload(..)` to keep
//!   provider health), after `LlmConfig::validate("…llm")` issues were reported;
//! * per request: `backend.handle(req, &ctx).await` with the full original path and the body
//!   already read and bounded by the caller (the gateway's `limits.json`); `ctx.access` says
//!   which models the caller may use, `ctx.tokens` is its token budget (the gateway's rate
//!   limiter), and an `Err` is rendered with `Front::format_for_path(path)`. The backend bounds
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
pub mod cache;
pub mod config;
pub mod error;
pub mod estimate;
pub mod eventstream;
pub mod format;
pub mod metrics;
pub mod pool;
pub mod provider;
pub mod routing;
pub mod rule;
/// The SSE parser and writers live in core, shared with the MCP and A2A backends.
pub use switchboard_core::sse;
pub mod translate;

pub use backend::{Front, LlmBackend, LlmDeps, ProviderClients};
pub use config::{LlmConfig, Secret};
pub use error::{Error, Result};
pub use metrics::Metrics;
