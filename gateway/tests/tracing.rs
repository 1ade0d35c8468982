//! OpenTelemetry tracing against a real OTLP receiver (`switchboard_testing::otlp`, HTTP/protobuf
//! and gRPC on loopback): the span tree of MCP, LLM and http requests, their attributes, the
//! W3C `traceparent` reaching every kind of upstream, sampling, and a collector that is down.

mod common;

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

fn by_name<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

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
                - {{provider: openai, name: down, model: mock-fail-500, api_key: sk-secret-one, base_url: "http://{mock}/v1"}}
                - {{provider: anthropic, name: up, model: mock-claude, api_key: sk-secret-two, base_url: "http://{mock}"}}
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
    let dump = format!("{spans:?}");
    for secret in ["the secret prompt", "sk-secret-one", "sk-secret-two"] {
        assert!(!dump.contains(secret), "{secret} leaked into a span");
    }
    gw.shutdown(Duration::from_secs(1)).await;
}
