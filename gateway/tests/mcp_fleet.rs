//! Any replica serves any MCP session: two real `switchboard run` processes (A and B) with the
//! same `sessions.keys`, one Redis, and `sessions.peer` set, in front of a route whose stdio
//! target (server-everything, one child per session) runs on the replica that initialized the
//! session. Requests sent to the other replica are forwarded over the authenticated hop,
//! streamed calls with progress included, with the client's principal (its API key's tool
//! list applies on the owner); the peer listener refuses requests without a sealed hop, forged,
//! replayed or re-targeted ones; when the owner is gone the client is told to initialize again
//! (the route's child was the session's own) or the session is adopted (shared children);
//! a replica drained (`POST /drain`, SIGTERM) during a long streamed call hands the rest of it to
//! the shared event log, and the client resumes it on the other replica with `Last-Event-ID`,
//! receiving every event; a call whose replica died ends its resumed stream.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_testing::peers::{node, npm, require_npm};
use switchboard_testing::redis::RedisServer;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The client's API key: its sessions are bound to the principal `fleet`, and it may use two
/// tools only (the owner applies that to requests forwarded to it).
const API_KEY: &str = "fleet-key";
const EVERYTHING: &str = "@modelcontextprotocol/server-everything/dist/index.js";
const SSE: &str = "application/json, text/event-stream";

struct Fleet {
    a: Proc,
    b: Proc,
    _dir: tempfile::TempDir,
    _redis: RedisServer,
}

impl Fleet {
    /// The route whose stdio child is the session's own (`per_session`).
    fn url(p: &Proc) -> String {
        format!("http://{}/mcp", p.listeners["main"])
    }

    /// The route whose stdio child is shared by the replica's sessions.
    fn shared(p: &Proc) -> String {
        format!("http://{}/shared", p.listeners["main"])
    }
}

/// Redis and two replicas, `a` and `b`; `None` (skipped) without redis-server or node.
async fn fleet(test: &str) -> Option<Fleet> {
    if !require_npm(EVERYTHING) {
        return None;
    }
    let redis = RedisServer::start_or_skip(test)?;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
admin: {{bind: "127.0.0.1:0"}}
sessions:
  store: redis
  redis: {{url: "{redis}"}}
  keys: ["{KEY}"]
  replica: "${{REPLICA}}"
  peer: {{bind: "127.0.0.1:0"}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        policies:
          authn:
            api_keys:
              - {{name: fleet, sha256: "{sha}", tools: [echo, trigger-long-running-operation]}}
        mcp:
          targets:
            - name: ev
              timeout: 30s
              stdio: {{command: "{node}", args: ["{everything}", "stdio"], sessions: per_session}}
      - name: shared
        match: {{path_prefix: /shared}}
        policies:
          authn:
            api_keys:
              - {{name: fleet, sha256: "{sha}", tools: [echo, trigger-long-running-operation]}}
        mcp:
          targets:
            - name: ev
              timeout: 30s
              stdio: {{command: "{node}", args: ["{everything}", "stdio"]}}
"#,
        redis = redis.url(),
        node = node().display(),
        everything = npm(EVERYTHING).display(),
        sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(API_KEY.as_bytes())),
    );
    let path: PathBuf = dir.path().join("sb.yaml");
    std::fs::write(&path, yaml).unwrap();
    let a = spawn_switchboard_env(&path, &[("REPLICA", "a".into())]).await;
    let b = spawn_switchboard_env(&path, &[("REPLICA", "b".into())]).await;
    assert!(
        a.peer.is_some() && b.peer.is_some(),
        "peer listeners logged"
    );
    Some(Fleet {
        a,
        b,
        _dir: dir,
        _redis: redis,
    })
}

/// An HTTP client that authenticates with [`API_KEY`].
fn c() -> reqwest::Client {
    switchboard_gateway::install_crypto_provider();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-api-key", API_KEY.parse().unwrap());
    reqwest::Client::builder()
        .no_proxy()
        .default_headers(headers)
        .build()
        .unwrap()
}

async fn post(url: &str, session: Option<&str>, accept: &str, body: Value) -> reqwest::Response {
    let mut req = c()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

/// Initialize over raw HTTP; returns the session token.
async fn initialize(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = post(url, None, SSE, init).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(url, Some(&sid), SSE, note).await.status(), 202);
    sid
}

fn long_call(id: u64, duration: f64, steps: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation",
        "arguments": {"duration": duration, "steps": steps},
        "_meta": {"progressToken": "tok"}}})
}

/// An SSE body read event by event.
struct Events {
    resp: reqwest::Response,
    buf: String,
    /// The `retry:` hint, once one arrived.
    retry: bool,
}

impl Events {
    fn new(resp: reqwest::Response) -> Self {
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Events {
            resp,
            buf: String::new(),
            retry: false,
        }
    }

