//! OpenTelemetry tracing against a real OTLP receiver (`switchboard_testing::otlp`, HTTP/protobuf
//! and gRPC on loopback): the span tree of MCP, LLM and http requests, their attributes, the
//! W3C `traceparent` reaching every kind of upstream, sampling, and a collector that is down.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_testing::otlp::{self, Receiver, Span};

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> String {
    format!("00-{CLIENT_TRACE}-{CLIENT_PARENT}-01")
}

const WAIT: Duration = Duration::from_secs(10);

/// The trace id and parent span id of a `traceparent` value.
fn parse_traceparent(v: &str) -> (String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (parts[1].to_string(), parts[2].to_string())
}

fn http_route(tracing: &str) -> String {
    format!(
        r#"
{tracing}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: web
        match: {{path_prefix: /}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#
    )
}

/// An http route, exported over gRPC: the server span is the child of the client's
/// `traceparent`, the client span its child, and the upstream got the client span's
/// `traceparent` (same trace id). Resource attributes and export headers arrive too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_route_propagates_traceparent_over_grpc_export() {
    let rx = Receiver::start().await;
    let up = upstream().await;
    let yaml = http_route(&format!(
        "tracing: {{otlp: {{endpoint: '{}', protocol: grpc, headers: {{x-collector-key: s3cret}}}}, resource: {{deployment.environment: test}}}}",
        rx.grpc_url()
    ));
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let r = client()
        .get(format!("{base}/echo/hello"))
        .header("traceparent", traceparent())
        .header("tracestate", "vendor=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: Value = r.json().await.unwrap();
    let tp = echoed["headers"]["traceparent"].as_str().unwrap();
    let (trace_id, parent) = parse_traceparent(tp);
    assert_eq!(trace_id, CLIENT_TRACE);
    assert_ne!(
        parent, CLIENT_PARENT,
        "the upstream's parent is the gateway's client span"
    );
    assert_eq!(echoed["headers"]["tracestate"], "vendor=1");

    let spans = rx
        .wait_for(WAIT, |s| s.iter().any(|s| s.kind == otlp::SERVER))
        .await;
    let server = spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    assert_eq!(server.via, "grpc");
    assert_eq!(server.trace_id, CLIENT_TRACE);
    assert_eq!(server.parent_span_id, CLIENT_PARENT);
    assert_eq!(server.name, "GET web");
    assert_eq!(server.attr("http.request.method"), Some("GET"));
    assert_eq!(server.attr("url.path"), Some("/echo/hello"));
    assert_eq!(
        server.attr("http.route"),
        Some("web"),
        "a catch-all prefix: the route name"
    );
    assert_eq!(server.attr("switchboard.route"), Some("web"));
    assert_eq!(server.attr("switchboard.listener"), Some("main"));
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
    assert_eq!(server.resource["service.name"], "switchboard");
    assert_eq!(server.resource["deployment.environment"], "test");
    let client_span = spans.iter().find(|s| s.kind == otlp::CLIENT).unwrap();
    assert_eq!(client_span.parent_span_id, server.span_id);
    assert_eq!(
        client_span.span_id, parent,
        "the upstream's traceparent names the client span"
    );
    assert_eq!(client_span.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(
        client_span.attr("server.port"),
        Some(up.port().to_string().as_str())
    );
    assert_eq!(client_span.attr("switchboard.attempt"), Some("1"));
    assert_eq!(client_span.attr("http.response.status_code"), Some("200"));
    // The export carried the configured header; it never shows up in a span.
    assert!(
        rx.export_headers()
            .iter()
            .any(|h| h.get("x-collector-key").is_some_and(|v| v == "s3cret"))
    );
    assert!(!format!("{spans:?}").contains("s3cret"));
    gw.shutdown(Duration::from_secs(1)).await;
}

/// An upstream that answers 503 to its first request and echoes `traceparent` after; it
/// records every `traceparent` it received.
async fn flaky_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let s = s.clone();
        async move {
            let tp = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let mut seen = s.lock().unwrap();
            seen.push(tp);
            if seen.len() == 1 {
                (axum::http::StatusCode::SERVICE_UNAVAILABLE, "busy")
            } else {
                (axum::http::StatusCode::OK, "ok")
            }
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

/// Without a client `traceparent` the gateway starts a trace; exported over HTTP/protobuf.
/// A retry is its own client span with its attempt number and the first one's error status;
/// each attempt's upstream request carries its own span as parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_retries_are_separate_client_spans_over_http_export() {
    let rx = Receiver::start().await;
    let (up, seen) = flaky_upstream().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}', protocol: http/protobuf}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: web
        match: {{path_prefix: /}}
        http:
          url: "http://${{UPSTREAM}}"
          retries: {{attempts: 1, on: [503], backoff: 10ms}}
"#,
        rx.http_url()
    );
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let r = client().get(format!("{base}/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let spans = rx
        .wait_for(WAIT, |s| {
            s.iter().any(|s| s.kind == otlp::SERVER)
                && s.iter().filter(|s| s.kind == otlp::CLIENT).count() == 2
        })
        .await;
    let server = spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    assert_eq!(server.via, "http");
    assert_eq!(
        server.parent_span_id, "",
        "a new trace: the server span is its root"
    );
    let mut attempts: Vec<&Span> = spans.iter().filter(|s| s.kind == otlp::CLIENT).collect();
    attempts.sort_by_key(|s| s.attr("switchboard.attempt").map(str::to_owned));
    assert_eq!(attempts[0].attr("switchboard.attempt"), Some("1"));
    assert_eq!(attempts[0].attr("http.response.status_code"), Some("503"));
    assert_eq!(attempts[0].status, 2, "the failed attempt is an error");
    assert_eq!(attempts[1].attr("switchboard.attempt"), Some("2"));
    assert_eq!(attempts[1].attr("http.request.resend_count"), Some("1"));
    assert_eq!(attempts[1].attr("http.response.status_code"), Some("200"));
    assert_ne!(attempts[1].status, 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    for (tp, span) in seen.iter().zip(&attempts) {
        let (trace, parent) = parse_traceparent(tp);
        assert_eq!(trace, server.trace_id);
        assert_eq!(parent, span.span_id);
        assert_eq!(span.parent_span_id, server.span_id);
    }
    gw.shutdown(Duration::from_secs(1)).await;
}

/// Sampling ratio 0: requests are served, their upstream still gets a (not sampled)
/// `traceparent`, and nothing is exported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_exports_nothing() {
    let rx = Receiver::start().await;
    let up = upstream().await;
    let yaml = http_route(&format!(
        "tracing: {{otlp: {{endpoint: '{}'}}, sampling: 0}}",
        rx.http_url()
    ));
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    for _ in 0..20 {
        let r = client().get(format!("{base}/echo/x")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let echoed: Value = r.json().await.unwrap();
        let tp = echoed["headers"]["traceparent"].as_str().unwrap();
        assert!(tp.ends_with("-00"), "not sampled: {tp}");
    }
    // Shutdown flushes whatever the processor holds: nothing.
    gw.shutdown(Duration::from_secs(1)).await;
    assert!(rx.spans().is_empty(), "{:?}", rx.spans());
}

/// A collector that refuses connections: every request still succeeds, promptly, and
/// shutdown is not held up beyond its bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_down_requests_still_succeed() {
    let up = upstream().await;
    for protocol in ["grpc", "http/protobuf"] {
        let closed = switchboard_testing::ports::ClosedPort::new();
        let yaml = http_route(&format!(
            "tracing: {{otlp: {{endpoint: 'http://{}', protocol: {protocol}, timeout: 500ms}}}}",
            closed.addr()
        ));
        let gw = gateway(&yaml, up).await;
        let base = base(&gw, "main").await;
        let started = std::time::Instant::now();
        for _ in 0..50 {
            let r = client().get(format!("{base}/echo/x")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{protocol}: {:?}",
            started.elapsed()
        );
        let started = std::time::Instant::now();
        gw.shutdown(Duration::from_secs(1)).await;
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{protocol}: {:?}",
            started.elapsed()
        );
    }
}

/// An LLM chat completion whose first provider fails (500) and second answers: one client
/// span per attempt under the server span, numbered, with the GenAI attributes; the served
/// one carries the token usage; every attempt's request carried its own span's
/// `traceparent`. No prompt text or key is on any span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_failover_attempts_are_client_spans_with_gen_ai_attributes() {
    use switchboard_examples::mock_llm::{self, INPUT_TOKENS, OUTPUT_TOKENS};
    let rx = Receiver::start().await;
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}', protocol: http/protobuf}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          models:
            - name: smart
              strategy: failover
              providers:
                - {{provider: openai, name: down, priority: 0, model: mock-fail-500, api_key: sk-secret-one, base_url: "http://{mock}/v1"}}
                - {{provider: anthropic, name: up, priority: 1, model: mock-claude, api_key: sk-secret-two, base_url: "http://{mock}"}}
"#,
        rx.http_url()
    );
    let gw = gateway(&yaml, mock).await;
    let base = base(&gw, "main").await;
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .header("traceparent", traceparent())
        .json(&json!({"model": "smart", "messages": [{"role": "user", "content": "the secret prompt"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchboard-provider"], "up");
    let spans = rx
        .wait_for(WAIT, |s| {
            s.iter().any(|s| s.kind == otlp::SERVER)
                && s.iter()
                    .any(|s| s.attr("gen_ai.usage.input_tokens").is_some())
        })
        .await;
    let server = spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    assert_eq!(server.trace_id, CLIENT_TRACE);
    assert_eq!(server.name, "POST models");
    let mut attempts: Vec<&Span> = spans.iter().filter(|s| s.kind == otlp::CLIENT).collect();
    attempts.sort_by_key(|s| {
        s.attr("switchboard.attempt")
            .unwrap()
            .parse::<u32>()
            .unwrap()
    });
    assert!(attempts.len() >= 2, "{attempts:#?}");
    for (n, a) in attempts.iter().enumerate() {
        assert_eq!(
            a.attr("switchboard.attempt"),
            Some((n + 1).to_string().as_str())
        );
        assert_eq!(a.parent_span_id, server.span_id);
        assert_eq!(a.trace_id, CLIENT_TRACE);
        assert_eq!(a.name, "chat smart");
        assert_eq!(a.attr("gen_ai.operation.name"), Some("chat"));
        assert_eq!(a.attr("gen_ai.request.model"), Some("smart"));
        assert_eq!(a.attr("server.address"), Some("127.0.0.1"));
    }
    let first = attempts[0];
    assert_eq!(first.attr("switchboard.llm.provider"), Some("down"));
    assert_eq!(first.attr("gen_ai.provider.name"), Some("openai"));
    assert_eq!(first.attr("gen_ai.response.model"), Some("mock-fail-500"));
    assert_eq!(first.attr("http.response.status_code"), Some("500"));
    assert_eq!(first.attr("error.type"), Some("500"));
    assert_eq!(first.status, 2);
    let last = attempts.last().unwrap();
    assert_eq!(last.attr("switchboard.llm.provider"), Some("up"));
    assert_eq!(last.attr("gen_ai.provider.name"), Some("anthropic"));
    assert_eq!(last.attr("gen_ai.response.model"), Some("mock-claude"));
    assert_eq!(
        last.attr("gen_ai.usage.output_tokens"),
        Some(OUTPUT_TOKENS.to_string().as_str())
    );
    let input: u64 = last
        .attr("gen_ai.usage.input_tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert!(input >= INPUT_TOKENS, "{input}");
    assert_ne!(last.status, 2);
    // Each attempt's provider request carried that attempt's span as its parent.
    let seen = state.traceparents();
    assert_eq!(seen.len(), attempts.len(), "{seen:?}");
    for (tp, a) in seen.iter().zip(&attempts) {
        assert_eq!(
            parse_traceparent(tp),
            (CLIENT_TRACE.to_string(), a.span_id.clone())
        );
    }
    // Streamed: the served attempt's span gets its usage when the stream ends.
    let (stream_trace, tp) = trace_of(9);
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .header("traceparent", tp)
        .json(
            &json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "the secret prompt"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.contains("[DONE]"), "{body}");
    let spans = rx
        .wait_for(WAIT, |s| {
            s.iter().any(|s| {
                s.trace_id == stream_trace
                    && s.attr("switchboard.llm.provider") == Some("up")
                    && s.attr("gen_ai.usage.output_tokens").is_some()
            })
        })
        .await;
    let served = spans
        .iter()
        .find(|s| s.trace_id == stream_trace && s.attr("switchboard.llm.provider") == Some("up"))
        .unwrap();
    assert_eq!(
        served.attr("gen_ai.usage.output_tokens"),
        Some(OUTPUT_TOKENS.to_string().as_str())
    );

    let dump = format!("{spans:?}");
    for secret in ["the secret prompt", "sk-secret-one", "sk-secret-two"] {
        assert!(!dump.contains(secret), "{secret} leaked into a span");
    }
    gw.shutdown(Duration::from_secs(1)).await;
}

/// Builds an example binary (the stdio MCP server) and returns its path.
fn example_binary(name: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "-p", "switchboard-examples", "--bin", name])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success());
    target.join("debug").join(name)
}

/// The MCP fixture (Streamable HTTP) behind a layer that records each request's `traceparent`.
async fn recording_fixture() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = switchboard_examples::mcp_fixture::router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let s = s.clone();
            async move {
                if let Some(tp) = req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                {
                    s.lock().unwrap().push(tp.to_owned());
                }
                next.run(req).await
            }
        },
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/mcp"), seen)
}

