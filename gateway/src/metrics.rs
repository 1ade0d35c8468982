//! Prometheus metrics of the data path and the control loop. Created once at start and shared
//! by every config generation, so counters survive reloads. Per-route handles are looked up
//! when a route is built, not per request.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of per-request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name (`none` when nothing matched).
    pub route: Arc<str>,
    /// HTTP status code.
    pub status: u16,
}

/// Labels that name a route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name.
    pub route: Arc<str>,
}

/// Labels that name a listener.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    /// Listener name.
    pub listener: Arc<str>,
}

/// The outcome of a configuration reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub enum ReloadResult {
    /// The new config was valid and is serving.
    Success,
    /// The new config was refused; the previous one keeps serving.
    Failure,
}

impl EncodeLabelValue for ReloadResult {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        let s = match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        };
        EncodeLabelValue::encode(&s, encoder)
    }
}

/// Labels of the reload counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// Outcome.
    pub result: ReloadResult,
}

fn latency_histogram() -> Histogram {
    // 100µs .. ~105s
    Histogram::new(exponential_buckets(0.0001, 2.0, 21))
}

/// The gateway's own metric families (cheap to clone).
#[derive(Clone)]
pub struct Metrics {
    /// Requests by listener, route and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request head to the end of the response body, by route.
    pub request_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Time from sending upstream to the upstream's response head, by route.
    pub upstream_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Open client connections by listener.
    pub open_connections: Family<ListenerLabels, Gauge>,
    /// Connections closed for a missing or invalid PROXY protocol header, by listener.
    pub proxy_protocol_rejected: Family<ListenerLabels, Counter>,
    /// Open streaming responses (SSE) and upgraded connections (WebSocket), by route.
    pub open_streams: Family<RouteLabels, Gauge>,
    /// Configuration reloads by result.
    pub config_reloads: Family<ReloadLabels, Counter>,
    registry: Arc<Mutex<Registry>>,
    /// Families exposed without the `switchboard_` prefix (the OpenTelemetry GenAI names).
    unprefixed: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// Creates the families and registers them in a fresh registry, which other crates'
    /// metrics may join through [`Metrics::with_registry`].
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics {
            requests: Family::default(),
            request_duration: Family::new_with_constructor(latency_histogram),
            upstream_duration: Family::new_with_constructor(latency_histogram),
            open_connections: Family::default(),
            open_streams: Family::default(),
            proxy_protocol_rejected: Family::default(),
            config_reloads: Family::default(),
            registry: Arc::new(Mutex::new(Registry::default())),
            unprefixed: Arc::new(Mutex::new(Registry::default())),
        };
        registry.register(
            "requests",
            "Requests served, by route and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to end of response body",
            m.request_duration.clone(),
        );
        registry.register(
            "upstream_duration_seconds",
            "Time from sending upstream to the upstream response head",
            m.upstream_duration.clone(),
        );
        registry.register(
            "open_connections",
            "Open client connections",
            m.open_connections.clone(),
        );
        registry.register(
            "proxy_protocol_rejected",
            "Connections closed for a missing or invalid PROXY protocol header",
            m.proxy_protocol_rejected.clone(),
        );
        registry.register(
            "open_streams",
            "Open streaming responses and upgraded connections",
            m.open_streams.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads by result",
            m.config_reloads.clone(),
        );
        registry.register(
            "guardrail_decisions",
            "Guardrail rule decisions, by route, rule and action (never the matched text)",
            crate::guardrails::DECISIONS.clone(),
        );
        *m.registry.lock().unwrap_or_else(|p| p.into_inner()) = registry;
        m
    }

    /// Lets another component register its families in the shared registry.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut guard = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Lets another component register families in the shared registry (first argument,
    /// names prefixed `switchboard_`) and in the unprefixed one (second).
    pub fn with_registries<R>(&self, f: impl FnOnce(&mut Registry, &mut Registry) -> R) -> R {
        let mut prefixed = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut plain = self.unprefixed.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut prefixed, &mut plain)
    }

    /// The Prometheus text exposition of every registered family.
    pub fn encode(&self) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::with_capacity(8 * 1024);
        let done = {
            let plain = self.unprefixed.lock().unwrap_or_else(|p| p.into_inner());
            encode_registry(&mut out, &plain)
        }
        .and_then(|()| {
            let guard = self.registry.lock().unwrap_or_else(|p| p.into_inner());
            encode_registry(&mut out, &guard)
        })
        .and_then(|()| encode_eof(&mut out));
        // Writing to a String cannot fail; a family that could not encode would only be
        // missing from the page.
        if let Err(e) = done {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
