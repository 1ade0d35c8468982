//! Model routing rules (`llm.virtual_models`): a virtual model name resolved per request by CEL
//! conditions on the caller (API key, team), the headers and the request (prompt length, tools,
//! images), through the gateway to the mock provider, with the OpenAI and Anthropic SDKs and
//! plain requests. One test per kind of rule.

use crate::common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use switchboard_examples::mock_llm;
use switchboard_gateway::auth::api_key::hash_key;

fn sdk_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llm_sdk.py")
}

/// A route with four pools (each its own provider model, so `x-switchboard-model` tells them
/// apart) and the virtual model `auto` with `rules`.
async fn routed(mock: std::net::SocketAddr, rules: &str) -> switchboard_gateway::Gateway {
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          authn:
            mode: optional
            api_keys:
              - {{name: ml-key, sha256: "{ml}", team: ml, models: [auto]}}
              - {{name: web-key, sha256: "{web}", team: web, models: [auto]}}
        llm:
          models:
            - name: smart
              providers:
                - {{provider: openai, model: mock-smart, api_key: k, base_url: "http://{mock}/v1"}}
            - name: long
              providers:
                - {{provider: openai, model: mock-long-context, api_key: k, base_url: "http://{mock}/v1"}}
            - name: ml-deployment
              providers:
                - {{provider: anthropic, model: mock-ml-claude, api_key: k, base_url: "http://{mock}"}}
            - name: vision
              providers:
                - {{provider: openai, model: mock-vision, api_key: k, base_url: "http://{mock}/v1"}}
          virtual_models:
            - name: auto
              rules:
{rules}
              default: smart
"#,
        ml = hash_key(b"ml-secret"),
        web = hash_key(b"web-secret"),
    );
    gateway(&yaml, mock).await
}

/// Sends an OpenAI chat request for `auto`; the provider model and the pool it went to.
async fn chat(base: &str, body: Value, headers: &[(&str, &str)]) -> (String, String) {
    let mut rb = client()
        .post(format!("{base}/v1/chat/completions"))
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    (
        resp.headers()["x-switchboard-model"]
            .to_str()
            .unwrap()
            .to_string(),
        resp.headers()["x-switchboard-routed-to"]
            .to_str()
            .unwrap()
            .to_string(),
    )
}

fn hello(text: &str) -> Value {
    json!({"model": "auto", "messages": [{"role": "user", "content": text}]})
}

#[tokio::test]
async fn long_prompts_go_to_the_long_context_model() {
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = routed(
        mock,
        "                - {when: 'llm.prompt_tokens > 1000', to: long}",
    )
    .await;
    let base = base(&gw, "main").await;
    assert_eq!(
        chat(&base, hello("short"), &[]).await,
        ("mock-smart".into(), "smart".into())
    );
    let long = "lorem ipsum ".repeat(500); // 6000 bytes ≈ 1500 tokens
    assert_eq!(
        chat(&base, hello(&long), &[]).await,
        ("mock-long-context".into(), "long".into())
    );
    // prompt_chars counts characters, not bytes.
    drop(gw);
    let gw = routed(
        mock,
        "                - {when: 'llm.prompt_chars >= 4', to: long}",
    )
    .await;
    let base = common::base(&gw, "main").await;
    assert_eq!(chat(&base, hello("ééé"), &[]).await.1, "smart");
    assert_eq!(chat(&base, hello("éééé"), &[]).await.1, "long");
}

