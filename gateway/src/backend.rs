//! The backend stage: what a matched route sends its request to. One variant per backend kind
//! of the config; each turns a request into a response or a [`ProxyError`].

use std::net::SocketAddr;

use axum::body::Body;
use http::{Request, Response};
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorFormat, ProxyError};
use crate::policy::Timeouts;
use crate::proxy::HttpBackend;

/// A route's backend.
pub enum Backend {
    /// Reverse proxy to an HTTP upstream.
    Http(HttpBackend),
    /// A2A agent proxy (JSON-RPC, agent card, task pinning).
    A2a(crate::a2a::A2aBackend),
}

/// Per-request facts a backend may need, borrowed from the connection and the route.
pub struct RequestCx<'a> {
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
    /// The API format for errors on this route.
    pub fn error_format(&self) -> ErrorFormat {
        match self {
            Backend::Http(_) => ErrorFormat::Plain,
            Backend::A2a(_) => ErrorFormat::JsonRpc,
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
            Backend::A2a(a) => a.serve(req, cx).await,
        }
    }

    /// A short description of the upstream for access logs.
    pub fn upstream_label(&self) -> &str {
        match self {
            Backend::Http(h) => h.authority(),
            Backend::A2a(a) => a.upstream_label(),
        }
    }
}
