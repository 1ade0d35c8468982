//! The reconciler: watches every input kind into reflector caches, re-renders the Gateways a
//! change may affect, and converges the cluster on the rendering.
//!
//! One reconcile of a Gateway, in request order: server-side apply of the ServiceAccount,
//! ConfigMap, Service and Deployment (field manager [`FIELD_MANAGER`], forced, so the
//! controller owns what it renders); prune of labelled children that are no longer wanted;
//! then status patches (Gateway, its HTTPRoutes' `parents[]` entries, Backends and Policies),
//! each only when it changed, so a status write never loops; Events for problems found while
//! rendering. A Gateway whose class is not ours loses its children. GatewayClasses are
//! accepted by a second, tiny controller.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, Patch, PatchParams,
};
use kube::runtime::controller::{self, Action};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::crd::{Backend, Condition, GatewayParameters, Policy};
use crate::gateway_api::{
    Gateway, GatewayClass, GatewayStatus, GatewayStatusAddress, HTTPRoute, ReferenceGrant,
    RouteParentStatus,
};
use crate::push::ConfigHub;
use crate::render::{
    self, CONTROLLER_NAME, Cond, FIELD_MANAGER, GATEWAY_LABEL, RenderOptions, World,
};
use crate::{Error, Result};

/// The caches a reconcile reads instead of the API server. Input kinds that users write are
/// cached undecoded ([`DynamicObject`]) and decoded one object at a time in [`Stores::world`],
/// so one object the Rust types refuse is reported and skipped instead of failing the whole
/// list (and with it every watch and every Gateway).
#[derive(Clone)]
pub struct Stores {
    /// GatewayClasses.
    pub classes: Store<DynamicObject>,
    /// Gateways.
    pub gateways: Store<DynamicObject>,
    /// HTTPRoutes.
    pub routes: Store<DynamicObject>,
    /// ReferenceGrants.
    pub grants: Store<DynamicObject>,
    /// Backends.
    pub backends: Store<DynamicObject>,
    /// Policies.
    pub policies: Store<DynamicObject>,
    /// GatewayParameters.
    pub parameters: Store<DynamicObject>,
    /// Services.
    pub services: Store<Service>,
    /// Secret metadata (never the data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

/// An object the controller could not decode: reported on the object itself and skipped.
#[derive(Debug, Clone)]
pub struct InvalidObject {
    /// Its kind.
    pub kind: &'static str,
    /// The raw object.
    pub object: Arc<DynamicObject>,
    /// Why it was refused.
    pub error: String,
}

/// Decodes one cached object as `K`; `apiVersion` and `kind` are filled in, as list items
/// may lack them.
pub fn decode<K>(o: &DynamicObject) -> std::result::Result<K, serde_json::Error>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut v = serde_json::to_value(o)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), K::api_version(&()).into());
        m.insert("kind".into(), K::kind(&()).into());
    }
    serde_json::from_value(v)
}

fn decode_all<K>(store: &Store<DynamicObject>, invalid: &mut Vec<InvalidObject>) -> Vec<Arc<K>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned,
{
    let mut out = Vec::new();
    for o in store.state() {
        match decode::<K>(&o) {
            Ok(k) => out.push(Arc::new(k)),
            Err(e) => invalid.push(InvalidObject {
                kind: kind_name::<K>(),
                object: o,
                error: format!("cannot be read: {e}"),
            }),
        }
    }
    out
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "GatewayClass" => "GatewayClass",
        "Gateway" => "Gateway",
        "HTTPRoute" => "HTTPRoute",
        "ReferenceGrant" => "ReferenceGrant",
        "Backend" => "Backend",
        "Policy" => "Policy",
        "GatewayParameters" => "GatewayParameters",
        _ => "object",
    }
}

impl Stores {
    /// A consistent-enough snapshot for one rendering.
    pub fn world(&self) -> World {
        self.world_and_invalid().0
    }

    /// The snapshot, and the objects that did not decode (left out of it).
    pub fn world_and_invalid(&self) -> (World, Vec<InvalidObject>) {
        let mut invalid = Vec::new();
        let world = World {
            classes: decode_all(&self.classes, &mut invalid),
            gateways: decode_all(&self.gateways, &mut invalid),
            routes: decode_all(&self.routes, &mut invalid),
            grants: decode_all(&self.grants, &mut invalid),
            backends: decode_all(&self.backends, &mut invalid),
            policies: decode_all(&self.policies, &mut invalid),
            parameters: decode_all(&self.parameters, &mut invalid),
            services: self.services.state(),
            secrets: self
                .secrets
                .state()
                .iter()
                .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
                .collect::<BTreeSet<_>>(),
        };
        (world, invalid)
    }

