//! The `http` backend and the request pipeline against real sockets: routing by each matcher,
//! streaming bodies, SSE, WebSocket, HTTP/2, TLS, headers, limits and error statuses.

use crate::common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures::{SinkExt, StreamExt};
use serde_json::Value;

const ROUTES: &str = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: by-header
        match: {path_prefix: /echo, headers: {x-variant: b}}
        policies:
          headers:
            request: {set: {x-routed: header}}
        http: {url: "http://${UPSTREAM}"}
      - name: by-host
        match: {path_prefix: /echo, host: "*.example.test"}
        policies:
          headers:
            request: {set: {x-routed: host}}
        http: {url: "http://${UPSTREAM}"}
      - name: by-method
        match: {path_prefix: /echo, method: DELETE}
        policies:
          headers:
            request: {set: {x-routed: method}}
        http: {url: "http://${UPSTREAM}"}
      - name: exact
        match: {path: /echo/exact}
        policies:
          headers:
            request: {set: {x-routed: exact}}
        http: {url: "http://${UPSTREAM}"}
      - name: rewritten
        match: {path_prefix: /api}
        policies:
          headers:
            request: {set: {x-routed: rewrite}, add: {x-team: ml}, remove: [cookie]}
            response: {set: {x-served-by: switchboard}}
        http: {url: "http://${UPSTREAM}/echo/base"}
      - name: prefix
        match: {path_prefix: /echo}
        policies:
          headers:
            request: {set: {x-routed: prefix}}
        http: {url: "http://${UPSTREAM}"}
      - name: rest
        match: {path_prefix: /}
        http: {url: "http://${UPSTREAM}"}
"#;

async fn echo(client: &reqwest::Client, req: reqwest::RequestBuilder) -> Value {
    let _ = client;
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn routes_by_each_matcher() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let c = client();

    let v = echo(&c, c.get(format!("{base}/echo/a")).header("x-variant", "b")).await;
    assert_eq!(v["headers"]["x-routed"], "header");
    let v = echo(
        &c,
        c.get(format!("{base}/echo/a"))
            .header("host", "api.example.test"),
    )
    .await;
    assert_eq!(v["headers"]["x-routed"], "host");
    let v = echo(&c, c.delete(format!("{base}/echo/a"))).await;
    assert_eq!(v["headers"]["x-routed"], "method");
    let v = echo(&c, c.get(format!("{base}/echo/exact?q=1"))).await;
    assert_eq!(v["headers"]["x-routed"], "exact");
    assert_eq!(v["query"], "q=1");
    let v = echo(&c, c.get(format!("{base}/echo/exact/more"))).await;
    assert_eq!(v["headers"]["x-routed"], "prefix");
    let v = echo(&c, c.post(format!("{base}/echo/x")).body("hello")).await;
    assert_eq!(v["headers"]["x-routed"], "prefix");
    assert_eq!(v["method"], "POST");
    assert_eq!(v["body_bytes"], 5);
    // `/echox` is not under the `/echo` prefix: the catch-all serves it.
    let resp = c.get(format!("{base}/echox")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "the upstream has no /echox");
}

