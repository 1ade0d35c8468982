//! Running the controller: the watches that fill the caches, the Gateway and GatewayClass
//! controllers on top of them, and the sweeper, until shutdown.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use kube::api::{ApiResource, DynamicObject, PartialObjectMeta};
use kube::runtime::controller;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::stores::Stores;
use super::sweep::sweeper;
use super::{Context, class_error_policy, error_policy, reconcile, reconcile_class};
use crate::crd::{Backend, GatewayParameters, Policy};
use crate::gateway_api::{GRPCRoute, Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use crate::push::ConfigHub;
use crate::render::RenderOptions;

/// How often a watch that keeps failing is a warning again (it retries every second or so).
const WATCH_WARNING_EVERY: Duration = Duration::from_secs(10);

/// Logs the failed lists and watches of one kind. The watch retries by itself, but until
/// its first listing succeeds no Gateway is reconciled, so a failure must be visible: a
/// warning, then at most one per [`WATCH_WARNING_EVERY`] while it repeats (the others are
/// debug). The API server's routine "410 Gone" (the watch's position expired; it lists
/// again) is debug only.
struct WatchErrors {
    kind: String,
    warned: Option<tokio::time::Instant>,
}

impl WatchErrors {
    fn new(kind: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            warned: None,
        }
    }

    fn report(&mut self, e: &watcher::Error) {
        let kind = self.kind.as_str();
        if let watcher::Error::WatchError(s) = e
            && s.code == 410
        {
            tracing::debug!(kind, error = %e, "watch expired; listing again");
            return;
        }
        let now = tokio::time::Instant::now();
        if self
            .warned
            .is_some_and(|at| now.duration_since(at) < WATCH_WARNING_EVERY)
        {
            tracing::debug!(kind, error = %e, "watch failed; retrying");
        } else {
            self.warned = Some(now);
            tracing::warn!(kind, error = %e, "watch failed; retrying");
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
    let mut errors = WatchErrors::new(K::kind(&()));
    let writer = reflector::store::Writer::new(ar);
    let store = writer.as_reader();
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(move |r| {
            if let Err(e) = r {
                errors.report(&e);
            }
        })
        .boxed();
    (store, stream)
}

fn cached<K>(api: Api<K>) -> (Store<K>, BoxStream<'static, ()>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let mut errors = WatchErrors::new(K::kind(&()));
    let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .touched_objects()
        .map(move |r| {
            if let Err(e) = r {
                errors.report(&e);
            }
        })
        .boxed();
    (store, stream)
}

/// Whether GRPCRoutes can be watched. The GRPCRoute CRD is optional and an install may not
/// grant the controller `grpcroutes`: when the API server answers 404 or 403, GRPCRoutes are
/// left out (with a warning) instead of leaving a watch that never completes its first
/// listing and holds every reconcile back. Other errors are retried by the watch.
async fn grpc_routes_watchable(client: &Client) -> bool {
    let ar = ApiResource::erase::<GRPCRoute>(&());
    let api = Api::<DynamicObject>::all_with(client.clone(), &ar);
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
            tracing::warn!(
                code = e.code,
                message = %e.message,
                "GRPCRoutes are not watched: the GRPCRoute CRD is not installed or the controller may not list grpcroutes (restart the controller once it is)"
            );
            false
        }
        _ => true,
    }
}

/// Whether namespaces can be watched (their labels decide `allowedRoutes` selectors). An
/// install may not grant it: on 403 namespaces are left out (with a warning) and listeners
/// with a namespace selector take no routes.
async fn namespaces_watchable(client: &Client) -> bool {
    let api = Api::<Namespace>::all(client.clone());
    match api
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 403 => {
            tracing::warn!(
                code = e.code,
                message = %e.message,
                "namespaces are not watched: the controller may not list namespaces, so listeners with allowedRoutes.namespaces.from: Selector take no routes (restart the controller once it may)"
            );
            false
        }
        _ => true,
    }
}

/// How often a controller whose caches are not complete yet says which are missing.
const FIRST_LISTING_REPORT: Duration = Duration::from_secs(10);