/// One JSON-RPC exchange with the gateway's MCP endpoint; the reply as JSON or from SSE.
async fn rpc(url: &str, session: Option<&str>, tp: Option<&str>, body: Value) -> (String, Value) {
    let mut req = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    if let Some(tp) = tp {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    if text.trim().is_empty() {
        return (sid, Value::Null);
    }
    let reply = match serde_json::from_str::<Value>(&text) {
        Ok(v) => v,
        Err(_) => text
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
            .unwrap_or_else(|| panic!("no reply in {text}")),
    };
    (sid, reply)
}

fn trace_of(n: u8) -> (String, String) {
    let trace = format!("{:032x}", 0xabcdef00u128 + u128::from(n));
    (trace.clone(), format!("00-{trace}-{CLIENT_PARENT}-01"))
}

/// MCP across an HTTP target (the fixture) and a stdio target (`mcp-echo`): `tools/list`
/// is a server span → a fan-out span → one client span per target; `tools/call` a server
/// span → its request span → the target's client span; the MCP attributes are there, the
/// session id only as a hash; the client's trace id reaches the HTTP target as a header and
/// the stdio server in `params._meta` (next to the client's own `_meta` keys).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_fan_out_and_tool_calls_across_http_and_stdio_targets() {
    let echo = example_binary("mcp-echo");
    let rx = Receiver::start().await;
    let (fixture, fixture_seen) = recording_fixture().await;
    let up = upstream().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}', protocol: grpc}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - {{name: fixture, http: {{url: "{fixture}"}}}}
            - {{name: echo, stdio: {{command: "{}"}}}}
