//! JSON-RPC batches over raw HTTP (no SDK sends them): accepted on 2025-03-26 sessions and the
//! legacy transport, refused on 2025-06-18 and later; each member answered as if posted alone,
//! by the target that owns it, concurrently.

use crate::harness;

use std::time::Duration;

use futures::StreamExt;
use harness::*;
use serde_json::{Value, json};

/// Two rmcp fixtures (`a`, `b`): names are prefixed, so every call must reach its owner.
async fn two_fixtures() -> (Gateway, Vec<tokio::task::JoinHandle<()>>) {
    init();
    let mut targets = Vec::new();
    let mut tasks = Vec::new();
    for name in ["a", "b"] {
        let (addr, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        targets.push(json!({"name": name, "http": {"url": format!("http://{addr}/mcp")}}));
        tasks.push(task);
    }
    (gateway(json!({ "targets": targets })).await, tasks)
}

async fn post_accept(
    url: &str,
    sid: Option<&str>,
    accept: &str,
    body: &Value,
) -> (u16, String, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_string());
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

fn by_id(replies: &[Value], id: Value) -> &Value {
    let found: Vec<&Value> = replies.iter().filter(|r| r["id"] == id).collect();
    assert_eq!(
        found.len(),
        1,
        "exactly one reply with id {id}: {replies:?}"
    );
    found[0]
}

fn text_of(reply: &Value) -> &str {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {reply}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_on_a_2025_03_26_session_is_answered_member_by_member() {
    let (gw, _f) = two_fixtures().await;
    let sid = raw_session(&gw.url, "2025-03-26", json!({})).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": "two", "method": "tools/call", "params": {"name": "a__test_simple_text", "arguments": {}}},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "b__test_simple_prompt"}},
        {"jsonrpc": "2.0", "foo": "not a message"},
        {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "x", "version": "1"}}},
        {"jsonrpc": "2.0", "id": 5, "method": "no/such/method"},
        {"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {"name": "c__nowhere", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": {"uri": "switchboard://mcp/b/test%3A%2F%2Fstatic-text"}},
        {"jsonrpc": "2.0", "id": 8, "method": "ping"}
    ]);
    let (status, ct, body) = post_accept(&gw.url, Some(&sid), "application/json", &batch).await;
    assert_eq!(status, 200, "{body}");
    assert!(ct.starts_with("application/json"), "{ct}");
    let replies: Vec<Value> = serde_json::from_str::<Value>(&body)
        .unwrap()
        .as_array()
        .expect("a batch is answered with an array")
        .clone();
    // One reply per request and per invalid member; none for the notification.
    assert_eq!(replies.len(), 9, "{body}");
    let tools = by_id(&replies, json!(1))["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(
        tools.contains(&"a__test_simple_text".to_string()),
        "{tools:?}"
    );
    assert!(tools.contains(&"b__test_sampling".to_string()), "{tools:?}");
    assert_eq!(
        text_of(by_id(&replies, json!("two"))),
        "This is a simple text response for testing."
    );
    assert!(
        by_id(&replies, json!(3))["result"]["messages"].is_array(),
        "{replies:?}"
    );
    let invalid = by_id(&replies, Value::Null);
    assert_eq!(invalid["error"]["code"], -32600);
    let init = by_id(&replies, json!(4));
    assert_eq!(init["error"]["code"], -32600);
    assert!(
        init["error"]["message"].as_str().unwrap().contains("batch"),
        "{init}"
    );
    assert_eq!(by_id(&replies, json!(5))["error"]["code"], -32601);
    assert_eq!(by_id(&replies, json!(6))["error"]["code"], -32602);
    let read = by_id(&replies, json!(7));
    assert_eq!(
        read["result"]["contents"][0]["uri"], "switchboard://mcp/b/test%3A%2F%2Fstatic-text",
        "{read}"
    );
    assert_eq!(by_id(&replies, json!(8))["result"], json!({}));
    // Replies keep the batch's order.
    let ids: Vec<&Value> = replies.iter().map(|r| &r["id"]).collect();
    assert_eq!(
        ids,
        [
            &json!(1),
            &json!("two"),
            &json!(3),
            &Value::Null,
            &json!(4),
            &json!(5),
            &json!(6),
            &json!(7),
            &json!(8)
        ]
    );

    // Notifications and responses only: 202, no body.
    let quiet = json!([
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}},
        {"jsonrpc": "2.0", "id": "sb-999", "result": {}},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"}
    ]);
    let (status, _, body) = post_accept(&gw.url, Some(&sid), "application/json", &quiet).await;
    assert_eq!(status, 202, "{body}");
    assert!(body.is_empty(), "{body}");

    // Only invalid members: an array of errors (JSON-RPC 2.0's `[1,2,3]` example).
    let (status, _, body) =
        post_accept(&gw.url, Some(&sid), "application/json", &json!([1, 2, 3])).await;
    assert_eq!(status, 200, "{body}");
    let errs: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(errs.len(), 3);
    assert!(
        errs.iter()
            .all(|e| e["error"]["code"] == -32600 && e["id"].is_null())
    );

    // An empty batch is one invalid request, not an empty array.
    let (status, _, body) = post_accept(&gw.url, Some(&sid), "application/json", &json!([])).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(v["id"].is_null());

    // Longer than the limit (the gateway's default, 64): refused whole, nothing dispatched.
    let pings: Vec<Value> = (0..65)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let (status, _, body) = post_accept(
        &gw.url,
        Some(&sid),
        "application/json",
        &Value::Array(pings),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("64"),
        "{v}"
    );

    // Without a session each request fares as it would alone.
    let (status, _, body) = post_accept(
        &gw.url,
        None,
        "application/json",
        &json!([{"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": {}}]),
    )
    .await;
    assert_eq!(status, 400);
    let errs: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(errs.len(), 2, "{body}");
    assert!(
        by_id(&errs, json!(1))["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Session-Id")
    );
    assert_eq!(by_id(&errs, json!(2))["error"]["code"], -32600);

    // The gateway's per-request tool policy applies to every member.
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &sid)
        .header("x-test-allow-prefix", "b__")
        .body(
            json!([
                {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "a__test_simple_text", "arguments": {}}},
                {"jsonrpc": "2.0", "id": "b", "method": "tools/call", "params": {"name": "b__test_simple_text", "arguments": {}}}
            ])
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let replies: Vec<Value> = resp.json().await.unwrap();
    assert_eq!(by_id(&replies, json!("a"))["error"]["code"], -32602);
    assert_eq!(
        text_of(by_id(&replies, json!("b"))),
        "This is a simple text response for testing."
    );

    // The session is fine afterwards.
    let (status, _, body) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":"after","method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revisions_after_2025_03_26_refuse_batches_naming_the_revision() {
    let (gw, _f) = two_fixtures().await;
    let ping = json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]);
    for version in ["2025-06-18", "2025-11-25"] {
        let sid = raw_session(&gw.url, version, json!({})).await;
        let (status, _, body) = post_accept(
            &gw.url,
            Some(&sid),
            "application/json, text/event-stream",
            &ping,
        )
        .await;
        assert_eq!(status, 400, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], -32600, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(version) && msg.contains("batch"), "{msg}");
    }
    // A session-less batch declaring a revision without batches (here the stateless one).
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .body(ping.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2026-07-28"),
        "{v}"
    );
}

