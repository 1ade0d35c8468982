//! `policies.upstream_auth` on `mcp` routes: the credential reaches every request the gateway
//! sends an http or sse target (initialize, calls, GET streams, DELETE, the legacy SSE connect
//! and its message posts), `targets[].upstream_auth` overrides it or turns it off, a rotated
//! credential file is followed without a reload, the client's own credential never reaches a
//! target (not even with `forward_client_credentials`), and the secret is never in the
//! gateway's logs (at debug level), error bodies, metrics or `/config`.

use crate::common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;
use axum::response::sse::{Event, Sse};
use common::*;
use serde_json::{Value, json};
use switchboard_testing::process::JsonLog;
use tokio::sync::mpsc;

/// One request an upstream saw: `(method, path, authorization, x-api-key)`.
type Seen = (String, String, Option<String>, Option<String>);

/// What one upstream saw.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// When set, requests whose `authorization` differs are refused with 401.
    expect: Arc<Mutex<Option<String>>>,
}

impl Recorder {
    fn layer(&self, req: &Request) -> bool {
        let h = |n: &str| {
            req.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
        };
        let auth = h("authorization");
        self.seen.lock().unwrap().push((
            req.method().to_string(),
            req.uri().path().to_string(),
            auth.clone(),
            h("x-api-key"),
        ));
        let expect = self.expect.lock().unwrap().clone();
        expect.is_none_or(|e| auth.as_deref() == Some(e.as_str()))
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The `authorization` values of every request with this method.
    fn auth_of(&self, method: &str) -> Vec<Option<String>> {
        self.seen()
            .into_iter()
            .filter(|s| s.0 == method)
            .map(|s| s.2)
            .collect()
    }
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

/// The rmcp fixture (Streamable HTTP at `/mcp`) behind a recording, checking layer.
async fn recorded_fixture(rec: &Recorder) -> String {
    let rec = rec.clone();
    let router = switchboard_examples::mcp_fixture::router().layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let ok = rec.layer(&req);
            async move {
                if ok {
                    next.run(req).await
                } else {
                    (http::StatusCode::UNAUTHORIZED, "bad credential").into_response()
                }
            }
        },
    ));
    format!("{}/mcp", serve(router).await)
}

/// A minimal legacy HTTP+SSE MCP server (one tool, `ping`), recording every request.
async fn recorded_legacy(rec: &Recorder) -> String {
    let stream: Arc<Mutex<Option<mpsc::UnboundedSender<String>>>> = Arc::default();
    let (r1, s1) = (rec.clone(), stream.clone());
    let (r2, s2) = (rec.clone(), stream);
    let router = axum::Router::new()
        .route(
            "/sse",
            axum::routing::get(move |req: Request| {
                let (rec, slot) = (r1.clone(), s1.clone());
                async move {
                    rec.layer(&req);
                    let (tx, rx) = mpsc::unbounded_channel::<String>();
                    *slot.lock().unwrap() = Some(tx);
                    let first = futures::stream::once(async {
                        Ok::<_, std::convert::Infallible>(
                            Event::default().event("endpoint").data("/message"),
                        )
                    });
                    let rest = futures::stream::unfold(rx, |mut rx| async move {
                        let m = rx.recv().await?;
                        Some((Ok(Event::default().data(m)), rx))
                    });
                    Sse::new(futures::StreamExt::chain(first, rest))
                }
            }),
        )
        .route(
            "/message",
            axum::routing::post(move |req: Request| {
                let (rec, slot) = (r2.clone(), s2.clone());
                async move {
                    rec.layer(&req);
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
                    let msg: Value = serde_json::from_slice(&body).unwrap();
                    if let Some(id) = msg.get("id") {
                        let result = match msg["method"].as_str().unwrap_or("") {
                            "initialize" => json!({"protocolVersion": "2024-11-05",
                                "capabilities": {"tools": {}}, "serverInfo": {"name": "legacy", "version": "1"}}),
                            "tools/list" => json!({"tools": [{"name": "ping", "inputSchema": {"type": "object"}}]}),
                            "tools/call" => json!({"content": [{"type": "text", "text": "pong"}]}),
                            _ => json!({}),
                        };
                        let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
                        if let Some(tx) = slot.lock().unwrap().as_ref() {
                            let _ = tx.send(reply.to_string());
                        }
                    }
                    http::StatusCode::ACCEPTED
                }
            }),
        );
    format!("{}/sse", serve(router).await)
}

