//! Authorization reaching into backends: an API key's tool list and CEL rules on
//! `mcp.tool.name` hide tools from the Python MCP SDK and refuse forced calls; an API key's
//! model list and rules on `llm.model` give 403 on LLM routes and trim `/v1/models`.

use crate::common;

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

/// One JSON-RPC exchange with the gateway's MCP route as `key` (or anonymous); returns the
/// response and the session id it carried.
async fn mcp_rpc(
    url: &str,
    key: Option<&str>,
    sid: Option<&str>,
    id: u64,
    method: &str,
    params: Value,
) -> (Value, Option<String>) {
    let mut req = client()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    if let Some(s) = sid {
        req = req.header("mcp-session-id", s);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200, "{method}");
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    let msg = serde_json::from_str::<Value>(&text).ok().or_else(|| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|m| m.get("id") == Some(&json!(id)))
    });
    (msg.unwrap_or_else(|| panic!("{method}: {text}")), sid)
}

/// What one caller sees of every MCP method.
struct Seen {
    tools: Vec<String>,
    prompts: Vec<String>,
    resources: Vec<String>,
    templates: Vec<String>,
}

async fn mcp_session(url: &str, key: Option<&str>) -> (String, Seen) {
    let (r, sid) = mcp_rpc(
        url,
        key,
        None,
        0,
        "initialize",
        json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    )
    .await;
    assert!(r.get("result").is_some(), "{r}");
    let sid = sid.unwrap();
    let names = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v["result"][list]
            .as_array()
            .unwrap_or_else(|| panic!("{list}: {v}"))
            .iter()
            .map(|i| i[field].as_str().unwrap().to_string())
            .collect()
    };
    let tools = mcp_rpc(url, key, Some(&sid), 1, "tools/list", json!({}))
        .await
        .0;
    let prompts = mcp_rpc(url, key, Some(&sid), 2, "prompts/list", json!({}))
        .await
        .0;
    let resources = mcp_rpc(url, key, Some(&sid), 3, "resources/list", json!({}))
        .await
        .0;
    let templates = mcp_rpc(
        url,
        key,
        Some(&sid),
        4,
        "resources/templates/list",
        json!({}),
    )
    .await
    .0;
    let seen = Seen {
        tools: names(&tools, "tools", "name"),
        prompts: names(&prompts, "prompts", "name"),
        resources: names(&resources, "resources", "uri"),
        templates: names(&templates, "resourceTemplates", "uriTemplate"),
    };
    (sid, seen)
}

