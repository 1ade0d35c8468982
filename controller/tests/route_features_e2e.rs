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

use crate::common;

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

/// An HTTP/2-only (h2c) gRPC-style upstream: answers every call with the request message,
/// `grpc-status: 0` in the trailers, and headers naming itself and what it saw (HTTP
/// version, path, `x-env`).
async fn grpc_upstream(name: &'static str) -> SocketAddr {
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| async move {
                        use http_body_util::BodyExt;
                        let version = format!("{:?}", req.version());
                        let path = req.uri().path().to_string();
                        let env = req
                            .headers()
                            .get("x-env")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(Frame::data(body)),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let resp = hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("x-upstream", name)
                            .header("x-upstream-version", version)
                            .header("x-upstream-path", path)
                            .header("x-upstream-env", env)
                            .body(http_body_util::StreamBody::new(futures::stream::iter(
                                frames,
                            )))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(resp)
                    },
                );
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// One gRPC call's outcome: status, response headers, message, trailers.
struct Call {
    status: u16,
    headers: http::HeaderMap,
    message: bytes::Bytes,
    trailers: Option<http::HeaderMap>,
}

/// An h2c (prior knowledge) connection to the proxy.
async fn h2c(
    addr: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// A unary gRPC call (`POST /{service}/{method}`, one length-prefixed message).
async fn grpc_call(
    send: &mut hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    authority: &str,
    path: &str,
    tenant: &str,
    msg: &bytes::Bytes,
) -> Call {
    use http_body_util::BodyExt;
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("x-tenant", tenant)
        .body(http_body_util::Full::new(msg.clone()))
        .unwrap();
    send.ready().await.unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    Call {
        status,
        headers,
        message: collected.to_bytes(),
        trailers,
    }
}

#[tokio::test]
async fn proxy_serves_a_grpc_route_over_h2c_after_apply() {
    let bin = tokio::task::spawn_blocking(switchboard_binary)
        .await
        .unwrap();
    let cluster = TestCluster::start().await;
    let ns = cluster.namespace("sb-grpc").await;
    let class = ns.clone();
    let (a, b) = (grpc_upstream("a").await, grpc_upstream("b").await);
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
    ] {
        cluster.create(doc).await;
    }
    let cp = ControlPlane::start(cluster.client.clone(), Authenticator::Disabled).await;
    let boot = cp.first_config(&ns, "edge").await;
    let proxy = Proxy::start(&bin, &cp, &ns, "edge", &boot, "unused").await;
    let addr = proxy.addrs.listeners.values().next().unwrap().to_string();
    let mut send = h2c(&addr).await;
    let msg = bytes::Bytes::from_static(b"\x00\x00\x00\x00\x05hello");

    let started = Instant::now();
    cluster
        .create(json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
            "metadata": {"name": "g", "namespace": ns},
            "spec": {"parentRefs": [{"name": "edge"}], "hostnames": ["grpc.example.com"],
                     "rules": [
                {"matches": [{"method": {"service": "echo.Echo", "method": "Say"},
                              "headers": [{"name": "x-tenant", "value": "t1"}]}],
                 "filters": [
                    {"type": "RequestHeaderModifier",
                     "requestHeaderModifier": {"set": [{"name": "x-env", "value": "prod"}]}},
                    {"type": "ResponseHeaderModifier",
                     "responseHeaderModifier": {"add": [{"name": "x-served-by", "value": "switchboard"}]}}],
                 "backendRefs": [backend_ref("a", Some(80)), backend_ref("b", Some(20))]},
                {"matches": [{"method": {"service": "echo.Echo"}}],
                 "backendRefs": [backend_ref("b", None)]}]}
        }))
        .await;
    let host = "grpc.example.com";
    served_after("GRPCRoute", started, || {
        let mut send = send.clone();
        let msg = msg.clone();
        async move {
            grpc_call(&mut send, host, "/echo.Echo/Say", "t1", &msg)
                .await
                .status
                == 200
        }
    })
    .await;

    // The method match, the header filters, HTTP/2 upstream, message and trailers; and the
    // weighted split.
    let (mut to_a, mut to_b) = (0, 0);
    for _ in 0..200 {
        let c = grpc_call(&mut send, host, "/echo.Echo/Say", "t1", &msg).await;
        assert_eq!(c.status, 200);
        assert_eq!(c.message, msg);
        assert_eq!(c.trailers.as_ref().unwrap()["grpc-status"], "0");
        assert_eq!(c.headers["x-upstream-version"], "HTTP/2.0");
        assert_eq!(c.headers["x-upstream-path"], "/echo.Echo/Say");
        assert_eq!(c.headers["x-upstream-env"], "prod");
        assert_eq!(c.headers["x-served-by"], "switchboard");
        match c.headers["x-upstream"].to_str().unwrap() {
            "a" => to_a += 1,
            _ => to_b += 1,
        }
    }
    println!("route features: GRPCRoute split 80/20 over 200 calls: a {to_a}, b {to_b}");
    assert!((20..=60).contains(&to_b), "a {to_a}, b {to_b}");
    // Another tenant misses the first rule's header match; another method of the service
    // gets the service-wide rule; another service and another host get no route.
    let c = grpc_call(&mut send, host, "/echo.Echo/Say", "t2", &msg).await;
    assert_eq!(
        (c.status, c.headers["x-upstream"].to_str().unwrap()),
        (200, "b")
    );
    assert!(c.headers.get("x-served-by").is_none());
    let c = grpc_call(&mut send, host, "/echo.Echo/Shout", "t1", &msg).await;
    assert_eq!(
        (c.status, c.headers["x-upstream-path"].to_str().unwrap()),
        (200, "/echo.Echo/Shout")
    );
    assert_eq!(c.headers["x-upstream"], "b");
    for other in ["/other.Svc/Say", "/echo.EchoX/Say"] {
        assert_eq!(
            grpc_call(&mut send, host, other, "t1", &msg).await.status,
            404,
            "{other}"
        );
    }
    assert_eq!(
        grpc_call(&mut send, "other.example.com", "/echo.Echo/Say", "t1", &msg)
            .await
            .status,
        404
    );

    // Status on the API server: the route is accepted, the listener lists GRPCRoute.
    let grpc_routes = Api::<switchboard_controller::gateway_api::GRPCRoute>::namespaced(
        cluster.client.clone(),
        &ns,
    );
    let conds = eventually_async("GRPCRoute status", Duration::from_secs(20), || async {
        let r = grpc_routes.get("g").await.ok()?;
        let p = r
            .status?
            .parents
            .into_iter()
            .find(|p| p.controller_name == CONTROLLER_NAME)?;
        Some(
            p.conditions
                .into_iter()
                .map(|c| (c.type_, c.status, c.reason))
                .collect::<Vec<_>>(),
        )
    })
    .await;
    assert!(
        conds.contains(&("Accepted".into(), "True".into(), "Accepted".into())),
        "{conds:?}"
    );
    assert!(
        conds.contains(&("ResolvedRefs".into(), "True".into(), "ResolvedRefs".into())),
        "{conds:?}"
    );
    let gws = Api::<switchboard_controller::gateway_api::Gateway>::namespaced(
        cluster.client.clone(),
        &ns,
    );
    let kinds = eventually_async("listener status", Duration::from_secs(20), || async {
        let g = gws.get("edge").await.ok()?;
        let l = g.status?.listeners.into_iter().next()?;
        (l.attached_routes == 1).then_some(l.supported_kinds)
    })
    .await;
    assert!(kinds.iter().any(|k| k.kind == "GRPCRoute"), "{kinds:?}");
    drop(proxy);
    drop(cp);
}

