//! Hot reload through the file watcher: a changed route takes effect while an SSE stream that
//! started before it keeps flowing; an invalid file is refused and the old config serves on;
//! listeners are bound and closed as the file says.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::Value;
use switchboard_gateway::{Gateway, config, reload};

fn write(path: &Path, text: &str) {
    // Write then rename, as editors and ConfigMaps do, so the watcher never sees half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn yaml(up: std::net::SocketAddr, route_header: &str, extra_listener: bool) -> String {
    let mut s = format!(
        r#"
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: echo
        match: {{path_prefix: /echo}}
        policies: {{headers: {{request: {{set: {{x-generation: {route_header}}}}}}}}}
        http: {{url: "http://{up}"}}
      - name: rest
        http: {{url: "http://{up}"}}
"#
    );
    if extra_listener {
        s.push_str(&format!(
            r#"  - name: extra
    bind: 127.0.0.1:0
    routes: [{{name: all, http: {{url: "http://{up}"}}}}]
"#
        ));
    }
    s
}

async fn wait_version(gw: &Gateway, v: u64) {
    for _ in 0..500 {
        if gw.version() >= v {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("config version {v} never arrived (at {})", gw.version());
}

async fn start(path: &Path) -> Gateway {
    switchboard_gateway::install_crypto_provider();
    let cfg = config::load_file(path).unwrap();
    let gw = Gateway::start(cfg, Some(path.to_path_buf())).await.unwrap();
    reload::spawn(gw.clone(), path.to_path_buf()).unwrap();
    gw
}

#[tokio::test]
async fn reload_changes_a_route_while_an_sse_stream_keeps_flowing() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.yaml");
    write(&path, &yaml(up, "one", false));
    let gw = start(&path).await;
    let base = base(&gw, "main").await;
    let c = client();

    let v: Value = c
        .get(format!("{base}/echo/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-generation"], "one");

    // An SSE stream opened on generation 1, held open by the upstream.
    let resp = c
        .get(format!("{base}/sse?count=3&hold=across-reload"))
        .send()
        .await
        .unwrap();
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"id: 0"));

    write(&path, &yaml(up, "two", true));
    wait_version(&gw, 2).await;

    // The new route answers...
    let v: Value = c
        .get(format!("{base}/echo/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-generation"], "two");
    // ...the added listener is bound and serves...
    let extra = gw
        .listener_addr("extra")
        .await
        .expect("extra listener bound");
    assert_eq!(
        c.get(format!("http://{extra}/echo"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // ...and the old stream keeps flowing to its end.
    c.post(format!("http://{up}/release/across-reload"))
        .send()
        .await
        .unwrap();
    let mut rest = Vec::new();
    while let Some(b) = stream.next().await {
        rest.extend_from_slice(&b.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.contains("id: 1") && rest.contains("id: 2"), "{rest}");

    // Removing the listener closes it.
    write(&path, &yaml(up, "three", false));
    wait_version(&gw, 3).await;
    assert!(gw.listener_addr("extra").await.is_none());
    let mut refused = false;
    for _ in 0..100 {
        if reqwest::Client::new()
            .get(format!("http://{extra}/echo"))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "a removed listener stops accepting");
    assert_eq!(
        metric(&gw, r#"switchboard_config_reloads_total{result="success"}"#).await,
        Some(2.0)
    );
}

#[tokio::test]
async fn invalid_reload_is_refused_and_the_old_config_keeps_serving() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.yaml");
    write(&path, &yaml(up, "good", false));
    let gw = start(&path).await;
    let base = base(&gw, "main").await;
    let c = client();

    let broken = yaml(up, "bad", false).replace("path_prefix: /echo", "path_prefix: echo");
    write(&path, &broken);
    let mut failures = None;
    for _ in 0..500 {
        failures = metric(&gw, r#"switchboard_config_reloads_total{result="failure"}"#).await;
        if failures == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failures, Some(1.0));
    assert_eq!(gw.version(), 1);
    let v: Value = c
        .get(format!("{base}/echo/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-generation"], "good");

    let admin = gw.admin_addr().await.unwrap();
    let cfg: Value = c
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let errors = cfg["last_reload_error"]["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = errors[0].as_str().unwrap();
    assert!(
        e.ends_with("listeners[0].routes[0].match.path_prefix: `echo` must start with `/`"),
        "{e}"
    );
    assert_eq!(cfg["version"], 1);

    // A fixed file is picked up again.
    write(&path, &yaml(up, "fixed", false));
    wait_version(&gw, 2).await;
    let v: Value = c
        .get(format!("{base}/echo/a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-generation"], "fixed");
    let cfg: Value = c
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(cfg["last_reload_error"].is_null());
}

#[tokio::test]
async fn reload_that_cannot_bind_changes_nothing() {
    let up = upstream().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("switchboard.yaml");
    write(&path, &yaml(up, "good", false));
    let gw = start(&path).await;
    let mut next = yaml(up, "never", false);
    next.push_str(&format!(
        "  - name: clash\n    bind: {}\n    routes: [{{name: all, http: {{url: \"http://{up}\"}}}}]\n",
        taken.local_addr().unwrap()
    ));
    write(&path, &next);
    for _ in 0..500 {
        if gw.last_failure().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failure = gw.last_failure().expect("the bind failure is recorded");
    assert!(
        failure.errors[0].contains("cannot bind"),
        "{:?}",
        failure.errors
    );
    let v: Value = client()
        .get(format!("{}/echo/a", base(&gw, "main").await))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-generation"], "good");
}

/// Without `sessions.keys` the process seals sessions with a random key made once: a reload
/// (here one that changes another route) keeps every MCP session open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_mcp_sessions_without_configured_keys() {
    switchboard_gateway::install_crypto_provider();
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let up = upstream().await;
    let yaml = |header: &str| {
        format!(
            r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - {{name: fixture, http: {{url: "http://{fixture}/mcp"}}}}
      - name: rest
        policies: {{headers: {{request: {{set: {{x-generation: {header}}}}}}}}}
        http: {{url: "http://{up}"}}
"#
        )
    };
    let gw = Gateway::start(test_config(&yaml("one"), up), None)
        .await
        .unwrap();
    let url = format!("{}/mcp", base(&gw, "main").await);
    let post = |sid: Option<String>, body: Value| {
        let mut req = client()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        if let Some(s) = sid {
            req = req.header("mcp-session-id", s);
        }
        async move {
            let resp = req.body(body.to_string()).send().await.unwrap();
            let sid = resp
                .headers()
                .get("mcp-session-id")
                .map(|v| v.to_str().unwrap().to_string());
            (resp.status().as_u16(), sid, resp.text().await.unwrap())
        }
    };
    let (status, sid, body) = post(
        None,
        serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let sid = sid.expect("a session");
    let list = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    assert_eq!(post(Some(sid.clone()), list.clone()).await.0, 200);
    for generation in ["two", "three"] {
        gw.apply(test_config(&yaml(generation), up)).await.unwrap();
        let (status, _, body) = post(Some(sid.clone()), list.clone()).await;
        assert_eq!(status, 200, "after the reload to {generation}: {body}");
        assert!(body.contains("test_simple_text"), "{body}");
    }
}