/// Whether each use is allowed: (tools/call, prompts/get, resources/read, resources/subscribe,
/// completion of a prompt, completion of a resource template).
async fn mcp_uses(
    url: &str,
    key: Option<&str>,
    sid: &str,
    tool: &str,
    prompt: &str,
    uri: &str,
) -> [bool; 6] {
    let ok = |r: &Value| r.get("result").is_some() && r["result"]["isError"] != true;
    let call = mcp_rpc(
        url,
        key,
        Some(sid),
        10,
        "tools/call",
        json!({"name": tool, "arguments": {}}),
    )
    .await
    .0;
    let get = mcp_rpc(
        url,
        key,
        Some(sid),
        11,
        "prompts/get",
        json!({"name": prompt}),
    )
    .await
    .0;
    let read = mcp_rpc(
        url,
        key,
        Some(sid),
        12,
        "resources/read",
        json!({"uri": uri}),
    )
    .await
    .0;
    let sub = mcp_rpc(
        url,
        key,
        Some(sid),
        13,
        "resources/subscribe",
        json!({"uri": uri}),
    )
    .await
    .0;
    let cp = mcp_rpc(url, key, Some(sid), 14, "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": prompt}, "argument": {"name": "arg1", "value": "a"}})).await.0;
    let cr = mcp_rpc(url, key, Some(sid), 15, "completion/complete",
        json!({"ref": {"type": "ref/resource", "uri": "test://template/{id}/data"}, "argument": {"name": "id", "value": "1"}})).await.0;
    // A denied item is answered exactly like one that does not exist.
    for (r, what) in [
        (&call, "tool"),
        (&get, "prompt"),
        (&read, "resource"),
        (&sub, "resource"),
    ] {
        if !ok(r)
            && r["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Unknown"))
        {
            assert!(
                r["error"]["message"]
                    .as_str()
                    .unwrap()
                    .starts_with(&format!("Unknown {what}")),
                "{r}"
            );
        }
    }
    [ok(&call), ok(&get), ok(&read), ok(&sub), ok(&cp), ok(&cr)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_every_method_is_authorized_and_hidden_from_lists() {
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
            mode: optional
            api_keys:
              - {{name: echo-only, sha256: "{echo}", tools: [test_simple_text]}}
              - {{name: reader, sha256: "{reader}", prompts: [test_simple_prompt], resources: ["test://static-*", "test://template/*"]}}
              - {{name: admin, sha256: "{admin}"}}
          authz:
            rules:
              - 'mcp.tool.name == "test_simple_text"'
              - 'api_key.name == "reader" || api_key.name == "admin"'
        mcp:
          targets: [{{name: fixture, http: {{url: "http://{fixture}/mcp"}}}}]
"#,
        echo = sha("key-echo"),
        reader = sha("key-reader"),
        admin = sha("key-admin"),
    );
    let gw = gateway(&yaml, up).await;
    let url = format!("{}/mcp", base(&gw, "main").await);

    // The issue's repro: a rule set that allows only the tool `test_simple_text`. A rule about
    // tools says nothing about prompts or resources, so they are denied — listed or used —
    // for the anonymous caller of this `authn: optional` route and for a key limited to it.
    for key in [None, Some("key-echo")] {
        let (sid, seen) = mcp_session(&url, key).await;
        assert_eq!(seen.tools, ["test_simple_text"], "{key:?}");
        assert!(seen.prompts.is_empty(), "{key:?}: {:?}", seen.prompts);
        assert!(seen.resources.is_empty(), "{key:?}: {:?}", seen.resources);
        assert!(seen.templates.is_empty(), "{key:?}: {:?}", seen.templates);
        let uses = mcp_uses(
            &url,
            key,
            &sid,
            "test_simple_text",
            "test_simple_prompt",
            "test://static-text",
        )
        .await;
        assert_eq!(uses, [true, false, false, false, false, false], "{key:?}");
        let denied = mcp_rpc(
            &url,
            key,
            Some(&sid),
            20,
            "resources/read",
            json!({"uri": "test://static-text"}),
        )
        .await
        .0;
        assert_eq!(denied["error"]["code"], -32602, "{denied}");
        assert_eq!(
            denied["error"]["message"],
            "Unknown resource: test://static-text"
        );
        let denied = mcp_rpc(
            &url,
            key,
            Some(&sid),
            21,
            "prompts/get",
            json!({"name": "test_simple_prompt"}),
        )
        .await
        .0;
        assert_eq!(
            denied["error"]["message"], "Unknown prompt: test_simple_prompt",
            "{denied}"
        );
    }

    // A key's prompt and resource lists: what they name, nothing else (and no tools: the
    // three lists restrict as a group).
    let key = Some("key-reader");
    let (sid, seen) = mcp_session(&url, key).await;
    assert!(seen.tools.is_empty(), "{:?}", seen.tools);
    assert_eq!(seen.prompts, ["test_simple_prompt"]);
    assert_eq!(
        seen.resources,
        ["test://static-text", "test://static-binary"]
    );
    assert_eq!(seen.templates, ["test://template/{id}/data"]);
    let uses = mcp_uses(
        &url,
        key,
        &sid,
        "test_simple_text",
        "test_simple_prompt",
        "test://static-text",
    )
    .await;
    assert_eq!(uses, [false, true, true, true, true, true]);
    let uses = mcp_uses(
        &url,
        key,
        &sid,
        "test_simple_text",
        "test_prompt_with_arguments",
        "test://watched-resource",
    )
    .await;
    assert_eq!(uses[1..5], [false, false, false, false]);

    // A key without lists, allowed by a rule: everything.
    let key = Some("key-admin");
    let (sid, seen) = mcp_session(&url, key).await;
    assert!(seen.tools.len() > 1 && seen.prompts.len() > 1 && seen.resources.len() > 2);
    let uses = mcp_uses(
        &url,
        key,
        &sid,
        "test_simple_text",
        "test_simple_prompt",
        "test://watched-resource",
    )
    .await;
    assert_eq!(uses, [true; 6]);
}
