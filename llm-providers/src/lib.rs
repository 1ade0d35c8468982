//! LLM API formats, translation and providers for Switchboard.
//!
//! Data flow: the gateway hands an HTTP request on an `llm` route to [`LlmBackend::handle`].
//! The backend works out the caller's API format from the path suffix ([`Front`]: OpenAI chat
//! completions, Anthropic messages, embeddings, models, responses), parses the body into the
//! [`format`] types, looks the requested model name up in its [`pool`] of providers and asks the
//! pool for an attempt order (failover groups, weighted, least latency; ejected outliers are
//! skipped). Each attempt translates the request into the provider's native API ([`translate`],
//! one [`provider`] module per upstream API), sends it with the gateway's shared HTTP client and,
//! on a retryable failure before any byte reached the client, backs off or fails over.
//! A successful response is translated back into the caller's format; streams go through a
//! stateful per-event translator ([`translate::stream`]) so bytes flow to the client as they
//! arrive. When the response or stream ends, the observed usage feeds [`metrics`] and reconciles
//! the token budget charged up front by [`limits`].

pub mod backend;
pub mod config;
pub mod error;
pub mod eventstream;
pub mod format;
pub mod limits;
pub mod metrics;
pub mod pool;
pub mod provider;
pub mod sse;
pub mod translate;

pub use backend::{Front, LlmBackend, LlmDeps, RequestContext};
pub use config::{LlmConfig, Secret};
pub use error::{Error, Result};
pub use limits::{Limiter, RateLimitPolicy};
pub use metrics::Metrics;
