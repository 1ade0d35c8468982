//! `mcp` routes through the whole gateway: server-everything (npm) federated as a stdio child
//! the gateway spawns from config and as a streamable-HTTP server, driven by the official
//! Python MCP SDK over both downstream transports.

use crate::common;

use crate::harness;

use std::path::Path;

use common::*;

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mcp/tests/py")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_through_the_gateway_sees_stdio_and_http_targets() {
    if !harness::have_peers() {
        return;
    }
    let py = python().expect("checked by have_peers");
    let http = harness::start_everything("streamableHttp").await;
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: stdio
              stdio: {{command: "{node}", args: ["{everything}", "stdio"]}}
            - name: http
              http: {{url: "{http}"}}
      - name: web
        http: {{url: "http://${{UPSTREAM}}"}}
"#,
        node = harness::node().display(),
        everything = harness::everything().display(),
        http = http.url,
    );
    let up = upstream().await;
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let out = run_py(
        &py,
        &script("federation_client.py"),
        &[&url, "streamable", "stdio,http"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    let sse = format!("{url}/sse");
    let out = run_py(
        &py,
        &script("federation_client.py"),
        &[&sse, "sse", "stdio,http"],
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    // Gateway-level JSON-RPC errors on the MCP route: a malformed body.
    let resp = client()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    // Other routes keep serving next to MCP.
    let hello = client().get(base(&gw, "main").await).send().await.unwrap();
    assert_eq!(hello.status(), 200);
}

/// JSON-RPC batches on an MCP route (2025-03-26 sessions) obey the listener's
/// `limits.json.max_batch`; within it, each member is answered by the target that owns it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_batches_obey_the_listeners_max_batch() {
    switchboard_gateway::install_crypto_provider();
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{json: {{max_batch: 2}}}}
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "http://{fixture}/mcp"}}
"#
    );
    let up = upstream().await;
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let post = |sid: Option<String>, body: serde_json::Value| {
        let mut req = client()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json");
        if let Some(s) = sid {
            req = req.header("mcp-session-id", s);
        }
        req.body(body.to_string()).send()
    };
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = post(None, init).await.unwrap();
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let ping = |id: i64| serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "ping"});
    let call = serde_json::json!({"jsonrpc": "2.0", "id": "t", "method": "tools/call",
        "params": {"name": "test_simple_text", "arguments": {}}});
    let resp = post(Some(sid.clone()), serde_json::json!([ping(1), call]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v[0]["id"], 1, "{v}");
    assert_eq!(v[1]["id"], "t", "{v}");
    assert_eq!(
        v[1]["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    let resp = post(Some(sid), serde_json::json!([ping(1), ping(2), ping(3)]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 2"),
        "{v}"
    );
}

/// `limits.json` on an MCP route: a body over `max_message_bytes` is refused while it is read
/// (413, also when streamed without a length), one nesting deeper than `max_depth` is refused
/// before it is parsed (JSON-RPC -32700), both as JSON-RPC errors; a batch over `max_batch`
/// is refused before it is parsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_request_bodies_obey_the_listeners_json_limits() {
    switchboard_gateway::install_crypto_provider();
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{json: {{max_message_bytes: 65536, max_depth: 16, max_batch: 4}}}}
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "http://{fixture}/mcp"}}
"#
    );
    let up = upstream().await;
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let post = |body: reqwest::Body| {
        client()
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body)
            .send()
    };
    let init = |name: &str| {
        serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": name, "version": "1"}}})
        .to_string()
    };
    let r = post(init(&"x".repeat(70_000)).into()).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["data"]["type"], "payload_too_large", "{v}");
    // Streamed without a Content-Length: refused once the limit is crossed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..100).map(|_| Ok(vec![b' '; 4096])).collect();
    let r = post(reqwest::Body::wrap_stream(futures::stream::iter(chunks))).await;
    if let Ok(r) = r {
        assert_eq!(r.status(), 413);
    }
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}1{}}}"#,
        "[".repeat(16),
        "]".repeat(16)
    );
    let r = post(deep.into()).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    let pings: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let r = post(serde_json::Value::from(pings).to_string().into())
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    // Within the limits: served.
    let r = post(init("ok").into()).await.unwrap();
    assert_eq!(r.status(), 200);
}