#[tokio::test]
async fn path_rewrite_headers_and_forwarding() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let resp = c
        .get(format!("{base}/api/v1/items?x=1"))
        .header("cookie", "session=secret")
        .header("x-forwarded-for", "10.0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-served-by"], "switchboard");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/echo/base/v1/items");
    assert_eq!(v["query"], "x=1");
    assert_eq!(v["headers"]["x-team"], "ml");
    assert_eq!(v["headers"]["x-routed"], "rewrite");
    assert!(v["headers"].get("cookie").is_none(), "cookie removed: {v}");
    // The client is no trusted proxy (`trusted_proxies` unset): its X-Forwarded-For is replaced.
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.1");
    assert_eq!(v["headers"]["x-forwarded-proto"], "http");
    assert_eq!(v["headers"]["host"], up.to_string());
    assert!(
        v["headers"]["x-forwarded-host"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
}

#[tokio::test]
async fn no_route_is_a_json_404() {
    let up = upstream().await;
    let gw = gateway(
        "listeners: [{name: main, bind: '127.0.0.1:0', routes: [{name: only, match: {path: /x}, http: {url: 'http://${UPSTREAM}'}}]}]",
        up,
    )
    .await;
    let resp = client()
        .get(format!("{}/nope", base(&gw, "main").await))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found");
    assert_eq!(
        metric(
            &gw,
            r#"switchboard_requests_total{listener="main",route="none",status="404"}"#
        )
        .await,
        Some(1.0)
    );
}

/// The upstream echoes each chunk as it arrives. The client reads the echo of chunk N before
/// it sends chunk N+1, which only works if neither direction is buffered by the gateway.
#[tokio::test]
async fn request_and_response_bodies_stream_without_buffering() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let chunk = Bytes::from(vec![b'z'; 32 * 1024]);
    tx.send(Ok(chunk.clone())).await.unwrap();
    let resp = client()
        .post(format!("{base}/stream"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    for round in 0..20 {
        let mut got = 0;
        while got < chunk.len() {
            let piece = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap_or_else(|_| panic!("round {round}: echo did not arrive: body is buffered"))
                .unwrap()
                .unwrap();
            got += piece.len();
        }
        assert_eq!(got, chunk.len());
        tx.send(Ok(chunk.clone())).await.unwrap();
    }
    drop(tx);
    let mut rest = 0;
    while let Some(piece) = stream.next().await {
        rest += piece.unwrap().len();
    }
    assert_eq!(rest, chunk.len());
}

#[tokio::test]
async fn large_body_passes_through_intact() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_body_bytes: 100000000}
    routes: [{name: all, http: {url: "http://${UPSTREAM}"}}]
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    let c = client();
    let n = 48 * 1024 * 1024;
    let resp = c.get(format!("{base}/bytes?n={n}")).send().await.unwrap();
    let mut total = 0usize;
    let mut s = resp.bytes_stream();
    while let Some(b) = s.next().await {
        total += b.unwrap().len();
    }
    assert_eq!(total, n);
    let body = vec![b'q'; 24 * 1024 * 1024];
    let resp = c
        .post(format!("{base}/stream"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.bytes().await.unwrap().len(), 24 * 1024 * 1024);
}

#[tokio::test]
async fn sse_first_event_arrives_before_the_upstream_finishes() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let resp = c
        .get(format!("{base}/sse?count=3&hold=first-event"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut stream = resp.bytes_stream();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("first event must arrive while the upstream still holds the stream")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"id: 0\nevent: tick\ndata: {\"n\":0}\n\n");
    // The upstream is still holding the stream open; only now is it released.
    c.post(format!("http://{up}/release/first-event"))
        .send()
        .await
        .unwrap();
    let mut rest = Vec::new();
    while let Some(b) = stream.next().await {
        rest.extend_from_slice(&b.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(
        rest.contains("id: 1\n") && rest.contains("id: 2\n"),
        "{rest}"
    );
}

#[tokio::test]
async fn websocket_echo_through_the_proxy() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let addr = gw.listener_addr("main").await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    use tokio_tungstenite::tungstenite::Message;
    for i in 0..5 {
        ws.send(Message::Text(format!("hello {i}").into()))
            .await
            .unwrap();
        let reply = ws.next().await.unwrap().unwrap();
        assert_eq!(reply, Message::Text(format!("hello {i}").into()));
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        Message::Binary(vec![1, 2, 3].into())
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn h2c_prior_knowledge() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = c.get(format!("{base}/echo/h2")).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["path"], "/echo/h2");
    // An HTTP/2 client names the host in `:authority`, which must survive as the forwarded
    // host (not become the upstream's address).
    let authority = base.trim_start_matches("http://");
    assert_eq!(v["headers"]["x-forwarded-host"], authority, "{v}");
}

#[tokio::test]
async fn tls_with_alpn_h2_and_http1() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(dir.path().join("gw.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.path().join("gw.key"), cert.signing_key.serialize_pem()).unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: tls
    bind: 127.0.0.1:0
    tls: {{cert: "{0}/gw.pem", key: "{0}/gw.key"}}
    routes: [{{name: all, http: {{url: "http://${{UPSTREAM}}"}}}}]
"#,
        dir.path().display()
    );
    let gw = gateway(&yaml, up).await;
    let port = gw.listener_addr("tls").await.unwrap().port();
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    for http1 in [false, true] {
        let mut b = reqwest::Client::builder()
            .no_proxy()
            .tls_certs_only([root.clone()])
            .resolve("localhost", ([127, 0, 0, 1], port).into());
        if http1 {
            b = b.http1_only();
        }
        let c = b.build().unwrap();
        let resp = c
            .get(format!("https://localhost:{port}/echo/tls"))
            .send()
            .await
            .unwrap();
        let expected = if http1 {
            reqwest::Version::HTTP_11
        } else {
            reqwest::Version::HTTP_2
        };
        assert_eq!(resp.version(), expected);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    }
}

#[tokio::test]
async fn body_too_large_is_413() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_body_bytes: 1000}
    routes: [{name: all, http: {url: "http://${UPSTREAM}"}}]
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    let c = client();
    // Declared length over the limit: refused before anything goes upstream.
    let resp = c
        .post(format!("{base}/echo"))
        .body(vec![0u8; 1001])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "payload_too_large");
    // Chunked body that grows past the limit while streaming.
    let chunks = futures::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 500]))),
    );
    let resp = c
        .post(format!("{base}/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Under the limit is fine, and the gateway still serves.
    let resp = c
        .post(format!("{base}/echo"))
        .body(vec![0u8; 999])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn headers_too_large_is_431() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_header_bytes: 2048}
    routes: [{name: all, http: {url: "http://${UPSTREAM}"}}]
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    let resp = client()
        .get(format!("{base}/echo"))
        .header("x-big", "v".repeat(3000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_header_fields_too_large");
    let resp = client().get(format!("{base}/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn upstream_down_is_502_and_slow_upstream_is_504() {
    let up = upstream().await;
    // A port with nothing listening: bind and drop.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: dead
        match: {{path_prefix: /dead}}
        http: {{url: "http://{dead}"}}
      - name: slow
        match: {{path_prefix: /slow}}
        policies: {{timeouts: {{request: 200ms}}}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#
    );
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let resp = c.get(format!("{base}/dead/x")).send().await.unwrap();
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.unwrap();
    assert!(body.contains("bad_gateway"), "{body}");
    assert!(
        !body.contains(&dead.to_string()),
        "no internals in error bodies: {body}"
    );
    let resp = c.get(format!("{base}/slow?ms=5000")).send().await.unwrap();
    assert_eq!(resp.status(), 504);
    let resp = c.get(format!("{base}/slow?ms=1")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn idle_stream_is_ended_by_the_idle_timeout() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: sse
        policies: {timeouts: {idle: 300ms}}
        http: {url: "http://${UPSTREAM}"}
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    let resp = client()
        .get(format!("{base}/sse?count=3&hold=never-released"))
        .send()
        .await
        .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.text())
        .await
        .expect("the idle timeout ends the stream")
        .unwrap();
    assert_eq!(body, "id: 0\nevent: tick\ndata: {\"n\":0}\n\n");
}

#[tokio::test]
async fn connection_limit_gives_503() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_connections: 1}
    routes: [{name: all, http: {url: "http://${UPSTREAM}"}}]
"#,
        up,
    )
    .await;
    let addr = gw.listener_addr("main").await.unwrap();
    // Hold the one allowed connection open with an unfinished SSE stream.
    let c1 = client();
    let held = c1
        .get(format!("http://{addr}/sse?count=2&hold=conn-limit"))
        .send()
        .await
        .unwrap();
    assert_eq!(held.status(), 200);
    let c2 = client();
    let resp = c2.get(format!("http://{addr}/echo")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded");
    drop(held);
    drop(c1);
    // Once the first connection is gone, new ones are served again.
    let mut ok = false;
    for _ in 0..100 {
        let c = client();
        if c.get(format!("http://{addr}/echo"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "connections are accepted again after the limit clears");
}

#[tokio::test]
async fn cors_preflight_and_actual_request() {
    let up = upstream().await;
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    policies:
      cors: {allow_origins: ["https://app.example"], max_age: 10m}
    routes: [{name: all, http: {url: "http://${UPSTREAM}"}}]
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    let c = client();
    let resp = c
        .request(reqwest::Method::OPTIONS, format!("{base}/echo"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        resp.headers()["access-control-allow-headers"],
        "content-type"
    );
    assert_eq!(resp.headers()["access-control-max-age"], "600");
    let resp = c
        .get(format!("{base}/echo"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    let resp = c
        .get(format!("{base}/echo"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
}

#[tokio::test]
async fn metrics_and_admin_endpoints() {
    let up = upstream().await;
    let gw = gateway(ROUTES, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    for _ in 0..3 {
        c.get(format!("{base}/echo/m"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    // The request is counted when its body ends, just after the client saw it.
    let mut seen = None;
    for _ in 0..50 {
        seen = metric(
            &gw,
            r#"switchboard_requests_total{listener="main",route="prefix",status="200"}"#,
        )
        .await;
        if seen == Some(3.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(seen, Some(3.0));
    assert!(
        metric(
            &gw,
            r#"switchboard_request_duration_seconds_count{listener="main",route="prefix"}"#
        )
        .await
        .unwrap()
            >= 3.0
    );
    assert!(
        metric(
            &gw,
            r#"switchboard_upstream_duration_seconds_count{listener="main",route="prefix"}"#
        )
        .await
        .unwrap()
            >= 3.0
    );
    let admin = gw.admin_addr().await.unwrap();
    assert_eq!(
        c.get(format!("http://{admin}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let cfg: Value = c
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["version"], 1);
    assert_eq!(cfg["config"]["listeners"][0]["name"], "main");
    assert!(cfg["last_reload_error"].is_null());
}

/// An HTTP/1.1 upstream that answers every request head (GETs, no bodies) on its `n`th
/// connection (from 0) with `answer(n)`. With `keep`, the connection stays for more requests;
/// without, it is closed a moment after the first answer without the answer saying so, as an
/// upstream with a short idle timeout does. Counts connections.
async fn counting_upstream(
    answer: fn(usize) -> &'static [u8],
    keep: bool,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if s.write_all(answer(n)).await.is_err() {
                            return;
                        }
                        if !keep {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(read) => buf.extend_from_slice(&chunk[..read]),
                    }
                }
            });
        }
    });
    (addr, conns)
}

/// A gateway with one listener (`main`) and one route to `up`, and that listener's base URL.
async fn one_route_gateway(up: std::net::SocketAddr) -> (switchboard_gateway::Gateway, String) {
    let gw = gateway(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: up
        http: {url: "http://${UPSTREAM}"}
"#,
        up,
    )
    .await;
    let base = base(&gw, "main").await;
    (gw, base)
}

#[tokio::test]
async fn pooled_upstream_connections_that_close_are_replaced() {
    let (up, conns) =
        counting_upstream(|_| b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false).await;
    let (_gw, base) = one_route_gateway(up).await;
    let c = client();
    for i in 0..5 {
        let r = c.get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "ok");
        // Let the upstream close the connection the gateway keeps in its pool.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Each request needed a new upstream connection: the closed ones were not reused.
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let (up, conns) = counting_upstream(
        |_| b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nkept",
        true,
    )
    .await;
    let (_gw, base) = one_route_gateway(up).await;
    let c = client();
    for i in 0..10 {
        let r = c.get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "kept", "request {i}");
    }
    // A connection whose response was read to its end goes back to the pool and is taken
    // again: one client connection, one upstream connection.
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upstream_connection_left_mid_response_is_not_reused() {
    // The first connection promises 1 MB and sends 10 bytes; later ones answer whole.
    let (up, conns) = counting_upstream(
        |n| match n {
            0 => b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n0123456789",
            _ => b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nwhole",
        },
        true,
    )
    .await;
    let (_gw, base) = one_route_gateway(up).await;
    // The client reads the head and the first bytes, then goes away.
    let mut first = client()
        .get(format!("{base}/partial"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(&first.chunk().await.unwrap().unwrap()[..], b"0123456789");
    drop(first);
    // Every later request gets a whole answer, on a connection other than the half-read one.
    for i in 0..3 {
        let r = client().get(format!("{base}/x")).send().await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
        assert_eq!(r.text().await.unwrap(), "whole", "request {i}");
    }
    assert!(conns.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}
