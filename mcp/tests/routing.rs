//! Routing details: metrics, cancellation, merged capabilities, pagination across targets.

use crate::harness;

use std::time::Duration;

use harness::*;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use switchboard_mcp::Metrics;

fn response(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no response in {body}"))
}

async fn fixture_url() -> String {
    init();
    let (addr, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    // The fixture lives as long as the test process; tests are separate processes under nextest.
    std::mem::forget(task);
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_tool_calls_and_sessions() {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let url = fixture_url().await;
    let gw = gateway_with_metrics(
        json!({"targets": [{"name": "fx", "http": {"url": url}}]}),
        metrics,
    )
    .await;
    let sid = raw_initialize(&gw.url).await;
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}"#;
    post(&gw.url, Some(&sid), call).await;
    post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":3,"method":"nope"}"#,
    )
    .await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for want in [
        r#"mcp_requests_total{method="tools/call",target="fx",result="ok"} 1"#,
        r#"mcp_requests_total{method="initialize",target="fx",result="ok"} 1"#,
        r#"mcp_requests_total{method="nope",target="",result="not_found"} 1"#,
        r#"mcp_tool_call_duration_seconds_count{target="fx"} 1"#,
        "mcp_sessions_open 1",
    ] {
        assert!(text.contains(want), "missing `{want}` in\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_capabilities_templates_prompts_completion_logging() {
    let a = fixture_url().await;
    let b = fixture_url().await;
    let gw = gateway(json!({"targets": [
        {"name": "a", "http": {"url": a}},
        {"name": "b", "http": {"url": b}},
    ]}))
    .await;
    let (_, headers, body) = post(
        &gw.url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    )
    .await;
    let init = response(&body);
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25");
    let caps = &init["result"]["capabilities"];
    assert_eq!(caps["tools"]["listChanged"], true, "{caps}");
    assert_eq!(caps["resources"]["subscribe"], true, "{caps}");
    assert!(
        caps.get("completions").is_some() && caps.get("logging").is_some(),
        "{caps}"
    );
    let sid = headers["mcp-session-id"].to_str().unwrap().to_string();
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"resources/templates/list"}"#,
    )
    .await;
    let templates = response(&body)["result"]["resourceTemplates"].clone();
    assert_eq!(templates.as_array().unwrap().len(), 2, "{templates}");
    // A namespaced template, expanded by the client, reads from its own target.
    let t = templates[1]["uriTemplate"]
        .as_str()
        .unwrap()
        .replace("{id}", "42");
    let read = json!({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri": t}});
    let (_, _, body) = post(&gw.url, Some(&sid), &read.to_string()).await;
    let r = response(&body);
    assert_eq!(r["result"]["contents"][0]["uri"], t, "{r}");
    assert!(
        r["result"]["contents"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Data for ID: 42")
    );
    // A cursor that is not ours is rejected, not forwarded.
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"cursor":"zz"}}"#,
    )
    .await;
    assert_eq!(response(&body)["error"]["code"], -32602);
    // Prompts of both targets, each routed home.
    let get = json!({"jsonrpc":"2.0","id":5,"method":"prompts/get","params":{"name":"b__test_prompt_with_arguments","arguments":{"arg1":"x","arg2":"y"}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &get.to_string()).await;
    assert_eq!(
        response(&body)["result"]["messages"][0]["content"]["text"],
        "Prompt with arguments: arg1='x', arg2='y'"
    );
    let complete = json!({"jsonrpc":"2.0","id":6,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"a__test_prompt_with_arguments"},"argument":{"name":"arg1","value":"v"}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &complete.to_string()).await;
    assert_eq!(response(&body)["result"]["completion"]["values"], json!([]));
    let level =
        r#"{"jsonrpc":"2.0","id":7,"method":"logging/setLevel","params":{"level":"debug"}}"#;
    let (_, _, body) = post(&gw.url, Some(&sid), level).await;
    assert_eq!(response(&body)["result"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_cancellation_ends_the_call_and_the_session_goes_on() {
    if !have_peers() {
        return;
    }
    let ev = start_everything("streamableHttp").await;
    let gw = gateway(json!({"targets": [{"name": "ev", "http": {"url": ev.url}}]})).await;
    let sid = raw_initialize(&gw.url).await;
    let call = json!({"jsonrpc":"2.0","id":"slow","method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":30},"_meta":{"progressToken":7}}});
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
    let url = gw.url.clone();
    let sid2 = sid.clone();
    let read_all = async {
        let mut cancelled = false;
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if !cancelled && text.contains("notifications/progress") {
                assert!(text.contains(r#""progressToken":7"#), "{text}");
                let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"slow","reason":"test"}}"#;
                let (status, _, _) = post(&url, Some(&sid2), cancel).await;
                assert_eq!(status, 202);
                cancelled = true;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(25), read_all)
        .await
        .expect("the cancelled call ends");
    let last = messages(&text).pop().unwrap();
    assert_eq!(last["id"], "slow");
    assert_eq!(last["error"]["code"], -32800, "{last}");
    let echo = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"still here"}}}"#;
    let (_, _, body) = post(&gw.url, Some(&sid), echo).await;
    assert_eq!(
        response(&body)["result"]["content"][0]["text"],
        "Echo: still here"
    );
}

/// A minimal streamable HTTP MCP server whose `tools/list` has two pages.
async fn paginated_upstream() -> String {
    use axum::body::Bytes;
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(|body: Bytes| async move {
            let msg: Value = serde_json::from_slice(&body).unwrap();
            let id = msg["id"].clone();
            let result = match msg["method"].as_str().unwrap_or("") {
                "initialize" => json!({"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                    "serverInfo": {"name": "paged", "version": "1"}}),
                "tools/list" => match msg.pointer("/params/cursor").and_then(Value::as_str) {
                    None => json!({"tools": [{"name": "one", "inputSchema": {"type": "object"}},
                        {"name": "two", "inputSchema": {"type": "object"}}], "nextCursor": "page-2"}),
                    Some("page-2") => json!({"tools": [{"name": "three", "inputSchema": {"type": "object"}}]}),
                    Some(other) => panic!("unexpected upstream cursor {other}"),
                },
                _ => return (http::StatusCode::ACCEPTED, [("mcp-session-id", "s1")], String::new()),
            };
            (http::StatusCode::OK, [("mcp-session-id", "s1")],
                json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_uses_a_composite_cursor() {
    let paged = paginated_upstream().await;
    let fx = fixture_url().await;
    let gw = gateway(json!({"targets": [
        {"name": "paged", "http": {"url": paged}},
        {"name": "fx", "http": {"url": fx}},
    ]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    let page1 = response(&body)["result"].clone();
    let names: Vec<&str> = page1["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"paged__one")
            && names.contains(&"paged__two")
            && names.contains(&"fx__test_simple_text"),
        "{names:?}"
    );
    let cursor = page1["nextCursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let next = json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor": cursor}});
    let (_, _, body) = post(&gw.url, Some(&sid), &next.to_string()).await;
    let page2 = response(&body)["result"].clone();
    assert_eq!(
        page2["tools"],
        json!([{"name": "paged__three", "inputSchema": {"type": "object"}}])
    );
    assert!(page2.get("nextCursor").is_none(), "{page2}");
}

/// A streamable HTTP MCP server whose tool list grows after `one` is called; it announces the
/// change with `notifications/tools/list_changed` on the call's SSE stream.
async fn changing_upstream() -> String {
    use axum::body::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let changed = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::post(move |body: Bytes| {
            let changed = changed.clone();
            async move {
                let msg: Value = serde_json::from_slice(&body).unwrap();
                let id = msg["id"].clone();
                let reply = |result: Value| json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string();
                let tool = |n: &str| json!({"name": n, "inputSchema": {"type": "object"}});
                let (ctype, body) = match msg["method"].as_str().unwrap_or("") {
                    "initialize" => ("application/json", reply(json!({"protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {"listChanged": true}}, "serverInfo": {"name": "changing", "version": "1"}}))),
                    "tools/list" => {
                        let mut tools = vec![tool("one")];
                        if changed.load(Ordering::SeqCst) {
                            tools.push(tool("four"));
                        }
                        ("application/json", reply(json!({"tools": tools})))
                    }
                    "tools/call" => {
                        let name = msg.pointer("/params/name").and_then(Value::as_str).unwrap_or("").to_string();
                        changed.store(true, Ordering::SeqCst);
                        let note = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
                        let result = reply(json!({"content": [{"type": "text", "text": format!("called {name}")}]}));
                        ("text/event-stream", format!("event: message\ndata: {note}\n\nevent: message\ndata: {result}\n\n"))
                    }
                    _ => return (http::StatusCode::ACCEPTED, [("content-type", "application/json")], String::new()),
                };
                (http::StatusCode::OK, [("content-type", ctype)], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprefixed_names_route_by_catalogue_and_list_changed_invalidates_it() {
    let changing = changing_upstream().await;
    let fx = fixture_url().await;
    let gw = gateway(json!({"prefix": "never", "targets": [
        {"name": "a", "http": {"url": changing}},
        {"name": "b", "http": {"url": fx}},
    ]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    let names: Vec<String> = response(&body)["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"one".to_string()) && names.contains(&"test_simple_text".to_string()),
        "{names:?}"
    );
    assert!(!names.contains(&"four".to_string()));
    let call = |id: u64, name: &str| {
        json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name": name, "arguments": {}}}).to_string()
    };
    let (_, _, body) = post(&gw.url, Some(&sid), &call(2, "test_simple_text")).await;
    assert_eq!(
        response(&body)["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    // The call's stream carries the upstream's list_changed to the client.
    let (_, _, body) = post(&gw.url, Some(&sid), &call(3, "one")).await;
    let msgs = messages(&body);
    assert!(
        msgs.iter()
            .any(|m| m["method"] == "notifications/tools/list_changed"),
        "{body}"
    );
    assert_eq!(
        response(&body)["result"]["content"][0]["text"],
        "called one"
    );
    // A tool that appeared after the change is found without the client listing again.
    let (_, _, body) = post(&gw.url, Some(&sid), &call(4, "four")).await;
    assert_eq!(
        response(&body)["result"]["content"][0]["text"],
        "called four",
        "{body}"
    );
    let (_, _, body) = post(&gw.url, Some(&sid), &call(5, "nonexistent")).await;
    assert_eq!(response(&body)["error"]["code"], -32602);
}

/// An HTTP endpoint that accepts connections and never answers.
async fn black_hole() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}/mcp")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_skips_a_silent_target_after_its_timeout() {
    let fx = fixture_url().await;
    let silent = black_hole().await;
    let gw = gateway(json!({"failure_mode": "fail_open", "targets": [
        {"name": "fx", "http": {"url": fx}},
        {"name": "silent", "http": {"url": silent}, "timeout": "300ms"},
    ]}))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    )
    .await;
    let tools = response(&body)["result"]["tools"].as_array().unwrap().len();
    assert_eq!(tools, 14, "the fixture's tools, the silent target skipped");
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"silent__anything","arguments":{}}}"#;
    let (_, _, body) = post(&gw.url, Some(&sid), call).await;
    // Within the reconnect hold-off the target is skipped at once.
    assert_eq!(response(&body)["error"]["code"], -32002);
    assert_eq!(
        response(&body)["error"]["message"],
        "target `silent` is unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_target_that_cannot_start_fails_fast() {
    let fx = fixture_url().await;
    let gw = gateway(json!({"targets": [
        {"name": "fx", "http": {"url": fx}},
        {"name": "broken", "stdio": {"command": "/nonexistent/switchboard-test-binary"}, "timeout": "120s"},
    ]}))
    .await;
    // Not waiting out the 120 s timeout is the point; the bound only keeps a failure short.
    let session = tokio::time::timeout(Duration::from_secs(60), async {
        let sid = raw_initialize(&gw.url).await;
        let (_, _, body) = post(
            &gw.url,
            Some(&sid),
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        )
        .await;
        (sid, body)
    })
    .await
    .expect("a target that cannot start is not waited for");
    let tools = response(&session.1)["result"]["tools"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(tools, 14);
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"broken__x","arguments":{}}}"#;
    let (_, _, body) = post(&gw.url, Some(&session.0), call).await;
    assert_eq!(
        response(&body)["error"]["message"],
        "target `broken` is unavailable"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_fails_the_session_when_a_target_is_down() {
    let fx = fixture_url().await;
    // Held (bound, never listening) for the whole test: connections are refused.
    let closed = switchboard_testing::ports::ClosedPort::new();
    let down = format!("http://{}/mcp", closed.addr());
    let gw = gateway(json!({"failure_mode": "fail_closed", "targets": [
        {"name": "fx", "http": {"url": fx}},
        {"name": "down", "http": {"url": down}},
    ]}))
    .await;
    let (status, headers, body) = post(
        &gw.url,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("mcp-session-id").is_none());
    let r = response(&body);
    assert_eq!(r["error"]["code"], -32002, "{r}");
    assert_eq!(r["error"]["message"], "target `down` is unavailable");
    assert_eq!(gw.backend.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_only_speaks_2026_07_28_is_served_statelessly() {
    init();
    let (addr, _task) =
        switchboard_examples::mcp_fixture::serve_with(([127, 0, 0, 1], 0).into(), true)
            .await
            .unwrap();
    let modern = format!("http://{addr}/mcp");
    // The fixture really refuses the handshake.
    let (_, _, body) = post(
        &modern,
        None,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
    )
    .await;
    assert_eq!(response(&body)["error"]["code"], -32022, "{body}");
    let gw = gateway(json!({"targets": [{"name": "modern", "http": {"url": modern}}]})).await;
    // A handshake-era client in front of it.
    let sid = raw_initialize(&gw.url).await;
    let (_, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    let tools = response(&body)["result"]["tools"].as_array().unwrap().len();
    assert_eq!(tools, 14, "{body}");
    let call = r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"test_simple_text","arguments":{}}}"#;
    let (_, _, body) = post(&gw.url, Some(&sid), call).await;
    assert_eq!(
        response(&body)["result"]["content"][0]["text"],
        "This is a simple text response for testing.",
        "{body}"
    );
    let read = r#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{"uri":"test://static-text"}}"#;
    let (_, _, body) = post(&gw.url, Some(&sid), read).await;
    assert_eq!(
        response(&body)["result"]["contents"][0]["text"],
        "This is the content of the static text resource.",
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_restarts_the_target_timeout() {
    if !have_peers() {
        return;
    }
    let ev = start_everything("streamableHttp").await;
    let gw =
        gateway(json!({"targets": [{"name": "ev", "http": {"url": ev.url}, "timeout": "1s"}]}))
            .await;
    let sid = raw_initialize(&gw.url).await;
    // Two seconds of work with progress every quarter second: never a second of silence.
    let with_progress = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"trigger-long-running-operation",
        "arguments":{"duration":2,"steps":8},"_meta":{"progressToken":"p"}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &with_progress.to_string()).await;
    let r = response(&body);
    assert!(
        r["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("completed"),
        "{r}"
    );
    // The same work without progress is two seconds of silence.
    let silent = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation",
        "arguments":{"duration":2,"steps":8}}});
    let (_, _, body) = post(&gw.url, Some(&sid), &silent.to_string()).await;
    assert_eq!(response(&body)["error"]["code"], -32001, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_can_hide_and_refuse_tools_per_request() {
    let a = fixture_url().await;
    let b = fixture_url().await;
    let gw = gateway(
        json!({"targets": [{"name": "a", "http": {"url": a}}, {"name": "b", "http": {"url": b}}]}),
    )
    .await;
    let sid = raw_initialize(&gw.url).await;
    let c = reqwest::Client::new();
    let send = |body: &'static str| {
        c.post(&gw.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &sid)
            .header("x-test-allow-prefix", "a__")
            .body(body)
            .send()
    };
    let body = send(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let tools = response(&body)["result"]["tools"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tools.len(), 14);
    assert!(
        tools
            .iter()
            .all(|t| t["name"].as_str().unwrap().starts_with("a__"))
    );
    let body = send(r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"b__test_simple_text","arguments":{}}}"#)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(response(&body)["error"]["code"], -32602);
    let body = send(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"a__test_simple_text","arguments":{}}}"#)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(response(&body).get("result").is_some(), "{body}");
}
