//! Reconciler tests against a mocked API (`tower_test`), as kube-rs's controller-rs does: the
//! exact request sequence of a reconcile — apply children, prune, patch status — and the
//! sequence for a Gateway that is not ours (prune everything, write nothing).

use std::sync::Arc;

use http::{Request, Response};
use k8s_openapi::api::core::v1::Service;
use kube::api::{ApiResource, DynamicObject};
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::Event;
use kube::{Client, Resource};
use serde_json::{Value, json};
use switchboard_controller::crd::{Backend, GatewayParameters, Policy};
use switchboard_controller::gateway_api::{Gateway, GatewayClass, HTTPRoute, ReferenceGrant};
use switchboard_controller::push::ConfigHub;
use switchboard_controller::reconcile::{Context, Stores, reconcile};
use switchboard_controller::render::{CONTROLLER_NAME, RenderOptions};
use tower_test::mock::{self, Handle};

fn store_of<K>(objs: Vec<K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&Event::Init);
    for o in objs {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

/// A cache of undecoded objects of kind `K`, as the reconciler keeps them.
fn dyn_store_of<K>(objs: Vec<K>) -> Store<DynamicObject>
where
    K: Resource<DynamicType = ()> + Clone + serde::Serialize + 'static,
{
    let mut writer = reflector::store::Writer::new(ApiResource::erase::<K>(&()));
    let store = writer.as_reader();
    let objs: Vec<DynamicObject> = objs
        .into_iter()
        .map(|o| serde_json::from_value(serde_json::to_value(o).unwrap()).unwrap())
        .collect();
    writer.apply_watcher_event(&Event::Init);
    for o in objs {
        writer.apply_watcher_event(&Event::InitApply(o));
    }
    writer.apply_watcher_event(&Event::InitDone);
    store
}

fn from<T: serde::de::DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn gateway(class: &str) -> Gateway {
    from(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "ns", "uid": "gw-uid", "generation": 3},
        "spec": {"gatewayClassName": class, "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]}
    }))
}

fn classes() -> Vec<GatewayClass> {
    vec![
        from::<GatewayClass>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "sb"}, "spec": {"controllerName": CONTROLLER_NAME}})),
        from::<GatewayClass>(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "not-ours"}, "spec": {"controllerName": "example.com/other"}})),
    ]
}

fn context(client: Client, gw: &Gateway) -> Arc<Context> {
    let ctx = context_with_classes(client, gw, dyn_store_of(classes()));
    // The stores are complete.
    ctx.mark_caches_complete();
    ctx
}