    /// The next event carrying a message, with its id; `None` when the stream ends.
    async fn next(&mut self) -> Option<(Option<String>, Value)> {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                if block.lines().any(|l| l.starts_with("retry:")) {
                    self.retry = true;
                }
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .map(str::to_string);
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if data.trim().is_empty() {
                    continue;
                }
                return Some((id, serde_json::from_str(&data).unwrap()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.resp.chunk())
                .await
                .expect("no SSE event within 30s")
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// What a long call's events say: the progress values, then the result's text.
fn progress_of(msg: &Value) -> Option<u64> {
    (msg["method"] == "notifications/progress").then(|| msg["params"]["progress"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pinned_to_a_is_served_through_b() {
    let Some(f) = fleet("mcp_fleet::a_session_pinned_to_a_is_served_through_b").await else {
        return;
    };
    let (a, b) = (Fleet::url(&f.a), Fleet::url(&f.b));
    let sid = initialize(&a).await;

    // A plain request, answered as JSON by A through B.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&b, Some(&sid), "application/json", list).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let mut names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    // The principal travelled with the hop: A applied the key's tool list.
    assert_eq!(names, ["echo", "trigger-long-running-operation"], "{body}");

    // A streamed call: every progress event, then the result, as A's child sent them.
    let resp = post(&b, Some(&sid), SSE, long_call(3, 0.3, 3)).await;
    let mut events = Events::new(resp);
    let mut progress = Vec::new();
    let result = loop {
        let (_, msg) = events
            .next()
            .await
            .expect("the stream ends after the result");
        match progress_of(&msg) {
            Some(p) => progress.push(p),
            None => break msg,
        }
    };
    assert_eq!(progress, [1, 2, 3]);
    assert_eq!(result["id"], 3, "{result}");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Long running operation completed"),
        "{result}"
    );

    // The standalone GET stream, through B.
    let get = c()
        .get(&b)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert!(
        get.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    drop(get);

    // Nobody else may use the hop: without a sealed hop, or with a forged one, A's peer
    // listener refuses (403), whatever the request.
    let peer = f.a.peer.unwrap();
    for hop in [None, Some("not-a-hop"), Some(sid.as_str())] {
        let mut req = client()
            .post(format!("http://{peer}/mcp"))
            .header("content-type", "application/json")
            .header("accept", SSE)
            .header("mcp-session-id", &sid)
            .body(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}).to_string());
        if let Some(h) = hop {
            req = req.header("x-switchboard-hop", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "hop {hop:?}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_object(), "{body}");
    }

    // A hop sealed with the fleet's keys is served once, for the request it was sealed for.
    let fleet_keys = switchboard_sessions::SessionsConfig {
        keys: vec![KEY.into()],
        ..Default::default()
    };
    let sealer = switchboard_sessions::SessionManager::new(
        &fleet_keys,
        std::sync::Arc::new(switchboard_sessions::MemoryStore::new(Default::default())),
        switchboard_sessions::Metrics::default(),
    )
    .unwrap();
    let hop_for = |path: &str| {
        let payload = json!({"l": "main", "r": "tools", "m": "POST", "u": path,
            "who": {"api_key": true, "subject": "fleet", "key_name": "fleet",
                    "tools": ["echo", "trigger-long-running-operation"]}});
        sealer.seal_hop(payload.to_string().as_bytes())
    };
    let send_hop = |hop: String| {
        client()
            .post(format!("http://{peer}/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("mcp-session-id", &sid)
            .header("x-switchboard-hop", hop)
            .body(json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}).to_string())
            .send()
    };
    let hop = hop_for("/mcp");
    let resp = send_hop(hop.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("\"echo\""));
    assert_eq!(send_hop(hop).await.unwrap().status(), 403, "replayed");
    assert_eq!(
        send_hop(hop_for("/mcp/elsewhere")).await.unwrap().status(),
        403,
        "sealed for another request"
    );

    // DELETE through B ends the session on A.
    let del = c()
        .delete(&b)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert!(del.status().is_success(), "{}", del.status());
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"});
    assert_eq!(post(&a, Some(&sid), SSE, list).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_gone_the_client_is_told_to_initialize_again() {
    let Some(mut f) = fleet("mcp_fleet::owner_gone_the_client_is_told_to_initialize_again").await
    else {
        return;
    };
    let (a, b) = (Fleet::url(&f.a), Fleet::url(&f.b));
    let sid = initialize(&a).await;
    // A dies without a word (its registration outlives it; its address refuses connections).
    f.a.child.kill().await.unwrap();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let resp = post(&b, Some(&sid), SSE, list.clone()).await;
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["jsonrpc"], "2.0", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("replica that is gone") && message.contains("initialize a new session"),
        "{message}"
    );
    // The session ended for good; a new one on B works.
    assert_eq!(post(&b, Some(&sid), SSE, list.clone()).await.status(), 404);
    let sid2 = initialize(&b).await;
    let resp = post(&b, Some(&sid2), "application/json", list).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("trigger-long-running-operation")
    );
}

/// Starts a 4-step call on A, reads until its first progress event, lets `stop` drain A, then
/// reads A's stream to its end and resumes on B with the last id seen: every progress event and
/// the result arrive exactly once, in order.
async fn drained_call_resumes_on_b(f: &mut Fleet, stop: impl AsyncFnOnce(&mut Fleet)) {
    let (a, b) = (Fleet::url(&f.a), Fleet::url(&f.b));
    let sid = initialize(&a).await;
    let mut events = Events::new(post(&a, Some(&sid), SSE, long_call(7, 2.0, 4)).await);
    let mut seen = Vec::new();
    let mut last_id = None;
    let first = events.next().await.expect("a progress event");
    last_id = first.0.or(last_id);
    seen.push(first.1);
    stop(f).await;
    while let Some((id, msg)) = events.next().await {
        last_id = id.or(last_id);
        seen.push(msg);
    }
    assert!(events.retry, "A's stream ends with a retry: hint");
    let last_id = last_id.expect("events carry ids");
    let got_result = seen.iter().any(|m| m["id"] == 7);
    assert!(
        !got_result,
        "the call was still running when A let its stream go"
    );
    let resumed = c()
        .get(&b)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", &last_id)
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resumed);
    while let Some((_, msg)) = events.next().await {
        let done = msg["id"] == 7;
        seen.push(msg);
        if done {
            break;
        }
    }
    let progress: Vec<u64> = seen.iter().filter_map(progress_of).collect();
    assert_eq!(progress, [1, 2, 3, 4], "{seen:?}");
    let result = seen.last().unwrap();
    assert_eq!(result["id"], 7, "{result}");
    assert!(
        result["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Long running operation completed"),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_drain_hands_a_running_call_to_the_log_and_b_resumes_it() {
    let Some(mut f) =
        fleet("mcp_fleet::admin_drain_hands_a_running_call_to_the_log_and_b_resumes_it").await
    else {
        return;
    };
    drained_call_resumes_on_b(&mut f, async |f: &mut Fleet| {
        let resp = client()
            .post(format!("http://{}/drain", f.a.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_a_running_call_into_the_log_and_b_resumes_it() {
    let Some(mut f) =
        fleet("mcp_fleet::sigterm_finishes_a_running_call_into_the_log_and_b_resumes_it").await
    else {
        return;
    };
    drained_call_resumes_on_b(&mut f, async |f: &mut Fleet| f.a.signal("TERM")).await;
    // A waited for the call's last event, then exited.
    let status = tokio::time::timeout(Duration::from_secs(20), f.a.child.wait())
        .await
        .expect("A exits once the call is logged")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_replica_died_ends_its_resumed_stream_on_b() {
    let Some(mut f) =
        fleet("mcp_fleet::a_call_whose_replica_died_ends_its_resumed_stream_on_b").await
    else {
        return;
    };
    let (a, b) = (Fleet::url(&f.a), Fleet::url(&f.b));
    let sid = initialize(&a).await;
    let mut events = Events::new(post(&a, Some(&sid), SSE, long_call(8, 20.0, 20)).await);
    let (id, first) = events.next().await.expect("a progress event");
    assert_eq!(progress_of(&first), Some(1));
    f.a.child.kill().await.unwrap();
    // B follows the log while the call's liveness mark lasts, then ends the stream: nothing
    // more will come, and the client does not wait forever.
    let resumed = c()
        .get(&b)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .header("last-event-id", id.unwrap())
        .send()
        .await
        .unwrap();
    let mut events = Events::new(resumed);
    let rest = tokio::time::timeout(Duration::from_secs(15), async {
        let mut rest = Vec::new();
        while let Some((_, msg)) = events.next().await {
            rest.push(msg);
        }
        rest
    })
    .await
    .expect("the resumed stream ends once the producer is known gone");
    assert!(rest.iter().all(|m| m["id"] != 8), "{rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_gone_a_session_of_shared_children_is_adopted_by_b() {
    let Some(mut f) =
        fleet("mcp_fleet::owner_gone_a_session_of_shared_children_is_adopted_by_b").await
    else {
        return;
    };
    let (a, b) = (Fleet::shared(&f.a), Fleet::shared(&f.b));
    let sid = initialize(&a).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(
        post(&b, Some(&sid), "application/json", list.clone())
            .await
            .status(),
        200,
        "forwarded to A"
    );
    f.a.child.kill().await.unwrap();
    // Nothing of the session lived only on A: B adopts it and serves it with its own child.
    let resp = post(&b, Some(&sid), "application/json", list).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("\"echo\""));
    let mut events = Events::new(post(&b, Some(&sid), SSE, long_call(5, 0.2, 2)).await);
    let mut seen = Vec::new();
    while let Some((_, msg)) = events.next().await {
        seen.push(msg);
    }
    let progress: Vec<u64> = seen.iter().filter_map(progress_of).collect();
    assert_eq!(progress, [1, 2], "{seen:?}");
    assert_eq!(seen.last().unwrap()["id"], 5);
}
