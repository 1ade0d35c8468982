//! Stateless (2026-07-28) requests stream: a client that accepts `text/event-stream` gets the
//! progress and log notifications a target sends for its call as SSE events, in order, before
//! the result, whatever the target's transport (streamable HTTP, legacy SSE, stdio shared and
//! per session) and era (session-era, 2026-07-28). Real peers: a FastMCP server
//! (`tests/py/fastmcp_server.py`) behind every kind of target, driven by `fastmcp.Client` and
//! the Python `mcp` SDK in their default (stateless) mode, and raw HTTP.

use crate::harness;

use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};
use switchboard_mcp::Metrics;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn script(name: &str) -> String {
    root()
        .join("mcp/tests/py")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// A FastMCP server over HTTP (`mode`: `http`, `sse` or `modern`, see the script).
struct FastMcp {
    url: String,
    _child: Child,
}

async fn fastmcp(mode: &str) -> FastMcp {
    let mut child = Command::new(python())
        .arg(script("fastmcp_server.py"))
        .arg(mode)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the FastMCP server");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the FastMCP server reports its port")
        .unwrap()
        .unwrap_or_default();
    let port = line
        .strip_prefix("listening on port ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let path = if mode == "sse" { "sse" } else { "mcp" };
    FastMcp {
        url: format!("http://127.0.0.1:{port}/{path}"),
        _child: child,
    }
}

/// One route over the same FastMCP server as five targets: streamable HTTP (`http`), legacy
/// SSE (`legacy`), a shared stdio child (`stdio`), a stdio child per session (`own`), and
/// streamable HTTP that speaks only 2026-07-28 (`modern`).
async fn route() -> (Gateway, Vec<FastMcp>) {
    let (http, legacy, modern) = tokio::join!(fastmcp("http"), fastmcp("sse"), fastmcp("modern"));
    let stdio = json!({"command": python(), "args": [script("fastmcp_server.py"), "stdio"]});
    let mut own = stdio.clone();
    own["sessions"] = json!("per_session");
    let gw = gateway(json!({"targets": [
        {"name": "http", "http": {"url": http.url}},
        {"name": "legacy", "sse": {"url": legacy.url}},
        {"name": "stdio", "stdio": stdio},
        {"name": "own", "stdio": own},
        {"name": "modern", "http": {"url": modern.url}},
    ]}))
    .await;
    (gw, vec![http, legacy, modern])
}

const TARGETS: [&str; 5] = ["http", "legacy", "stdio", "own", "modern"];

/// What `work` sends a client opted in to log messages from `level` up: exactly what the
/// server sends it directly.
fn work_events(level: &str) -> Value {
    let mut ev = Vec::new();
    if level == "debug" {
        ev.push(json!(["log", "debug", "starting"]));
    }
    for i in 1..=3 {
        ev.push(json!(["progress", i as f64, 3.0, format!("step {i}")]));
        ev.push(json!(["log", "info", format!("step {i} done")]));
    }
    ev.push(json!(["log", "warning", "all steps done"]));
    ev.push(json!(["result", "worked 3 steps"]));
    Value::Array(ev)
}

async fn run_client(client: &str, url: &str, tools: &[String]) -> Value {
    let mut args = vec![url];
    args.extend(tools.iter().map(String::as_str));
    let (ok, out, err) = run_python(client, &args).await;
    assert!(ok, "{client} failed:\n{out}\n{err}");
    let summary: Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(
        summary["stateless"], true,
        "the client went stateless: {out}"
    );
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastmcp_and_mcp_sdk_clients_get_every_notification_in_order_before_the_result() {
    if !have("python with fastmcp and the mcp SDK", &python()) {
        return;
    }
    let (gw, _servers) = route().await;
    let work: Vec<String> = TARGETS.iter().map(|t| format!("{t}__work")).collect();
    let mut tools = work.clone();
    // A session-era target asks the client mid-call: the stream's last event is
    // `input_required`, and the retry's stream goes on where the call left off.
    tools.push("stdio__confirm".into());
    // One after the other: a shared stdio child's log messages go with its newest request.
    let fastmcp = run_client("fastmcp_client.py", &gw.url, &tools).await;
    let sdk = run_client("fastmcp_sdk_client.py", &gw.url, &work).await;
    for t in TARGETS {
        // fastmcp.Client opts in to every log level; the mcp SDK client here from `info` up,
        // so the target's debug line is not sent to it (a session-era target sends every
        // level; the gateway keeps what the client asked for).
        assert_eq!(
            fastmcp["calls"][format!("{t}__work")],
            work_events("debug"),
            "target {t}: {fastmcp}"
        );
        assert_eq!(
            sdk["calls"][format!("{t}__work")],
            work_events("info"),
            "target {t}: {sdk}"
        );
    }
    assert_eq!(
        fastmcp["calls"]["stdio__confirm"],
        json!([
            ["progress", 1.0, 2.0, "asking"],
            ["elicit", "Proceed?"],
            ["progress", 2.0, 2.0, "answered"],
            ["result", "confirmed True"]
        ]),
        "{fastmcp}"
    );
    assert_eq!(gw.backend.parked_inputs(), 0);
}

/// Debug lines of `switchboard_mcp`, kept for the test to read (installed once per process).
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("switchboard_mcp=debug")
            .with_ansi(false)
            .with_writer(move || Capture(sink.clone()))
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A stateless `tools/call` of `tool` asking for progress (`tok-7`) and log messages.
fn stateless_call(tool: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {"progressToken": "tok-7",
            "io.modelcontextprotocol/logLevel": "debug",
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}}}})
}