/// Without the GRPCRoute CRD (an older Gateway API install) the controller leaves GRPCRoutes
/// out and renders HTTPRoutes as before, instead of waiting forever for a watch that cannot
/// list. Also: a listener's namespace selector follows namespace labels as they change.
#[tokio::test]
async fn without_the_grpcroute_crd_httproutes_still_render() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cluster = TestCluster::start().await;
    if !cluster.is_real() {
        println!("skipped: CRDs cannot be removed from the fake API server");
        return;
    }
    let crds = Api::<CustomResourceDefinition>::all(cluster.client.clone());
    crds.delete("grpcroutes.gateway.networking.k8s.io", &Default::default())
        .await
        .unwrap();
    let ar = kube::api::ApiResource::erase::<switchboard_controller::gateway_api::GRPCRoute>(&());
    let grpc = Api::<kube::api::DynamicObject>::all_with(cluster.client.clone(), &ar);
    eventually_async(
        "the GRPCRoute API to go",
        Duration::from_secs(30),
        || async {
            match grpc.list(&Default::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => Some(()),
                _ => None,
            }
        },
    )
    .await;
    let ns = cluster.namespace("sb-nogrpc").await;
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": ns}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "listeners": [
                            {"name": "http", "port": 8080, "protocol": "HTTP"},
                            {"name": "selected", "port": 8081, "protocol": "HTTP",
                             "allowedRoutes": {"namespaces": {"from": "Selector",
                                 "selector": {"matchLabels": {"routes": "welcome"}}}}}]}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "a", "namespace": ns},
               "spec": {"static": {"host": "127.0.0.1", "port": 9}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "r", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge", "sectionName": "http"}],
                        "rules": [{"matches": prefix("/base"), "backendRefs": [backend_ref("a", None)]}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "sel", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge", "sectionName": "selected"}],
                        "rules": [{"matches": prefix("/sel"), "backendRefs": [backend_ref("a", None)]}]}}),
    ] {
        cluster.create(doc).await;
    }
    let cp = ControlPlane::start(cluster.client.clone(), Authenticator::Disabled).await;
    let config = cp.first_config(&ns, "edge").await;
    assert!(config.contains(&format!("{ns}.r.0.0")), "{config}");

    // A namespace selector follows the namespace's labels (watched): not labelled, the
    // route is not allowed; labelled, it attaches.
    let routes = Api::<HTTPRoute>::namespaced(cluster.client.clone(), &ns);
    let refused = eventually_async("selector refusal", Duration::from_secs(20), || {
        route_condition(&routes, "sel", "Accepted")
    })
    .await;
    assert_eq!(
        refused,
        ("False".to_string(), "NotAllowedByListeners".to_string())
    );
    Api::<k8s_openapi::api::core::v1::Namespace>::all(cluster.client.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"routes": "welcome"}}})),
        )
        .await
        .unwrap();
    eventually_async(
        "selector admits the labelled namespace",
        Duration::from_secs(20),
        || async {
            route_condition(&routes, "sel", "Accepted")
                .await
                .filter(|c| c.0 == "True")
        },
    )
    .await;
    assert!(
        cp.hub
            .current(&ns, "edge")
            .unwrap()
            .config
            .contains(&format!("{ns}.sel.0.0"))
    );
    let accepted = eventually_async("route status", Duration::from_secs(20), || {
        route_condition(&routes, "r", "Accepted")
    })
    .await;
    assert_eq!(accepted, ("True".to_string(), "Accepted".to_string()));
    drop(cp);
}
