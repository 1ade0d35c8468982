//! The reconciler: watches every input kind into reflector caches, re-renders every Gateway
//! on any change, and converges the cluster on the rendering.
//!
//! One reconcile of a Gateway, in request order: server-side apply of the ServiceAccount,
//! ConfigMap, Service and Deployment (field manager [`FIELD_MANAGER`], forced, so the
//! controller owns what it renders); prune of labelled children that are no longer wanted;
//! then status patches (Gateway, its HTTPRoutes' and GRPCRoutes' `parents[]` entries,
//! Backends and Policies), each only when it changed, so a status write never loops; Events
//! for problems found while rendering. A Gateway whose class is not ours loses its children. GatewayClasses are
//! accepted by a second, tiny controller.
//!
//! One file per job: `stores.rs` (the caches and decoding), `apply.rs` (validate, publish,
//! apply, prune), `status.rs` (status patches and Events), `sweep.rs` (what no single
//! reconcile covers), `run.rs` (the watches and controllers). This file holds the shared
//! [`Context`] and the reconcile functions themselves.
//!
//! [`FIELD_MANAGER`]: crate::render::FIELD_MANAGER

mod apply;
mod run;
mod status;
mod stores;
mod sweep;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

pub use apply::addresses_of;
pub use run::run;
pub use status::HasConditions;
pub use stores::{InvalidObject, Stores, decode};
pub use sweep::sweep;

use crate::crd::Condition;
use crate::gateway_api::{Gateway, GatewayClass};
use crate::push::ConfigHub;
use crate::render::{self, CONTROLLER_NAME, Cond, RenderOptions, World};
use crate::{Error, Result};

/// Warnings reported per Gateway (namespace, name).
type Reported = std::collections::HashMap<(String, String), Vec<String>>;

/// What every reconcile shares.
#[derive(Clone)]
pub struct Context {
    /// API client.
    pub client: Client,
    /// Input caches.
    pub stores: Stores,
    /// Where rendered configs are published for push.
    pub hub: ConfigHub,
    /// Rendering settings.
    pub opts: RenderOptions,
    /// Event recorder.
    pub recorder: Recorder,
    /// Clock for condition transition times (injected so tests are deterministic).
    pub now: Arc<dyn Fn() -> String + Send + Sync>,
    /// Warnings already reported per Gateway, so a steady problem makes one Event.
    reported: Arc<std::sync::Mutex<Reported>>,
    /// Undecodable objects already reported, by uid and resourceVersion.
    invalid_reported: Arc<std::sync::Mutex<BTreeSet<(String, String)>>>,
    /// Wakes the sweep (stale route parents, withdrawn configs, invalid objects).
    sweep: Arc<tokio::sync::Notify>,
    /// Set when shutting down: the caches' watches are no longer driven from then on.
    stopping: Arc<tokio::sync::watch::Sender<bool>>,
    /// Set once every cache holds a complete first listing (see [`Stores::wait_until_ready`]
    /// for why only one future waits on the caches themselves).
    caches_complete: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Context {
    /// A context with the system clock.
    pub fn new(client: Client, stores: Stores, hub: ConfigHub, opts: RenderOptions) -> Self {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "switchboard-controller".into(),
                instance: std::env::var("POD_NAME").ok(),
            },
        );
        Self {
            client,
            stores,
            hub,
            opts,
            recorder,
            reported: Default::default(),
            invalid_reported: Default::default(),
            sweep: Default::default(),
            stopping: Arc::new(tokio::sync::watch::Sender::new(false)),
            caches_complete: Arc::new(tokio::sync::watch::Sender::new(false)),
            now: Arc::new(|| {
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            }),
        }
    }

    /// Records that every cache holds a complete first listing: reconciles and the sweep go
    /// ahead from now on. [`run`] calls it; a test whose stores are filled calls it itself.
    pub fn mark_caches_complete(&self) {
        self.caches_complete.send_replace(true);
    }

    /// Waits until every cache holds a complete first listing (`true`) or a shutdown began
    /// (`false`; the caches' watches are no longer driven, so waiting on would never end).
    async fn caches_ready(&self) -> bool {
        let mut complete = self.caches_complete.subscribe();
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            r = complete.wait_for(|c| *c) => r.is_ok(),
            _ = stopping.wait_for(|s| *s) => false,
        }
    }
}

/// Whether a Gateway is ours, as far as the caches can prove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// Its GatewayClass names our controller.
    Ours,
    /// Its GatewayClass exists and names another controller.
    NotOurs,
    /// Its GatewayClass is not in the cache (absent, or unreadable): nothing is decided, and
    /// in particular nothing is deleted.
    Unknown,
}

