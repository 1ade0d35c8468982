//! `llm` routes through the whole gateway (listener, routing, policies, limits) with the real
//! Python `openai` and `anthropic` SDKs in front and the mock provider behind.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use switchboard_examples::mock_llm::{self, CACHED_TOKENS, INPUT_TOKENS, OUTPUT_TOKENS, TOOL_ARGS};

fn sdk_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../llm-providers/tests/py/sdk_check.py")
}

async fn llm_gateway(mock: std::net::SocketAddr, policies: &str) -> switchboard_gateway::Gateway {
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        {policies}
        llm:
          models:
            - name: smart
              providers:
                - {{provider: anthropic, name: claude, model: mock-claude, api_key: cfg-anthropic-key, base_url: "http://{mock}"}}
            - name: fast
              providers:
                - {{provider: openai, name: gpt, model: mock-gpt, api_key: cfg-openai-key, base_url: "http://{mock}/v1"}}
"#
    );
    gateway(&yaml, mock).await
}

#[tokio::test]
async fn openai_sdk_through_the_gateway_to_anthropic_and_back() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "").await;
    let base = base(&gw, "main").await;
    let r = run_py(&py, &sdk_script(), &["openai_stream_tool", &base, "smart"]).await;
    assert_eq!(r["finish_reason"], "tool_calls");
    assert_eq!(r["tool_calls"][0]["name"], "get_weather");
    assert_eq!(
        r["tool_calls"][0]["arguments"],
        serde_json::from_str::<Value>(TOOL_ARGS).unwrap()
    );
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS})
    );
    assert_eq!(
        state.last_auth().as_deref(),
        Some("x-api-key: cfg-anthropic-key")
    );

    let r = run_py(
        &py,
        &sdk_script(),
        &["anthropic_stream_tool", &base, "fast"],
    )
    .await;
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(
        r["tool_calls"][0]["input"],
        serde_json::from_str::<Value>(TOOL_ARGS).unwrap()
    );
    assert_eq!(
        state.last_auth().as_deref(),
        Some("authorization: Bearer cfg-openai-key")
    );
}

#[tokio::test]
async fn provider_headers_models_and_errors_in_the_callers_format() {
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "").await;
    let base = base(&gw, "main").await;
    let c = client();
    let resp = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-provider"], "gpt");
    assert_eq!(resp.headers()["x-switchboard-model"], "mock-gpt");
    let models: Value = c
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["smart", "fast"]);
    // Unknown model: OpenAI-shaped error on /chat/completions, Anthropic-shaped on /messages.
    let resp = c
        .post(format!("{base}/v1/chat/completions"))
        .json(&json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    let resp = c
        .post(format!("{base}/v1/messages"))
        .json(&json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
}

#[tokio::test]
async fn route_request_limit_gives_the_sdk_a_429_with_retry_after() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let Some(py) = python() else { return };
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "policies: {rate_limit: {requests: 3, per: 1m}}").await;
    let base = base(&gw, "main").await;
    let r = run_py(&py, &sdk_script(), &["openai_rate_limited", &base, "fast"]).await;
    assert_eq!(r["ok_before"], 3, "{r}");
    assert_eq!(r["status"], 429, "{r}");
    let retry: u64 = r["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{r}");
}

#[tokio::test]
async fn route_token_limit_cuts_a_burst_at_the_budget() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let Some(py) = python() else { return };
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "policies: {rate_limit: {tokens: 300, per: 1m}}").await;
    let base = base(&gw, "main").await;
    let r = run_py(
        &py,
        &sdk_script(),
        &["anthropic_rate_limited", &base, "fast"],
    )
    .await;
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error_type"], "rate_limit_error");
    // Each request uses 59 tokens: a 300 budget admits 5 or 6 (the last may overshoot by its
    // own estimate).
    let ok = r["ok_before"].as_u64().unwrap();
    assert!((4..=6).contains(&ok), "{r}");
}