"#,
        rx.grpc_url(),
        echo.display()
    );
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let (sid, init) = rpc(
        &url,
        None,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await;
    assert!(init.get("result").is_some(), "{init}");
    assert!(!sid.is_empty());
    rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;

    // tools/list: the fan-out.
    let (list_trace, tp) = trace_of(1);
    let (_, list) = rpc(
        &url,
        Some(&sid),
        Some(&tp),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names: Vec<&str> = list["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo__meta"), "{names:?}");
    assert!(names.contains(&"fixture__test_simple_text"), "{names:?}");

    // tools/call to the stdio target, with the client's own _meta.
    let (echo_trace, tp) = trace_of(2);
    let (_, call) = rpc(
        &url,
        Some(&sid),
        Some(&tp),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "echo__meta", "arguments": {"secret_arg": "do-not-export"},
            "_meta": {"client.key": "kept"}}}),
    )
    .await;
    let text = call["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{call}"));
    let meta: Value = serde_json::from_str(text).unwrap();
    assert_eq!(
        meta["client.key"], "kept",
        "the client's _meta is kept: {meta}"
    );
    let (meta_trace, meta_parent) = parse_traceparent(meta["traceparent"].as_str().unwrap());
    assert_eq!(meta_trace, echo_trace);

    // tools/call to the HTTP target.
    let (http_trace, tp) = trace_of(3);
    let (_, call) = rpc(
        &url,
        Some(&sid),
        Some(&tp),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "fixture__test_simple_text", "arguments": {}}}),
    )
    .await;
    assert!(call.get("result").is_some(), "{call}");

    let spans = rx
        .wait_for(WAIT, |s| {
            [&list_trace, &echo_trace, &http_trace].iter().all(|t| {
                s.iter()
                    .any(|x| x.trace_id == **t && x.kind == otlp::SERVER)
            }) && s
                .iter()
                .filter(|x| x.trace_id == list_trace && x.kind == otlp::CLIENT)
                .count()
                == 2
        })
        .await;
    let in_trace = |t: &str| -> Vec<&Span> { spans.iter().filter(|s| s.trace_id == t).collect() };
    let session_hash = |s: &Span| {
        let h = s.attr("mcp.session.id").unwrap().to_string();
        assert_eq!(h.len(), 32);
        assert_ne!(h, sid);
        h
    };

    // The fan-out tree.
    let list_spans = in_trace(&list_trace);
    let server = list_spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    assert_eq!(server.parent_span_id, CLIENT_PARENT);
    assert_eq!(server.attr("switchboard.route"), Some("tools"));
    assert_eq!(server.attr("http.route"), Some("/mcp"));
    let fan_out = list_spans
        .iter()
        .find(|s| s.kind == otlp::INTERNAL)
        .unwrap();
    assert_eq!(fan_out.name, "tools/list");
    assert_eq!(fan_out.parent_span_id, server.span_id);
    assert_eq!(fan_out.attr("mcp.method.name"), Some("tools/list"));
    assert_eq!(fan_out.attr("switchboard.mcp.targets"), Some("2"));
    let hash = session_hash(fan_out);
    let mut per_target: Vec<&&Span> = list_spans
        .iter()
        .filter(|s| s.kind == otlp::CLIENT)
        .collect();
    per_target.sort_by_key(|s| s.attr("switchboard.mcp.target").map(str::to_owned));
    assert_eq!(per_target.len(), 2);
    for (span, (target, transport)) in per_target
        .iter()
        .zip([("echo", "pipe"), ("fixture", "tcp")])
    {
        assert_eq!(span.parent_span_id, fan_out.span_id);
        assert_eq!(span.name, "tools/list");
        assert_eq!(span.attr("mcp.method.name"), Some("tools/list"));
        assert_eq!(span.attr("switchboard.mcp.target"), Some(target));
        assert_eq!(span.attr("network.transport"), Some(transport));
    }
    assert_eq!(per_target[1].attr("server.address"), Some("127.0.0.1"));

    // The stdio tool call: its client span is the parent named in `_meta`.
    let echo_spans = in_trace(&echo_trace);
    let server = echo_spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    let request = echo_spans
        .iter()
        .find(|s| s.kind == otlp::INTERNAL)
        .unwrap();
    assert_eq!(request.name, "tools/call echo__meta");
    assert_eq!(request.parent_span_id, server.span_id);
    assert_eq!(request.attr("mcp.method.name"), Some("tools/call"));
    assert_eq!(request.attr("gen_ai.tool.name"), Some("echo__meta"));
    assert_eq!(request.attr("gen_ai.operation.name"), Some("execute_tool"));
    assert_eq!(request.attr("jsonrpc.request.id"), Some("3"));
    assert_eq!(request.attr("mcp.protocol.version"), Some("2025-11-25"));
    assert_eq!(session_hash(request), hash, "one session, one hash");
    let target = echo_spans.iter().find(|s| s.kind == otlp::CLIENT).unwrap();
    assert_eq!(target.name, "tools/call meta");
    assert_eq!(target.parent_span_id, request.span_id);
    assert_eq!(target.attr("gen_ai.tool.name"), Some("meta"));
    assert_eq!(target.attr("switchboard.mcp.target"), Some("echo"));
    assert_eq!(meta_parent, target.span_id);

    // The HTTP tool call: the fixture got the client span's traceparent as a header.
    let http_spans = in_trace(&http_trace);
    let target = http_spans.iter().find(|s| s.kind == otlp::CLIENT).unwrap();
    assert_eq!(target.name, "tools/call test_simple_text");
    assert_eq!(target.attr("switchboard.mcp.target"), Some("fixture"));
    let seen = fixture_seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|tp| parse_traceparent(tp) == (http_trace.clone(), target.span_id.clone())),
        "{seen:?}"
    );

    let dump = format!("{spans:?}");
    assert!(!dump.contains(&sid), "the raw session id is never exported");
    assert!(
        !dump.contains("do-not-export"),
        "tool arguments are not captured by default"
    );
    gw.shutdown(Duration::from_secs(1)).await;
}

