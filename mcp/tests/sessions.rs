//! Sessions through the MCP backend: the `Mcp-Session-Id` is a sealed token from the sessions
//! crate. Two backends with their own session managers over one shared store stand in for two
//! replicas (the gateway-level test runs two real processes over Redis): a session moves
//! between them, its GET stream resumes with `Last-Event-ID`, drain ends streams with a
//! `retry:` hint, a stdio-pinned session gets a clear error elsewhere, and foreign, tampered,
//! revoked and expired tokens get 404.

use crate::harness;

use std::sync::Arc;
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};
use switchboard_mcp::{McpConfig, McpShared, Metrics};
use switchboard_sessions::{
    MemoryStore, SessionManager, SessionStore, SessionsConfig, StoreLimits,
};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn sessions_cfg(replica: &str, idle: Duration) -> SessionsConfig {
    let mut cfg: SessionsConfig = serde_json::from_value(json!({
        "keys": [format!("{KEY}=")],
        "replica": replica,
    }))
    .expect("sessions config");
    cfg.idle_timeout = idle;
    cfg
}

/// A replica: a backend whose session manager uses `store`.
async fn replica(
    cfg: Value,
    name: &str,
    store: Arc<dyn SessionStore>,
    idle: Duration,
) -> (Gateway, SessionManager) {
    init();
    let manager = SessionManager::new(
        &sessions_cfg(name, idle),
        store,
        switchboard_sessions::Metrics::default(),
    )
    .unwrap();
    let shared = McpShared::new(Metrics::unregistered())
        .unwrap()
        .with_sessions(manager.clone());
    let cfg: McpConfig = serde_json::from_value(cfg).unwrap();
    (gateway_with_shared(cfg, &shared).await, manager)
}

fn memory_store(idle: Duration) -> Arc<dyn SessionStore> {
    Arc::new(MemoryStore::new(StoreLimits::from_config(&sessions_cfg(
        "any", idle,
    ))))
}