    /// Resolves once every cache holds a complete first listing. Until then nothing is
    /// decided: a Gateway whose GatewayClass is not cached yet is not "someone else's".
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.classes.wait_until_ready(),
            self.gateways.wait_until_ready(),
            self.routes.wait_until_ready(),
            self.grants.wait_until_ready(),
            self.backends.wait_until_ready(),
            self.policies.wait_until_ready(),
            self.parameters.wait_until_ready(),
            self.services.wait_until_ready(),
            self.secrets.wait_until_ready(),
        );
    }
}

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
            now: Arc::new(|| {
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
            }),
        }
    }
}

fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj
        .meta()
        .name
        .clone()
        .ok_or(Error::MissingField("metadata.name"))?;
    Ok(api
        .patch(&name, &apply_params(), &Patch::Apply(obj))
        .await?)
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

/// Deletes children of the Gateway (`gateway`, `uid`) of kind `K` that carry our label and an
/// ownerReference to that very Gateway, and whose names are not `keep`: only children that
/// are provably this Gateway's and no longer wanted.
async fn prune<K>(
    client: &Client,
    ns: &str,
    gateway: &str,
    uid: &str,
    keep: Option<&str>,
) -> Result<usize>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let lp = ListParams::default().labels(&format!("{GATEWAY_LABEL}={gateway}"));
    let mut n = 0;
    for o in api.list_metadata(&lp).await? {
        let name = o.name_any();
        let owned = o.owner_references().iter().any(|r| r.uid == uid);
        if owned && Some(name.as_str()) != keep {
            api.delete(&name, &DeleteParams::background()).await?;
            n += 1;
        }
    }
    Ok(n)
}

async fn prune_all(
    client: &Client,
    ns: &str,
    gateway: &str,
    uid: &str,
    keep: Option<&str>,
) -> Result<usize> {
    Ok(prune::<Deployment>(client, ns, gateway, uid, keep).await?
        + prune::<Service>(client, ns, gateway, uid, keep).await?
        + prune::<ConfigMap>(client, ns, gateway, uid, keep).await?
        + prune::<ServiceAccount>(client, ns, gateway, uid, keep).await?)
}

/// The addresses a Service offers: load-balancer ingress, else its cluster IP.
pub fn addresses_of(svc: &Service) -> Vec<GatewayStatusAddress> {
    let mut out = Vec::new();
    if let Some(ing) = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
    {
        for i in ing {
            if let Some(ip) = &i.ip {
                out.push(GatewayStatusAddress {
                    type_: "IPAddress".into(),
                    value: ip.clone(),
                });
            } else if let Some(h) = &i.hostname {
                out.push(GatewayStatusAddress {
                    type_: "Hostname".into(),
                    value: h.clone(),
                });
            }
        }
    }
    let spec = svc.spec.as_ref();
    let ty = spec.and_then(|s| s.type_.as_deref()).unwrap_or("ClusterIP");
    if out.is_empty()
        && ty != "LoadBalancer"
        && let Some(ip) = spec
            .and_then(|s| s.cluster_ip.as_ref())
            .filter(|ip| *ip != "None")
    {
        out.push(GatewayStatusAddress {
            type_: "IPAddress".into(),
            value: ip.clone(),
        });
    }
    out
}

/// Route status writes in flight at once.
const STATUS_WRITES_IN_FLIGHT: usize = 32;

/// Longest condition message written (the API allows 32 KiB; a message is for humans).
const MAX_MESSAGE: usize = 2000;

fn truncate(s: &str) -> String {
    s.chars().take(MAX_MESSAGE).collect()
}

/// Reconciles one Gateway (cached undecoded; one that does not decode is reported by the
/// sweep and otherwise left alone).
pub async fn reconcile(obj: Arc<DynamicObject>, ctx: Arc<Context>) -> Result<Action> {
    // Nothing is decided on a partial view of the cluster. A shutdown stops driving the
    // caches' watches, so waiting on would never end (and the graceful stop with it).
    let mut stopping = ctx.stopping.subscribe();
    tokio::select! {
        _ = ctx.stores.wait_until_ready() => {}
        _ = stopping.wait_for(|s| *s) => return Ok(Action::await_change()),
    }
    let out = match decode::<Gateway>(&obj) {
        Ok(gw) => reconcile_gateway(gw, &ctx).await,
        Err(_) => Ok(Action::await_change()),
    };
    ctx.sweep.notify_one();
    out
}

