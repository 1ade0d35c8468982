//! Prometheus metrics of the session layer.

use std::fmt::Write as _;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How a session was resumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum How {
    /// This replica already served it (its upstream clients are here).
    Local,
    /// First sight on this replica: rebuilt from the token (and the shared store).
    Token,
}

impl EncodeLabelValue for How {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            How::Local => "local",
            How::Token => "token",
        })
    }
}

/// Label set of `switchboard_sessions_resumed_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct HowLabel {
    /// `local` or `token`.
    pub how: How,
}

/// Why a token was turned away (for operators; clients only ever see 404).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Malformed, tampered, or sealed with a key we lack.
    Invalid,
    /// Past its maximum lifetime or idle-expired.
    Expired,
    /// Deleted.
    Revoked,
    /// Bound to another principal.
    Principal,
}

impl EncodeLabelValue for Rejection {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Rejection::Invalid => "invalid",
            Rejection::Expired => "expired",
            Rejection::Revoked => "revoked",
            Rejection::Principal => "principal",
        })
    }
}

/// Label set of `switchboard_sessions_rejected_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ReasonLabel {
    /// Why.
    pub reason: Rejection,
}

/// Why a store call failed (`switchboard_store_failures_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreFailure {
    /// No answer within `sessions.redis.timeout`.
    Timeout,
    /// The connection failed or Redis answered that it cannot serve (loading, cluster down,
    /// read-only replica).
    Error,
    /// Not attempted: the circuit breaker is open.
    BreakerOpen,
}

impl EncodeLabelValue for StoreFailure {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            StoreFailure::Timeout => "timeout",
            StoreFailure::Error => "error",
            StoreFailure::BreakerOpen => "breaker_open",
        })
    }
}

/// Label set of `switchboard_store_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FailureLabel {
    /// `timeout`, `error` or `breaker_open`.
    pub reason: StoreFailure,
}

/// The session layer's metric families; cheap to clone (each is an `Arc`).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Sessions held by this replica (created here or resumed here, not yet expired or moved).
    pub open: Gauge,
    /// Sessions created.
    pub created: Counter,
    /// Sessions resumed, by `how`.
    pub resumed: Family<HowLabel, Counter>,
    /// Sessions expired (idle or lifetime).
    pub expired: Counter,
    /// Tokens turned away, by reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Events re-sent for `Last-Event-ID`.
    pub events_replayed: Counter,
    /// 1 while the shared store (Redis) is usable, 0 while its circuit breaker is open. Always
    /// 1 with the memory store.
    pub store_up: Gauge,
    /// Failed calls to the shared store (sessions, event logs, rate limits), by reason.
    pub store_failures: Family<FailureLabel, Counter>,
}

impl Metrics {
    /// Registers the families in `registry`: `sessions_*` and `store_*`, under the registry's
    /// own prefix (the gateway's is `switchboard`).
    pub fn new(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        m.store_up.set(1);
        // Unprefixed like the other crates' families: the gateway's registry adds
        // `switchboard_` (`switchboard_store_up`, `switchboard_store_failures_total`).
        registry.register(
            "store_up",
            "1 while the shared session and limit store is usable, 0 while its circuit breaker is open",
            m.store_up.clone(),
        );
        registry.register(
            "store_failures",
            "Failed calls to the shared store, by reason (timeout, error, breaker_open)",
            m.store_failures.clone(),
        );
        // The gateway's registry already prefixes `switchboard_`.
        let r = registry.sub_registry_with_prefix("sessions");
        r.register("open", "Sessions held by this replica", m.open.clone());
        r.register("created", "Sessions created", m.created.clone());
        r.register(
            "resumed",
            "Sessions resumed: local (already here) or token (rebuilt from the token)",
            m.resumed.clone(),
        );
        r.register(
            "expired",
            "Sessions expired (idle or maximum lifetime)",
            m.expired.clone(),
        );
        r.register(
            "rejected",
            "Session tokens turned away (answered 404)",
            m.rejected.clone(),
        );
        r.register(
            "events_replayed",
            "Events re-sent to clients resuming with Last-Event-ID",
            m.events_replayed.clone(),
        );
        m
    }

    pub(crate) fn reject(&self, reason: Rejection) {
        self.rejected.get_or_create(&ReasonLabel { reason }).inc();
    }

    pub(crate) fn store_failed(&self, reason: StoreFailure) {
        self.store_failures
            .get_or_create(&FailureLabel { reason })
            .inc();
    }

    pub(crate) fn resume(&self, how: How) {
        self.resumed.get_or_create(&HowLabel { how }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names() {
        let mut registry = Registry::with_prefix("switchboard");
        let m = Metrics::new(&mut registry);
        m.created.inc();
        m.resume(How::Token);
        m.reject(Rejection::Principal);
        m.open.set(3);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        for line in [
            "switchboard_sessions_created_total 1",
            "switchboard_sessions_resumed_total{how=\"token\"} 1",
            "switchboard_sessions_rejected_total{reason=\"principal\"} 1",
            "switchboard_sessions_open 3",
            "switchboard_sessions_expired_total 0",
            "switchboard_sessions_events_replayed_total 0",
            "switchboard_store_up 1",
        ] {
            assert!(out.contains(line), "{line} missing in\n{out}");
        }
    }
}