async fn fixture() -> (String, tokio::task::JoinHandle<()>) {
    init();
    let (addr, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    (format!("http://{addr}/mcp"), task)
}

async fn post_as(
    url: &str,
    session: &str,
    principal: Option<&str>,
    accept: &str,
    body: Value,
) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .header("mcp-session-id", session)
        .body(body.to_string());
    if let Some(p) = principal {
        req = req.header("x-test-principal", p);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

/// A tool call answered as plain JSON: its logging notifications have no request stream, so
/// they go to the session's standalone stream (and its event log).
async fn call_logging_tool(url: &str, session: &str, id: u64) {
    let (status, body) = post_as(
        url,
        session,
        None,
        "application/json",
        call(id, "test_tool_with_logging"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["result"]["content"][0]["text"], "Tool with logging executed successfully",
        "{v}"
    );
}

/// Reads SSE events (id, data) from a streaming response.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

#[derive(Debug, PartialEq)]
enum Ev {
    Event { id: Option<String>, data: String },
    Retry(u64),
    End,
}

impl Sse {
    async fn open(url: &str, session: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = reqwest::Client::new()
            .get(url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session);
        if let Some(l) = last_event_id {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> Ev {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let mut id = None;
                let mut data = Vec::new();
                let mut retry = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push(v.to_string());
                    } else if let Some(v) = line.strip_prefix("retry: ") {
                        retry = v.parse().ok();
                    }
                }
                return match retry {
                    Some(ms) if data.is_empty() => Ev::Retry(ms),
                    _ => Ev::Event {
                        id,
                        data: data.join("\n"),
                    },
                };
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("no SSE event within 20s")
                .unwrap();
            match chunk {
                Some(c) => self.buf.push_str(&String::from_utf8_lossy(&c)),
                None => return Ev::End,
            }
        }
    }

    /// The next event with a JSON message (skips priming events).
    async fn message(&mut self) -> (String, Value) {
        loop {
            match self.next().await {
                Ev::Event { id, data } if !data.trim().is_empty() => {
                    return (id.expect("event id"), serde_json::from_str(&data).unwrap());
                }
                Ev::Event { .. } => {}
                other => panic!("expected a message, got {other:?}"),
            }
        }
    }
}

fn log_text(msg: &Value) -> &str {
    assert_eq!(msg["method"], "notifications/message", "{msg}");
    msg["params"]["data"].as_str().unwrap()
}

const LOGS: [&str; 3] = [
    "Tool execution started",
    "Tool processing data",
    "Tool execution completed",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_session_moves_between_replicas_and_replays_exactly_the_missed_events() {
    let (fixture_url, _fixture) = fixture().await;
    let cfg = json!({"targets": [{"name": "fixture", "http": {"url": fixture_url}}]});
    let store = memory_store(Duration::from_secs(600));
    let (a, _ma) = replica(cfg.clone(), "a", store.clone(), Duration::from_secs(600)).await;
    let (b, mb) = replica(cfg, "b", store, Duration::from_secs(600)).await;

    let token = raw_initialize(&a.url).await;
    assert!(token.len() > 40, "a sealed token, not a random id: {token}");
    let mut get_a = Sse::open(&a.url, &token, None).await;
    call_logging_tool(&a.url, &token, 2).await;
    let (first_id, first) = get_a.message().await;
    assert_eq!(log_text(&first), LOGS[0]);
    // The client saw only the first event; the rest of this call's events and those of the
    // next call (made on B while no stream is open) are what it missed.
    drop(get_a);
    assert_eq!(b.backend.session_count(), 0);
    call_logging_tool(&b.url, &token, 3).await;
    assert_eq!(b.backend.session_count(), 1, "rebuilt on B from the token");

    let mut get_b = Sse::open(&b.url, &token, Some(&first_id)).await;
    let mut seen = Vec::new();
    let mut last_seq = first_id.rsplit('/').next().unwrap().parse::<u64>().unwrap();
    for _ in 0..5 {
        let (id, msg) = get_b.message().await;
        let seq: u64 = id.rsplit('/').next().unwrap().parse().unwrap();
        assert!(seq > last_seq, "in order: {id} after seq {last_seq}");
        last_seq = seq;
        seen.push(log_text(&msg).to_string());
    }
    let expected: Vec<&str> = LOGS[1..].iter().chain(LOGS.iter()).copied().collect();
    assert_eq!(seen, expected);
    // Then the live stream.
    call_logging_tool(&b.url, &token, 4).await;
    for want in LOGS {
        let (_, msg) = get_b.message().await;
        assert_eq!(log_text(&msg), want);
    }
    // Drain: a retry hint, then the end. (The stream also relays the upstream's own GET stream,
    // which rmcp may use for a copy of a log message; such events may precede the hint.)
    mb.drain();
    loop {
        match get_b.next().await {
            Ev::Retry(ms) => {
                assert!(ms > 0);
                break;
            }
            Ev::Event { data, .. } => {
                let v: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(v["method"], "notifications/message", "{v}");
            }
            Ev::End => panic!("stream ended without a retry hint"),
        }
    }
    assert_eq!(get_b.next().await, Ev::End);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_pinned_session_gets_a_clear_error_on_another_replica() {
    if !have_peers() {
        return;
    }
    // A shared child and a session's own child both live on the replica that spawned them.
    for mode in ["shared", "per_session"] {
        let cfg = json!({"targets": [{"name": "everything", "stdio": {
            "command": node(), "args": [everything(), "stdio"], "sessions": mode}}]});
        let store = memory_store(Duration::from_secs(600));
        let (a, _ma) = replica(cfg.clone(), "a", store.clone(), Duration::from_secs(600)).await;
        let (b, _mb) = replica(cfg, "b", store, Duration::from_secs(600)).await;
        let token = raw_initialize(&a.url).await;
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        let (status, body) = post_as(&a.url, &token, None, "application/json", list.clone()).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = post_as(&b.url, &token, None, "application/json", list).await;
        assert_eq!(status, 421, "{mode}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["error"]["code"],
            switchboard_mcp::server::PINNED_ELSEWHERE
        );
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("pinned to replica `a`") && msg.contains("stdio"),
            "{msg}"
        );
        assert_eq!(b.backend.session_count(), 0);
        // No child was started for it on the other replica.
        assert!(b.backend.session_target_pids().is_empty());
        if mode == "per_session" {
            assert_eq!(a.backend.session_target_pids().len(), 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_tampered_revoked_and_other_route_tokens_are_not_found() {
    let (fixture_url, _fixture) = fixture().await;
    let cfg = json!({"targets": [{"name": "fixture", "http": {"url": fixture_url}}]});
    let gw = gateway(cfg).await;
    let resp = reqwest::Client::new()
        .post(&gw.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-test-principal", "alice")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let json_only = "application/json";
    let (status, body) = post_as(&gw.url, &token, Some("alice"), json_only, list.clone()).await;
    assert_eq!(status, 200, "{body}");
    for who in [Some("bob"), None] {
        let (status, body) = post_as(&gw.url, &token, who, json_only, list.clone()).await;
        assert_eq!(status, 404, "{who:?}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], -32000, "{body}");
        assert_eq!(v["error"]["data"]["type"], "not_found", "{body}");
    }
    // One character changed anywhere in the token.
    for pos in [0, token.len() / 2, token.len() - 1] {
        let mut t: Vec<u8> = token.clone().into_bytes();
        t[pos] = if t[pos] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(t).unwrap();
        let (status, _) = post_as(&gw.url, &t, Some("alice"), json_only, list.clone()).await;
        assert_eq!(status, 404, "tampered at {pos}");
    }
    // The same token on another MCP route of the gateway (same keys) is not that route's session.
    let other = switchboard_mcp::RequestContext {
        route: "other".into(),
        prefix: "/mcp".into(),
        principal: Some("alice".into()),
        ..Default::default()
    };
    let req = http::Request::post("/mcp")
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .header("mcp-session-id", &token)
        .body(axum::body::Body::from(list.to_string()))
        .unwrap();
    let refused = gw.backend.handle(req, &other).await.unwrap_err();
    assert_eq!(refused.status(), 404);
    // Another principal cannot delete it either.
    let delete = |who: &'static str| {
        reqwest::Client::new()
            .delete(&gw.url)
            .header("mcp-session-id", &token)
            .header("x-test-principal", who)
            .send()
    };
    let mut stream = reqwest::Client::new()
        .get(&gw.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &token)
        .header("x-test-principal", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(delete("bob").await.unwrap().status(), 404);
    assert_eq!(gw.backend.session_count(), 1);
    assert_eq!(delete("alice").await.unwrap().status(), 200);
    assert_eq!(gw.backend.session_count(), 0, "revoke released local state");
    // The revoked session's open GET stream ends.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the GET stream of a revoked session stays open"
    );
    let (status, _) = post_as(&gw.url, &token, Some("alice"), json_only, list).await;
    assert_eq!(status, 404, "revoked");
}

// Paused clock: the store and the manager keep time on tokio's clock, so the 1 s idle timeout
// passes exactly and at once (the fixture and the gateway are in-process).
#[tokio::test(start_paused = true)]
async fn idle_expired_session_is_not_found_and_released() {
    let (fixture_url, _fixture) = fixture().await;
    let cfg = json!({"targets": [{"name": "fixture", "http": {"url": fixture_url}}]});
    let (gw, manager) = replica(
        cfg,
        "a",
        memory_store(Duration::from_secs(1)),
        Duration::from_secs(1),
    )
    .await;
    let token = raw_initialize(&gw.url).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _) = post_as(&gw.url, &token, None, "application/json", list.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(gw.backend.session_count(), 1);
    // The 1 s idle timeout passes (nothing to await: expiry is the absence of use).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    manager.reap().await.unwrap();
    assert_eq!(gw.backend.session_count(), 0, "on_release dropped it");
    let (status, body) = post_as(&gw.url, &token, None, "application/json", list).await;
    assert_eq!(status, 404, "{body}");
}

/// server-everything sends a call's progress on the call's own SSE stream (rmcp's fixture sends
/// notifications on its standalone stream instead), so it drives the POST-stream test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_post_stream_resumes_with_last_event_id_here_and_on_another_replica() {
    if !have_peers() {
        return;
    }
    let everything = start_everything("streamableHttp").await;
    let cfg = json!({"targets": [{"name": "everything", "http": {"url": everything.url}}]});
    let store = memory_store(Duration::from_secs(600));
    let (a, _ma) = replica(cfg.clone(), "a", store.clone(), Duration::from_secs(600)).await;
    let (b, _mb) = replica(cfg, "b", store, Duration::from_secs(600)).await;
    let token = raw_initialize(&a.url).await;
    // The call's own SSE stream: the client reads the first progress event, then the
    // connection breaks.
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation",
        "arguments": {"duration": 0.6, "steps": 3},
        "_meta": {"progressToken": "p-7"}}});
    let resp = reqwest::Client::new()
        .post(&a.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &token)
        .body(call.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut post = Sse {
        resp,
        buf: String::new(),
    };
    let (first_id, first) = post.message().await;
    assert_eq!(first["method"], "notifications/progress", "{first}");
    assert_eq!(first["params"]["progress"], 1, "{first}");
    assert_eq!(first["params"]["progressToken"], "p-7", "{first}");
    assert!(first_id.contains("/post/"), "{first_id}");
    drop(post);

    async fn rest_of_the_call(url: &str, token: &str, after: &str) -> Vec<Value> {
        let mut get = Sse::open(url, token, Some(after)).await;
        let mut got = Vec::new();
        loop {
            match get.next().await {
                Ev::Event { data, .. } if data.trim().is_empty() => {}
                Ev::Event { data, .. } => got.push(serde_json::from_str(&data).unwrap()),
                Ev::End => return got,
                Ev::Retry(_) => panic!("unexpected retry"),
            }
        }
    }
    let check = |got: &[Value]| {
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0]["params"]["progress"], 2, "{got:?}");
        assert_eq!(got[1]["params"]["progress"], 3, "{got:?}");
        assert_eq!(got[2]["id"], 7, "{got:?}");
        let text = got[2]["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("completed"), "{text}");
    };
    // Here: what was logged, then the rest live (or logged meanwhile), then the end.
    check(&rest_of_the_call(&a.url, &token, &first_id).await);
    // On another replica: the same, from the shared log.
    check(&rest_of_the_call(&b.url, &token, &first_id).await);
}

/// An upstream that restarts forgets its sessions: the replica serving the client re-initializes
/// it and records the new upstream session id in the store, so a replica that picks the session
/// up later reuses the live upstream session rather than the dead one the token carries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_upstream_session_is_recorded_for_other_replicas() {
    if !have_peers() {
        return;
    }
    let first = start_everything("streamableHttp").await;
    let port = first.port;
    let cfg = json!({"targets": [{"name": "everything", "http": {"url": first.url}}]});
    let store = memory_store(Duration::from_secs(600));
    let (a, ma) = replica(cfg.clone(), "a", store.clone(), Duration::from_secs(600)).await;
    let (b, mb) = replica(cfg, "b", store, Duration::from_secs(600)).await;
    let token = raw_initialize(&a.url).await;
    let upstream_of = |s: &switchboard_sessions::Session| {
        s.target("everything")
            .and_then(|t| t.upstream_session.clone())
            .expect("the token carries the upstream session id")
    };
    let before = upstream_of(&ma.resume(&token, None).await.unwrap().session);

    let Everything { mut child, .. } = first;
    child.kill().await.unwrap();
    let _second = restart_everything("streamableHttp", port).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, body) = post_as(&a.url, &token, None, "application/json", list.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"echo\""), "{body}");

    let seen_by_b = mb.resume(&token, None).await.unwrap().session;
    let after = upstream_of(&seen_by_b);
    assert_ne!(
        after, before,
        "the re-initialized upstream session is recorded"
    );
    let (status, body) = post_as(&b.url, &token, None, "application/json", list).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"echo\""), "{body}");
}