/// Reads SSE events (`data` payloads) from a streaming response.
struct Events {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl Events {
    fn new(resp: reqwest::Response) -> Self {
        Events {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next message; `None` when the stream ended.
    async fn next(&mut self) -> Option<Value> {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let event: String = self.buf.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(str::trim)
                    .collect();
                if let Ok(v) = serde_json::from_str(&data) {
                    return Some(v);
                }
            }
            let chunk = tokio::time::timeout(Duration::from_secs(60), self.stream.next())
                .await
                .expect("an event within a minute")?;
            self.buf
                .push_str(&String::from_utf8_lossy(&chunk.unwrap()).replace("\r\n", "\n"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_batch_runs_its_members_concurrently_with_server_requests_and_progress() {
    let (gw, _f) = two_fixtures().await;
    let sid = raw_session(&gw.url, "2025-03-26", json!({"sampling": {}})).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a__test_sampling", "arguments": {"prompt": "batched"}}},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "b__test_tool_with_progress", "arguments": {}, "_meta": {"progressToken": "tok-2"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "b__test_simple_text", "arguments": {}}},
        {"jsonrpc": "2.0", "id": 4, "method": "initialize", "params": {}}
    ]);
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .body(batch.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut events = Events::new(resp);
    let mut seen: Vec<Value> = Vec::new();
    // The sampling call waits for this client's answer; everything else must be answered
    // meanwhile: members are served concurrently, not one after another.
    let sampling = loop {
        let ev = events.next().await.expect("stream ended early");
        if ev["method"] == "sampling/createMessage" {
            break ev;
        }
        seen.push(ev);
    };
    while !(seen.iter().any(|m| m["id"] == 2) && seen.iter().any(|m| m["id"] == 3)) {
        let ev = events.next().await.expect("stream ended early");
        assert_ne!(ev["id"], 1, "the sampling call cannot finish unanswered");
        seen.push(ev);
    }
    assert!(
        seen.iter()
            .any(|m| m["id"] == 4 && m["error"]["code"] == -32600)
    );
    let progress: Vec<&Value> = seen
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "{seen:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-2")
    );
    let two = seen.iter().find(|m| m["id"] == 2).unwrap();
    // The fixture echoes the token it was sent: the gateway's own, not the client's.
    assert!(two["result"]["content"][0]["text"].is_string(), "{two}");
    assert_eq!(
        seen.iter().find(|m| m["id"] == 3).unwrap()["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    // Answer the sampling request (as its own POST); the last reply follows, then the end.
    let answer = json!({"jsonrpc": "2.0", "id": sampling["id"], "result": {
        "role": "assistant", "content": {"type": "text", "text": "sampled in a batch"},
        "model": "test", "stopReason": "endTurn"}});
    let (status, _, _) = post(&gw.url, Some(&sid), &answer.to_string()).await;
    assert_eq!(status, 202);
    let one = events.next().await.expect("the sampling call's reply");
    assert_eq!(one["id"], 1);
    assert_eq!(
        one["result"]["content"][0]["text"],
        "LLM response: sampled in a batch"
    );
    assert!(
        events.next().await.is_none(),
        "the stream ends with the last reply"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_message_endpoint_takes_batches_and_answers_on_the_stream() {
    let (gw, _f) = two_fixtures().await;
    let base = gw.url.trim_end_matches("/mcp").to_string();
    let open = || async {
        let resp = reqwest::Client::new()
            .get(format!("{}/sse", gw.url))
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut stream = resp.bytes_stream().boxed();
        // The first event names the message endpoint.
        let mut buf = String::new();
        let endpoint = loop {
            buf.push_str(&String::from_utf8_lossy(
                &stream.next().await.unwrap().unwrap(),
            ));
            if buf.contains("\n\n")
                && let Some(l) = buf.lines().find_map(|l| l.strip_prefix("data: "))
            {
                break l.trim().to_string();
            }
        };
        let rest = buf[buf.find("\n\n").unwrap() + 2..].to_string();
        (format!("{base}{endpoint}"), Events { stream, buf: rest })
    };
    let send = |url: String, body: Value| async move {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let init = |version: &str| {
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}})
    };

    let (endpoint, mut events) = open().await;
    assert_eq!(send(endpoint.clone(), init("2024-11-05")).await.0, 202);
    assert_eq!(events.next().await.unwrap()["id"], 0);
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(send(endpoint.clone(), initialized).await.0, 202);
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "a__test_simple_text", "arguments": {}}},
        {"jsonrpc": "2.0", "method": "notifications/roots/list_changed"},
        {"jsonrpc": "2.0", "id": 2, "method": "prompts/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {}},
        {"bogus": true}
    ]);
    let (status, _) = send(endpoint.clone(), batch).await;
    assert_eq!(status, 202);
    let mut got = Vec::new();
    while got.len() < 4 {
        got.push(events.next().await.expect("a reply on the stream"));
    }
    assert_eq!(
        text_of(by_id(&got, json!(1))),
        "This is a simple text response for testing."
    );
    assert!(by_id(&got, json!(2))["result"]["prompts"].is_array());
    assert_eq!(by_id(&got, json!(3))["error"]["code"], -32600);
    assert_eq!(by_id(&got, Value::Null)["error"]["code"], -32600);
    // Refused before it is accepted: empty, and a session whose revision has no batches.
    let (status, body) = send(endpoint.clone(), json!([])).await;
    assert_eq!(status, 400, "{body}");

    let (endpoint, mut events) = open().await;
    assert_eq!(send(endpoint.clone(), init("2025-06-18")).await.0, 202);
    assert_eq!(events.next().await.unwrap()["id"], 0);
    let (status, body) = send(
        endpoint,
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("2025-06-18"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_spans_a_stdio_and_an_http_target() {
    if !have_peers() {
        return;
    }
    init();
    let (addr, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(json!({"targets": [
        {"name": "ev", "stdio": {"command": node(), "args": [everything(), "stdio"]}},
        {"name": "fx", "http": {"url": format!("http://{addr}/mcp")}}
    ]}))
    .await;
    let sid = raw_session(&gw.url, "2025-03-26", json!({})).await;
    let batch = json!([
        {"jsonrpc": "2.0", "id": "long", "method": "tools/call", "params": {
            "name": "ev__trigger-long-running-operation", "arguments": {"duration": 0.2, "steps": 2},
            "_meta": {"progressToken": "p-long"}}},
        {"jsonrpc": "2.0", "id": "echo", "method": "tools/call", "params": {"name": "ev__echo", "arguments": {"message": "batched"}}},
        {"jsonrpc": "2.0", "id": "fx", "method": "tools/call", "params": {"name": "fx__test_simple_text", "arguments": {}}},
        {"jsonrpc": "2.0", "id": "sum", "method": "tools/call", "params": {"name": "ev__get-sum", "arguments": {"a": 2, "b": 3}}}
    ]);
    let (status, ct, body) = post_accept(
        &gw.url,
        Some(&sid),
        "application/json, text/event-stream",
        &batch,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ct, "text/event-stream");
    let msgs = messages(&body);
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 2, "{msgs:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "p-long")
    );
    let replies: Vec<Value> = msgs.into_iter().filter(|m| m.get("id").is_some()).collect();
    assert_eq!(replies.len(), 4, "{replies:?}");
    assert!(text_of(by_id(&replies, json!("long"))).contains("completed"));
    assert_eq!(text_of(by_id(&replies, json!("echo"))), "Echo: batched");
    assert_eq!(
        text_of(by_id(&replies, json!("fx"))),
        "This is a simple text response for testing."
    );
    assert!(text_of(by_id(&replies, json!("sum"))).contains('5'));
}
