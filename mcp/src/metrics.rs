//! Prometheus metrics of the MCP backend.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an MCP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// JSON-RPC method.
    pub method: String,
    /// Target name (empty for requests the gateway answers or fans out).
    pub target: String,
    /// `ok`, `error` or `timeout`.
    pub result: String,
}

/// Labels of a tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabels {
    /// Target name.
    pub target: String,
}

/// Labels of a stream cut for a slow client.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    /// `standalone` (a session's GET stream), `request` (a POST's SSE response), `legacy`
    /// (a legacy HTTP+SSE connection) or `input` (a stateless call waiting for input).
    pub stream: String,
}

/// MCP metrics; a cheap clone, built once by the gateway and kept across reloads.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) tool_duration: Family<ToolLabels, Histogram>,
    pub(crate) sessions: Gauge,
    pub(crate) streams_cut: Family<StreamLabels, Counter>,
}

fn tool_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

impl Metrics {
    /// Register the families under `registry` (prefix them with a sub-registry if wanted).
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::unregistered();
        registry.register(
            "mcp_requests",
            "MCP requests by method, target and result",
            m.requests.clone(),
        );
        registry.register(
            "mcp_tool_call_duration_seconds",
            "Duration of tools/call requests by target",
            m.tool_duration.clone(),
        );
        registry.register(
            "mcp_sessions_open",
            "Open downstream MCP sessions",
            m.sessions.clone(),
        );
        registry.register(
            "mcp_slow_streams_cut",
            "SSE streams closed because the client did not read them fast enough \
             (mcp.max_queued_messages queued), by stream kind",
            m.streams_cut.clone(),
        );
        m
    }

    /// Metrics that are not exported anywhere (tests, embedding without a registry).
    pub fn unregistered() -> Self {
        Self {
            requests: Family::default(),
            tool_duration: Family::new_with_constructor(tool_histogram),
            sessions: Gauge::default(),
            streams_cut: Family::default(),
        }
    }

    pub(crate) fn request(&self, method: &str, target: &str, result: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method.to_string(),
                target: target.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub(crate) fn stream_cut(&self, stream: &str) {
        self.streams_cut
            .get_or_create(&StreamLabels {
                stream: stream.to_string(),
            })
            .inc();
    }

    /// Streams of kind `stream` cut so far for a slow client (see `mcp_slow_streams_cut`).
    pub fn cuts(&self, stream: &str) -> u64 {
        self.streams_cut
            .get_or_create(&StreamLabels {
                stream: stream.to_string(),
            })
            .get()
    }
}
