//! Targets are untrusted: a target answering with arrays, non-JSON, wrong types, an endless
//! `tools/list` or endless SSE streams gets the caller a JSON-RPC error naming it, and the
//! gateway keeps answering (`examples/src/mcp_hostile.rs`). Session state stays bounded: a huge
//! `clientInfo` is trimmed, oversized `capabilities` refused.

use crate::harness;

use harness::*;
use serde_json::{Value, json};

async fn hostile_gateway(query: &str, extra: Value) -> (Gateway, tokio::task::JoinHandle<()>) {
    init();
    let (addr, task) = switchboard_examples::mcp_hostile::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mut cfg =
        json!({"targets": [{"name": "bad", "http": {"url": format!("http://{addr}/mcp{query}")}}]});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    (gateway(cfg).await, task)
}

fn reply(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body:?}"))
}

async fn call(url: &str, sid: &str, id: u64, tool: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}});
    let (status, _, text) = post(url, Some(sid), &body.to_string()).await;
    assert_eq!(status, 200, "{tool}: {text}");
    reply(&text)
}

#[tokio::test]
async fn replies_of_the_wrong_shape_become_errors_naming_the_target() {
    let (gw, _t) = hostile_gateway("", json!({"max_reply_bytes": 65536})).await;
    let sid = raw_initialize(&gw.url).await;
    for (i, tool) in [
        "array",
        "not_json",
        "wrong_types",
        "endless_line",
        "endless_event",
    ]
    .into_iter()
    .enumerate()
    {
        let id = i as u64 + 10;
        let r = call(&gw.url, &sid, id, tool).await;
        assert_eq!(r["id"], id, "{tool}: the caller's id comes back: {r}");
        assert_eq!(r["error"]["code"], -32603, "{tool}: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("`bad`"), "{tool}: names the target: {r}");
        // The gateway keeps serving the session.
        let ok = call(&gw.url, &sid, id + 100, "echo").await;
        assert_eq!(
            ok["result"]["content"][0]["text"], "echo",
            "after {tool}: {ok}"
        );
    }
    let r = call(&gw.url, &sid, 99, "endless_line").await;
    assert!(
        r["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than the gateway accepts")),
        "{r}"
    );
}

#[tokio::test]
async fn an_endless_tools_list_is_cut_at_the_reply_cap() {
    let (gw, _t) = hostile_gateway(
        "?list=huge",
        json!({"max_reply_bytes": 1048576, "failure_mode": "fail_closed"}),
    )
    .await;
    let sid = raw_initialize(&gw.url).await;
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, text) = post(&gw.url, Some(&sid), list).await;
    assert_eq!(status, 200);
    let r = reply(&text);
    assert_eq!(r["error"]["code"], -32603, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("`bad`"),
        "{r}"
    );
    // Still up, and the same session still works.
    let ok = call(&gw.url, &sid, 3, "echo").await;
    assert_eq!(ok["result"]["content"][0]["text"], "echo", "{ok}");
}

#[tokio::test]
async fn fail_open_skips_a_target_whose_list_is_too_large() {
    let (gw, _t) = hostile_gateway("?list=huge", json!({"max_reply_bytes": 1048576})).await;
    let sid = raw_initialize(&gw.url).await;
    let (_, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(reply(&text)["result"]["tools"], json!([]), "{text}");
}

#[tokio::test]
async fn client_info_is_trimmed_and_oversized_capabilities_refused() {
    let (gw, _t) = hostile_gateway("", json!({})).await;
    let name = "n".repeat(2 * 1024 * 1024);
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": name, "version": "1", "icons": [{"src": "x".repeat(100_000)}]},
        "padding": "p".repeat(1024 * 1024)}});
    let (status, headers, body) = post(&gw.url, None, &init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let sid = headers["mcp-session-id"].to_str().unwrap().to_string();
    assert!(
        sid.len() <= switchboard_sessions::token::MAX_TOKEN_LEN,
        "session id of {} bytes",
        sid.len()
    );
    // The session works (its token opens again).
    let ok = call(&gw.url, &sid, 1, "echo").await;
    assert_eq!(ok["result"]["content"][0]["text"], "echo", "{ok}");

    let init = json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {"experimental": {"x": "y".repeat(1024 * 1024)}},
        "clientInfo": {"name": "c", "version": "1"}}});
    let (status, headers, body) = post(&gw.url, None, &init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.get("mcp-session-id").is_none());
    let r = reply(&body);
    assert_eq!(r["id"], 7);
    assert_eq!(r["error"]["code"], -32602, "{r}");
}

#[tokio::test]
async fn a_flood_of_server_requests_is_capped_per_session() {
    let (gw, _t) = hostile_gateway("", json!({})).await;
    let sid = raw_session(&gw.url, "2025-06-18", json!({"roots": {}})).await;
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "flood", "arguments": {}}});
    let (status, _, text) = post(&gw.url, Some(&sid), &body.to_string()).await;
    assert_eq!(status, 200);
    let msgs = messages(&text);
    let asked = msgs.iter().filter(|m| m["method"] == "roots/list").count();
    // At most 1024 await the client at once; the rest are refused to the target.
    assert_eq!(asked, 1024, "{} messages", msgs.len());
    let r = reply(&text);
    assert_eq!(r["result"]["content"][0]["text"], "flooded", "{r}");
}

#[tokio::test]
async fn stdio_lines_over_the_cap_are_dropped() {
    init();
    let script = root().join("examples/mcp_hostile_stdio.py");
    let python = if python().exists() {
        python()
    } else {
        "python3".into()
    };
    let gw = gateway(json!({
        "max_reply_bytes": 65536,
        "targets": [{"name": "bad", "stdio": {"command": python, "args": [script]}, "timeout": "30s"}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    for id in [1, 2] {
        // The 2 MiB reply line is dropped; the array and the non-JSON line are ignored; the
        // small reply that follows answers the call.
        let r = call(&gw.url, &sid, id, "big").await;
        assert_eq!(r["id"], id);
        assert_eq!(
            r["result"]["content"][0]["text"],
            "small",
            "{}",
            r.to_string().chars().take(200).collect::<String>()
        );
    }
}
