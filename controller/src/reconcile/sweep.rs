//! The sweep: one pass over everything no single Gateway reconcile covers, run after
//! reconciles and input changes and at least once a minute.

use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::status::{publish_event, truncate};
use super::stores::InvalidObject;
use super::{Context, Ownership, ownership};
use crate::crd::{Backend, GatewayParameters, Policy};
use crate::gateway_api::{
    GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant, RouteParentStatus,
};
use crate::render::{CONTROLLER_NAME, Cond, World};

/// One pass over everything no single Gateway reconcile covers: configs of Gateways that no
/// longer exist (or are not ours) leave the push server; our `status.parents[]` entries go
/// from routes whose Gateway is gone or not ours; objects that do not decode are reported on
/// themselves (an Event, and a condition where the kind has status conditions).
pub async fn sweep(ctx: &Context) {
    let (world, invalid) = ctx.stores.world_and_invalid();
    let alive = |ns: &str, name: &str| {
        world.gateways.iter().any(|g| {
            g.namespace().as_deref() == Some(ns)
                && g.name_any() == name
                && g.meta().deletion_timestamp.is_none()
                && ownership(&world, g) != Ownership::NotOurs
        })
    };
    for (ns, name) in ctx.hub.gateways() {
        if !alive(&ns, &name) {
            tracing::info!(%ns, gateway = %name, "gateway gone or not ours; config withdrawn from push");
            ctx.hub.remove(&ns, &name);
        }
    }
    let routes = world
        .routes
        .iter()
        .map(|r| (false, render_key(r.as_ref()), r.status.as_ref()))
        .chain(
            world
                .grpc_routes
                .iter()
                .map(|r| (true, render_key(r.as_ref()), r.status.as_ref())),
        );
    for (grpc, (rns, rname), status) in routes {
        let Some(st) = status else { continue };
        let keep: Vec<RouteParentStatus> = st
            .parents
            .iter()
            .filter(|p| {
                p.controller_name != CONTROLLER_NAME || {
                    let pns = p.parent_ref.namespace.as_deref().unwrap_or(&rns);
                    let is_gateway = p.parent_ref.kind.as_deref().unwrap_or("Gateway") == "Gateway";
                    !is_gateway || alive(pns, &p.parent_ref.name)
                }
            })
            .cloned()
            .collect();
        if keep.len() != st.parents.len() {
            let patch = Patch::Merge(json!({"status": {"parents": keep}}));
            let pp = PatchParams::default();
            let res = if grpc {
                Api::<GRPCRoute>::namespaced(ctx.client.clone(), &rns)
                    .patch_status(&rname, &pp, &patch)
                    .await
                    .map(|_| ())
            } else {
                Api::<HTTPRoute>::namespaced(ctx.client.clone(), &rns)
                    .patch_status(&rname, &pp, &patch)
                    .await
                    .map(|_| ())
            };
            if let Err(e) = res {
                tracing::warn!(route = %rname, error = %e, "cannot remove stale parent status");
            }
        }
    }
    for bad in invalid {
        let meta = &bad.object.metadata;
        let key = (
            meta.uid.clone().unwrap_or_default(),
            meta.resource_version.clone().unwrap_or_default(),
        );
        if !ctx
            .invalid_reported
            .lock()
            .expect("invalid lock")
            .insert(key)
        {
            continue;
        }
        report_invalid(ctx, &world, &bad).await;
    }
}

async fn report_invalid(ctx: &Context, world: &World, bad: &InvalidObject) {
    let o = &bad.object;
    let ns = o.namespace();
    let name = o.name_any();
    let ar = match bad.kind {
        "GatewayClass" => ApiResource::erase::<GatewayClass>(&()),
        "Gateway" => ApiResource::erase::<Gateway>(&()),
        "HTTPRoute" => ApiResource::erase::<HTTPRoute>(&()),
        "GRPCRoute" => ApiResource::erase::<GRPCRoute>(&()),
        "ReferenceGrant" => ApiResource::erase::<ReferenceGrant>(&()),
        "Backend" => ApiResource::erase::<Backend>(&()),
        "Policy" => ApiResource::erase::<Policy>(&()),
        _ => ApiResource::erase::<GatewayParameters>(&()),
    };
    // Only objects meant for us get a condition from us.
    let ours = match bad.kind {
        "GatewayClass" => o.data["spec"]["controllerName"] == CONTROLLER_NAME,
        "Gateway" => {
            let class = o.data["spec"]["gatewayClassName"].as_str().unwrap_or("");
            world
                .classes
                .iter()
                .any(|c| c.name_any() == class && c.spec.controller_name == CONTROLLER_NAME)
        }
        "Backend" | "Policy" | "GatewayParameters" => true,
        _ => false,
    };
    let msg = truncate(&format!(
        "{} {}/{} {}; it is skipped until fixed",
        bad.kind,
        ns.clone().unwrap_or_default(),
        name,
        bad.error
    ));
    tracing::warn!(kind = bad.kind, ns = ?ns, %name, error = %bad.error, "skipping an object that cannot be read");
    publish_event(ctx, &o.object_ref(&ar), "Invalid", &msg).await;
    if ours {
        let api: Api<DynamicObject> = match &ns {
            Some(ns) => Api::namespaced_with(ctx.client.clone(), ns, &ar),
            None => Api::all_with(ctx.client.clone(), &ar),
        };
        let cond = Cond::failed("Accepted", "Invalid", msg).stamp(
            o.metadata.generation,
            &[],
            &(ctx.now)(),
        );
        let res = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": [cond]}})),
            )
            .await;
        if let Err(e) = res {
            tracing::warn!(%name, error = %e, "cannot write the Invalid condition");
        }
    }
}

fn render_key<K: Resource>(r: &K) -> (String, String) {
    crate::render::key_of(r)
}

pub(super) async fn sweeper(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    if !ctx.caches_ready().await {
        return;
    }
    loop {
        sweep(&ctx).await;
        tokio::select! {
            _ = ctx.sweep.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        // Let a burst of changes settle into one pass (a pass reads every cached object).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