/// An OpenAPI target: the REST call a tool becomes carries the target client span's
/// `traceparent` (the pet store of `examples/src/pets.rs` behind a recording layer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_target_receives_traceparent() {
    use std::sync::{Arc, Mutex};
    let rx = Receiver::start().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = switchboard_examples::pets::router().layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let s = s.clone();
            async move {
                if let Some(tp) = req
                    .headers()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                {
                    s.lock().unwrap().push(tp.to_owned());
                }
                next.run(req).await
            }
        },
    ));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let pets = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let spec =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/openapi/pets.yaml");
    let up = upstream().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}', protocol: http/protobuf}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - {{name: pets, openapi: {{spec: "{}", base_url: "{pets}"}}}}
"#,
        rx.http_url(),
        spec.display()
    );
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let (sid, init) = rpc(
        &url,
        None,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await;
    assert!(init.get("result").is_some(), "{init}");
    rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let (trace, tp) = trace_of(9);
    let (_, call) = rpc(
        &url,
        Some(&sid),
        Some(&tp),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "listPets", "arguments": {}}}),
    )
    .await;
    assert!(call.get("result").is_some(), "{call}");
    let spans = rx
        .wait_for(WAIT, |s| {
            s.iter()
                .any(|x| x.trace_id == trace && x.kind == otlp::CLIENT)
        })
        .await;
    let target = spans
        .iter()
        .find(|s| s.trace_id == trace && s.kind == otlp::CLIENT)
        .unwrap();
    assert_eq!(target.attr("switchboard.mcp.target"), Some("pets"));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|tp| parse_traceparent(tp) == (trace.clone(), target.span_id.clone())),
        "{seen:?}"
    );
    gw.shutdown(Duration::from_secs(1)).await;
}

