//! Gateway API route features of the `http` backend and the `redirect` action against real
//! sockets: weighted upstreams, path and host rewrites, redirects, request mirroring, regex
//! and query matches, retries, and an HTTP/2 (h2c) upstream carrying a gRPC-style exchange.

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::any;
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::net::TcpListener;

/// An upstream answering every request with its `name` as the body.
async fn named(name: &'static str) -> SocketAddr {
    serve(Router::new().fallback(any(move || async move { name }))).await
}

async fn serve(router: Router) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, router).await;
    });
    addr
}

fn with(yaml: &str, vars: &[(&str, SocketAddr)]) -> String {
    let mut y = yaml.to_string();
    for (k, v) in vars {
        y = y.replace(&format!("${{{k}}}"), &v.to_string());
    }
    y
}

#[tokio::test]
async fn weighted_upstreams_share_traffic_by_weight() {
    let (a, b, c) = (named("a").await, named("b").await, named("c").await);
    let yaml = with(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: split
        http:
          upstreams:
            - {url: "http://${A}", weight: 3}
            - {url: "http://${B}"}
            - {url: "http://${C}", weight: 0}
"#,
        &[("A", a), ("B", b), ("C", c)],
    );
    let gw = gateway(&yaml, a).await;
    let base = base(&gw, "main").await;
    let client = client();
    let mut seen: HashMap<String, usize> = HashMap::new();
    const N: usize = 400;
    for _ in 0..N {
        let body = client.get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(body.status(), 200);
        *seen.entry(body.text().await.unwrap()).or_default() += 1;
    }
    let (na, nb) = (
        seen.get("a").copied().unwrap_or(0),
        seen.get("b").copied().unwrap_or(0),
    );
    // Expected 300 / 100; the bounds are many standard deviations (~8.7) wide.
    assert!((220..=380).contains(&na), "a got {na} of {N}: {seen:?}");
    assert!((20..=180).contains(&nb), "b got {nb} of {N}: {seen:?}");
    assert_eq!(seen.get("c"), None, "weight 0 gets no traffic: {seen:?}");
}

const REWRITES: &str = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: full
        match: {path_prefix: /full}
        http: {url: "http://${UPSTREAM}", rewrite: {path: {full: /echo/replaced}}}
      - name: prefix
        match: {path_prefix: /v1}
        http: {url: "http://${UPSTREAM}", rewrite: {path: {prefix: /echo/v2}, host: api.internal}}
      - name: moved
        match: {path_prefix: /old}
        redirect: {scheme: https, host: new.example, path: {prefix: /new}, status: 301}
      - name: same-host
        match: {path: /here}
        redirect: {port: 8443}
      - name: found
        match: {path_prefix: /found}
        redirect: {path: {full: /elsewhere}}
"#;

