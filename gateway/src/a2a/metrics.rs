//! The A2A metric families: calls by method and outcome, task states, stream events and
//! pinning lookups. Created once per gateway and shared by every config generation; task ids
//! stay out of labels.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::metrics::Metrics;

/// Labels of A2A request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aRequestLabels {
    /// Route name.
    pub route: Arc<str>,
    /// The JSON-RPC method (one of [`super::rpc::METHODS`], `agent_card`, or `unknown`).
    pub method: &'static str,
    /// `ok`, `error` (a JSON-RPC error from the agent), `refused` (by the gateway),
    /// `upstream_error`, or `aborted` (a stream the client left).
    pub outcome: &'static str,
}

/// Labels of the task state counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aStateLabels {
    /// Route name.
    pub route: Arc<str>,
    /// Normalized task state (`working`, `completed`, `input_required`, ...).
    pub state: &'static str,
}

/// The A2A metric families, created once per gateway and shared by every config generation.
#[derive(Clone)]
pub struct A2aMetrics {
    /// A2A calls by route, method and outcome.
    pub requests: Family<A2aRequestLabels, Counter>,
    /// Task states seen in results and stream events, by route and state.
    pub task_states: Family<A2aStateLabels, Counter>,
    /// Stream events passed through, by route.
    pub stream_events: Family<A2aStateLabels, Counter>,
    /// Task and context pinning lookups on multi-replica routes, by result (`hit`, `miss`).
    pub pinning: Family<A2aPinLabels, Counter>,
    /// The tasks seen recently (the admin UI's list; not exported as metrics).
    pub tasks: super::tasks::TaskLog,
}

/// Labels of the pinning lookup counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aPinLabels {
    /// Route name.
    pub route: Arc<str>,
    /// `hit` (a replica is pinned) or `miss` (none, or the store failed).
    pub result: &'static str,
}

impl A2aMetrics {
    /// Creates the families and registers them with the gateway's registry.
    pub fn new(metrics: &Metrics) -> Self {
        let m = A2aMetrics {
            requests: Family::default(),
            task_states: Family::default(),
            stream_events: Family::default(),
            pinning: Family::default(),
            tasks: Default::default(),
        };
        metrics.with_registry(|r| {
            r.register(
                "a2a_requests",
                "A2A JSON-RPC calls and agent card fetches, by route, method and outcome",
                m.requests.clone(),
            );
            r.register(
                "a2a_task_states",
                "A2A task states seen in results and stream events, by route and state",
                m.task_states.clone(),
            );
            r.register(
                "a2a_stream_events",
                "A2A stream events passed through, by route and task state (`none` without one)",
                m.stream_events.clone(),
            );
            r.register(
                "a2a_pinning_lookups",
                "A2A task/context pinning lookups on multi-replica routes, by result",
                m.pinning.clone(),
            );
        });
        m
    }
}