/// An A2A agent that answers `message/send` with a message and records each `traceparent`.
async fn recording_agent() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use std::sync::{Arc, Mutex};
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
        let s = s.clone();
        async move {
            if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                s.lock().unwrap().push(tp.to_owned());
            }
            let req: Value = serde_json::from_str(&body).unwrap_or_default();
            axum::Json(json!({"jsonrpc": "2.0", "id": req["id"], "result": {
                "kind": "message", "role": "agent", "messageId": "a1",
                "parts": [{"kind": "text", "text": "hi"}]}}))
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (addr, seen)
}

/// An A2A route: a client span for the agent call, whose `traceparent` the agent received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_agent_receives_traceparent() {
    let rx = Receiver::start().await;
    let (agent, seen) = recording_agent().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}'}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: agent
        match: {{path_prefix: /agents/helper}}
        a2a: {{url: "http://${{UPSTREAM}}"}}
"#,
        rx.http_url()
    );
    let gw = gateway(&yaml, agent).await;
    let r = client()
        .post(format!("{}/agents/helper", base(&gw, "main").await))
        .header("content-type", "application/json")
        .header("traceparent", traceparent())
        .body(
            json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
                "message": {"role": "user", "parts": [{"kind": "text", "text": "hello"}],
                            "messageId": "m1", "kind": "message"}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spans = rx
        .wait_for(WAIT, |s| {
            s.iter().any(|s| s.kind == otlp::SERVER) && s.iter().any(|s| s.kind == otlp::CLIENT)
        })
        .await;
    let server = spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    let call = spans.iter().find(|s| s.kind == otlp::CLIENT).unwrap();
    assert_eq!(call.parent_span_id, server.span_id);
    assert_eq!(call.name, "a2a message/send");
    assert_eq!(call.attr("rpc.method"), Some("message/send"));
    assert_eq!(call.attr("server.address"), Some("127.0.0.1"));
    assert_eq!(
        call.attr("server.port"),
        Some(agent.port().to_string().as_str())
    );
    assert_eq!(call.attr("switchboard.attempt"), Some("1"));
    assert_eq!(call.attr("http.response.status_code"), Some("200"));
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|tp| parse_traceparent(tp) == (CLIENT_TRACE.to_string(), call.span_id.clone())),
        "{seen:?}"
    );
    gw.shutdown(Duration::from_secs(1)).await;
}

