//! What a backend receives with each request besides the request itself: [`RequestCx`], which
//! carries the policy stage's [`RequestContext`] and what the connection and the route add
//! (client address, scheme, timeouts, body limits, metric handles).

use http::HeaderValue;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use std::net::SocketAddr;
use switchboard_core::RequestContext;
use tokio_util::sync::CancellationToken;

use crate::config::JsonLimits;
use crate::policy::Timeouts;

/// Per-request facts a backend may need, borrowed from the connection and the route.
pub struct RequestCx<'a> {
    /// What the policy stage decided: route, principal, access, batch limit. The one context
    /// every backend receives.
    pub context: RequestContext,
    /// The listener's JSON limits, for reading JSON bodies.
    pub json: JsonLimits,
    /// The client's address.
    pub remote: SocketAddr,
    /// The client's IP, formatted for `X-Forwarded-For`.
    pub remote_ip: &'a HeaderValue,
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
    /// The listener's name (a request forwarded to another replica names it).
    pub listener: &'a str,
    /// The hop to other replicas (`sessions.peer`), when configured.
    pub peers: Option<&'a crate::peer::Peers>,
    /// The route's content rules (`policies.guardrails`).
    pub guardrails: Option<&'a std::sync::Arc<crate::guardrails::Guardrails>>,
    /// The gateway's tool pins (`policies.guardrails.tool_changes`).
    pub tool_pins: Option<&'a crate::guardrails::pins::ToolPins>,
}