/// A context whose other caches are complete and filled, with `classes` as the GatewayClass
/// cache; not marked complete.
fn context_with_classes(
    client: Client,
    gw: &Gateway,
    classes: Store<DynamicObject>,
) -> Arc<Context> {
    let stores = Stores {
        classes,
        gateways: dyn_store_of(vec![gw.clone()]),
        grpc_routes: None,
        namespaces: None,
        routes: dyn_store_of(vec![from::<HTTPRoute>(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "ns", "generation": 1},
            "spec": {"parentRefs": [{"name": "gw"}],
                     "rules": [{"backendRefs": [{"name": "web", "port": 8080}]}]},
            "status": {"parents": [{"parentRef": {"name": "x"}, "controllerName": "example.com/other", "conditions": []}]}}))]),
        grants: dyn_store_of::<ReferenceGrant>(vec![]),
        backends: dyn_store_of::<Backend>(vec![]),
        policies: dyn_store_of::<Policy>(vec![]),
        parameters: dyn_store_of::<GatewayParameters>(vec![]),
        services: store_of(vec![from::<Service>(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ns"}, "spec": {"ports": [{"port": 8080}]}}))]),
        secrets: store_of(vec![]),
    };
    let mut ctx = Context::new(client, stores, ConfigHub::new(), RenderOptions::default());
    ctx.now = Arc::new(|| "2026-11-26T00:00:00Z".to_string());
    Arc::new(ctx)
}

fn dynamic(gw: &Gateway) -> DynamicObject {
    serde_json::from_value(serde_json::to_value(gw).unwrap()).unwrap()
}

type H = Handle<Request<Body>, Response<Body>>;

/// Takes the next request, checks method and path (query included), answers `reply`, and
/// returns the request body as JSON (Null when empty).
async fn expect(h: &mut H, method: &str, path_and_query: &str, reply: Value) -> Value {
    let (req, send) = h.next_request().await.expect("another request");
    assert_eq!(req.method().as_str(), method, "for {}", req.uri());
    let got = req.uri().path_and_query().unwrap().to_string();
    assert_eq!(got, path_and_query);
    let body = req.into_body().collect_bytes().await.unwrap();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    send.send_response(
        Response::builder()
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    body
}

fn list(kind: &str, names: &[&str]) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
           "metadata": {"resourceVersion": "1"},
           "items": names.iter().map(|n| json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                                 "metadata": {"name": n, "namespace": "ns", "labels": {"kind": kind},
                                                              "ownerReferences": [{"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "name": "gw", "uid": "gw-uid"}]}})).collect::<Vec<_>>()})
}

const APPLY: &str = "?&force=true&fieldManager=switchboard-controller";
const SELECTOR: &str = "?&labelSelector=switchboard.dev%2Fgateway%3Dgw";

#[tokio::test]
async fn reconcile_applies_children_prunes_then_patches_status() {
    let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let gw = gateway("sb");
    let ctx = context(client, &gw);
    let hub = ctx.hub.clone();
    let task = tokio::spawn(reconcile(Arc::new(dynamic(&gw)), ctx));

    let sa = expect(&mut h, "PATCH", &format!("/api/v1/namespaces/ns/serviceaccounts/gw{APPLY}"), json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "gw", "namespace": "ns"}})).await;
    assert_eq!(sa["metadata"]["ownerReferences"][0]["uid"], "gw-uid");
    let cm = expect(&mut h, "PATCH", &format!("/api/v1/namespaces/ns/configmaps/gw{APPLY}"), json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gw", "namespace": "ns"}})).await;
    let yaml = cm["data"]["config.yaml"].as_str().unwrap();
    assert!(
        yaml.contains("url: http://web.ns.svc.cluster.local:8080"),
        "{yaml}"
    );
    let svc_body = expect(
        &mut h,
        "PATCH",
        &format!("/api/v1/namespaces/ns/services/gw{APPLY}"),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "gw", "namespace": "ns"},
               "spec": {"type": "LoadBalancer"},
               "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.4"}]}}}),
    )
    .await;
    assert_eq!(svc_body["spec"]["ports"][0]["port"], 80);
    let dep = expect(&mut h, "PATCH", &format!("/apis/apps/v1/namespaces/ns/deployments/gw{APPLY}"), json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw", "namespace": "ns"}, "spec": {"selector": {}, "template": {}}})).await;
    assert!(
        dep["spec"].get("replicas").is_none(),
        "no replicas: an HPA may own them"
    );
    assert_eq!(
        dep["spec"]["template"]["metadata"]["annotations"]["switchboard.dev/config-checksum"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    // Prune: a stale Deployment labelled for this Gateway goes; the wanted children stay.
    expect(
        &mut h,
        "GET",
        &format!("/apis/apps/v1/namespaces/ns/deployments{SELECTOR}"),
        list("Deployment", &["gw", "gw-old"]),
    )
    .await;
    expect(&mut h, "DELETE", "/apis/apps/v1/namespaces/ns/deployments/gw-old?", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw-old", "namespace": "ns"}, "spec": {"selector": {}, "template": {}}})).await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/services{SELECTOR}"),
        list("Service", &["gw"]),
    )
    .await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/configmaps{SELECTOR}"),
        list("ConfigMap", &["gw"]),
    )
    .await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/serviceaccounts{SELECTOR}"),
        list("ServiceAccount", &["gw"]),
    )
    .await;

    // Status: Gateway, then the route's parents (the other controller's entry kept).
    let st = expect(&mut h, "PATCH", "/apis/gateway.networking.k8s.io/v1/namespaces/ns/gateways/gw/status?", json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "gw"}, "spec": {"gatewayClassName": "sb"}})).await;
    let s = &st["status"];
    assert_eq!(
        s["addresses"],
        json!([{"type": "IPAddress", "value": "198.51.100.4"}])
    );
    let conds: Vec<(String, String, String)> = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["type"].as_str().unwrap().into(),
                c["status"].as_str().unwrap().into(),
                c["reason"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        conds,
        vec![
            ("Accepted".into(), "True".into(), "Accepted".into()),
            ("Programmed".into(), "True".into(), "Programmed".into())
        ]
    );
    assert_eq!(s["conditions"][0]["observedGeneration"], 3);
    assert_eq!(s["listeners"][0]["attachedRoutes"], 1);
    let rs = expect(&mut h, "PATCH", "/apis/gateway.networking.k8s.io/v1/namespaces/ns/httproutes/r/status?", json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "r"}, "spec": {}})).await;
    let parents = rs["status"]["parents"].as_array().unwrap();
    assert_eq!(parents.len(), 2);
    assert_eq!(parents[0]["controllerName"], "example.com/other");
    assert_eq!(parents[1]["controllerName"], CONTROLLER_NAME);
    assert_eq!(parents[1]["conditions"][1]["type"], "ResolvedRefs");
    assert_eq!(parents[1]["conditions"][1]["status"], "True");

    task.await.unwrap().unwrap();
    // Nothing else was sent.
    assert_no_more(&mut h).await;
    assert_eq!(hub.current("ns", "gw").unwrap().config, yaml);
}