fn validate(file: &str) -> (i32, String) {
    let path = format!("{}/tests/configs/{file}", env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new(switchboard_bin())
        .args(["validate", &path])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&format!("{path}:"), "FILE:");
    (out.status.code().unwrap(), stderr)
}

/// `switchboard validate` refuses a ratio outside 0..1, an endpoint that is not an http(s)
/// URL and bad header names and values (without echoing the value), each with its key path.
#[test]
fn validate_refuses_bad_tracing_values() {
    let (code, stderr) = validate("bad_tracing.yaml");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("tracing.sampling: must be a ratio from 0 to 1, not 1.5"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tracing.otlp.endpoint: must be an http:// or https:// URL with a host"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tracing.otlp.headers.bad header: is not a valid header name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("tracing.otlp.headers.x-api-key: is not a valid header value"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("break"),
        "header values are secrets: {stderr}"
    );
    assert_eq!(stderr.lines().count(), 4, "{stderr}");
}

/// An unknown export protocol is refused by name.
#[test]
fn validate_refuses_an_unknown_protocol() {
    let (code, stderr) = validate("bad_tracing_protocol.yaml");
    assert_eq!(code, 1);
    assert!(stderr.contains("tracing.otlp.protocol"), "{stderr}");
    assert!(stderr.contains("thrift"), "{stderr}");
}

