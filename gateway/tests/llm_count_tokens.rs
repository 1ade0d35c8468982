//! Token counting on `llm` routes with the real Python SDKs: Anthropic's
//! `client.messages.count_tokens` (`POST /v1/messages/count_tokens`) and OpenAI's
//! `client.responses.input_tokens.count` (`POST /v1/responses/input_tokens`), forwarded to a
//! provider that counts (the mock answers both as Anthropic and OpenAI do) and estimated by the
//! gateway for the others.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use switchboard_examples::mock_llm::{self, mock_token_count};
use switchboard_llm::estimate::estimate_tokens;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llm_sdk.py")
}

async fn count_gateway(mock: std::net::SocketAddr) -> switchboard_gateway::Gateway {
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          models:
            - name: claude
              providers:
                - {{provider: anthropic, model: mock-claude, api_key: cfg-anthropic-key, base_url: "http://{mock}"}}
            - name: gpt
              providers:
                - {{provider: openai, model: mock-gpt, api_key: cfg-openai-key, base_url: "http://{mock}/v1"}}
            - name: gemini
              providers:
                - {{provider: gemini, model: mock-gemini, api_key: cfg-gemini-key, base_url: "http://{mock}"}}
            - name: mixed
              providers:
                - {{provider: openai, model: mock-gpt, api_key: cfg-openai-key, base_url: "http://{mock}/v1", priority: 0}}
                - {{provider: anthropic, model: mock-claude-2, api_key: cfg-anthropic-key, base_url: "http://{mock}", priority: 1}}
"#
    );
    gateway(&yaml, mock).await
}

fn anthropic_request(model: &str) -> Value {
    json!({
        "model": model,
        "system": "You are terse.",
        "messages": [
            {"role": "user", "content": "What is the weather in Paris this week?"},
            {"role": "assistant", "content": "Let me check."},
            {"role": "user", "content": [{"type": "text", "text": "Use the tool, please."}]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather for a city",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]
    })
}

fn object(v: &Value) -> serde_json::Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[tokio::test]
async fn anthropic_sdk_count_tokens_is_forwarded_to_anthropic_providers() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = count_gateway(mock).await;
    let base = base(&gw, "main").await;
    let req = anthropic_request("claude");
    let r = run_py(
        &py,
        &script(),
        &["anthropic_count", &base, &req.to_string()],
    )
    .await;
    // The provider's count, not the gateway's estimate.
    assert_eq!(r["input_tokens"], mock_token_count(&req));
    assert_ne!(r["input_tokens"], estimate_tokens(&object(&req)));
    assert_eq!(r["how"], "provider");
    // What reached the provider: its model name and only what count_tokens accepts (the mock
    // refuses anything else, as Anthropic does), with the route's credential.
    let seen = state.last_count_tokens().unwrap();
    assert_eq!(seen["model"], "mock-claude");
    assert_eq!(seen["messages"], req["messages"]);
    assert_eq!(seen["tools"], req["tools"]);
    assert_eq!(
        state.last_auth().as_deref(),
        Some("x-api-key: cfg-anthropic-key")
    );

    // In a pool whose first provider cannot count, the Anthropic one further down does.
    let before = state.requests();
    let req = anthropic_request("mixed");
    let r = run_py(
        &py,
        &script(),
        &["anthropic_count", &base, &req.to_string()],
    )
    .await;
    assert_eq!(r["input_tokens"], mock_token_count(&req));
    assert_eq!(state.last_count_tokens().unwrap()["model"], "mock-claude-2");
    assert_eq!(state.requests(), before + 1);
}

#[tokio::test]
async fn count_tokens_is_estimated_where_the_provider_cannot_count() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = count_gateway(mock).await;
    let base = base(&gw, "main").await;
    for model in ["gpt", "gemini"] {
        let req = anthropic_request(model);
        let r = run_py(
            &py,
            &script(),
            &["anthropic_count", &base, &req.to_string()],
        )
        .await;
        assert_eq!(r["input_tokens"], estimate_tokens(&object(&req)), "{model}");
        assert_eq!(r["how"], "estimated");
    }
    assert_eq!(state.requests(), 0, "no provider was asked");

    // An unknown model is a 404 in Anthropic's error shape.
    let r = run_py(
        &py,
        &script(),
        &[
            "anthropic_count_error",
            &base,
            &anthropic_request("nope").to_string(),
        ],
    )
    .await;
    assert_eq!(r["status"], 404);
    assert_eq!(r["type"], "not_found_error");
}

#[tokio::test]
async fn the_estimate_counts_text_bytes_over_four_and_images_flat() {
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = count_gateway(mock).await;
    let base = base(&gw, "main").await;
    // 40 bytes of text ("user" + 36 bytes) → 10 tokens, plus one image at 1600.
    let text = "a".repeat(36);
    let resp = client()
        .post(format!("{base}/v1/messages/count_tokens"))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "text", "text": text}
        ]}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-token-count"], "estimated");
    let v: Value = resp.json().await.unwrap();
    // "user" (4) + "text" (4) + 36 = 44 bytes → 11 tokens.
    assert_eq!(v, json!({"input_tokens": 11 + 1600}));
}

#[tokio::test]
async fn openai_sdk_input_tokens_is_forwarded_to_openai_and_estimated_elsewhere() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = count_gateway(mock).await;
    let base = base(&gw, "main").await;
    let req =
        json!({"model": "gpt", "instructions": "Be brief.", "input": "How many tokens is this?"});
    let r = run_py(
        &py,
        &script(),
        &["openai_input_tokens", &base, &req.to_string()],
    )
    .await;
    let counted = json!({"system": req["instructions"], "messages": req["input"]});
    assert_eq!(r["input_tokens"], mock_token_count(&counted));
    assert_eq!(r["object"], "response.input_tokens");
    assert_eq!(r["how"], "provider");
    assert_eq!(
        state.last_auth().as_deref(),
        Some("authorization: Bearer cfg-openai-key")
    );

    let mut req = req;
    req["model"] = json!("claude");
    let r = run_py(
        &py,
        &script(),
        &["openai_input_tokens", &base, &req.to_string()],
    )
    .await;
    assert_eq!(r["input_tokens"], estimate_tokens(&object(&req)));
    assert_eq!(r["how"], "estimated");
}