/// The one wait on the caches' first listings (see [`Stores::wait_until_ready`]): the
/// Switchboard caches and the GatewayClass controller's own. Marks them complete in `ctx`
/// (reconciles and the sweep wait for that), says so, and until then, every
/// [`FIRST_LISTING_REPORT`], says which kinds it still waits for.
async fn first_listing(ctx: Arc<Context>, class_store: Store<DynamicObject>) {
    let started = tokio::time::Instant::now();
    let waiting = std::sync::Mutex::new(Vec::new());
    let complete = async {
        futures::join!(ctx.stores.wait_until_ready(&waiting), async {
            let _ = class_store.wait_until_ready().await;
        })
    };
    tokio::pin!(complete);
    loop {
        tokio::select! {
            _ = &mut complete => break,
            () = tokio::time::sleep(FIRST_LISTING_REPORT) => tracing::warn!(
                waiting = ?*waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner),
                "no Gateway is reconciled until the first listing of every watched kind is complete"
            ),
        }
    }
    ctx.mark_caches_complete();
    tracing::info!(took = ?started.elapsed(), "caches complete; reconciling Gateways");
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
    let (grpc_routes, grpc_routes_s) = if grpc_routes_watchable(&client).await {
        let (store, stream) = cached_dyn::<GRPCRoute>(&client);
        (Some(store), Some(stream))
    } else {
        (None, None)
    };
    let (grants, grants_s) = cached_dyn::<ReferenceGrant>(&client);
    let (backends, backends_s) = cached_dyn::<Backend>(&client);
    let (policies, policies_s) = cached_dyn::<Policy>(&client);
    let (parameters, parameters_s) = cached_dyn::<GatewayParameters>(&client);
    let (services, services_s) = cached(Api::<Service>::all(client.clone()));
    let (secrets, secrets_s) = cached(Api::<PartialObjectMeta<Secret>>::all(client.clone()));
    let (namespaces, namespaces_s) = if namespaces_watchable(&client).await {
        let (store, stream) = cached(Api::<PartialObjectMeta<Namespace>>::all(client.clone()));
        (Some(store), Some(stream))
    } else {
        (None, None)
    };

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
        grpc_routes,
        grants,
        backends,
        policies,
        parameters,
        services,
        secrets,
        namespaces,
    };
    let ctx = Arc::new(Context::new(client.clone(), stores, hub, opts));
    // Any change to an input re-renders every Gateway: rendering is cheap, and a change can
    // affect Gateways it no longer names (a route that moved, a Backend that was renamed).
    let sweep_ctx = ctx.clone();
    let triggers = futures::stream::select_all(
        [
            classes_s,
            routes_s,
            grants_s,
            backends_s,
            policies_s,
            parameters_s,
            services_s,
            secrets_s,
        ]
        .into_iter()
        .chain(grpc_routes_s)
        .chain(namespaces_s),
    )
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
    // The watches of Gateways and of what they own.
    let mut gateway_errors = WatchErrors::new("Gateway, Deployment, ConfigMap or ServiceAccount");
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
                match e {
                    controller::Error::QueueError(e) => gateway_errors.report(&e),
                    e => tracing::debug!(error = %e, "controller event"),
                }
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
    let mut class_errors = WatchErrors::new("GatewayClass");
    let classes_loop = classes_controller
        .graceful_shutdown_on(stop(rx.clone()))
        .run(reconcile_class, class_error_policy, ctx.clone())
        .for_each(move |r| {
            if let Err(controller::Error::QueueError(e)) = r {
                class_errors.report(&e);
            }
            async {}
        });
    // kube's Controller holds its runner until its store is complete and does not notice a
    // graceful shutdown meanwhile (the store's watch is no longer driven, so it would wait
    // forever). A stop before every cache is complete has no reconcile in flight that could
    // be waited for: the loops are dropped at once.
    let complete = ctx.caches_complete.subscribe();
    let stopped = stop(rx.clone());
    let early_stop = async move {
        stopped.await;
        if *complete.borrow() {
            std::future::pending::<()>().await;
        }
        tracing::debug!("stopped before the caches were complete");
    };
    // In this task, beside the controllers: kube's runners wait on the same stores, and a
    // wake-up of this task polls them all.
    let first_listing = first_listing(ctx.clone(), class_store);
    let sweeper = sweeper(ctx, rx);
    tokio::select! {
        _ = async { tokio::join!(gateways_loop, classes_loop, sweeper, first_listing) } => {}
        _ = early_stop => {}
    }
}
