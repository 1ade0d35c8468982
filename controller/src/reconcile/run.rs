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