async fn apply_children(ctx: &Context, ns: &str, rendered: &render::Rendered) -> Result<Service> {
    let c = &rendered.children;
    apply(&ctx.client, ns, &c.service_account).await?;
    apply(&ctx.client, ns, &c.config_map).await?;
    let svc = apply(&ctx.client, ns, &c.service).await?;
    apply(&ctx.client, ns, &c.deployment).await?;
    Ok(svc)
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
        let n = prune_all(&ctx.client, &ns, &name, &uid, None).await?;
        if n > 0 {
            tracing::info!(%ns, gateway = %name, pruned = n, "gateway is not ours; removed its proxy fleet");
        }
        ctx.hub.remove(&ns, &name);
        if gw.meta().deletion_timestamp.is_none() {
            clear_stale_status(ctx, &gw).await?;
        }
        return Ok(Action::await_change());
    }
    if owner == Ownership::Unknown {
        tracing::info!(%ns, gateway = %name, class = %gw.spec.gateway_class_name,
            "GatewayClass not found; leaving the Gateway and its proxy fleet as they are");
        return Ok(Action::await_change());
    }

    let rendered = render::render(&world, &gw, &ctx.opts)?;
    // The proxy validates what it receives; validating here too turns a rendering bug into a
    // condition instead of a fleet that refuses its config. `${VAR}`s are filled with a
    // placeholder: their values live in Secrets the controller does not read.
    let validation =
        switchboard_gateway::config::load_str(&rendered.config_yaml, "rendered", &|_| {
            Some("placeholder".into())
        });
    let mut warnings = rendered.warnings.clone();
    let mut programmed = Cond {
        type_: "Programmed",
        status: true,
        reason: "Programmed",
        message: String::new(),
    };
    let mut addresses = Vec::new();
    let mut apply_error = None;
    match validation {
        Err(errors) => {
            let msg = format!("the rendered proxy config is invalid: {errors}");
            warnings.push(msg.clone());
            programmed = Cond::failed("Programmed", "Invalid", truncate(&msg));
        }
        Ok(_) => {
            // Proxies that follow the push stream get the config even if the children
            // cannot be written.
            ctx.hub
                .publish(&ns, &name, &rendered.checksum, &rendered.config_yaml);
            if let Some(msg) = &rendered.too_large {
                warnings.push(msg.clone());
                programmed = Cond::failed("Programmed", "Invalid", msg.clone());
            } else {
                match apply_children(ctx, &ns, &rendered).await {
                    Ok(svc) => {
                        prune_all(&ctx.client, &ns, &name, &uid, Some(&name)).await?;
                        addresses = addresses_of(&svc);
                        if addresses.is_empty() {
                            programmed = Cond::failed(
                                "Programmed",
                                "AddressNotAssigned",
                                "waiting for the Service to get an address",
                            );
                        }
                    }
                    Err(e) => {
                        programmed = Cond::failed(
                            "Programmed",
                            "Invalid",
                            truncate(&format!("cannot apply the proxy fleet: {e}")),
                        );
                        apply_error = Some(e);
                    }
                }
            }
        }
    }

    let now = (ctx.now)();
    let generation = gw.meta().generation;
    let previous = gw.status.clone().unwrap_or_default();
    let mut conditions: Vec<Condition> = rendered
        .gateway_conditions
        .iter()
        .map(|c| c.stamp(generation, &previous.conditions, &now))
        .collect();
    conditions.push(programmed.stamp(generation, &previous.conditions, &now));
    let status = GatewayStatus {
        addresses,
        conditions,
        listeners: render::listener_statuses(
            &rendered.listeners,
            &previous.listeners,
            generation,
            &now,
        ),
    };
    if gw.status.as_ref() != Some(&status) {
        let api: Api<Gateway> = Api::namespaced(ctx.client.clone(), &ns);
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    }

    // HTTPRoute parents, merged by controller name and parent.
    let route_index: std::collections::HashMap<(String, String), &Arc<HTTPRoute>> = world
        .routes
        .iter()
        .map(|r| (render::key_of(r.as_ref()), r))
        .collect();
    let mut by_route: std::collections::BTreeMap<(String, String), Vec<RouteParentStatus>> =
        Default::default();
    for o in &rendered.routes {
        let route = route_index.get(&(o.namespace.clone(), o.name.clone()));
        let rgen = route.and_then(|r| r.meta().generation);
        let prev: Vec<Condition> = route
            .and_then(|r| r.status.as_ref())
            .and_then(|s| {
                s.parents
                    .iter()
                    .find(|p| p.controller_name == CONTROLLER_NAME && p.parent_ref == o.parent_ref)
            })
            .map(|p| p.conditions.clone())
            .unwrap_or_default();
        by_route
            .entry((o.namespace.clone(), o.name.clone()))
            .or_default()
            .push(RouteParentStatus {
                parent_ref: o.parent_ref.clone(),
                controller_name: CONTROLLER_NAME.into(),
                conditions: o
                    .conditions
                    .iter()
                    .map(|c| c.stamp(rgen, &prev, &now))
                    .collect(),
            });
    }
    // Routes that no longer attach to this Gateway lose the entry it wrote earlier.
    for r in &world.routes {
        let rns = r.namespace().unwrap_or_default();
        let stale = r.status.as_ref().is_some_and(|s| {
            s.parents.iter().any(|p| {
                p.controller_name == CONTROLLER_NAME
                    && render::parent_is(&p.parent_ref, &rns, &ns, &name)
            })
        });
        if stale {
            by_route.entry((rns, r.name_any())).or_default();
        }
    }
    let mut patches = Vec::new();
    for ((rns, rname), ours) in by_route {
        let Some(route) = route_index.get(&(rns.clone(), rname.clone())) else {
            continue;
        };
        let existing = route.status.clone().unwrap_or_default().parents;
        let merged = render::merge_route_parents(&existing, &ns, &name, &rns, ours);
        if merged != existing {
            patches.push((rns, rname, merged));
        }
    }
    // Many routes can change at once (a Gateway edit touches all of them): write in parallel.
    let results: Vec<Result<()>> = futures::stream::iter(patches)
        .map(|(rns, rname, merged)| {
            let client = ctx.client.clone();
            async move {
                Api::<HTTPRoute>::namespaced(client, &rns)
                    .patch_status(
                        &rname,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"status": {"parents": merged}})),
                    )
                    .await?;
                Ok(())
            }
        })
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

    // Backend and Policy conditions.
    for r in &rendered.resources {
        let (prev, rgen) = match r.kind {
            "Backend" => find_status(&world.backends, &r.namespace, &r.name),
            _ => find_status(&world.policies, &r.namespace, &r.name),
        };
        let conditions: Vec<Condition> = r
            .conditions
            .iter()
            .map(|c| c.stamp(rgen, &prev, &now))
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

    // Events for warnings not reported before, so a steady problem is reported once.
    let fresh: Vec<String> = {
        let mut reported = ctx.reported.lock().expect("reported lock");
        let seen = reported.entry((ns.clone(), name.clone())).or_default();
        let fresh = warnings
            .iter()
            .filter(|w| !seen.contains(w))
            .cloned()
            .collect();
        *seen = warnings.clone();
        fresh
    };
    let reference: ObjectReference = gw.object_ref(&());
    for w in &fresh {
        publish_event(ctx, &reference, "RenderWarning", w).await;
    }
    if let Some(e) = apply_error {
        return Err(e);
    }
    Ok(Action::requeue(Duration::from_secs(300)))
}

