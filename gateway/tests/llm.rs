//! `llm` routes through the whole gateway (listener, routing, policies, limits) with the real
//! Python `openai` and `anthropic` SDKs in front and the mock provider behind.

mod common;

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
