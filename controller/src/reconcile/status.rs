//! Writing back: the status of Gateways, of their HTTPRoutes' and GRPCRoutes' `parents[]` entries, of
//! Backends and Policies (each patch only when it changed, so a status write never loops),
//! and Events for problems found while rendering.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::Context;
use crate::crd::{Backend, Condition, Policy};
use crate::gateway_api::{
    GRPCRoute, Gateway, GatewayStatus, GatewayStatusAddress, HTTPRoute, HTTPRouteStatus,
    RouteParentStatus,
};
use crate::render::{self, CONTROLLER_NAME, Cond, Rendered, World};
use crate::{Error, Result};

/// Route status writes in flight at once.
const STATUS_WRITES_IN_FLIGHT: usize = 32;

/// Longest condition message written (the API allows 32 KiB; a message is for humans).
const MAX_MESSAGE: usize = 2000;

pub(super) fn truncate(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

/// Writes the Gateway's status when it changed: the rendered conditions and `programmed`
/// (stamped at `now`), the listeners and the addresses.
pub(super) async fn write_gateway(
    ctx: &Context,
    gw: &Gateway,
    rendered: &Rendered,
    programmed: &Cond,
    addresses: Vec<GatewayStatusAddress>,
    now: &str,
) -> Result<()> {
    let generation = gw.meta().generation;
    let previous = gw.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = rendered
        .gateway_conditions
        .iter()
        .map(|c| c.stamp(generation, &previous.conditions, now))
        .collect();
    conditions.push(programmed.stamp(generation, &previous.conditions, now));
    let status = GatewayStatus {
        addresses,
        conditions,
        listeners: render::listener_statuses(
            &rendered.listeners,
            &previous.listeners,
            generation,
            now,
        ),
    };
    if gw.status.as_ref() != Some(&status) {
        let api: Api<Gateway> =
            Api::namespaced(ctx.client.clone(), &gw.namespace().unwrap_or_default());
        api.patch_status(
            &gw.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    }
    Ok(())
}

/// A route's kind, (namespace, name), generation and status, whichever its kind.
type RouteKey = (&'static str, String, String);

fn route_index(world: &World) -> HashMap<RouteKey, (Option<i64>, Option<&HTTPRouteStatus>)> {
    let http = world.routes.iter().map(|r| {
        let (ns, name) = render::key_of(r.as_ref());
        (
            ("HTTPRoute", ns, name),
            (r.meta().generation, r.status.as_ref()),
        )
    });
    let grpc = world.grpc_routes.iter().map(|r| {
        let (ns, name) = render::key_of(r.as_ref());
        (
            ("GRPCRoute", ns, name),
            (r.meta().generation, r.status.as_ref()),
        )
    });
    http.chain(grpc).collect()
}

/// Writes this Gateway's entries (`ns`/`name`) in its HTTPRoutes' and GRPCRoutes'
/// `status.parents[]`, merged by controller name and parent; routes that no longer attach
/// lose the entry it wrote earlier. Entries of other controllers and Gateways are kept.
pub(super) async fn write_route_parents(
    ctx: &Context,
    world: &World,
    ns: &str,
    name: &str,
    rendered: &Rendered,
    now: &str,
) -> Result<()> {
    let route_index = route_index(world);
    let mut by_route: BTreeMap<RouteKey, Vec<RouteParentStatus>> = Default::default();
    for o in &rendered.routes {
        let key = (o.kind, o.namespace.clone(), o.name.clone());
        let route = route_index.get(&key);
        let rgen = route.and_then(|r| r.0);
        let prev: Vec<Condition> = route
            .and_then(|r| r.1)
            .and_then(|s| {
                s.parents
                    .iter()
                    .find(|p| p.controller_name == CONTROLLER_NAME && p.parent_ref == o.parent_ref)
            })
            .map(|p| p.conditions.clone())
            .unwrap_or_default();
        by_route.entry(key).or_default().push(RouteParentStatus {
            parent_ref: o.parent_ref.clone(),
            controller_name: CONTROLLER_NAME.into(),
            conditions: o
                .conditions
                .iter()
                .map(|c| c.stamp(rgen, &prev, now))
                .collect(),
        });
    }
    // Routes that no longer attach to this Gateway lose the entry it wrote earlier.
    for ((kind, rns, rname), (_, status)) in &route_index {
        let stale = status.is_some_and(|s| {
            s.parents.iter().any(|p| {
                p.controller_name == CONTROLLER_NAME
                    && render::parent_is(&p.parent_ref, rns, ns, name)
            })
        });
        if stale {
            by_route
                .entry((kind, rns.clone(), rname.clone()))
                .or_default();
        }
    }
    let mut patches = Vec::new();
    for ((kind, rns, rname), ours) in by_route {
        let Some((_, status)) = route_index.get(&(kind, rns.clone(), rname.clone())) else {
            continue;
        };
        let existing = status.cloned().unwrap_or_default().parents;
        let merged = render::merge_route_parents(&existing, ns, name, &rns, ours);
        if merged != existing {
            patches.push((kind == "GRPCRoute", rns, rname, merged));
        }
    }
    // Many routes can change at once (a Gateway edit touches all of them): write in parallel.
    let results: Vec<Result<()>> = futures::stream::iter(patches)
        .map(
            |(grpc, rns, rname, merged): (bool, String, String, Vec<RouteParentStatus>)| {
                let client = ctx.client.clone();
                async move {
                    let patch = Patch::Merge(json!({"status": {"parents": merged}}));
                    let pp = PatchParams::default();
                    if grpc {
                        Api::<GRPCRoute>::namespaced(client, &rns)
                            .patch_status(&rname, &pp, &patch)
                            .await?;
                    } else {
                        Api::<HTTPRoute>::namespaced(client, &rns)
                            .patch_status(&rname, &pp, &patch)
                            .await?;
                    }
                    Ok(())
                }
            },
        )
        .buffer_unordered(STATUS_WRITES_IN_FLIGHT)
        .collect()
        .await;
    for r in results {
        match r {
            // Deleted meanwhile: nothing to write.
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => {}
            other => other?,
        }
    }
    Ok(())
}

/// Writes the conditions of the Backends and Policies the rendering used, when they changed.
pub(super) async fn write_resources(
    ctx: &Context,
    world: &World,
    rendered: &Rendered,
    now: &str,
) -> Result<()> {
    for r in &rendered.resources {
        let (prev, rgen) = match r.kind {
            "Backend" => find_status(&world.backends, &r.namespace, &r.name),
            _ => find_status(&world.policies, &r.namespace, &r.name),
        };
        let conditions: Vec<Condition> = r
            .conditions
            .iter()
            .map(|c| c.stamp(rgen, &prev, now))
            .collect();
        if conditions != prev {
            let patch = Patch::Merge(json!({"status": {"conditions": conditions}}));
            let pp = PatchParams::default();
            match r.kind {
                "Backend" => {
                    Api::<Backend>::namespaced(ctx.client.clone(), &r.namespace)
                        .patch_status(&r.name, &pp, &patch)
                        .await?;
                }
                _ => {
                    Api::<Policy>::namespaced(ctx.client.clone(), &r.namespace)
                        .patch_status(&r.name, &pp, &patch)
                        .await?;
                }
            }
        }
    }
    Ok(())
}

/// An Event on the Gateway for each warning not reported for it before, so a steady problem
/// makes one Event.
pub(super) async fn report_warnings(ctx: &Context, gw: &Gateway, warnings: &[String]) {
    let key = (gw.namespace().unwrap_or_default(), gw.name_any());
    let fresh: Vec<String> = {
        let mut reported = ctx.reported.lock().expect("reported lock");
        let seen = reported.entry(key).or_default();
        let fresh = warnings
            .iter()
            .filter(|w| !seen.contains(w))
            .cloned()
            .collect();
        *seen = warnings.to_vec();
        fresh
    };
    let reference: ObjectReference = gw.object_ref(&());
    for w in &fresh {
        publish_event(ctx, &reference, "RenderWarning", w).await;
    }
}

/// A Gateway that is no longer ours keeps no condition computed for an older generation:
/// stale conditions (ours) go, with the listeners and addresses they described.
pub(super) async fn clear_stale_status(ctx: &Context, gw: &Gateway) -> Result<()> {
    let Some(st) = &gw.status else {
        return Ok(());
    };
    let generation = gw.meta().generation;
    let fresh = |c: &Condition| c.observed_generation.is_none_or(|g| Some(g) == generation);
    let conditions: Vec<&Condition> = st.conditions.iter().filter(|c| fresh(c)).collect();
    let listeners: Vec<_> = st
        .listeners
        .iter()
        .filter(|l| l.conditions.iter().all(fresh))
        .collect();
    if conditions.len() == st.conditions.len() && listeners.len() == st.listeners.len() {
        return Ok(());
    }
    Api::<Gateway>::namespaced(ctx.client.clone(), &gw.namespace().unwrap_or_default())
        .patch_status(
            &gw.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {
                "conditions": conditions, "listeners": listeners, "addresses": []}})),
        )
        .await?;
    Ok(())
}

fn find_status<K>(objs: &[Arc<K>], ns: &str, name: &str) -> (Vec<Condition>, Option<i64>)
where
    K: Resource + HasConditions,
{
    objs.iter()
        .find(|o| {
            o.meta().namespace.as_deref() == Some(ns) && o.meta().name.as_deref() == Some(name)
        })
        .map(|o| (o.conditions(), o.meta().generation))
        .unwrap_or_default()
}

/// Objects whose status is a list of conditions.
pub trait HasConditions {
    /// The current conditions.
    fn conditions(&self) -> Vec<Condition>;
}
impl HasConditions for Backend {
    fn conditions(&self) -> Vec<Condition> {
        self.status.clone().unwrap_or_default().conditions
    }
}
impl HasConditions for Policy {
    fn conditions(&self) -> Vec<Condition> {
        self.status.clone().unwrap_or_default().conditions
    }
}

pub(super) async fn publish_event(
    ctx: &Context,
    reference: &ObjectReference,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}
