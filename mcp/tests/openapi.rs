//! OpenAPI targets: the REST pet store of `examples/src/pets.rs`, described by its real
//! document `examples/openapi/pets.yaml`, turned into tools and driven through the gateway by
//! the official Python MCP SDK; and what happens when the document or the service fails.

use crate::harness;

use std::path::PathBuf;

use harness::*;
use serde_json::{Value, json};

fn pets_yaml() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/openapi/pets.yaml")
        .to_string_lossy()
        .into_owned()
}

/// The pet store on a free port; its base URL.
async fn pets() -> String {
    init();
    let (addr, task) = switchboard_examples::pets::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    // The store lives as long as the test process; tests are separate processes under nextest.
    std::mem::forget(task);
    format!("http://{addr}")
}

fn have_python() -> bool {
    have("python with the mcp SDK", &python())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_lists_and_calls_the_operations_of_a_document_file() {
    if !have_python() {
        return;
    }
    let base = pets().await;
    let gw = gateway(json!({"targets": [
        {"name": "pets", "openapi": {"spec": pets_yaml(), "base_url": base}},
    ]}))
    .await;
    let (ok, out, err) = run_python("openapi_client.py", &[&gw.url, "legacy", ""]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    println!("python: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_document_next_to_a_second_target_is_prefixed_and_filtered() {
    if !have_python() {
        return;
    }
    let base = pets().await;
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(json!({
        "tools": {"deny": ["pets__delete*"]},
        "targets": [
            {"name": "pets", "openapi": {"spec": format!("{base}/openapi.yaml"), "base_url": base}},
            {"name": "fixture", "http": {"url": format!("http://{fixture}/mcp")}},
        ]
    }))
    .await;
    // The SDK's default mode: stateless 2026-07-28 requests.
    let (ok, out, err) = run_python(
        "openapi_client.py",
        &[&gw.url, "auto", "pets", "fixture__test_simple_text"],
    )
    .await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    println!("python: {out}");
}

fn response(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_url_that_fails_fails_the_target() {
    let base = pets().await;
    let gw = gateway(json!({
        "failure_mode": "fail_closed",
        "targets": [{"name": "pets", "openapi": {"spec": format!("{base}/missing.yaml"), "base_url": base}}]
    }))
    .await;
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, _, body) = post(&gw.url, None, &init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let r = response(&body);
    assert_eq!(r["error"]["code"], -32002, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("pets"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_document_file_fails_the_config_naming_the_problem() {
    init();
    // A good one passes, with a warning for what it leaves out.
    let good: switchboard_mcp::McpConfig = serde_json::from_value(json!({"targets": [
        {"name": "pets", "openapi": {"spec": pets_yaml(), "base_url": "http://127.0.0.1:1"}},
    ]}))
    .unwrap();
    assert!(good.validate("mcp").is_empty());
    let w = good.warnings("mcp", std::path::Path::new(""));
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].0, "mcp.targets[0].openapi.spec");
    assert!(w[0].1.contains("PUT /pets/{petId}/photo"), "{w:?}");
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("bad.yaml");
    std::fs::write(&spec, "openapi: 3.1.0\npaths:\n  /x:\n    post:\n      requestBody:\n        content: {text/csv: {}}\n").unwrap();
    let cfg: switchboard_mcp::McpConfig = serde_json::from_value(json!({"targets": [
        {"name": "pets", "openapi": {"spec": spec, "base_url": "http://127.0.0.1:1"}},
    ]}))
    .unwrap();
    let issues = cfg.validate("mcp");
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert_eq!(issues[0].0, "mcp.targets[0].openapi.spec");
    assert!(
        issues[0].1.contains("no operation") && issues[0].1.contains("not JSON (text/csv)"),
        "{issues:?}"
    );
    let shared = switchboard_mcp::McpShared::new(switchboard_mcp::Metrics::unregistered()).unwrap();
    let e = switchboard_mcp::McpBackend::new(cfg, &shared)
        .err()
        .expect("refused");
    assert!(e.to_string().contains("openapi.spec"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_rest_service_times_out_after_the_target_timeout() {
    init();
    // Accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let gw = gateway(json!({"targets": [{"name": "pets", "timeout": "300ms",
        "openapi": {"spec": pets_yaml(), "base_url": format!("http://{addr}")}}]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "showPetById", "arguments": {"petId": "1"}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &call.to_string()).await;
    let r = response(&body);
    assert_eq!(r["error"]["code"], -32001, "{r}");
    // Prompts and resources: none (the target has no such methods).
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/list"});
    let (_, _, body) = post(&gw.url, Some(&sid), &list.to_string()).await;
    assert_eq!(response(&body)["result"]["prompts"], json!([]), "{body}");
}

/// POST a JSON-RPC request on a session with the harness's authz header; the response.
async fn call_as(url: &str, sid: &str, allow_prefix: &str, msg: Value) -> Value {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", sid)
        .header("x-test-allow-prefix", allow_prefix)
        .body(msg.to_string())
        .send()
        .await
        .unwrap();
    response(&resp.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_configured_headers_and_the_reply_bound_apply() {
    let base = pets().await;
    let gw = gateway(json!({
        "max_reply_bytes": 1024,
        "targets": [{"name": "pets", "openapi": {"spec": pets_yaml(), "base_url": base,
            "headers": {"X-Owner": "operator"}}}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    // The caller may use tools starting with `c` only.
    let list = call_as(
        &gw.url,
        &sid,
        "c",
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["createPet"], "{list}");
    let call = |name: &str, args: Value| json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": args}});
    let r = call_as(&gw.url, &sid, "c", call("listPets", json!({}))).await;
    assert_eq!(
        r["error"]["code"], -32602,
        "refused like an unknown tool: {r}"
    );
    // The configured header wins over the header parameter.
    let r = call_as(
        &gw.url,
        &sid,
        "c",
        call(
            "createPet",
            json!({"X-Owner": "client", "body": {"name": "Rex"}}),
        ),
    )
    .await;
    assert_eq!(r["result"]["structuredContent"]["owner"], "operator", "{r}");
    // A reply over `max_reply_bytes` fails the call.
    let r = call_as(
        &gw.url,
        &sid,
        "c",
        call("createPet", json!({"body": {"name": "x".repeat(2000)}})),
    )
    .await;
    assert_eq!(r["error"]["code"], -32603, "{r}");
}
