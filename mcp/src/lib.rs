//! MCP federation for Switchboard.
//!
//! A client talks to one endpoint, [`McpBackend::handle`]: the [`server`] module accepts
//! Streamable HTTP and legacy HTTP+SSE, keeps a small [`session`] per client, and forwards
//! raw JSON-RPC to the route's targets through the [`upstream`] clients (stdio, streamable
//! HTTP, legacy SSE). Only ids, progress tokens, names and URIs are rewritten on the way
//! ([`names`]): list requests fan out and merge, calls go to the owning target, and whatever a
//! target sends back — replies, progress, logging, sampling or elicitation requests — is
//! mapped back to the session and request it belongs to.

pub mod config;
pub mod error;
pub mod jsonrpc;
pub mod metrics;
pub mod names;
pub mod server;
mod session;
mod upstream;

pub use config::McpConfig;
pub use error::{Error, Result};
pub use metrics::Metrics;
pub use server::{McpBackend, McpShared, RequestContext};
pub use upstream::stdio::StdioPool;
