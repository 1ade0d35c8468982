//! MCP sessions across gateway replicas: two real `switchboard run` processes with the same
//! `sessions.keys` and one Redis store serve one MCP route in front of the rmcp fixture. The
//! official Python SDK initializes on A; A is killed; the SDK's next call, same session id, works
//! on B. A GET stream of another session, reconnected to B with `Last-Event-ID`, receives exactly
//! the events it missed (logged by A before it died and by B meanwhile), then the live stream.
//! In-process: key rotation through a config reload, tampered and idle-expired tokens.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_gateway::config;
use switchboard_testing::redis::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mcp/tests/py")
        .join(name)
}

async fn fixture() -> (String, tokio::task::JoinHandle<()>) {
    switchboard_gateway::install_crypto_provider();
    let (addr, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    (format!("http://{addr}/mcp"), task)
}

fn mcp_yaml(sessions: &str, fixture: &str) -> String {
    format!(
        r#"
admin: {{bind: "127.0.0.1:0"}}
sessions:
{sessions}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "{fixture}"}}
"#
    )
}

async fn post(
    url: &str,
    session: Option<&str>,
    accept: &str,
    body: Value,
) -> (u16, String, String) {
    let mut req = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, sid, resp.text().await.unwrap())
}

/// Initialize over raw HTTP; returns the session token.
async fn initialize(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, sid, body) = post(url, None, "application/json, text/event-stream", init).await;
    assert_eq!(status, 200, "{body}");
    assert!(!sid.is_empty());
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = post(url, Some(&sid), "application/json, text/event-stream", note).await;
    assert_eq!(status, 202);
    sid
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

/// A tool call answered as JSON: its three log notifications travel on the GET stream.
async fn call_logging_tool(url: &str, session: &str) {
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "test_tool_with_logging", "arguments": {}}});
    let (status, _, body) = post(url, Some(session), "application/json", call).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Tool with logging executed successfully"),
        "{body}"
    );
}

struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(url: &str, session: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = client()
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

    /// The next event carrying a message: (id, message). Priming events are skipped.
    async fn message(&mut self) -> (String, Value) {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
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
                return (id.expect("event id"), serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("no SSE event within 20s")
                .unwrap()
                .expect("stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn log_text(msg: &Value) -> String {
    assert_eq!(msg["method"], "notifications/message", "{msg}");
    msg["params"]["data"].as_str().unwrap().to_string()
}

const LOGS: [&str; 3] = [
    "Tool execution started",
    "Tool processing data",
    "Tool execution completed",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_survive_their_replica_python_sdk_and_last_event_id() {
    let test = "mcp_sessions::sessions_survive_their_replica_python_sdk_and_last_event_id";
    let Some(py) = python() else { return };
    let Some(redis) = RedisServer::start_or_skip(test) else {
        return;
    };
    let (fixture_url, _fixture) = fixture().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("switchboard.yaml");
    let sessions = format!(
        "  store: redis\n  redis: {{url: \"{}\"}}\n  keys: [\"{K1}\"]",
        redis.url()
    );
    std::fs::write(&cfg, mcp_yaml(&sessions, &fixture_url)).unwrap();
    let mut a = spawn_switchboard(&cfg).await;
    let b = spawn_switchboard(&cfg).await;
    let url_a = format!("http://{}/mcp", a.listeners["main"]);
    let url_b = format!("http://{}/mcp", b.listeners["main"]);

    // The SDK client initializes on A and calls a tool.
    let mut sdk = tokio::process::Command::new(&py)
        .arg(script("session_failover.py"))
        .args([&url_a, &url_b, "test_simple_text"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut sdk_out = BufReader::new(sdk.stdout.take().unwrap()).lines();
    let mut sdk_in = sdk.stdin.take().unwrap();
    let line = tokio::time::timeout(Duration::from_secs(60), sdk_out.next_line())
        .await
        .expect("SDK client did not reach A")
        .unwrap()
        .expect("SDK client exited early");
    let on_a: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(on_a["phase"], "on_a", "{on_a}");
    let sdk_session = on_a["session"].as_str().unwrap().to_string();

    // Another session with a GET stream on A: it sees the first log event of a call.
    let token = initialize(&url_a).await;
    let mut get_a = Sse::open(&url_a, &token, None).await;
    call_logging_tool(&url_a, &token).await;
    let (first_id, first) = get_a.message().await;
    assert_eq!(log_text(&first), LOGS[0]);

    // A dies.
    a.child.kill().await.unwrap();
    drop(get_a);

    // The SDK's next call, same session id, goes to B.
    sdk_in.write_all(b"go\n").await.unwrap();
    let line = tokio::time::timeout(Duration::from_secs(60), sdk_out.next_line())
        .await
        .expect("SDK client did not finish on B")
        .unwrap()
        .expect("SDK client exited without a result");
    let done: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(done["ok"], true, "{done}");
    assert_eq!(
        done["text_b"], "This is a simple text response for testing.",
        "{done}"
    );
    assert_eq!(done["sent_to_b"], json!([sdk_session]), "{done}");
    assert!(sdk.wait().await.unwrap().success());

    // More events while the stream is down, produced on B.
    call_logging_tool(&url_b, &token).await;
    // Reconnected to B with Last-Event-ID: exactly what was missed, in order, then live.
    let mut get_b = Sse::open(&url_b, &token, Some(&first_id)).await;
    let mut seen = Vec::new();
    let mut last: u64 = first_id.rsplit('/').next().unwrap().parse().unwrap();
    for _ in 0..5 {
        let (id, msg) = get_b.message().await;
        let seq: u64 = id.rsplit('/').next().unwrap().parse().unwrap();
        assert!(seq > last, "{id} after {last}");
        last = seq;
        seen.push(log_text(&msg));
    }
    let want: Vec<&str> = LOGS[1..].iter().chain(LOGS.iter()).copied().collect();
    assert_eq!(seen, want);
    call_logging_tool(&url_b, &token).await;
    for want in LOGS {
        let (_, msg) = get_b.message().await;
        assert_eq!(log_text(&msg), want);
    }
}

// Paused clock: session expiry runs on tokio's clock (fixture and gateway in-process, serving
// on this runtime: no serving threads), so the 1 s idle timeout passes exactly and at once.
#[tokio::test(start_paused = true)]
async fn key_rotation_by_reload_tampering_and_idle_expiry() {
    let (fixture_url, _fixture) = fixture().await;
    let env = |_: &str| None;
    let load = |keys: &str, idle: &str| {
        let sessions = format!("  keys: [{keys}]\n  idle_timeout: {idle}");
        config::load_str(&mcp_yaml(&sessions, &fixture_url), "test.yaml", &env)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let gw = switchboard_gateway::Gateway::start_with_workers(
        load(&format!("\"{K1}\""), "30m"),
        None,
        0,
    )
    .await
    .unwrap();
    let url = format!("{}/mcp", base(&gw, "main").await);
    let json = "application/json";
    let old = initialize(&url).await;
    assert_eq!(post(&url, Some(&old), json, list()).await.0, 200);

    // Rotation: the new key seals, the old one still opens.
    gw.apply(load(&format!("\"{K2}\", \"{K1}\""), "30m"))
        .await
        .unwrap();
    assert_eq!(post(&url, Some(&old), json, list()).await.0, 200);
    let new = initialize(&url).await;
    assert_eq!(post(&url, Some(&new), json, list()).await.0, 200);
    // Retiring the old key ends its sessions.
    gw.apply(load(&format!("\"{K2}\""), "30m")).await.unwrap();
    let (status, _, body) = post(&url, Some(&old), json, list()).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(post(&url, Some(&new), json, list()).await.0, 200);

    // A flipped bit.
    let mut raw = new.clone().into_bytes();
    let i = raw.len() / 2;
    raw[i] = if raw[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(raw).unwrap();
    assert_eq!(post(&url, Some(&tampered), json, list()).await.0, 404);
    gw.shutdown(Duration::from_secs(1)).await;

    // Idle expiry (1 s): the session is gone once a second passes without use.
    let gw =
        switchboard_gateway::Gateway::start_with_workers(load(&format!("\"{K1}\""), "1s"), None, 0)
            .await
            .unwrap();
    let url = format!("{}/mcp", base(&gw, "main").await);
    let token = initialize(&url).await;
    assert_eq!(post(&url, Some(&token), json, list()).await.0, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, body) = post(&url, Some(&token), json, list()).await;
    assert_eq!(status, 404, "{body}");
    gw.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_mcp_streams_with_a_retry_hint() {
    let (fixture_url, _fixture) = fixture().await;
    let env = |_: &str| None;
    let sessions = format!("  keys: [\"{K1}\"]");
    let cfg = config::load_str(&mcp_yaml(&sessions, &fixture_url), "test.yaml", &env).unwrap();
    let gw = switchboard_gateway::Gateway::start(cfg, None)
        .await
        .unwrap();
    let url = format!("{}/mcp", base(&gw, "main").await);
    let token = initialize(&url).await;
    let mut get = Sse::open(&url, &token, None).await;
    call_logging_tool(&url, &token).await;
    let (_, msg) = get.message().await;
    assert_eq!(log_text(&msg), LOGS[0]);
    let (_, _) = get.message().await;
    let (_, _) = get.message().await;
    let stop = tokio::spawn({
        let gw = gw.clone();
        async move { gw.shutdown(Duration::from_secs(5)).await }
    });
    // What is left of the stream: a `retry:` hint, then its end.
    let mut rest = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), get.resp.chunk())
        .await
        .expect("stream did not end on shutdown")
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    rest.insert_str(0, &get.buf);
    let last_block = rest.trim_end().rsplit("\n\n").next().unwrap_or("");
    assert!(
        last_block.starts_with("retry: ") && !last_block.contains("data:"),
        "the stream must end with a bare retry hint: {rest:?}"
    );
    stop.await.unwrap();
}

/// `POST /drain` on the admin listener: readiness fails, an open MCP stream ends with a bare
/// `retry:` hint, and requests are still served (nothing in flight is lost).
#[tokio::test]
async fn admin_drain_moves_stream_clients_away_but_keeps_serving() {
    let (fixture_url, _fixture) = fixture().await;
    let env = |_: &str| None;
    let sessions = format!("  keys: [\"{K1}\"]");
    let cfg = config::load_str(&mcp_yaml(&sessions, &fixture_url), "test.yaml", &env).unwrap();
    let gw = switchboard_gateway::Gateway::start(cfg, None)
        .await
        .unwrap();
    let url = format!("{}/mcp", base(&gw, "main").await);
    let admin = gw.admin_addr().await.unwrap();
    let token = initialize(&url).await;
    let mut get = Sse::open(&url, &token, None).await;
    let c = client();
    let resp = c
        .post(format!("http://{admin}/drain"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let mut rest = String::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), get.resp.chunk())
        .await
        .expect("stream did not end on drain")
        .unwrap()
    {
        rest.push_str(&String::from_utf8_lossy(&chunk));
    }
    rest.insert_str(0, &get.buf);
    let last_block = rest.trim_end().rsplit("\n\n").next().unwrap_or("");
    assert!(
        last_block.starts_with("retry: "),
        "bare retry hint at the end: {rest:?}"
    );
    assert_eq!(
        c.get(format!("http://{admin}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    // Still serving: the session's next call works.
    call_logging_tool(&url, &token).await;
    // With the memory store no other replica could read a handed-off log: a streamed answer
    // runs to its end (the result) on a drained replica.
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "test_tool_with_logging", "arguments": {}}});
    let (status, _, body) = post(
        &url,
        Some(&token),
        "application/json, text/event-stream",
        call,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Tool with logging executed successfully"),
        "{body}"
    );
}