struct Client {
    url: String,
    sid: Option<String>,
}

impl Client {
    async fn post(&mut self, body: Value) -> (u16, String) {
        let mut req = client()
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            // The client's own credential never reaches a target.
            .header("authorization", "Bearer client-SECRET");
        if let Some(s) = &self.sid {
            req = req.header("mcp-session-id", s);
        }
        let resp = req.body(body.to_string()).send().await.unwrap();
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.sid = Some(s.to_str().unwrap().to_string());
        }
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    async fn call(&mut self, id: u64, tool: &str) -> (Value, String) {
        let (status, body) = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": {}}}))
            .await;
        assert_eq!(status, 200, "{body}");
        let msg = body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .chain(std::iter::once(body.as_str()))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id") == Some(&json!(id)))
            .unwrap_or_else(|| panic!("no reply in {body}"));
        (msg, body)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_targets_get_the_routes_credential_or_their_own_and_it_rotates() {
    switchboard_gateway::install_crypto_provider();
    let (a, own, off, legacy) = (
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
    );
    *a.expect.lock().unwrap() = Some("Bearer first-SECRET-1".into());
    let (a_url, own_url, off_url, legacy_url) = (
        recorded_fixture(&a).await,
        recorded_fixture(&own).await,
        recorded_fixture(&off).await,
        recorded_legacy(&legacy).await,
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cred"), "first-SECRET-1\n").unwrap();
    let config = dir.path().join("switchboard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        policies:
          upstream_auth: {{prefix: "Bearer ", file: cred}}
          forward_client_credentials: true   # no effect on mcp routes
        mcp:
          targets:
            - {{name: a, http: {{url: "{a_url}"}}}}
            - name: own
              http: {{url: "{own_url}"}}
              upstream_auth: {{header: x-api-key, value: own-key-SECRET}}
            - {{name: "off", http: {{url: "{off_url}"}}, upstream_auth: none}}
            - {{name: legacy, sse: {{url: "{legacy_url}"}}}}
      - name: idle
        match: {{path_prefix: /idle}}
        policies:
          upstream_auth: {{value: idle-SECRET}}
        mcp:
          targets:
            - {{name: local, stdio: {{command: cat}}}}
"#
        ),
    )
    .unwrap();
    let log_file = dir.path().join("switchboard.log");
    let mut child = tokio::process::Command::new(switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = JsonLog::read(
        "switchboard",
        child.stderr.take().unwrap(),
        Some(log_file.clone()),
    );
    let addrs = logs.switchboard_ready(Duration::from_secs(30)).await;
    let mut c = Client {
        url: format!("http://{}/mcp", addrs.listeners["main"]),
        sid: None,
    };
    let (status, body) = c
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = c
        .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .await;
    assert_eq!(status, 202);
    let (status, body) = c
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(status, 200, "{body}");
    for name in [
        "a__test_simple_text",
        "own__test_simple_text",
        "off__test_simple_text",
        "legacy__ping",
    ] {
        assert!(body.contains(name), "{name} missing: {body}");
    }
    for (i, tool) in [
        "a__test_simple_text",
        "own__test_simple_text",
        "off__test_simple_text",
        "legacy__ping",
    ]
    .iter()
    .enumerate()
    {
        let (reply, body) = c.call(10 + i as u64, tool).await;
        assert!(reply.get("result").is_some(), "{tool}: {body}");
    }
    // The client's standalone GET stream opens one on each HTTP target.
    let get = client()
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .header("mcp-session-id", c.sid.clone().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    switchboard_testing::until("the targets' GET streams", Duration::from_secs(10), || {
        !a.auth_of("GET").is_empty() && !own.auth_of("GET").is_empty()
    })
    .await;
    drop(get);

    // Rotation: the upstream now wants the new secret; the file changes, no reload.
    *a.expect.lock().unwrap() = Some("Bearer rotated-SECRET-2".into());
    std::fs::write(dir.path().join("cred"), "rotated-SECRET-2\n").unwrap();
    let mut refusals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (reply, body) = c
            .call(100 + refusals.len() as u64, "a__test_simple_text")
            .await;
        if reply.get("result").is_some() {
            break;
        }
        refusals.push(body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation not followed: {refusals:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (reply, body) = c.call(200, "legacy__ping").await;
    assert!(reply.get("result").is_some(), "{body}");

    // DELETE ends the upstream sessions, with the credential too.
    let del = client()
        .delete(&c.url)
        .header("mcp-session-id", c.sid.clone().unwrap())
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    switchboard_testing::until("the upstream DELETEs", Duration::from_secs(10), || {
        !a.auth_of("DELETE").is_empty() && !own.auth_of("DELETE").is_empty()
    })
    .await;

    let first = Some("Bearer first-SECRET-1".to_string());
    let rotated = Some("Bearer rotated-SECRET-2".to_string());
    // Target `a`: every request carries the route's credential, the current one at the time.
    let seen_a = a.seen();
    for method in ["POST", "GET", "DELETE"] {
        assert!(
            seen_a.iter().any(|s| s.0 == method),
            "{method} missing: {seen_a:?}"
        );
    }
    assert!(
        seen_a.iter().all(|s| s.2 == first || s.2 == rotated),
        "{seen_a:?}"
    );
    assert_eq!(a.auth_of("DELETE"), std::slice::from_ref(&rotated));
    // `own`: its own header instead, never the route's.
    let seen_own = own.seen();
    assert!(
        seen_own
            .iter()
            .all(|s| s.2.is_none() && s.3.as_deref() == Some("own-key-SECRET")),
        "{seen_own:?}"
    );
    // `off`: nothing.
    let seen_off = off.seen();
    assert!(!seen_off.is_empty());
    assert!(
        seen_off.iter().all(|s| s.2.is_none() && s.3.is_none()),
        "{seen_off:?}"
    );
    // The legacy SSE target: the connect and every message post, rotated for the later ones.
    let seen_legacy = legacy.seen();
    assert_eq!(seen_legacy[0].0, "GET", "{seen_legacy:?}");
    assert_eq!(seen_legacy[0].2, first, "{seen_legacy:?}");
    assert!(
        seen_legacy.iter().all(|s| s.2 == first || s.2 == rotated),
        "{seen_legacy:?}"
    );
    assert_eq!(seen_legacy.last().unwrap().2, rotated, "{seen_legacy:?}");

    // The secrets are nowhere the gateway writes: error bodies, metrics, debug logs.
    let metrics = client()
        .get(format!("http://{}/metrics", addrs.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dump = client()
        .get(format!("http://{}/config", addrs.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dump.contains("<redacted>"), "{dump}");
    child.kill().await.unwrap();
    let _ = child.wait().await;
    while logs.next().await.is_some() {}
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert!(log.contains("\"level\":\"DEBUG\""), "debug logging was on");
    // The stdio-only route's credential can have no effect: said at start.
    let warned = log.lines().any(|l| {
        l.contains("config warning: has no effect")
            && l.contains("listeners[0].routes[1].policies.upstream_auth")
    });
    assert!(warned, "no warning about the idle upstream_auth");
    assert!(log.contains("listeners[0].routes[0].policies.forward_client_credentials"));
    for secret in [
        "first-SECRET-1",
        "rotated-SECRET-2",
        "own-key-SECRET",
        "idle-SECRET",
        "client-SECRET",
    ] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!metrics.contains(secret), "{secret} in the metrics");
        assert!(!dump.contains(secret), "{secret} in /config");
        for r in &refusals {
            assert!(!r.contains(secret), "{secret} in an error body: {r}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_changes_the_credential_of_a_kept_mcp_backend() {
    let rec = Recorder::default();
    let url = recorded_fixture(&rec).await;
    let yaml = |policy: &str| {
        format!(
            r#"
sessions: {{keys: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        {policy}
        mcp:
          targets:
            - {{name: a, http: {{url: "{url}"}}}}
"#
        )
    };
    let up = upstream().await;
    let gw = gateway(
        &yaml(r#"policies: {upstream_auth: {prefix: "Bearer ", value: v1}}"#),
        up,
    )
    .await;
    let mut c = Client {
        url: format!("{}/mcp", base(&gw, "main").await),
        sid: None,
    };
    let (status, body) = c
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let last = |rec: &Recorder| rec.seen().last().unwrap().2.clone();
    assert_eq!(last(&rec), Some("Bearer v1".into()));

    // The `mcp` block is unchanged, so the backend and its sessions stay (one session key for
    // every generation); the credential moves.
    let v2 = yaml(r#"policies: {upstream_auth: {prefix: "Bearer ", value: v2}}"#);
    gw.apply(test_config(&v2, up)).await.unwrap();
    let (reply, body) = c.call(1, "test_simple_text").await;
    assert!(reply.get("result").is_some(), "{body}");
    assert_eq!(last(&rec), Some("Bearer v2".into()));

    gw.apply(test_config(&yaml(""), up)).await.unwrap();
    let (reply, body) = c.call(2, "test_simple_text").await;
    assert!(reply.get("result").is_some(), "{body}");
    assert_eq!(last(&rec), None);
}

/// The pet store (`examples/src/pets.rs`) behind a recording, checking layer; its base URL.
async fn recorded_pets(rec: &Recorder) -> String {
    let rec = rec.clone();
    let router = switchboard_examples::pets::router().layer(axum::middleware::from_fn(
        move |req: Request, next: Next| {
            let ok = rec.layer(&req);
            async move {
                if ok {
                    next.run(req).await
                } else {
                    (http::StatusCode::UNAUTHORIZED, "bad credential").into_response()
                }
            }
        },
    ));
    serve(router).await
}

/// OpenAPI targets are sent the route's credential (with the REST calls and with the document
/// fetched from the service's origin), their own, or none, read per request so that a rotated
/// file is followed; a relative `spec` file resolves against the config file's folder; the
/// document's skipped operations are logged as config warnings, a document URL that cannot be
/// fetched as an error; no secret is logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_targets_get_the_routes_credential_or_their_own_and_it_rotates() {
    switchboard_gateway::install_crypto_provider();
    let (a, own, off) = (
        Recorder::default(),
        Recorder::default(),
        Recorder::default(),
    );
    *a.expect.lock().unwrap() = Some("Bearer first-SECRET-1".into());
    let (a_url, own_url, off_url) = (
        recorded_pets(&a).await,
        recorded_pets(&own).await,
        recorded_pets(&off).await,
    );
    // A port nothing listens on.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_url = format!("http://{}", gone.local_addr().unwrap());
    drop(gone);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/pets.yaml"),
        switchboard_examples::pets::OPENAPI,
    )
    .unwrap();
    std::fs::write(dir.path().join("cred"), "first-SECRET-1\n").unwrap();
    let config = dir.path().join("switchboard.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: rest
        match: {{path_prefix: /mcp}}
        policies:
          upstream_auth: {{prefix: "Bearer ", file: cred}}
        mcp:
          targets:
            - {{name: a, openapi: {{spec: "{a_url}/openapi.yaml", base_url: "{a_url}"}}}}
            - name: own
              openapi: {{spec: docs/pets.yaml, base_url: "{own_url}"}}
              upstream_auth: {{header: x-api-key, value: own-key-SECRET}}
            - {{name: "off", openapi: {{spec: docs/pets.yaml, base_url: "{off_url}"}}, upstream_auth: none}}
            - {{name: gone, openapi: {{spec: "{gone_url}/openapi.yaml", base_url: "{gone_url}"}}}}
"#
        ),
    )
    .unwrap();
    let log_file = dir.path().join("switchboard.log");
    // The working directory is not the config's folder: `docs/pets.yaml` is found there only.
    let mut child = tokio::process::Command::new(switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = JsonLog::read(
        "switchboard",
        child.stderr.take().unwrap(),
        Some(log_file.clone()),
    );
    let addrs = logs.switchboard_ready(Duration::from_secs(30)).await;
    let mut c = Client {
        url: format!("http://{}/mcp", addrs.listeners["main"]),
        sid: None,
    };
    let (status, body) = c
        .post(json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = c
        .post(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .await;
    assert_eq!(status, 200, "{body}");
    for name in ["a__listPets", "own__listPets", "off__listPets"] {
        assert!(body.contains(name), "{name} missing: {body}");
    }
    assert!(!body.contains("gone__"), "{body}");
    let ok = |reply: &Value| reply["result"]["isError"] == json!(false);
    for (i, tool) in ["a__listPets", "own__listPets", "off__listPets"]
        .iter()
        .enumerate()
    {
        let (reply, body) = c.call(10 + i as u64, tool).await;
        assert!(ok(&reply), "{tool}: {body}");
    }

    // Rotation: the service now wants the new secret; the file changes, no reload.
    *a.expect.lock().unwrap() = Some("Bearer rotated-SECRET-2".into());
    std::fs::write(dir.path().join("cred"), "rotated-SECRET-2\n").unwrap();
    let mut refusals = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (reply, body) = c.call(100 + refusals.len() as u64, "a__listPets").await;
        if ok(&reply) {
            break;
        }
        assert!(body.contains("HTTP 401"), "{body}");
        refusals.push(body);
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation not followed: {refusals:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let first = Some("Bearer first-SECRET-1".to_string());
    let rotated = Some("Bearer rotated-SECRET-2".to_string());
    // `a`: the document and every call, with the credential current at the time.
    let seen_a = a.seen();
    assert_eq!(
        (seen_a[0].1.as_str(), &seen_a[0].2),
        ("/openapi.yaml", &first),
        "{seen_a:?}"
    );
    assert!(seen_a.iter().all(|s| s.2 == first || s.2 == rotated));
    assert_eq!(seen_a.last().unwrap().2, rotated, "{seen_a:?}");
    // `own`: its own header only; `off`: nothing.
    let seen_own = own.seen();
    assert!(!seen_own.is_empty());
    assert!(
        seen_own
            .iter()
            .all(|s| s.2.is_none() && s.3.as_deref() == Some("own-key-SECRET")),
        "{seen_own:?}"
    );
    let seen_off = off.seen();
    assert!(!seen_off.is_empty());
    assert!(
        seen_off.iter().all(|s| s.2.is_none() && s.3.is_none()),
        "{seen_off:?}"
    );

    child.kill().await.unwrap();
    let _ = child.wait().await;
    while logs.next().await.is_some() {}
    let log = std::fs::read_to_string(&log_file).unwrap();
    // What the document files leave out, as config warnings at start.
    let warned = log.lines().any(|l| {
        l.contains("config warning")
            && l.contains("listeners[0].routes[0].mcp.targets[1].openapi.spec")
            && l.contains("PUT /pets/{petId}/photo")
    });
    assert!(warned, "no warning about the skipped operation");
    // The document that cannot be fetched: an error naming the target.
    let failed = log.lines().any(|l| {
        l.contains("\"level\":\"ERROR\"")
            && l.contains("openapi document failed to load")
            && l.contains("\"target_name\":\"gone\"")
    });
    assert!(failed, "no error about the unreachable document");
    for secret in ["first-SECRET-1", "rotated-SECRET-2", "own-key-SECRET"] {
        assert!(!log.contains(secret), "{secret} in the log");
        for r in &refusals {
            assert!(!r.contains(secret), "{secret} in an error body: {r}");
        }
    }
}
