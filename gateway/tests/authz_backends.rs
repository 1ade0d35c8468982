//! Authorization reaching into backends: an API key's tool list and CEL rules on
//! `mcp.tool.name` hide tools from the Python MCP SDK and refuse forced calls; an API key's
//! model list and rules on `llm.model` give 403 on LLM routes and trim `/v1/models`.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn sha(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tools_are_filtered_for_the_python_sdk_and_forced_calls_fail() {
    let Some(py) = python() else { return };
    let (fixture, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let up = upstream().await;
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        policies:
          authn:
            api_keys:
              - {{name: limited, sha256: "{limited}", tools: [test_simple_text, test_error_handling]}}
              - {{name: ruled, sha256: "{ruled}"}}
          authz:
            rules:
              - 'api_key.name == "limited"'
              - 'api_key.name == "ruled" && mcp.tool.name == "test_image_content"'
        mcp:
          targets: [{{name: fixture, http: {{url: "http://{fixture}/mcp"}}}}]
"#,
        limited = sha("key-limited"),
        ruled = sha("key-ruled"),
    );
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/mcp_authz_client.py");

    // The key's own tool list.
    let r = run_py(
        &py,
        &script,
        &[
            &url,
            "key-limited",
            "test_simple_text",
            "test_image_content",
        ],
    )
    .await;
    let tools: Vec<&str> = r["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(tools, ["test_simple_text", "test_error_handling"], "{r}");
    assert_eq!(r["allowed_is_error"], false, "{r}");
    assert!(
        r["denied_error"].as_str().is_some_and(|e| !e.is_empty()),
        "a forced call fails: {r}"
    );

    // A CEL rule on mcp.tool.name.
    let r = run_py(
        &py,
        &script,
        &[&url, "key-ruled", "test_image_content", "test_simple_text"],
    )
    .await;
    assert_eq!(r["tools"], json!(["test_image_content"]), "{r}");
    assert!(
        r["denied_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{r}"
    );

    // Without a key: 401 with a challenge.
    let resp = client()
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(
        resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
}

#[tokio::test]
async fn llm_models_are_limited_by_key_and_rules() {
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
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
            api_keys:
              - {{name: small-only, sha256: "{small}", models: [fast]}}
              - {{name: ruled, sha256: "{ruled}"}}
          authz:
            rules:
              - 'api_key.name == "small-only"'
              - 'api_key.name == "ruled" && llm.model == "smart"'
        llm:
          models:
            - name: smart
              providers: [{{provider: openai, model: m1, api_key: k, base_url: "http://{mock}/v1"}}]
            - name: fast
              providers: [{{provider: openai, model: m2, api_key: k, base_url: "http://{mock}/v1"}}]
"#,
        small = sha("key-small"),
        ruled = sha("key-ruled"),
    );
    let gw = gateway(&yaml, mock).await;
    let base = base(&gw, "main").await;
    let c = client();
    let chat = |key: &'static str, model: &'static str| {
        c.post(format!("{base}/v1/chat/completions"))
            .bearer_auth(key)
            .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    assert_eq!(chat("key-small", "fast").await.unwrap().status(), 200);
    let denied = chat("key-small", "smart").await.unwrap();
    assert_eq!(denied.status(), 403);
    let v: Value = denied.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not allowed"),
        "{v}"
    );
    assert_eq!(chat("key-ruled", "smart").await.unwrap().status(), 200);
    assert_eq!(chat("key-ruled", "fast").await.unwrap().status(), 403);
    // Anthropic callers get their own error shape.
    let resp = c
        .post(format!("{base}/v1/messages"))
        .header("x-api-key", "key-small")
        .json(&json!({"model": "smart", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "permission_error", "{v}");
    // The model list shows what the key may use.
    let models: Value = c
        .get(format!("{base}/v1/models"))
        .bearer_auth("key-small")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");
    assert_eq!(models["data"][0]["id"], "fast");
}