#[tokio::test]
async fn a_gateway_of_another_class_loses_its_children_and_nothing_is_written() {
    let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let gw = gateway("not-ours");
    let ctx = context(client, &gw);
    let task = tokio::spawn(reconcile(Arc::new(dynamic(&gw)), ctx));
    expect(
        &mut h,
        "GET",
        &format!("/apis/apps/v1/namespaces/ns/deployments{SELECTOR}"),
        list("Deployment", &["gw"]),
    )
    .await;
    expect(&mut h, "DELETE", "/apis/apps/v1/namespaces/ns/deployments/gw?", json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "gw", "namespace": "ns"}, "spec": {"selector": {}, "template": {}}})).await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/services{SELECTOR}"),
        list("Service", &[]),
    )
    .await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/configmaps{SELECTOR}"),
        list("ConfigMap", &["gw"]),
    )
    .await;
    expect(&mut h, "DELETE", "/api/v1/namespaces/ns/configmaps/gw?", json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gw", "namespace": "ns"}})).await;
    expect(
        &mut h,
        "GET",
        &format!("/api/v1/namespaces/ns/serviceaccounts{SELECTOR}"),
        list("ServiceAccount", &[]),
    )
    .await;
    task.await.unwrap().unwrap();
    assert_no_more(&mut h).await;
}

#[tokio::test]
async fn a_reconcile_started_before_the_caches_are_complete_goes_on_once_they_are() {
    // A Gateway created while the controller starts: its reconcile begins before the
    // GatewayClass cache holds its first listing, and waits. kube's `Store::wait_until_ready`
    // wakes only the waiter that polled it last, so with a second waiter on the stores (the
    // controller's one, below, as the sweep was) a reconcile that waited on the stores itself
    // was never woken and the Gateway never got a status.
    let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let gw = gateway("sb");
    let mut writer = reflector::store::Writer::new(ApiResource::erase::<GatewayClass>(&()));
    let ctx = context_with_classes(client, &gw, writer.as_reader());
    let task = tokio::spawn(reconcile(Arc::new(dynamic(&gw)), ctx.clone()));
    tokio::task::yield_now().await;
    let waiter = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            let waiting = std::sync::Mutex::new(Vec::new());
            ctx.stores.wait_until_ready(&waiting).await;
            ctx.mark_caches_complete();
        }
    });
    tokio::task::yield_now().await;
    // Nothing is decided on a partial view.
    assert_no_more(&mut h).await;

    writer.apply_watcher_event(&Event::Init);
    for c in classes() {
        let c: DynamicObject = serde_json::from_value(serde_json::to_value(c).unwrap()).unwrap();
        writer.apply_watcher_event(&Event::InitApply(c));
    }
    writer.apply_watcher_event(&Event::InitDone);
    // It goes on: its first write is the ServiceAccount.
    let (req, _send) = tokio::time::timeout(std::time::Duration::from_secs(10), h.next_request())
        .await
        .expect("the reconcile went on once the caches were complete")
        .expect("a request");
    assert!(
        req.uri().path().ends_with("/serviceaccounts/gw"),
        "{}",
        req.uri()
    );
    waiter.await.unwrap();
    task.abort();
}

#[tokio::test]
async fn a_gateway_whose_class_is_not_cached_is_left_alone() {
    // The restart race: the Gateway is cached, its GatewayClass not (yet, or not at all).
    // Not provably someone else's, so nothing is deleted and nothing written.
    let (svc, mut h) = mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(svc, "default");
    let gw = gateway("unknown-class");
    let ctx = context(client, &gw);
    reconcile(Arc::new(dynamic(&gw)), ctx).await.unwrap();
    assert_no_more(&mut h).await;
}

/// No further request: the client is gone (Ok(None)) or nothing arrives.
async fn assert_no_more(h: &mut H) {
    let next = tokio::time::timeout(std::time::Duration::from_millis(50), h.next_request()).await;
    if let Ok(Some((req, _))) = next {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}