#[tokio::test]
async fn a_team_goes_to_its_own_deployment_through_the_anthropic_sdk() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = routed(
        mock,
        "                - {when: 'caller.team == \"ml\"', to: ml-deployment}",
    )
    .await;
    let base = base(&gw, "main").await;
    // The ml team's key: its own Anthropic deployment, through the Anthropic SDK.
    let req = json!({"_api_key": "ml-secret", "model": "auto", "max_tokens": 50,
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = run_py(
        &py,
        &sdk_script(),
        &["anthropic_create", &base, &req.to_string()],
    )
    .await;
    assert!(r["text"].is_string(), "{r}");
    assert_eq!(r["headers"]["x-switchboard-model"], "mock-ml-claude");
    assert_eq!(r["headers"]["x-switchboard-routed-to"], "ml-deployment");
    assert_eq!(
        state.last_auth().as_deref(),
        Some("x-api-key: k"),
        "went to the Anthropic deployment"
    );
    // Another team's key, and anonymous callers: the default.
    let (model, _) = chat(
        &base,
        hello("hi"),
        &[("authorization", "Bearer web-secret")],
    )
    .await;
    assert_eq!(model, "mock-smart");
    let (model, _) = chat(&base, hello("hi"), &[("authorization", "Bearer ml-secret")]).await;
    assert_eq!(model, "mock-ml-claude");
    assert_eq!(chat(&base, hello("hi"), &[]).await.0, "mock-smart");
    // Token counting is routed too: the ml team's count comes from its Anthropic deployment.
    let resp = client()
        .post(format!("{base}/v1/messages/count_tokens"))
        .header("x-api-key", "ml-secret")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-routed-to"], "ml-deployment");
    assert_eq!(resp.headers()["x-switchboard-token-count"], "provider");
    assert_eq!(
        state.last_count_tokens().unwrap()["model"],
        "mock-ml-claude"
    );
}

#[tokio::test]
async fn a_key_and_a_header_pick_the_model() {
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = routed(
        mock,
        "                - {when: 'caller.api_key == \"web-key\"', to: long}\n                - {when: 'request.headers[\"x-tier\"] == \"premium\"', to: ml-deployment}",
    )
    .await;
    let base = base(&gw, "main").await;
    let web = ("authorization", "Bearer web-secret");
    assert_eq!(chat(&base, hello("hi"), &[web]).await.1, "long");
    assert_eq!(
        chat(&base, hello("hi"), &[("x-tier", "premium")]).await.1,
        "ml-deployment"
    );
    // The first rule that holds wins; a missing header makes its rule false, not an error.
    assert_eq!(
        chat(&base, hello("hi"), &[web, ("x-tier", "premium")])
            .await
            .1,
        "long"
    );
    assert_eq!(chat(&base, hello("hi"), &[]).await.1, "smart");
    // OpenAI's token counting is routed too.
    let resp = client()
        .post(format!("{base}/v1/responses/input_tokens"))
        .header("x-tier", "premium")
        .json(&json!({"model": "auto", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-routed-to"], "ml-deployment");
    // ml-deployment is an Anthropic provider: it cannot count OpenAI-style, so the estimate.
    assert_eq!(resp.headers()["x-switchboard-token-count"], "estimated");
    // Embeddings take pool names only: `auto` is not one.
    let resp = client()
        .post(format!("{base}/v1/embeddings"))
        .json(&json!({"model": "auto", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // Credentials are not visible to rules.
    drop(gw);
    let gw = routed(
        mock,
        "                - {when: '\"authorization\" in request.headers', to: long}",
    )
    .await;
    let base = common::base(&gw, "main").await;
    assert_eq!(chat(&base, hello("hi"), &[web]).await.1, "smart");
}

#[tokio::test]
async fn tools_and_images_pick_the_model() {
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = routed(
        mock,
        "                - {when: 'llm.vision', to: vision}\n                - {when: 'llm.tools && llm.stream', to: ml-deployment}\n                - {when: 'llm.tools', to: long}",
    )
    .await;
    let base = base(&gw, "main").await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let mut with_tools = hello("weather?");
    with_tools["tools"] = tools.clone();
    assert_eq!(chat(&base, with_tools.clone(), &[]).await.1, "long");
    let mut streamed = with_tools.clone();
    streamed["stream"] = json!(true);
    assert_eq!(chat(&base, streamed, &[]).await.1, "ml-deployment");
    let image = json!({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]});
    assert_eq!(chat(&base, image, &[]).await.1, "vision");
    assert_eq!(chat(&base, hello("plain"), &[]).await.1, "smart");
}

#[tokio::test]
async fn the_virtual_name_is_listed_and_checked_and_the_openai_sdk_uses_it() {
    let Some(py) = python() else { return };
    let (mock, _) = mock_llm::spawn().await.unwrap();
    let gw = routed(
        mock,
        "                - {when: 'llm.max_tokens > 100', to: long}",
    )
    .await;
    let base = base(&gw, "main").await;
    let req = json!({"_api_key": "web-secret", "model": "auto", "max_tokens": 500,
                     "messages": [{"role": "user", "content": "hi"}]});
    let r = run_py(
        &py,
        &sdk_script(),
        &["openai_create", &base, &req.to_string()],
    )
    .await;
    assert!(r["text"].is_string(), "{r}");
    assert_eq!(r["headers"]["x-switchboard-routed-to"], "long");
    let models: Value = client()
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
    assert_eq!(names, ["smart", "long", "ml-deployment", "vision", "auto"]);
    // A key whose model list names `auto` only may use it (whatever it resolves to), but not
    // the pools directly.
    let key = ("authorization", "Bearer web-secret");
    let mut big = hello("hi");
    big["max_tokens"] = json!(500);
    assert_eq!(chat(&base, big, &[key]).await.1, "long");
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .header(key.0, key.1)
        .json(&json!({"model": "long", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

#[test]
fn validate_names_a_bad_rule_and_a_bad_target() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {path_prefix: /v1}
        llm:
          models:
            - name: smart
              providers: [{provider: openai, model: m, base_url: "http://127.0.0.1:1/v1"}]
          virtual_models:
            - name: auto
              rules:
                - {when: 'llm.prompt_tokens >', to: smart}
                - {when: 'jwt.sub == "a"', to: smart}
                - {when: 'llm.tools', to: nowhere}
              default: smart
            - name: smart
              default: smart
"#,
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "llm.virtual_models[0].rules[0].when: not a valid CEL expression",
        "llm.virtual_models[0].rules[1].when: unknown variable `jwt`",
        "llm.virtual_models[0].rules[2].to: `nowhere` is not one of this route's `models`",
        "llm.virtual_models[1].name: duplicate model name `smart`",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
}