fn raw_post(url: &str, accept: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", accept)
        .header("mcp-protocol-version", "2026-07-28")
        .body(body.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_carries_the_clients_ids_and_a_json_only_client_gets_the_result_alone() {
    let logs = captured_logs();
    if !have("python with fastmcp", &python()) {
        return;
    }
    let stdio = json!({"command": python(), "args": [script("fastmcp_server.py"), "stdio"]});
    let gw = gateway(json!({"targets": [{"name": "stdio", "stdio": stdio}]})).await;
    let call = stateless_call("work", json!({"steps": 2}));

    // Accepting SSE: the target's notifications with the client's progress token, then the
    // result with the client's id, as the stream's last event.
    let resp = raw_post(&gw.url, "application/json, text/event-stream", &call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains("retry:"),
        "no priming event: nothing to resume\n{text}"
    );
    let msgs = messages(&text);
    let methods: Vec<&str> = msgs
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("(result)"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/message",
            "notifications/progress",
            "notifications/message",
            "notifications/progress",
            "notifications/message",
            "notifications/message",
            "(result)"
        ],
        "{msgs:?}"
    );
    for p in msgs
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
    {
        assert_eq!(p["params"]["progressToken"], "tok-7", "{p}");
    }
    let last = msgs.last().unwrap();
    assert_eq!(last["id"], 7);
    assert_eq!(last["result"]["content"][0]["text"], "worked 2 steps");
    assert_eq!(last["result"]["resultType"], "complete");

    // Without a log level the client gets no log messages (a session-era target sends them all).
    let mut quiet = call.clone();
    quiet["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/logLevel");
    let resp = raw_post(&gw.url, "application/json, text/event-stream", &quiet)
        .send()
        .await
        .unwrap();
    let msgs = messages(&resp.text().await.unwrap());
    let methods: Vec<&str> = msgs
        .iter()
        .map(|m| m["method"].as_str().unwrap_or("(result)"))
        .collect();
    assert_eq!(
        methods,
        [
            "notifications/progress",
            "notifications/progress",
            "(result)"
        ],
        "{msgs:?}"
    );

    // A session-era target asking the client mid-call: `input_required` is the stream's last
    // event, after the progress that came before the question.
    let mut ask = stateless_call("confirm", json!({}));
    ask["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}});
    let resp = raw_post(&gw.url, "application/json, text/event-stream", &ask)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let msgs = messages(&resp.text().await.unwrap());
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0]["params"]["message"], "asking", "{msgs:?}");
    assert_eq!(msgs[0]["params"]["progressToken"], "tok-7", "{msgs:?}");
    assert_eq!(msgs[1]["id"], 7);
    assert_eq!(
        msgs[1]["result"]["resultType"], "input_required",
        "{msgs:?}"
    );

    // Accepting JSON alone: one JSON reply, and a debug line names what it could not carry.
    let resp = raw_post(&gw.url, "application/json", &call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let r: Value = resp.json().await.unwrap();
    assert_eq!(r["id"], 7);
    assert_eq!(r["result"]["content"][0]["text"], "worked 2 steps", "{r}");
    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    let line = logs
        .lines()
        .find(|l| l.contains("answered as JSON"))
        .unwrap_or_else(|| panic!("no debug line about the dropped notifications:\n{logs}"));
    assert!(
        line.contains("method=tools/call")
            && line.contains("notifications/progress x2")
            && line.contains("notifications/message x4"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_client_that_does_not_read_its_stream_is_cut() {
    if !have("python", &python()) {
        return;
    }
    let metrics = Metrics::unregistered();
    let gw = gateway_with_metrics(
        json!({"max_queued_messages": 64, "targets": [{"name": "chatty",
            "stdio": {"command": python(), "args": [script("flood_target.py")]}}]}),
        metrics.clone(),
    )
    .await;
    // The target floods 8000 log messages (about 8 MB) with the call, then answers; the client
    // does not read.
    let call = stateless_call("flood", json!({"n": 8000, "before": true}));
    let mut resp = raw_post(&gw.url, "application/json, text/event-stream", &call)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    // The gateway's relay waits for the client; the call's queue behind it fills and is cut.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metrics.cuts("input") == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unread stream was never cut"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reading now: what was queued, in order, then the end of the stream (no reply).
    let mut text = String::new();
    let read_all = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .expect("the cut stream ends");
    let msgs = messages(&text);
    let got: Vec<u64> = msgs
        .iter()
        .map(|m| m.pointer("/params/data/i").and_then(Value::as_u64).unwrap())
        .collect();
    assert!(!got.is_empty() && got.len() < 8000, "{}", got.len());
    assert_eq!(got, (0..got.len() as u64).collect::<Vec<_>>(), "in order");
    // The shared child keeps serving others (it may still be flooding: the client below did
    // not ask for log messages); a call that gets nothing for the client is answered as JSON.
    let mut echo = stateless_call("echo", json!({}));
    echo["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/logLevel");
    let resp = raw_post(&gw.url, "application/json, text/event-stream", &echo)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let r: Value = resp.json().await.unwrap();
    assert!(r.get("result").is_some(), "{r}");
}
