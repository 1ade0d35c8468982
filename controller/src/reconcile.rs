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
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, Secret, Service, ServiceAccount};
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
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

/// The caches a reconcile reads instead of the API server.
#[derive(Clone)]
pub struct Stores {
    /// GatewayClasses.
    pub classes: Store<GatewayClass>,
    /// Gateways.
    pub gateways: Store<Gateway>,
    /// HTTPRoutes.
    pub routes: Store<HTTPRoute>,
    /// ReferenceGrants.
    pub grants: Store<ReferenceGrant>,
    /// Backends.
    pub backends: Store<Backend>,
    /// Policies.
    pub policies: Store<Policy>,
    /// GatewayParameters.
    pub parameters: Store<GatewayParameters>,
    /// Services.
    pub services: Store<Service>,
    /// Secret metadata (never the data).
    pub secrets: Store<PartialObjectMeta<Secret>>,
}

impl Stores {
    /// A consistent-enough snapshot for one rendering.
    pub fn world(&self) -> World {
        World {
            classes: self.classes.state(),
            gateways: self.gateways.state(),
            routes: self.routes.state(),
            grants: self.grants.state(),
            backends: self.backends.state(),
            policies: self.policies.state(),
            parameters: self.parameters.state(),
            services: self.services.state(),
            secrets: self
                .secrets
                .state()
                .iter()
                .map(|s| (s.namespace().unwrap_or_default(), s.name_any()))
                .collect::<BTreeSet<_>>(),
        }
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

/// Deletes children of `gateway` of kind `K` labelled as ours whose names are not `keep`.
async fn prune<K>(client: &Client, ns: &str, gateway: &str, keep: Option<&str>) -> Result<usize>
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
        if Some(name.as_str()) != keep {
            api.delete(&name, &DeleteParams::background()).await?;
            n += 1;
        }
    }
    Ok(n)
}

