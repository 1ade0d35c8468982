//! MCP federation for Switchboard.
//!
//! A client talks to one endpoint, [`McpBackend::handle`]: the [`server`] module accepts
//! Streamable HTTP, stateless 2026-07-28 requests and legacy HTTP+SSE, keeps a small `session`
//! per client, and forwards raw JSON-RPC to the route's targets through the `upstream` clients
//! (stdio, streamable HTTP, legacy SSE). Only ids, progress tokens, names and URIs are
//! rewritten on the way ([`names`], [`jsonrpc`]): list requests fan out and merge, calls go to
//! the owning target, and whatever a target sends back — replies, progress, logging, sampling,
//! elicitation and roots requests, `list_changed` — is mapped back to the session and request
//! it belongs to. [`config`] is the route's `mcp:` block; [`metrics`] what it exports.

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
pub use server::{McpBackend, McpShared, RequestContext, ToolAccess};
pub use upstream::stdio::StdioPool;