/// The admin `/config` shows the tracing section with the export headers redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_config_redacts_export_headers() {
    let rx = Receiver::start().await;
    let up = upstream().await;
    let yaml = http_route(&format!(
        "tracing: {{otlp: {{endpoint: '{}', headers: {{x-honeycomb-team: hc-secret-value}}}}}}",
        rx.http_url()
    ));
    let gw = gateway(&yaml, up).await;
    let admin = gw.admin_addr().await.unwrap();
    let body = client()
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!body.contains("hc-secret-value"), "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["config"]["tracing"]["otlp"]["headers"]["x-honeycomb-team"],
        "<redacted>"
    );
    assert_eq!(v["config"]["tracing"]["otlp"]["endpoint"], rx.http_url());
    gw.shutdown(Duration::from_secs(1)).await;
}

/// Graceful shutdown exports the spans still queued (the batch processor's own delay has
/// not passed yet when the gateway stops).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_flushes_queued_spans() {
    let rx = Receiver::start().await;
    let up = upstream().await;
    let yaml = http_route(&format!(
        "tracing: {{otlp: {{endpoint: '{}'}}}}",
        rx.http_url()
    ));
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let r = client().get(format!("{base}/echo/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    assert!(
        rx.spans().is_empty(),
        "nothing exported before the batch delay"
    );
    gw.shutdown(Duration::from_secs(1)).await;
    let spans = rx.spans();
    assert!(spans.iter().any(|s| s.kind == otlp::SERVER), "{spans:?}");
    assert!(spans.iter().any(|s| s.kind == otlp::CLIENT), "{spans:?}");
}

/// `capture_content: true` records a tool call's arguments on its request span; the
/// default (every other test here) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_content_records_tool_arguments() {
    let rx = Receiver::start().await;
    let (fixture, _) = recording_fixture().await;
    let up = upstream().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}'}}, capture_content: true}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets: [{{name: fixture, http: {{url: "{fixture}"}}}}]
"#,
        rx.http_url()
    );
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let (sid, _) = rpc(
        &url,
        None,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await;
    rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let (_, call) = rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "test_simple_text", "arguments": {"note": "captured-arg"}}}),
    )
    .await;
    assert!(call.get("result").is_some(), "{call}");
    gw.shutdown(Duration::from_secs(1)).await;
    let spans = rx.spans();
    let request = spans
        .iter()
        .find(|s| s.name == "tools/call test_simple_text" && s.kind == otlp::INTERNAL)
        .unwrap_or_else(|| panic!("{spans:#?}"));
    assert_eq!(
        request.attr("gen_ai.tool.call.arguments"),
        Some(r#"{"note":"captured-arg"}"#)
    );
}