/// The [`Ownership`] of `gw` in `world`.
pub fn ownership(world: &World, gw: &Gateway) -> Ownership {
    match world
        .classes
        .iter()
        .find(|c| c.name_any() == gw.spec.gateway_class_name)
    {
        Some(c) if c.spec.controller_name == CONTROLLER_NAME => Ownership::Ours,
        Some(_) => Ownership::NotOurs,
        None => Ownership::Unknown,
    }
}

/// Reconciles one Gateway (cached undecoded; one that does not decode is reported by the
/// sweep and otherwise left alone).
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    // Nothing is decided on a partial view of the cluster. A shutdown stops driving the
    // caches' watches, so waiting on would never end (and the graceful stop with it).
    if !ctx.caches_ready().await {
        return Ok(Action::await_change());
    }
    let out = match decode::<Gateway>(&obj) {
        Ok(gw) => reconcile_gateway(gw, &ctx).await,
        Err(_) => Ok(Action::await_change()),
    };
    ctx.sweep.notify_one();
    out
}

async fn reconcile_gateway(gw: Gateway, ctx: &Context) -> Result<Action> {
    let ns = gw
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = gw.name_any();
    let uid = gw.uid().ok_or(Error::MissingField("metadata.uid"))?;
    let world = ctx.stores.world();
    let owner = ownership(&world, &gw);
    if gw.meta().deletion_timestamp.is_some() || owner == Ownership::NotOurs {
        // Provably not (or no longer) ours: the fleet goes, and so do our conditions.
        let n = apply::prune_all(&ctx.client, &ns, &name, &uid, None).await?;
        if n > 0 {
            tracing::info!(%ns, gateway = %name, pruned = n, "gateway is not ours; removed its proxy fleet");
        }
        ctx.hub.remove(&ns, &name);
        if gw.meta().deletion_timestamp.is_none() {
            status::clear_stale_status(ctx, &gw).await?;
        }
        return Ok(Action::await_change());
    }
    if owner == Ownership::Unknown {
        tracing::info!(%ns, gateway = %name, class = %gw.spec.gateway_class_name,
            "GatewayClass not found; leaving the Gateway and its proxy fleet as they are");
        return Ok(Action::await_change());
    }

    let rendered = render::render(&world, &gw, &ctx.opts)?;
    let mut warnings = rendered.warnings.clone();
    let programmed = apply::program(ctx, &ns, &name, &uid, &rendered, &mut warnings).await?;

    let now = (ctx.now)();
    status::write_gateway(
        ctx,
        &gw,
        &rendered,
        &programmed.condition,
        programmed.addresses,
        &now,
    )
    .await?;
    status::write_route_parents(ctx, &world, &ns, &name, &rendered, &now).await?;
    status::write_resources(ctx, &world, &rendered, &now).await?;
    status::report_warnings(ctx, &gw, &warnings).await;
    if let Some(e) = programmed.apply_error {
        return Err(e);
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// Retries failed reconciles with a short delay and reports them as Events (the Gateway's
/// `Programmed` condition carries apply failures too).
pub fn error_policy(obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(gateway = %obj.name_any(), error = %err, "reconcile failed");
    let msg = err.to_string();
    let reference = obj.object_ref(&ApiResource::erase::<Gateway>(&()));
    tokio::spawn(async move {
        status::publish_event(&ctx, &reference, "ReconcileError", &msg).await;
    });
    Action::requeue(Duration::from_secs(5))
}

/// Accepts GatewayClasses whose `controllerName` is ours.
pub async fn reconcile_class(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    let Ok(class) = decode::<GatewayClass>(&obj) else {
        return Ok(Action::await_change());
    };
    if class.spec.controller_name != CONTROLLER_NAME {
        return Ok(Action::await_change());
    }
    let now = (ctx.now)();
    let prev = class.status.clone().unwrap_or_default().conditions;
    let cond = Cond {
        type_: "Accepted",
        status: true,
        reason: "Accepted",
        message: String::new(),
    }
    .stamp(class.meta().generation, &prev, &now);
    let mut conditions: Vec<Condition> = prev
        .iter()
        .filter(|c| c.type_ != "Accepted")
        .cloned()
        .collect();
    conditions.push(cond);
    if conditions != prev {
        Api::<GatewayClass>::all(ctx.client.clone())
            .patch_status(
                &class.name_any(),
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"conditions": conditions}})),
            )
            .await?;
    }
    Ok(Action::await_change())
}

pub(super) fn class_error_policy(_: Arc<DynamicObject>, err: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "GatewayClass reconcile failed");
    Action::requeue(Duration::from_secs(5))
}