/// The events of a whole SSE body: (id, data) of each, priming events included.
fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut id = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v.to_string());
                }
            }
            (id, data.join("\n"))
        })
        .collect()
}

/// A call that ends before anything else is sent for it goes out as one body with its head,
/// and is still logged first: the priming event's id resumes it, here and on another replica,
/// with the same reply and event id, then the stream ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_in_one_body_is_logged_and_resumable_everywhere() {
    let (fixture_url, _f) = fixture().await;
    let cfg = json!({"targets": [{"name": "f", "http": {"url": fixture_url}}]});
    let store = memory_store(Duration::from_secs(600));
    let (a, _ma) = replica(cfg.clone(), "a", store.clone(), Duration::from_secs(600)).await;
    let (b, _mb) = replica(cfg, "b", store, Duration::from_secs(600)).await;
    let token = raw_session(&a.url, "2025-11-25", json!({})).await;
    let resp = reqwest::Client::new()
        .post(&a.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &token)
        .body(call(7, "test_simple_text").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream",
        "a client that accepts SSE still gets SSE"
    );
    let events = sse_events(&resp.text().await.unwrap());
    assert_eq!(events.len(), 2, "{events:?}");
    let (priming_id, priming) = &events[0];
    assert_eq!(priming, "", "{events:?}");
    let priming_id = priming_id.as_deref().expect("priming id");
    assert!(priming_id.contains("/post/"), "{priming_id}");
    let (reply_id, reply) = &events[1];
    let reply: Value = serde_json::from_str(reply).unwrap();
    assert_eq!(reply["id"], 7, "{reply}");
    assert_eq!(
        reply["result"]["content"][0]["text"],
        "This is a simple text response for testing."
    );
    for url in [&a.url, &b.url] {
        let mut get = Sse::open(url, &token, Some(priming_id)).await;
        let (id, again) = get.message().await;
        assert_eq!(Some(&id), reply_id.as_ref(), "resumed on {url}");
        assert_eq!(again, reply, "resumed on {url}");
        assert_eq!(get.next().await, Ev::End, "resumed on {url}");
    }
}
