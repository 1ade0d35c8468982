//! HTTPRoute features end to end: HTTPRoute changes applied to the API server (the real one
//! when `SWITCHBOARD_TEST_APISERVER=real`) reach a real `switchboard run --control-plane`
//! process through the controller's push stream, and it serves them correctly: a weighted
//! split over two real upstreams, a `URLRewrite` (ReplacePrefixMatch and hostname; the
//! upstream sees the rewritten path and Host) and a `RequestRedirect` (status and Location).
//! The time from each apply to serving is printed (the issue's target is 1 s; the assertion is
//! a generous 5 s, as timing belongs to the benchmark harness). The route's status on the API
//! server says Accepted and ResolvedRefs, and BackendNotFound for a missing backend.
//!
//! The push stream is HTTPS with a generated CA; its TokenReview check is not exercised here
//! (a real API server mints no ServiceAccount tokens; push_e2e tests it).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::*;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use switchboard_controller::gateway_api::HTTPRoute;
use switchboard_controller::push::Authenticator;
use switchboard_controller::render::CONTROLLER_NAME;

/// An upstream that answers with its name, and the path, query and Host it saw.
async fn upstream(name: &'static str) -> SocketAddr {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, h: HeaderMap| async move {
        axum::Json(json!({
            "name": name,
            "path": uri.path(),
            "query": uri.query(),
            "host": h.get("host").and_then(|v| v.to_str().ok()),
        }))
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// The upstream's answer to GET `url`, if it got through the proxy.
async fn seen(c: &reqwest::Client, url: &str) -> Option<Value> {
    let r = c.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// Polls `f` until it holds and returns how long that took since `started` (panics after
/// 20 s).
async fn served_after<F, Fut>(what: &str, started: Instant, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        if f().await {
            let took = started.elapsed();
            println!("route features: {what}: apply to serving took {took:?} (target 1 s)");
            assert!(
                took <= Duration::from_secs(5),
                "{what}: {took:?} from apply to serving"
            );
            return took;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{what}: not served 20 s after apply"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn backend_ref(name: &str, weight: Option<i32>) -> Value {
    let mut r = json!({"group": "switchboard.dev", "kind": "Backend", "name": name});
    if let Some(w) = weight {
        r["weight"] = json!(w);
    }
    r
}

fn prefix(p: &str) -> Value {
    json!([{"path": {"type": "PathPrefix", "value": p}}])
}

/// The route's status condition `type_` for our controller, as (status, reason).
async fn route_condition(
    api: &Api<HTTPRoute>,
    name: &str,
    type_: &str,
) -> Option<(String, String)> {
    let r = api.get(name).await.ok()?;
    let p = r
        .status?
        .parents
        .into_iter()
        .find(|p| p.controller_name == CONTROLLER_NAME)?;
    let c = p.conditions.into_iter().find(|c| c.type_ == type_)?;
    Some((c.status, c.reason))
}

#[tokio::test]
async fn proxy_serves_split_rewrite_and_redirect_after_each_apply() {
    let bin = tokio::task::spawn_blocking(switchboard_binary)
        .await
        .unwrap();
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace("sb-features").await;
    let class = ns.clone();
    let (a, b) = (upstream("a").await, upstream("b").await);
    let port = free_port();
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": class}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": class,
                        "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "a", "namespace": ns},
               "spec": {"static": {"host": "127.0.0.1", "port": a.port()}}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "b", "namespace": ns},
               "spec": {"static": {"host": "127.0.0.1", "port": b.port()}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "r", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge"}],
                        "rules": [{"matches": prefix("/base"), "backendRefs": [backend_ref("a", None)]}]}}),
    ] {
        cluster.create(doc).await;
    }

    let cp = ControlPlane::start(cluster.client.clone(), Authenticator::Disabled).await;
    let boot = cp.first_config(&ns, "edge").await;
    let proxy = Proxy::start(&bin, &cp, &ns, "edge", &boot, "unused").await;
    let base = proxy.base();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let boot_url = format!("{base}/base/x");
    let v = eventually_async("the boot route", Duration::from_secs(20), || {
        seen(&http, &boot_url)
    })
    .await;
    assert_eq!(v["name"], "a");

    let routes = Api::<HTTPRoute>::namespaced(cluster.client.clone(), &ns);
    let base_rule = json!({"matches": prefix("/base"), "backendRefs": [backend_ref("a", None)]});
    let mut rules = vec![base_rule];
    let apply = |rules: Vec<Value>| {
        let routes = routes.clone();
        async move {
            let started = Instant::now();
            routes
                .patch(
                    "r",
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"rules": rules}})),
                )
                .await
                .unwrap();
            started
        }
    };

    // 1. A weighted split, 80/20 over a and b.
    rules.push(json!({"matches": prefix("/split"),
                      "backendRefs": [backend_ref("a", Some(80)), backend_ref("b", Some(20))]}));
    let started = apply(rules.clone()).await;
    served_after("weighted split", started, || async {
        seen(&http, &format!("{base}/split/x")).await.is_some()
    })
    .await;
    let (mut to_a, mut to_b) = (0, 0);
    for i in 0..200 {
        let v = seen(&http, &format!("{base}/split/{i}")).await.unwrap();
        assert_eq!(v["path"], format!("/split/{i}"));
        match v["name"].as_str() {
            Some("a") => to_a += 1,
            Some("b") => to_b += 1,
            other => panic!("unexpected upstream {other:?}"),
        }
    }
    println!("route features: split 80/20 over 200 requests: a {to_a}, b {to_b}");
    // Binomial(200, 0.2): mean 40, standard deviation 5.7; 40 ± 20 is 3.5 deviations, and
    // excludes an even split (100) or no split (0).
    assert!((20..=60).contains(&to_b), "a {to_a}, b {to_b}");

    // 2. URLRewrite: ReplacePrefixMatch and hostname.
    rules.push(json!({"matches": prefix("/old-api"),
                      "filters": [{"type": "URLRewrite", "urlRewrite": {
                          "hostname": "rewritten.example",
                          "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new-api"}}}],
                      "backendRefs": [backend_ref("b", None)]}));
    let started = apply(rules.clone()).await;
    served_after("URLRewrite", started, || async {
        seen(&http, &format!("{base}/old-api/items/7?q=1"))
            .await
            .is_some()
    })
    .await;
    let v = seen(&http, &format!("{base}/old-api/items/7?q=1"))
        .await
        .unwrap();
    assert_eq!(v["name"], "b");
    assert_eq!(v["path"], "/new-api/items/7");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["host"], "rewritten.example");

    // 3. RequestRedirect: scheme, hostname, path and status.
    rules.push(json!({"matches": prefix("/moved"),
                      "filters": [{"type": "RequestRedirect", "requestRedirect": {
                          "scheme": "https", "hostname": "new.example", "statusCode": 301,
                          "path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/here"}}}]}));
    let started = apply(rules.clone()).await;
    let redirected = || async {
        let r = http
            .get(format!("{base}/moved/a/b?z=1"))
            .send()
            .await
            .ok()?;
        Some((
            r.status().as_u16(),
            r.headers().get("location")?.to_str().ok()?.to_string(),
        ))
    };
    served_after("RequestRedirect", started, || async {
        redirected().await.is_some()
    })
    .await;
    assert_eq!(
        redirected().await,
        Some((301, "https://new.example/here/a/b?z=1".to_string()))
    );

    // Everything before keeps being served.
    assert_eq!(
        seen(&http, &format!("{base}/base/y")).await.unwrap()["name"],
        "a"
    );

    // The route's status on the API server: accepted, references resolved.
    let accepted = eventually_async("route status", Duration::from_secs(20), || async {
        let ok = route_condition(&routes, "r", "Accepted").await?;
        let refs = route_condition(&routes, "r", "ResolvedRefs").await?;
        (ok.0 == "True" && refs.0 == "True").then_some((ok, refs))
    })
    .await;
    assert_eq!(accepted.0.1, "Accepted");
    assert_eq!(accepted.1.1, "ResolvedRefs");

    // A rule naming a missing Backend: ResolvedRefs=False, BackendNotFound; the rest is
    // still served.
    rules.push(json!({"matches": prefix("/gone"), "backendRefs": [backend_ref("gone", None)]}));
    apply(rules.clone()).await;
    let refs = eventually_async("BackendNotFound", Duration::from_secs(20), || async {
        route_condition(&routes, "r", "ResolvedRefs")
            .await
            .filter(|c| c.0 == "False")
    })
    .await;
    assert_eq!(refs.1, "BackendNotFound");
    assert_eq!(
        route_condition(&routes, "r", "Accepted").await.unwrap().0,
        "True"
    );
    assert_eq!(
        seen(&http, &format!("{base}/split/z")).await.unwrap()["path"],
        "/split/z"
    );
    drop(proxy);
    drop(cp);
}