/// The `switchboard` process with no `tracing:` in its file: `OTEL_EXPORTER_OTLP_ENDPOINT`
/// alone turns tracing on (HTTP/protobuf, `/v1/traces` appended), `OTEL_SERVICE_NAME` and
/// `OTEL_RESOURCE_ATTRIBUTES` name the resource, and SIGTERM exports what is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_environment_alone_turns_tracing_on() {
    let rx = Receiver::start().await;
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gw.yaml");
    std::fs::write(
        &cfg,
        format!(
            "admin: {{bind: '127.0.0.1:0'}}\n{}",
            http_route("").replace("${UPSTREAM}", &up.to_string())
        ),
    )
    .unwrap();
    let mut proc = spawn_switchboard_env(
        &cfg,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("http://{}", rx.http)),
            ("OTEL_SERVICE_NAME", "edge-gateway".into()),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=ci".into(),
            ),
        ],
    )
    .await;
    let base = format!("http://{}", proc.listeners["main"]);
    let r = client()
        .get(format!("{base}/echo/x"))
        .header("traceparent", traceparent())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let _ = r.bytes().await.unwrap();
    proc.signal("TERM");
    let _ = tokio::time::timeout(Duration::from_secs(20), proc.child.wait()).await;
    let spans = rx
        .wait_for(WAIT, |s| s.iter().any(|s| s.kind == otlp::SERVER))
        .await;
    let server = spans.iter().find(|s| s.kind == otlp::SERVER).unwrap();
    assert_eq!(server.via, "http");
    assert_eq!(server.trace_id, CLIENT_TRACE);
    assert_eq!(server.resource["service.name"], "edge-gateway");
    assert_eq!(server.resource["deployment.environment"], "ci");
}

/// Guardrail decisions are `guardrail` events on the request's server span (rule, action,
/// direction), never the matched text: an LLM prompt's card number masked, an MCP tool
/// argument's e-mail address rejected. The matched text appears in no exported span.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guardrail_decisions_are_span_events_without_the_matched_text() {
    use switchboard_examples::mock_llm;
    const CARD: &str = "4111 1111 1111 1111";
    const MAIL: &str = "leak.me@example.org";
    let rx = Receiver::start().await;
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let (fixture, _) = recording_fixture().await;
    let yaml = format!(
        r#"
tracing: {{otlp: {{endpoint: '{}', protocol: http/protobuf}}}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          guardrails:
            rules: [{{detector: credit_card, action: mask}}]
        llm:
          models:
            - name: fast
              providers:
                - {{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}
      - name: tools
        match: {{path_prefix: /mcp}}
        policies:
          guardrails:
            rules: [{{name: no-mail, detector: email, action: reject, applies_to: [request]}}]
        mcp:
          targets: [{{name: fixture, http: {{url: "{fixture}"}}}}]
"#,
        rx.http_url()
    );
    let gw = gateway(&yaml, mock).await;
    let base = base(&gw, "main").await;
    let r = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": format!("pay with {CARD} please")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let url = format!("{base}/mcp");
    let (sid, _) = rpc(
        &url,
        None,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
    )
    .await;
    rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let (_, call) = rpc(
        &url,
        Some(&sid),
        None,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "test_simple_text", "arguments": {"note": format!("write to {MAIL}")}}}),
    )
    .await;
    assert!(call.get("error").is_some(), "{call}");
    gw.shutdown(Duration::from_secs(1)).await;
    let spans = rx.spans();
    let event_on = |route_span: &str, rule: &str| -> (String, String, String) {
        let s = spans
            .iter()
            .find(|s| {
                s.kind == otlp::SERVER
                    && s.name == route_span
                    && s.events.iter().any(|e| e.name == "guardrail")
            })
            .unwrap_or_else(|| {
                panic!("no server span {route_span} with a guardrail event: {spans:#?}")
            });
        let e = s.events.iter().find(|e| e.name == "guardrail").unwrap();
        assert_eq!(
            e.attrs
                .get("switchboard.guardrail.rule")
                .map(String::as_str),
            Some(rule)
        );
        (
            e.attrs["switchboard.guardrail.rule"].clone(),
            e.attrs["switchboard.guardrail.action"].clone(),
            e.attrs["switchboard.guardrail.direction"].clone(),
        )
    };
    assert_eq!(
        event_on("POST models", "credit_card"),
        ("credit_card".into(), "mask".into(), "request".into())
    );
    assert_eq!(
        event_on("POST tools", "no-mail"),
        ("no-mail".into(), "reject".into(), "request".into())
    );
    let dump = format!("{spans:?}");
    for secret in [CARD, "4111", MAIL] {
        assert!(!dump.contains(secret), "{secret} exported: {dump}");
    }
}