#[tokio::test]
async fn rewrites_path_and_host() {
    let up = upstream().await;
    let gw = gateway(REWRITES, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let v: Value = c
        .get(format!("{base}/full/a/b?q=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/echo/replaced");
    assert_eq!(v["query"], "q=1");
    let v: Value = c
        .get(format!("{base}/v1/items/7"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["path"], "/echo/v2/items/7");
    assert_eq!(v["headers"]["host"], "api.internal");
}

#[tokio::test]
async fn redirects_with_location_and_status() {
    let up = upstream().await;
    let gw = gateway(REWRITES, up).await;
    let base = base(&gw, "main").await;
    let port = gw.listener_addr("main").await.unwrap().port();
    let c = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = c.get(format!("{base}/old/x/y?z=1")).send().await.unwrap();
    assert_eq!(r.status(), 301);
    assert_eq!(r.headers()["location"], "https://new.example/new/x/y?z=1");
    let r = c.get(format!("{base}/here")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:8443/here");
    let r = c.post(format!("{base}/found/a")).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"],
        format!("http://127.0.0.1:{port}/elsewhere").as_str()
    );
}

#[tokio::test]
async fn mirror_gets_a_copy_and_the_client_the_main_answer() {
    let up = upstream().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Bytes)>();
    let mirror = serve(Router::new().fallback(any(move |req: Request| {
        let tx = tx.clone();
        async move {
            let path = req.uri().to_string();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = tx.send((path, body));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the mirror's answer is discarded",
            )
        }
    })))
    .await;
    let yaml = with(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: mirrored
        http: {url: "http://${UPSTREAM}", mirror: {url: "http://${MIRROR}"}}
"#,
        &[("MIRROR", mirror)],
    );
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let body = "x".repeat(100_000);
    let r = c
        .post(format!("{base}/echo/m?k=v"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["body_bytes"], 100_000);
    let (path, copy) = rx.recv().await.unwrap();
    assert_eq!(path, "/echo/m?k=v");
    assert_eq!(copy.len(), 100_000);
    // A request without a body is mirrored too.
    let r = c.get(format!("{base}/echo/g")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (path, copy) = rx.recv().await.unwrap();
    assert_eq!((path.as_str(), copy.len()), ("/echo/g", 0));
}

#[tokio::test]
async fn query_and_regex_matches_route() {
    let (a, b, c, d) = (
        named("query").await,
        named("regex-path").await,
        named("regex-header").await,
        named("rest").await,
    );
    let yaml = with(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: q
        match: {path_prefix: /s, query: {tier: gold}, query_regex: {id: '[0-9]+'}}
        http: {url: "http://${A}"}
      - name: rp
        match: {path_regex: '/users/[0-9]+/profile'}
        http: {url: "http://${B}"}
      - name: rh
        match: {headers_regex: {x-client: 'mobile-(ios|android)'}}
        http: {url: "http://${C}"}
      - name: rest
        http: {url: "http://${D}"}
"#,
        &[("A", a), ("B", b), ("C", c), ("D", d)],
    );
    let gw = gateway(&yaml, a).await;
    let base = base(&gw, "main").await;
    let cl = client();
    let get = |path: &str, hdr: Option<&str>| {
        let mut r = cl.get(format!("{base}{path}"));
        if let Some(h) = hdr {
            r = r.header("x-client", h);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(get("/s?tier=gold&id=12", None).await, "query");
    assert_eq!(get("/s?tier=gold&id=x", None).await, "rest");
    assert_eq!(get("/s?tier=silver&id=1", None).await, "rest");
    assert_eq!(get("/users/42/profile", None).await, "regex-path");
    assert_eq!(get("/users/42/profile/x", None).await, "rest");
    assert_eq!(get("/a", Some("mobile-ios")).await, "regex-header");
    assert_eq!(get("/a", Some("mobile-ios2")).await, "rest");
}

#[tokio::test]
async fn retries_on_503_with_a_replayed_body() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let flaky = serve(Router::new().fallback(any(move |req: Request| {
        let h = h.clone();
        async move {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            // The first two attempts fail.
            if h.fetch_add(1, Ordering::SeqCst) < 2 {
                (StatusCode::SERVICE_UNAVAILABLE, "busy".to_string())
            } else {
                (StatusCode::OK, format!("got {}", body.len()))
            }
        }
    })))
    .await;
    let yaml = with(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: once
        match: {path_prefix: /once}
        http: {url: "http://${F}"}
      - name: retried
        http: {url: "http://${F}", retries: {attempts: 2, on: [503], backoff: 1ms}}
"#,
        &[("F", flaky)],
    );
    let gw = gateway(&yaml, flaky).await;
    let base = base(&gw, "main").await;
    let c = client();
    let r = c
        .post(format!("{base}/r"))
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "got 5");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // Without `retries` the 503 is the answer.
    hits.store(0, Ordering::SeqCst);
    let r = c.get(format!("{base}/once")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // Out of attempts: the last answer stands.
    hits.store(0, Ordering::SeqCst);
    let yaml2 = yaml.replace("attempts: 2", "attempts: 1");
    let gw2 = gateway(&yaml2, flaky).await;
    let r = c
        .get(format!("{}/r", common::base(&gw2, "main").await))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
}

/// A gRPC-style exchange through the gateway: the client speaks h2c to the listener, the
/// route speaks h2c (prior knowledge) to an HTTP/2-only upstream, and the body and the
/// `grpc-status` trailer come back.
#[tokio::test]
async fn grpc_style_h2c_upstream() {
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    // An HTTP/2-only upstream: echoes the body, then trailers.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let version = format!("{:?}", req.version());
                        let path = req.uri().path().to_string();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let mut trailers = http::HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().unwrap());
                        let frames = vec![
                            Ok::<_, std::convert::Infallible>(Frame::data(body)),
                            Ok(Frame::trailers(trailers)),
                        ];
                        let resp = hyper::Response::builder()
                            .header("content-type", "application/grpc")
                            .header("x-upstream-version", version)
                            .header("x-upstream-path", path)
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
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: grpc
        match: {path_prefix: /echo.Echo}
        http: {url: "http://${UPSTREAM}", http2: true}
"#,
        up,
    )
    .await;
    let addr = gw.listener_addr("main").await.unwrap();
    let s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(s))
            .await
            .unwrap();
    tokio::spawn(conn);
    let msg = Bytes::from_static(b"\x00\x00\x00\x00\x05hello");
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/echo.Echo/Say"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(msg.clone()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream-version"], "HTTP/2.0");
    assert_eq!(resp.headers()["x-upstream-path"], "/echo.Echo/Say");
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned();
    assert_eq!(collected.to_bytes(), msg);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
}

#[test]
fn validate_refuses_nonsense() {
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: both
        match: {path: /a}
        http:
          url: http://127.0.0.1:1
          upstreams: [{url: "http://127.0.0.1:2"}]
          rewrite: {path: {prefix: /x}, host: "bad host"}
          retries: {attempts: 0, on: []}
          mirror: {url: "ftp://m", percent: 101}
      - name: redirect-and-backend
        match: {path: /b}
        http: {url: "http://127.0.0.1:1"}
        redirect: {status: 200, scheme: gopher}
      - name: bad-regex
        match: {path_regex: '(', query_regex: {q: 'a{99999999}'}}
        redirect: {path: {full: /x, prefix: /y}}
      - name: none
        match: {path: /c}
        http: {}
"#;
    let err = switchboard_gateway::config::load_str(yaml, "t.yaml", &|_| None)
        .unwrap_err()
        .to_string();
    for expected in [
        "routes[0].http.upstreams: set `url` or `upstreams`, not both",
        "routes[0].http.rewrite.path.prefix: `prefix` replaces `match.path_prefix`; this route matches `path`",
        "routes[0].http.rewrite.host: `bad host` is not a host name",
        "routes[0].http.retries.attempts: 1 to 10",
        "routes[0].http.retries.on",
        "routes[0].http.mirror.url",
        "routes[0].http.mirror.percent",
        "routes[1].redirect: a route has exactly one backend, but this one sets http and redirect",
        "routes[1].redirect.status: 200 is not 301",
        "routes[1].redirect.scheme",
        "routes[2].match.path_regex: not a valid regular expression",
        "routes[2].match.query_regex.q",
        "routes[2].redirect.path: set exactly one of `full`, `prefix`",
        "routes[3].http.url: set `url` or `upstreams`",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}
