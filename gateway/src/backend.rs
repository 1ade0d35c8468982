//! The backend stage: what a matched route sends its request to. One variant per backend kind
//! of the config; each turns a request into a response or a [`ProxyError`].

use std::net::SocketAddr;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use switchboard_llm::{Front, Limiter, LlmBackend};
use switchboard_mcp::McpBackend;

use crate::error::{ErrorFormat, ProxyError};
use crate::policy::Timeouts;
use crate::proxy::HttpBackend;

/// A route's backend.
pub enum Backend {
    /// Reverse proxy to an HTTP upstream.
    Http(Box<HttpBackend>),
    /// LLM providers (switchboard-llm).
    Llm(LlmBackend),
    /// MCP federation (switchboard-mcp).
    Mcp(McpBackend),
    /// A2A agent proxy (JSON-RPC, agent card, task pinning).
    A2a(Box<crate::a2a::A2aBackend>),
}

/// Per-request facts a backend may need, borrowed from the connection and the route.
pub struct RequestCx<'a> {
    /// The route's name.
    pub route: &'a Arc<str>,
    /// The route's path prefix, shared (for backends that keep it).
    pub prefix_arc: &'a Arc<str>,
    /// The route's rate limiter, when it has `policies.rate_limit`.
    pub limiter: Option<&'a Limiter>,
    /// The client's address.
    pub remote: SocketAddr,
    /// `http` or `https`, as the client connected.
    pub scheme: &'static str,
    /// The route's path prefix, if it has one.
    pub prefix: Option<&'a str>,
    /// The route's timeouts.
    pub timeouts: Timeouts,
    /// Request body limit in bytes.
    pub max_body_bytes: u64,
    /// Upstream latency histogram of the route.
    pub upstream_duration: &'a Histogram,
    /// Open streams gauge of the route (upgraded connections count here).
    pub open_streams: &'a Gauge,
    /// Cancelled when the gateway shuts down; long-lived tunnels end with it.
    pub shutdown: &'a CancellationToken,
}

impl Backend {
    /// The API format for errors on this route, for a request to `path`.
    pub fn error_format(&self, path: &str) -> ErrorFormat {
        match self {
            Backend::Http(_) => ErrorFormat::Plain,
            Backend::Llm(_) => match Front::from_path(path) {
                Some(Front::Messages) => ErrorFormat::Anthropic,
                _ => ErrorFormat::OpenAi,
            },
            Backend::A2a(_) | Backend::Mcp(_) => ErrorFormat::JsonRpc,
        }
    }

    /// Serves one request.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        match self {
            Backend::Http(h) => h.forward(req, cx).await,
            Backend::Llm(l) => {
                let ctx = switchboard_llm::RequestContext {
                    route: cx.route.clone(),
                    prefix: cx.prefix_arc.clone(),
                    principal: None,
                    api_key: None,
                    limiter: cx.limiter.cloned(),
                };
                Ok(l.handle(limited(req, cx.max_body_bytes), &ctx).await)
            }
            Backend::A2a(a) => a.serve(req, cx).await,
            Backend::Mcp(m) => {
                let ctx = switchboard_mcp::RequestContext {
                    route: cx.route.clone(),
                    prefix: cx.prefix_arc.clone(),
                    principal: None,
                    api_key: None,
                    tool_access: None,
                };
                Ok(m.handle(limited(req, cx.max_body_bytes), &ctx).await)
            }
        }
    }

    /// A short description of the upstream for access logs.
    pub fn upstream_label(&self) -> &str {
        match self {
            Backend::Http(h) => h.authority(),
            Backend::Llm(_) => "llm",
            Backend::Mcp(_) => "mcp",
            Backend::A2a(a) => a.upstream_label(),
        }
    }
}

/// The request with its body capped at `max` bytes, as the body type backends take.
pub fn limited(req: Request<Incoming>, max: u64) -> Request<Body> {
    req.map(|b| {
        Body::new(
            Limited::new(b, usize::try_from(max).unwrap_or(usize::MAX))
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e }),
        )
    })
}
