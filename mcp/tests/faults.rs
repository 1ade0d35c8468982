//! Faults: malformed input, unknown methods and sessions, a stdio target killed mid-session,
//! an HTTP target that restarts and forgets its sessions.

use crate::harness;

use std::time::Duration;

use harness::*;
use serde_json::{Value, json};

fn response(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {body}"))
}

#[tokio::test]
async fn malformed_json_gets_parse_error_and_nothing_breaks() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    let sid = raw_initialize(&gw.url).await;
    for body in ["{not json", "", "[1,", "\u{0}"] {
        let (status, _, text) = post(&gw.url, Some(&sid), body).await;
        assert_eq!(status, 400, "{body:?}");
        assert_eq!(response(&text)["error"]["code"], -32700, "{text}");
    }
    let (status, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":null,"method":7}"#,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(response(&text)["error"]["code"], -32600);
    let (status, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"no/such"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let r = response(&text);
    assert_eq!(r["error"]["code"], -32601);
    assert_eq!(r["id"], 2);
    let (_, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#,
    )
    .await;
    assert_eq!(
        response(&text),
        json!({"jsonrpc":"2.0","id":"p","result":{}})
    );
}

#[tokio::test]
async fn unknown_session_is_404_and_delete_ends_a_session() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    // HTTP-level refusals: JSON-RPC bodies whose `data.type` names the cause.
    let (status, _, text) = post(
        &gw.url,
        Some("nope"),
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["data"]["type"], "not_found", "{v}");
    let (status, _, text) = post(
        &gw.url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(status, 400, "no session and not stateless");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert_eq!(v["error"]["data"]["type"], "bad_request", "{v}");
    let get = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 406, "a GET must accept an event stream");
    let v: Value = serde_json::from_str(&get.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["data"]["type"], "not_acceptable", "{v}");
    let sid = raw_initialize(&gw.url).await;
    assert_eq!(gw.backend.session_count(), 1);
    let resp = reqwest::Client::new()
        .delete(&gw.url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(gw.backend.session_count(), 0);
    let (status, _, _) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn origin_and_host_are_checked() {
    let (gw, _f) = fixture_gateway(json!({"allowed_hosts": ["127.0.0.1"]})).await;
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let c = reqwest::Client::new();
    let send = |origin: Option<&'static str>, host: Option<&'static str>| {
        let mut r = c
            .post(&gw.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(init);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(h) = host {
            r = r.header("host", h);
        }
        r.send()
    };
    assert_eq!(
        send(Some("http://evil.example.com"), None)
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        send(None, Some("evil.example.com")).await.unwrap().status(),
        403
    );
    assert_eq!(
        send(Some("http://localhost:3000"), None)
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(send(None, None).await.unwrap().status(), 200);
}

#[tokio::test]
async fn long_tool_names_are_shortened_and_still_routed_and_filters_apply() {
    init();
    let (addr, _f) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let long = "a-very-long-target-name-that-pushes-tools-past-the-limit";
    let gw = gateway(json!({
        "prefix": "always",
        "tools": {"deny": ["*elicitation*"]},
        "targets": [{"name": long, "http": {"url": format!("http://{addr}/mcp")}}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let (_, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    let tools: Vec<String> = response(&text)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.iter().all(|t| t.len() <= 64), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t.contains("elicitation")),
        "{tools:?}"
    );
    assert_eq!(
        tools.len(),
        11,
        "the fixture's 14 tools minus 3 elicitation ones: {tools:?}"
    );
    let simple = tools
        .iter()
        .find(|t| t.starts_with(&long[..20]) && t.len() == 64)
        .expect("a shortened name")
        .clone();
    assert!(tools.len() >= 10);
    // Every shortened name routes to its own tool.
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name": simple, "arguments": {}}});
    let (_, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    let r = response(&text);
    assert!(r.get("result").is_some(), "{r}");
    let simple_text = format!("{long}__test_simple_text");
    let exposed = names_fit(&simple_text);
    let call = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name": exposed, "arguments": {}}});
    let (_, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    assert_eq!(
        response(&text)["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    // Denied tools cannot be called even by their exposed name.
    let denied = names_fit(&format!("{long}__test_elicitation"));
    let call = json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name": denied, "arguments": {"message": "x"}}});
    let (_, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    assert_eq!(response(&text)["error"]["code"], -32602);
}

fn names_fit(full: &str) -> String {
    switchboard_mcp::names::fit_tool_name(full).0
}

async fn call_echo(url: &str, sid: &str, id: u64) -> Value {
    let call = json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":"again"}}});
    let (_, _, text) = post(url, Some(sid), &call.to_string()).await;
    response(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_target_killed_mid_call_comes_back() {
    if !have_peers() {
        return;
    }
    let gw = gateway(json!({
        "targets": [{"name": "ev", "stdio": {"command": node(), "args": [everything(), "stdio"]}, "timeout": "30s"}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    assert_eq!(
        call_echo(&gw.url, &sid, 1).await["result"]["content"][0]["text"],
        "Echo: again"
    );
    let pid = gw.backend.target_pids()[0].1;

    // Stream the call (SSE) and kill the child once its first progress notification shows
    // the call is running upstream.
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":20,"steps":20},"_meta":{"progressToken":"pt"}}});
    let mut resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let read_all = async {
        let mut killed = false;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if !killed && text.contains("notifications/progress") {
                assert!(
                    text.contains(r#""progressToken":"pt""#),
                    "progress token restored: {text}"
                );
                std::process::Command::new("kill")
                    .args(["-9", &pid.to_string()])
                    .status()
                    .unwrap();
                killed = true;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read_all)
        .await
        .expect("in-flight call answered");
    let msgs = messages(&text);
    let last = msgs.last().expect("a response");
    assert!(
        last.get("error").is_some(),
        "in-flight call must fail: {text}"
    );
    assert_eq!(last["id"], 2);
    // Later calls wait for the restarted child and work.
    let r = call_echo(&gw.url, &sid, 3).await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: again", "{r}");
    let new_pid = gw.backend.target_pids()[0].1;
    assert_ne!(new_pid, pid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_target_that_forgets_sessions_is_reinitialized() {
    if !have_peers() {
        return;
    }
    let first = start_everything("streamableHttp").await;
    let gw = gateway(json!({"targets": [{"name": "ev", "http": {"url": first.url}}]})).await;
    let sid = raw_initialize(&gw.url).await;
    assert_eq!(
        call_echo(&gw.url, &sid, 1).await["result"]["content"][0]["text"],
        "Echo: again"
    );
    // Restart the upstream on the same port: it forgets every session.
    let port = first.port;
    let mut child = first.child;
    child.kill().await.unwrap();
    let _second = restart_everything("streamableHttp", port).await;
    let r = call_echo(&gw.url, &sid, 2).await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: again", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_requests_need_no_session() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    let (status, headers, text) = post(
        &gw.url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("mcp-session-id").is_none());
    let r = response(&text);
    assert!(
        r["result"]["supportedVersions"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28")),
        "{r}"
    );
    let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}});
    let (status, _, text) = post(&gw.url, None, &call.to_string()).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        response(&text)["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    // Routing headers must agree with the body.
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "other_tool")
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // The same code as an `Mcp-Param-*` mismatch (tests/input_rounds.rs), with the request's id.
    let v: Value = serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(v["error"]["code"], -32020, "{v}");
    assert_eq!(v["id"], call["id"], "{v}");
    assert_eq!(gw.backend.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_default_auto_mode_works() {
    if !have("python with the mcp SDK", &python()) {
        return;
    }
    let (gw, _f) = fixture_gateway(json!({})).await;
    let (ok, out, err) = run_python("stateless_client.py", &[&gw.url, "test_simple_text"]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    assert!(
        out.contains(r#""negotiated": "True""#),
        "the client went stateless (2026-07-28): {out}"
    );
    assert_eq!(gw.backend.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_target_that_restarts_is_reconnected() {
    if !have_peers() {
        return;
    }
    let first = start_everything("sse").await;
    let gw = gateway(json!({"targets": [{"name": "ev", "sse": {"url": first.url}}]})).await;
    let sid = raw_initialize(&gw.url).await;
    assert_eq!(
        call_echo(&gw.url, &sid, 1).await["result"]["content"][0]["text"],
        "Echo: again"
    );
    let port = first.port;
    let mut child = first.child;
    child.kill().await.unwrap();
    let _second = restart_everything("sse", port).await;
    let r = call_echo(&gw.url, &sid, 2).await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: again", "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_target_gets_its_env_and_cwd() {
    if !have_peers() {
        return;
    }
    let dist = everything().parent().unwrap().to_path_buf();
    // A relative script path only resolves when cwd is applied.
    let gw = gateway(json!({
        "targets": [{"name": "ev", "stdio": {"command": node(), "args": ["index.js", "stdio"],
            "cwd": dist, "env": {"SWITCHBOARD_PROBE": "probe-value-42"}}}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"get-env","arguments":{}}}"#;
    let (_, _, text) = post(&gw.url, Some(&sid), call).await;
    let r = response(&text);
    let out = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(
        out.contains("SWITCHBOARD_PROBE") && out.contains("probe-value-42"),
        "{r}"
    );
}

#[tokio::test]
async fn a_session_belongs_to_its_principal() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    let c = reqwest::Client::new();
    let send = |who: &'static str, sid: Option<String>, body: &'static str| {
        let mut r = c
            .post(&gw.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-test-principal", who)
            .body(body);
        if let Some(s) = sid {
            r = r.header("mcp-session-id", s);
        }
        r.send()
    };
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}"#;
    let resp = send("alice", None, init).await.unwrap();
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let ping = r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#;
    assert_eq!(
        send("mallory", Some(sid.clone()), ping)
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        send("alice", Some(sid.clone()), ping)
            .await
            .unwrap()
            .status(),
        200
    );
    let del = c
        .delete(&gw.url)
        .header("mcp-session-id", &sid)
        .header("x-test-principal", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 404);
    assert_eq!(gw.backend.session_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_but_valid_json_never_breaks_the_gateway() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    let sid = raw_initialize(&gw.url).await;
    let odd = [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":[1,2]}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"x"}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":5}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"completion/complete","params":{"ref":"x"}}"#,
        r#"{"jsonrpc":"2.0","id":5,"method":"prompts/get","params":null}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"logging/setLevel","params":{"level":7}}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":7}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":"x"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":{"a":1}}}"#,
        r#"{"jsonrpc":"2.0","id":"sb-999","result":{}}"#,
        r#"{"jsonrpc":"2.0","id":8,"error":{"code":1,"message":"x"}}"#,
        r#"[{"jsonrpc":"2.0","id":9,"method":"ping"}]"#,
        r#"{"jsonrpc":"2.0","id":10,"method":"initialize","params":{}}"#,
        r#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":{"nested":true}}}"#,
        r#"7"#,
        r#"null"#,
    ];
    for body in odd {
        let (status, _, text) = post(&gw.url, Some(&sid), body).await;
        assert!(
            matches!(status, 200 | 202 | 400),
            "{body} -> {status} {text}"
        );
        if status != 202 {
            let r = response(&text);
            assert!(r["error"]["code"].is_i64(), "{body} -> {text}");
        }
    }
    let (_, _, text) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":"ok","method":"ping"}"#,
    )
    .await;
    assert_eq!(response(&text)["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_children_survive_a_reload_with_unchanged_config() {
    if !have_peers() {
        return;
    }
    init();
    let shared = switchboard_mcp::McpShared::new(switchboard_mcp::Metrics::unregistered()).unwrap();
    let cfg = |args: Vec<String>| -> switchboard_mcp::McpConfig {
        serde_json::from_value(
            json!({"targets": [{"name": "ev", "stdio": {"command": node(), "args": args}}]}),
        )
        .unwrap()
    };
    let args = vec![everything().display().to_string(), "stdio".to_string()];
    let pid_of = |b: &switchboard_mcp::McpBackend| b.target_pids().first().map(|p| p.1);
    let first = switchboard_mcp::McpBackend::new(cfg(args.clone()), &shared).unwrap();
    let wait_pid = |b: switchboard_mcp::McpBackend| async move {
        for _ in 0..200 {
            if let Some(p) = pid_of(&b) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("stdio child never started");
    };
    let pid = wait_pid(first.clone()).await;
    // The reload builds a new backend while the old one still serves: same config, same child.
    let second = switchboard_mcp::McpBackend::new(cfg(args.clone()), &shared).unwrap();
    drop(first);
    assert_eq!(wait_pid(second.clone()).await, pid);
    // A changed command line is a different child.
    let mut changed = args.clone();
    changed.push("--ignored-extra-arg".into());
    let third = switchboard_mcp::McpBackend::new(cfg(changed), &shared).unwrap();
    drop(second);
    assert_ne!(wait_pid(third).await, pid);
    // Nothing uses the old child any more: it is killed, not left running.
    for _ in 0..400 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the replaced child {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_request_with_no_client_to_reach_fails_at_once() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    // A stateless request has no stream a sampling request could travel on.
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"test_sampling","arguments":{"prompt":"hi"},
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"sampling":{}}}}});
    // The fixture's target timeout is 60 s; the bound shows the target was told, not timed out.
    let (status, _, text) = tokio::time::timeout(
        Duration::from_secs(30),
        post(&gw.url, None, &call.to_string()),
    )
    .await
    .expect("answered without waiting for the target timeout");
    assert_eq!(status, 200);
    let r = response(&text);
    // The request travels back as a 2026-07-28 input request (see tests/input_rounds.rs).
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let reqs = r["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(
        reqs.values().next().unwrap()["method"],
        "sampling/createMessage"
    );
}