#[tokio::test]
async fn route_token_limit_holds_for_responses_and_embeddings_too() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "policies: {rate_limit: {tokens: 300, per: 1m}}").await;
    let base = base(&gw, "main").await;
    let c = reqwest::Client::new();
    let mut ok = 0;
    let mut refused = None;
    for _ in 0..20 {
        let r = c
            .post(format!("{base}/v1/responses"))
            .json(&serde_json::json!({"model": "fast", "input": "hi", "max_output_tokens": 50}))
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            refused = Some(r.json::<serde_json::Value>().await.unwrap());
            break;
        }
        assert_eq!(r.status(), 200);
        ok += 1;
    }
    // Each answer reports 59 tokens: a 300 budget admits 5 or 6.
    assert!((4..=6).contains(&ok), "{ok} {refused:?}");
    let refused = refused.expect("the token limit refuses /v1/responses");
    assert_eq!(refused["error"]["type"], "rate_limit_error", "{refused}");
    let r = c
        .post(format!("{base}/v1/embeddings"))
        .json(&serde_json::json!({"model": "fast", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
}

/// A hostile provider (the mock's `giant-body`, `giant-sse` and `not-json` modes) against the
/// real binary: each reply becomes an error in the caller's format plus a log line naming the
/// provider, the gateway never reads past `llm.max_response_bytes` / `llm.max_event_bytes`,
/// and it keeps serving. Request bodies over `limits.json` are refused in the caller's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_provider_replies_become_errors_and_the_gateway_lives() {
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: 127.0.0.1:0}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{json: {{max_message_bytes: 65536, max_depth: 16}}}}
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          max_response_bytes: 1048576
          max_event_bytes: 1048576
          retry: {{attempts: 1}}
          models:
            - name: body
              providers: [{{provider: openai, name: huge, model: giant-body, api_key: k, base_url: "http://{mock}/v1"}}]
            - name: sse
              providers: [{{provider: openai, name: longline, model: giant-sse, api_key: k, base_url: "http://{mock}/v1"}}]
            - name: html
              providers: [{{provider: anthropic, name: html, model: not-json, api_key: k, base_url: "http://{mock}"}}]
            - name: fast
              providers: [{{provider: openai, name: gpt, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
"#
        ),
    )
    .unwrap();
    let mut proc = spawn_switchboard(&config).await;
    let base = format!("http://{}/v1", proc.listeners["main"]);
    let client = client();
    let chat = |model: &str, stream: bool| {
        client
            .post(format!("{base}/chat/completions"))
            .json(&json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };

    let r = chat("body", false).await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "OpenAI error shape: {v}");
    let log = proc
        .wait_log("provider reply larger than llm.max_response_bytes")
        .await;
    assert_eq!(log["provider"], "huge", "{log}");

    let r = chat("sse", true).await.unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.len() < 4096, "the giant line is not relayed");
    assert!(
        text.contains("error"),
        "the stream ends in an error event: {text}"
    );
    let log = proc
        .wait_log("provider stream event larger than llm.max_event_bytes")
        .await;
    assert_eq!(log["provider"], "longline", "{log}");

    let r = client
        .post(format!("{base}/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "html", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error", "Anthropic error shape: {v}");
    let log = proc.wait_log("provider reply has the wrong shape").await;
    assert_eq!(log["provider"], "html", "{log}");

    // Request bodies: over max_message_bytes (413) and nesting deeper than max_depth (400),
    // in the OpenAI and Anthropic shapes.
    let big =
        json!({"model": "fast", "messages": [{"role": "user", "content": "x".repeat(70_000)}]});
    let r = client
        .post(format!("{base}/chat/completions"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    let deep = format!(
        r#"{{"model":"fast","max_tokens":5,"messages":[{{"role":"user","content":"hi"}}],"metadata":{}1{}}}"#,
        "[".repeat(20),
        "]".repeat(20)
    );
    let r = client
        .post(format!("{base}/messages"))
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");

    let r = chat("fast", false).await.unwrap();
    assert_eq!(r.status(), 200, "the gateway still serves");
}

/// Moved from the LLM crate's tests with the limiter: the OpenAI SDK sees the token 429 with
/// `retry-after` and `x-ratelimit-remaining-tokens`, and the budget admits what it should.
#[tokio::test]
async fn python_sdks_see_429_with_retry_after_when_token_budget_is_spent() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let Some(py) = python() else { return };
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = llm_gateway(mock, "policies: {rate_limit: {tokens: 1000, per: 1m}}").await;
    let base = base(&gw, "main").await;
    let r = run_py(&py, &sdk_script(), &["openai_rate_limited", &base, "fast"]).await;
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error_type"], "rate_limit_error", "{r}");
    let retry: u64 = r["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{r}");
    assert_eq!(r["remaining"], "0");
    // Each request really uses 59 tokens: the 1000-token budget admits 16 or 17 (the last one
    // may overshoot by at most its own estimate).
    let ok = r["ok_before"].as_u64().unwrap();
    assert!((15..=18).contains(&ok), "{r}");
}

/// A request-limit 429 (checked by the gateway before the backend) and a token-limit 429
/// (charged by the LLM backend through its token meter) on one route have one body shape and
/// kind, in each of the route's two API formats.
#[tokio::test]
async fn request_and_token_limit_429s_have_one_body_shape() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let (mock, _) = mock_llm::spawn().await.unwrap();
    // One token: the first request spends the budget; three requests: the fourth is over.
    let gw = llm_gateway(
        mock,
        "policies: {rate_limit: {requests: 3, tokens: 1, per: 1m}}",
    )
    .await;
    let base = base(&gw, "main").await;
    let c = client();
    let send = |path: &'static str| {
        let body = if path == "/v1/messages" {
            json!({"model": "fast", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        } else {
            json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
        };
        c.post(format!("{base}{path}")).json(&body).send()
    };
    let shape = |v: &Value| -> Value {
        json!({
            "top": v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            "error": v["error"].as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            "type": v["error"]["type"],
            "code": v["error"]["code"],
        })
    };
    assert_eq!(send("/v1/chat/completions").await.unwrap().status(), 200);
    let mut bodies = Vec::new();
    let mut limits = Vec::new();
    for path in [
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/chat/completions",
        "/v1/messages",
    ] {
        let r = send(path).await.unwrap();
        assert_eq!(r.status(), 429, "{path}");
        assert!(r.headers().contains_key("retry-after"), "{path}");
        let h = r.headers();
        limits.push(if h.contains_key("x-ratelimit-limit-tokens") {
            "tokens"
        } else if h.contains_key("x-ratelimit-limit-requests") {
            "requests"
        } else {
            "none"
        });
        bodies.push(r.json::<Value>().await.unwrap());
    }
    // Requests 2 and 3 were refused by the token limit, 4 and 5 by the request limit.
    assert_eq!(limits, ["tokens", "tokens", "requests", "requests"]);
    assert_eq!(
        shape(&bodies[0]),
        shape(&bodies[2]),
        "OpenAI: {} vs {}",
        bodies[0],
        bodies[2]
    );
    assert_eq!(
        shape(&bodies[1]),
        shape(&bodies[3]),
        "Anthropic: {} vs {}",
        bodies[1],
        bodies[3]
    );
    assert_eq!(bodies[0]["error"]["type"], "rate_limit_error");
    assert_eq!(bodies[0]["error"]["code"], "rate_limit_exceeded");
    assert_eq!(bodies[1]["type"], "error");
    assert_eq!(bodies[1]["error"]["type"], "rate_limit_error");
}