async fn prune_all(client: &Client, ns: &str, gateway: &str, keep: Option<&str>) -> Result<usize> {
    Ok(prune::<Deployment>(client, ns, gateway, keep).await?
        + prune::<Service>(client, ns, gateway, keep).await?
        + prune::<ConfigMap>(client, ns, gateway, keep).await?
        + prune::<ServiceAccount>(client, ns, gateway, keep).await?)
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

/// Reconciles one Gateway.
pub async fn reconcile(gw: Arc<Gateway>, ctx: Arc<Context>) -> Result<Action> {
    let ns = gw
        .namespace()
        .ok_or(Error::MissingField("metadata.namespace"))?;
    let name = gw.name_any();
    let world = ctx.stores.world();
    if gw.meta().deletion_timestamp.is_some() || render::our_class(&world, &gw).is_none() {
        // Not (or no longer) ours: the fleet goes; ownerReferences would only catch deletion.
        let n = prune_all(&ctx.client, &ns, &name, None).await?;
        if n > 0 {
            tracing::info!(%ns, gateway = %name, pruned = n, "gateway is not ours; removed its proxy fleet");
        }
        ctx.hub.remove(&ns, &name);
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
    match validation {
        Err(errors) => {
            let msg = format!("the rendered proxy config is invalid: {errors}");
            warnings.push(msg.clone());
            programmed = Cond {
                type_: "Programmed",
                status: false,
                reason: "Invalid",
                message: msg,
            };
        }
        Ok(_) => {
            let c = &rendered.children;
            apply(&ctx.client, &ns, &c.service_account).await?;
            apply(&ctx.client, &ns, &c.config_map).await?;
            let svc = apply(&ctx.client, &ns, &c.service).await?;
            apply(&ctx.client, &ns, &c.deployment).await?;
            prune_all(&ctx.client, &ns, &name, Some(&name)).await?;
            ctx.hub
                .publish(&ns, &name, &rendered.checksum, &rendered.config_yaml);
            addresses = addresses_of(&svc);
            if addresses.is_empty() {
                programmed = Cond {
                    type_: "Programmed",
                    status: false,
                    reason: "AddressNotAssigned",
                    message: "waiting for the Service to get an address".into(),
                };
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
    let mut by_route: std::collections::BTreeMap<(String, String), Vec<RouteParentStatus>> =
        Default::default();
    for o in &rendered.routes {
        let route = world
            .routes
            .iter()
            .find(|r| r.namespace().as_deref() == Some(&o.namespace) && r.name_any() == o.name);
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
    for ((rns, rname), ours) in by_route {
        let Some(route) = world
            .routes
            .iter()
            .find(|r| r.namespace().as_deref() == Some(&rns) && r.name_any() == rname)
        else {
            continue;
        };
        let existing = route.status.clone().unwrap_or_default().parents;
        let merged = render::merge_route_parents(&existing, &ns, &name, &rns, ours);
        if merged != existing {
            let api: Api<HTTPRoute> = Api::namespaced(ctx.client.clone(), &rns);
            api.patch_status(
                &rname,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"parents": merged}})),
            )
            .await?;
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
    for w in &fresh {
        publish_event(&ctx, &gw, "RenderWarning", w).await;
    }
    Ok(Action::requeue(Duration::from_secs(300)))
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

async fn publish_event(ctx: &Context, gw: &Gateway, reason: &str, note: &str) {
    let reference: ObjectReference = gw.object_ref(&());
    let ev = Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
        tracing::warn!(error = %e, "cannot publish event");
    }
}

/// Retries failed reconciles with a short delay and reports them as Events.
pub fn error_policy(gw: Arc<Gateway>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(gateway = %gw.name_any(), error = %err, "reconcile failed");
    let ctx = ctx.clone();
    let msg = err.to_string();
    tokio::spawn(async move {
        publish_event(&ctx, &gw, "ReconcileError", &msg).await;
    });
    Action::requeue(Duration::from_secs(5))
}

/// Accepts GatewayClasses whose `controllerName` is ours.
pub async fn reconcile_class(class: Arc<GatewayClass>, ctx: Arc<Context>) -> Result<Action> {
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

fn class_error_policy(_: Arc<GatewayClass>, err: &Error, _: Arc<Context>) -> Action {
    tracing::warn!(error = %err, "GatewayClass reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

/// A watched kind, cached in a store; every change re-queues all Gateways (rendering is cheap).
fn cached<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects();
    (store, stream)
}

/// Runs both controllers until `shutdown` resolves.
pub async fn run(
    client: Client,
    hub: ConfigHub,
    opts: RenderOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (classes, classes_s) = cached(Api::<GatewayClass>::all(client.clone()));
    let (routes, routes_s) = cached(Api::<HTTPRoute>::all(client.clone()));
    let (grants, grants_s) = cached(Api::<ReferenceGrant>::all(client.clone()));
    let (backends, backends_s) = cached(Api::<Backend>::all(client.clone()));
    let (policies, policies_s) = cached(Api::<Policy>::all(client.clone()));
    let (parameters, parameters_s) = cached(Api::<GatewayParameters>::all(client.clone()));
    let (services, services_s) = cached(Api::<Service>::all(client.clone()));
    let (secrets, secrets_s) = cached(Api::<PartialObjectMeta<Secret>>::all(client.clone()));

    let controller = Controller::new(
        Api::<Gateway>::all(client.clone()),
        watcher::Config::default(),
    );
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
    fn tick<K>(
        s: impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static,
    ) -> futures::stream::BoxStream<'static, ()> {
        s.map(|_| ()).boxed()
    }
    let triggers = futures::stream::select_all([
        tick(classes_s),
        tick(routes_s),
        tick(grants_s),
        tick(backends_s),
        tick(policies_s),
        tick(parameters_s),
        tick(services_s),
        tick(secrets_s),
    ]);
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    let stop = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

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
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "controller event");
            }
        });
    let classes_loop =
        Controller::new(Api::<GatewayClass>::all(client), watcher::Config::default())
            .graceful_shutdown_on(stop(rx))
            .run(reconcile_class, class_error_policy, ctx)
            .for_each(|_| async {});
    tokio::join!(gateways_loop, classes_loop);
}
