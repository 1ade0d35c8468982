//! `mcp` routes through the whole gateway: server-everything (npm) federated as a stdio child
//! the gateway spawns from config and as a streamable-HTTP server, driven by the official
//! Python MCP SDK over both downstream transports.

mod common;

#[path = "../../mcp/tests/support/harness.rs"]
mod harness;

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
