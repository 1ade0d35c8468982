//! Status: the conditions rendering decides ([`Cond`], before the reconciler stamps their
//! transition time), the outcomes per listener, route parent and Switchboard resource, and the
//! status entries the reconciler writes from them.

use std::collections::BTreeMap;

use super::CONTROLLER_NAME;
use super::routes::parent_is;
use crate::crd::Condition;
use crate::gateway_api::{
    self as gwapi, ListenerStatus, ParentRef, RouteGroupKind, RouteParentStatus,
};

/// A condition before the reconciler stamps its transition time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cond {
    /// Type.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

impl Cond {
    pub(super) fn ok(type_: &'static str, reason: &'static str) -> Self {
        Self {
            type_,
            status: true,
            reason,
            message: String::new(),
        }
    }
    pub(super) fn fail(
        type_: &'static str,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
    /// A failed condition.
    pub fn failed(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::fail(type_, reason, message)
    }
    pub(super) fn with(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// As a status condition, keeping the transition time of an unchanged `previous` one.
    pub fn stamp(&self, generation: Option<i64>, previous: &[Condition], now: &str) -> Condition {
        let status = if self.status { "True" } else { "False" };
        let time = previous
            .iter()
            .find(|c| c.type_ == self.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: self.type_.into(),
            status: status.into(),
            reason: self.reason.into(),
            message: self.message.clone(),
            last_transition_time: time,
            observed_generation: generation,
        }
    }
}

/// Status of one Gateway listener.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListenerOutcome {
    /// Listener name.
    pub name: String,
    /// The route kinds it accepts: those of `allowedRoutes.kinds` this controller supports,
    /// or all it supports.
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Routes attached.
    pub attached_routes: i32,
    /// Conditions.
    pub conditions: Vec<Cond>,
}

/// One `status.parents[]` entry this Gateway owns on an HTTPRoute or a GRPCRoute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteOutcome {
    /// `HTTPRoute` or `GRPCRoute`.
    pub kind: &'static str,
    /// Route namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
    /// The parentRef as written in the route.
    pub parent_ref: ParentRef,
    /// Accepted and ResolvedRefs.
    pub conditions: Vec<Cond>,
}

/// Conditions for a Switchboard resource used by this Gateway.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceOutcome {
    /// `Backend` or `Policy`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Accepted and ResolvedRefs.
    pub conditions: Vec<Cond>,
}

/// Adds a failure to a condition: the first failure's reason stays, messages accumulate.
pub(super) fn fail_more(c: Cond, type_: &'static str, reason: &'static str, msg: String) -> Cond {
    if c.status {
        Cond::fail(type_, reason, msg)
    } else {
        let message = format!("{}; {msg}", c.message);
        Cond { message, ..c }
    }
}

/// The `status.parents[]` of a route after this Gateway's entries are replaced by `ours`;
/// entries of other controllers and of other Gateways are kept.
pub fn merge_route_parents(
    existing: &[RouteParentStatus],
    gw_ns: &str,
    gw_name: &str,
    route_ns: &str,
    ours: Vec<RouteParentStatus>,
) -> Vec<RouteParentStatus> {
    let mut out: Vec<RouteParentStatus> = existing
        .iter()
        .filter(|p| {
            !(p.controller_name == CONTROLLER_NAME
                && parent_is(&p.parent_ref, route_ns, gw_ns, gw_name))
        })
        .cloned()
        .collect();
    out.extend(ours);
    out
}

/// The supported route kinds of every listener.
pub fn supported_kinds() -> Vec<RouteGroupKind> {
    ["HTTPRoute", "GRPCRoute"]
        .into_iter()
        .map(|kind| RouteGroupKind {
            group: gwapi::GROUP.into(),
            kind: kind.into(),
        })
        .collect()
}

/// Builds the listener status entries with stamped conditions.
pub fn listener_statuses(
    rendered: &[ListenerOutcome],
    previous: &[ListenerStatus],
    generation: Option<i64>,
    now: &str,
) -> Vec<ListenerStatus> {
    rendered
        .iter()
        .map(|l| {
            let prev = previous
                .iter()
                .find(|p| p.name == l.name)
                .map(|p| p.conditions.as_slice())
                .unwrap_or(&[]);
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: l.attached_routes,
                conditions: l
                    .conditions
                    .iter()
                    .map(|c| c.stamp(generation, prev, now))
                    .collect(),
            }
        })
        .collect()
}

/// Conditions of the Backends and Policies a rendering used, by (kind, namespace, name).
pub(super) type Resources = BTreeMap<(&'static str, String, String), Vec<Cond>>;

/// The resources' outcomes; one without a `ResolvedRefs` condition has nothing unresolved.
pub(super) fn resource_outcomes(resources: Resources) -> Vec<ResourceOutcome> {
    resources
        .into_iter()
        .map(|((kind, namespace, name), mut conditions)| {
            if !conditions.iter().any(|c| c.type_ == "ResolvedRefs") {
                conditions.push(Cond::ok("ResolvedRefs", "ResolvedRefs"));
            }
            ResourceOutcome {
                kind,
                namespace,
                name,
                conditions,
            }
        })
        .collect()
}