/// A Gateway that is no longer ours keeps no condition computed for an older generation:
/// stale conditions (ours) go, with the listeners and addresses they described.
async fn clear_stale_status(ctx: &Context, gw: &Gateway) -> Result<()> {
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

async fn publish_event(ctx: &Context, reference: &ObjectReference, reason: &str, note: &str) {
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

/// Retries failed reconciles with a short delay and reports them as Events (the Gateway's
/// `Programmed` condition carries apply failures too).
pub fn error_policy(obj: Arc<DynamicObject>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(gateway = %obj.name_any(), error = %err, "reconcile failed");
    let msg = err.to_string();
    let reference = obj.object_ref(&ApiResource::erase::<Gateway>(&()));
    tokio::spawn(async move {
        publish_event(&ctx, &reference, "ReconcileError", &msg).await;
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

fn class_error_policy(_: Arc<DynamicObject>, err: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "GatewayClass reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

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
    for r in &world.routes {
        let rns = r.namespace().unwrap_or_default();
        let Some(st) = &r.status else { continue };
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
            let res = Api::<HTTPRoute>::namespaced(ctx.client.clone(), &rns)
                .patch_status(
                    &r.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"parents": keep}})),
                )
                .await;
            if let Err(e) = res {
                tracing::warn!(route = %r.name_any(), error = %e, "cannot remove stale parent status");
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

/// A watched kind, cached undecoded; every change re-queues all Gateways (rendering is
/// cheap).
fn cached_dyn<K>(client: &Client) -> (Store<DynamicObject>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()>,
{
    let ar = ApiResource::erase::<K>(&());
    let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|_| ())
        .boxed();
    (store, stream)
}

fn cached<K>(api: Api<K>) -> (Store<K>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(|_| ())
        .boxed();
    (store, stream)
}

/// Runs both controllers and the sweep until `shutdown` resolves.
pub async fn run(
    client: Client,
    hub: ConfigHub,
    opts: RenderOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (classes, classes_s) = cached_dyn::<GatewayClass>(&client);
    let (routes, routes_s) = cached_dyn::<HTTPRoute>(&client);
    let (grants, grants_s) = cached_dyn::<ReferenceGrant>(&client);
    let (backends, backends_s) = cached_dyn::<Backend>(&client);
    let (policies, policies_s) = cached_dyn::<Policy>(&client);
    let (parameters, parameters_s) = cached_dyn::<GatewayParameters>(&client);
    let (services, services_s) = cached(Api::<Service>::all(client.clone()));
    let (secrets, secrets_s) = cached(Api::<PartialObjectMeta<Secret>>::all(client.clone()));

    let gw_ar = ApiResource::erase::<Gateway>(&());
    let controller = Controller::new_with(
        Api::<DynamicObject>::all_with(client.clone(), &gw_ar),
        watcher::Config::default(),
        gw_ar,
    )
    // A burst of changes (thousands of routes created at once) becomes a few reconciles.
    .with_config(controller::Config::default().debounce(Duration::from_millis(200)));
    let stores = Stores {
        classes,
        gateways: controller.store(),
        routes,
        grants,
        backends,
        policies,
        parameters,
        services,
        secrets,
    };
    let ctx = Arc::new(Context::new(client.clone(), stores, hub, opts));
    // Any change to an input re-renders every Gateway: rendering is cheap, and a change can
    // affect Gateways it no longer names (a route that moved, a Backend that was renamed).
    let sweep_ctx = ctx.clone();
    let triggers = futures::stream::select_all([
        classes_s,
        routes_s,
        grants_s,
        backends_s,
        policies_s,
        parameters_s,
        services_s,
        secrets_s,
    ])
    .map(move |()| sweep_ctx.sweep.notify_one());
    let tx = ctx.stopping.clone();
    let rx = tx.subscribe();
    tokio::spawn(async move {
        shutdown.await;
        tx.send_replace(true);
    });
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let sweep_ctx = ctx.clone();
    let gateways_loop = controller
        .owns(
            Api::<Deployment>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<ConfigMap>::all(client.clone()),
            watcher::Config::default(),
        )
        .owns(
            Api::<ServiceAccount>::all(client.clone()),
            watcher::Config::default(),
        )
        .reconcile_all_on(triggers)
        .graceful_shutdown_on(stop(rx.clone()))
        .run(reconcile, error_policy, ctx.clone())
        .for_each(move |r| {
            if let Err(e) = r {
                // A deleted Gateway is "not found": the sweep withdraws what it left behind.
                sweep_ctx.sweep.notify_one();
                tracing::debug!(error = %e, "controller event");
            }
            async {}
        });
    let class_ar = ApiResource::erase::<GatewayClass>(&());
    let classes_controller = Controller::new_with(
        Api::<DynamicObject>::all_with(client, &class_ar),
        watcher::Config::default(),
        class_ar,
    );
    let class_store = classes_controller.store();
    let classes_loop = classes_controller
        .graceful_shutdown_on(stop(rx.clone()))
        .run(reconcile_class, class_error_policy, ctx.clone())
        .for_each(|_| async {});
    // kube's Controller holds its runner until its store is complete and does not notice a
    // graceful shutdown meanwhile (the store's watch is no longer driven, so it would wait
    // forever). A stop before every cache is complete has no reconcile in flight that could
    // be waited for: the loops are dropped at once.
    let stores = ctx.stores.clone();
    let stopped = stop(rx.clone());
    let early_stop = async move {
        stopped.await;
        let complete = futures::FutureExt::now_or_never(async {
            futures::join!(stores.wait_until_ready(), class_store.wait_until_ready())
        })
        .is_some();
        if complete {
            std::future::pending::<()>().await;
        }
        tracing::debug!("stopped before the caches were complete");
    };
    let sweeper = sweeper(ctx, rx);
    tokio::select! {
        _ = async { tokio::join!(gateways_loop, classes_loop, sweeper) } => {}
        _ = early_stop => {}
    }
}

async fn sweeper(ctx: Arc<Context>, mut stop: tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = ctx.stores.wait_until_ready() => {}
        _ = stop.wait_for(|s| *s) => return,
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
