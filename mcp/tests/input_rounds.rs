//! Input rounds (2026-07-28 multi round-trip requests, `input_required`) across protocol eras, and the
//! `Mcp-Param-*` routing headers: a 2026-07-28-only target (examples' `mcp_modern`), the
//! session-era rmcp fixture and server-everything, driven by the Python SDK and raw HTTP.

use crate::harness;

use std::time::Duration;

use harness::*;
use serde_json::{Value, json};
use switchboard_examples::mcp_modern::Seen;

async fn modern_gateway(extra: Value) -> (Gateway, Seen, tokio::task::JoinHandle<()>) {
    init();
    let (addr, task, seen) = switchboard_examples::mcp_modern::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mut cfg = json!({"prefix": "always",
        "targets": [{"name": "modern", "http": {"url": format!("http://{addr}/mcp")}}]});
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    (gateway(cfg).await, seen, task)
}

/// A stateless (2026-07-28) request with the given client capabilities.
fn stateless(id: u64, method: &str, mut params: Value, caps: Value) -> Value {
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": caps,
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}});
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POST with extra headers; returns (status, JSON body).
async fn post_with(url: &str, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        messages(&text)
            .into_iter()
            .find(|m| m.get("result").is_some() || m.get("error").is_some())
            .unwrap_or_else(|| panic!("no response in {text}")),
    )
}

fn retry(mut call: Value, id: u64, responses: Value, state: &Value) -> Value {
    call["id"] = json!(id);
    call["params"]["inputResponses"] = responses;
    call["params"]["requestState"] = state.clone();
    call
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_client_answers_a_modern_targets_input_requests() {
    if !have("python with the mcp SDK", &python()) {
        return;
    }
    let (gw, seen, _t) = modern_gateway(json!({})).await;
    let (ok, out, err) = run_python("input_rounds_client.py", &[&gw.url, "modern__"]).await;
    assert!(ok, "python client failed:\n{out}\n{err}");
    println!("python (session era → 2026-07-28 target): {out}");
    let summary: Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    assert_eq!(summary["insatiable_rounds"], 8, "{summary}");

    // Three rounds of `deploy`: the retries carried the answers and the target's own state.
    let deploy = seen.calls("deploy");
    assert_eq!(deploy.len(), 3);
    assert!(deploy[0].params.get("inputResponses").is_none());
    assert_eq!(
        deploy[1].params["inputResponses"]["confirm"]["action"],
        "accept"
    );
    assert!(deploy[1].params["requestState"].is_string());
    assert_eq!(
        deploy[2].params["inputResponses"]["summary"]["content"]["text"],
        "sampled<summarize api>"
    );
    // Only what the downstream client declared is advertised to the target.
    let caps = &deploy[0].meta["io.modelcontextprotocol/clientCapabilities"];
    assert!(
        caps.get("elicitation").is_some() && caps.get("sampling").is_some(),
        "{caps}"
    );
    assert!(caps.get("roots").is_none(), "{caps}");
    // The gateway mirrored the x-mcp-header arguments, from the target's own schema.
    let locate = &seen.calls("locate")[0];
    let h = |k: &str| {
        locate
            .headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(h("mcp-method"), Some("tools/call"));
    assert_eq!(h("mcp-name"), Some("locate"), "the target's own name");
    assert_eq!(h("mcp-param-region"), Some("eu-west1"));
    assert_eq!(h("mcp-param-shard"), Some("3"));
    assert_eq!(
        summary["locate"],
        "mcp-method=tools/call;mcp-name=locate;mcp-param-region=eu-west1;mcp-param-shard=3"
    );
    // The roots request never reached the target's client side, and the endless one stopped.
    assert_eq!(seen.calls("list_roots").len(), 1);
    assert_eq!(seen.calls("insatiable").len(), 1 + 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_client_and_modern_target_pass_input_required_through() {
    let (gw, seen, _t) = modern_gateway(json!({})).await;
    let caps = json!({"elicitation": {}, "sampling": {}});
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "modern__deploy", "arguments": {"item": "db"}}),
        caps.clone(),
    );
    let (status, r) = post_with(&gw.url, &[], &call).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["id"], 1);
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    assert_eq!(
        r["result"]["inputRequests"]["confirm"]["method"],
        "elicitation/create"
    );
    let state = r["result"]["requestState"].clone();
    assert!(
        !state.as_str().unwrap().starts_with("sb-input."),
        "the target's own state passes through: {state}"
    );
    let (_, r) = post_with(
        &gw.url,
        &[],
        &retry(
            call.clone(),
            2,
            json!({"confirm": {"action": "decline"}}),
            &state,
        ),
    )
    .await;
    assert_eq!(r["id"], 2);
    assert_eq!(
        r["result"]["inputRequests"]["summary"]["method"], "sampling/createMessage",
        "{r}"
    );
    let state = r["result"]["requestState"].clone();
    let answer = json!({"summary": {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "short"}}});
    let (_, r) = post_with(&gw.url, &[], &retry(call, 3, answer, &state)).await;
    assert_eq!(r["id"], 3);
    assert_eq!(r["result"]["resultType"], "complete");
    assert_eq!(
        r["result"]["content"][0]["text"], "action=decline sampled=short",
        "{r}"
    );
    assert_eq!(seen.calls("deploy").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn param_headers_are_checked_downstream_and_mirrored_upstream() {
    let (gw, seen, _t) = modern_gateway(json!({})).await;
    // The merged listing keeps the annotations.
    let (_, r) = post_with(
        &gw.url,
        &[],
        &stateless(1, "tools/list", json!({}), json!({})),
    )
    .await;
    let locate = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "modern__locate")
        .cloned()
        .unwrap();
    assert_eq!(
        locate["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );
    assert_eq!(
        locate["inputSchema"]["properties"]["shard"]["x-mcp-header"],
        "Shard"
    );

    let call = stateless(
        2,
        "tools/call",
        json!({"name": "modern__locate", "arguments": {"region": " eu", "shard": 7}}),
        json!({}),
    );
    let routing = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "modern__locate"),
    ];
    // " eu" has a leading space: it travels base64-encoded.
    let good = [
        routing.as_slice(),
        &[
            ("mcp-param-region", "=?base64?IGV1?="),
            ("mcp-param-shard", "7"),
        ],
    ]
    .concat();
    let (status, r) = post_with(&gw.url, &good, &call).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        r["result"]["content"][0]["text"],
        "mcp-method=tools/call;mcp-name=locate;mcp-param-region==?base64?IGV1?=;mcp-param-shard=7",
        "{r}"
    );
    let calls = seen.calls("locate").len();

    for (bad, why) in [
        (
            [
                routing.as_slice(),
                &[
                    ("mcp-param-region", "=?base64?IGV1?="),
                    ("mcp-param-shard", "8"),
                ],
            ]
            .concat(),
            "wrong value",
        ),
        (
            [routing.as_slice(), &[("mcp-param-shard", "7")]].concat(),
            "missing header",
        ),
        (
            [
                routing.as_slice(),
                &[("mcp-param-region", " eu"), ("mcp-param-shard", "7")],
            ]
            .concat(),
            "unencoded value (the whitespace is trimmed in transit)",
        ),
    ] {
        let (status, r) = post_with(&gw.url, &bad, &call).await;
        assert_eq!(status, 400, "{why}: {r}");
        assert_eq!(r["error"]["code"], -32020, "{why}: {r}");
        assert_eq!(r["id"], 2);
    }
    assert_eq!(
        seen.calls("locate").len(),
        calls,
        "refused calls never reach the target"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_client_gets_input_required_for_a_session_era_target() {
    let (gw, _f) = fixture_gateway(json!({})).await;
    let caps = json!({"sampling": {}, "elicitation": {}});
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}),
        caps.clone(),
    );
    let alice = [("x-test-principal", "alice")];
    let (status, r) = post_with(&gw.url, &alice, &call).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let requests = r["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1);
    let (key, req) = requests.iter().next().unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let state = r["result"]["requestState"].clone();
    assert!(state.as_str().unwrap().starts_with("sb-input."));
    assert_eq!(gw.backend.parked_inputs(), 1);

    let answer = json!({key.clone(): {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "sampled-hello"}}});
    // Someone else's retry, a forged token and a different tool are refused, and do not
    // disturb the parked call.
    let (_, r) = post_with(
        &gw.url,
        &[("x-test-principal", "mallory")],
        &retry(call.clone(), 2, answer.clone(), &state),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("requestState")
    );
    let forged = json!(format!("{}0", state.as_str().unwrap()));
    let (_, r) = post_with(
        &gw.url,
        &alice,
        &retry(call.clone(), 3, answer.clone(), &forged),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let mut other = retry(call.clone(), 4, answer.clone(), &state);
    other["params"]["name"] = json!("test_elicitation");
    let (_, r) = post_with(&gw.url, &alice, &other).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert_eq!(gw.backend.parked_inputs(), 1);

    let (status, r) = post_with(
        &gw.url,
        &alice,
        &retry(call.clone(), 5, answer.clone(), &state),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r["id"], 5);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("sampled-hello"), "{text}");
    assert_eq!(gw.backend.parked_inputs(), 0);
    // A token works once.
    let (_, r) = post_with(&gw.url, &alice, &retry(call.clone(), 6, answer, &state)).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // A requestState this gateway did not issue cannot continue a session-era target's call.
    let (_, r) = post_with(
        &gw.url,
        &alice,
        &retry(call, 7, json!({}), &json!("not-ours")),
    )
    .await;
    assert_eq!(r["error"]["code"], -32602, "{r}");

    // Elicitation works the same way.
    let call = stateless(
        8,
        "tools/call",
        json!({"name": "test_elicitation", "arguments": {"message": "name?"}}),
        caps,
    );
    let (_, r) = post_with(&gw.url, &[], &call).await;
    let (key, req) = r["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(req["method"], "elicitation/create");
    assert_eq!(req["params"]["message"], "name?");
    let state = r["result"]["requestState"].clone();
    let answer = json!({key: {"action": "accept", "content": {"name": "Ada"}}});
    let (_, r) = post_with(&gw.url, &[], &retry(call, 9, answer, &state)).await;
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(
        text.contains("action=accept") && text.contains("Ada"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_input_calls_expire() {
    let (gw, _f) = fixture_gateway(json!({"input_timeout": "300ms"})).await;
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "hi"}}),
        json!({"sampling": {}}),
    );
    let (_, r) = post_with(&gw.url, &[], &call).await;
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let state = r["result"]["requestState"].clone();
    assert_eq!(gw.backend.parked_inputs(), 1);
    tokio::time::timeout(Duration::from_secs(10), async {
        while gw.backend.parked_inputs() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the abandoned call expired");
    let (_, r) = post_with(&gw.url, &[], &retry(call, 2, json!({}), &state)).await;
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown or expired requestState"),
        "{r}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_client_answers_server_everythings_sampling_request() {
    if !have_peers() {
        return;
    }
    let http = start_everything("streamableHttp").await;
    let gw = gateway(json!({"targets": [{"name": "everything", "http": {"url": http.url}}]})).await;
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "trigger-sampling-request", "arguments": {"prompt": "ping", "maxTokens": 5}}),
        json!({"sampling": {}}),
    );
    let (status, r) = post_with(&gw.url, &[], &call).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let (key, req) = r["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    assert_eq!(req["method"], "sampling/createMessage");
    let prompt = req["params"]["messages"][0]["content"]["text"]
        .as_str()
        .unwrap();
    assert!(prompt.contains("ping"), "{prompt}");
    let state = r["result"]["requestState"].clone();
    let answer = json!({key: {"role": "assistant", "model": "test-model",
        "content": {"type": "text", "text": "pong-from-client"}}});
    let (_, r) = post_with(&gw.url, &[], &retry(call, 2, answer, &state)).await;
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    let text = r["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("pong-from-client"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_a_session_client_cannot_give_is_declined_or_refused() {
    let (gw, seen, _t) = modern_gateway(json!({})).await;
    // A raw session-era client that declares no capabilities at all.
    let sid = raw_initialize(&gw.url).await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "modern__deploy", "arguments": {"item": "x"}}});
    let (status, r) = post_with(
        &gw.url,
        &[
            ("mcp-session-id", &sid),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        &call,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(r["id"], 5);
    // The form was declined on the client's behalf; sampling cannot be, so the call fails.
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("sampling/createMessage") && message.contains("does not support"),
        "{r}"
    );
    let deploy = seen.calls("deploy");
    assert_eq!(deploy.len(), 2);
    assert_eq!(
        deploy[1].params["inputResponses"]["confirm"]["action"],
        "decline"
    );
    assert_eq!(
        deploy[0].meta["io.modelcontextprotocol/clientCapabilities"],
        json!({}),
        "nothing the client lacks is advertised"
    );
}

// Paused clock: the target's 1 s timeout and the client's 2.5 s delay are tokio timers
// (fixture and gateway in-process), so they are exact and take no real time.
#[tokio::test(start_paused = true)]
async fn a_parked_call_outlives_the_targets_silence_timeout() {
    init();
    let (addr, _task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gw = gateway(
        json!({"input_timeout": "1m", "targets": [{"name": "fixture",
        "http": {"url": format!("http://{addr}/mcp")}, "timeout": "1s"}]}),
    )
    .await;
    let call = stateless(
        1,
        "tools/call",
        json!({"name": "test_sampling", "arguments": {"prompt": "slow"}}),
        json!({"sampling": {}}),
    );
    let (_, r) = post_with(&gw.url, &[], &call).await;
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let (key, state) = (
        r["result"]["inputRequests"]
            .as_object()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone(),
        r["result"]["requestState"].clone(),
    );
    // The client takes longer than the target's timeout to answer: the target is silent
    // because it waits for the client, which is not a reason to give up on it.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let answer = json!({key: {"role": "assistant", "model": "m",
        "content": {"type": "text", "text": "late-but-fine"}}});
    let (_, r) = post_with(&gw.url, &[], &retry(call, 2, answer, &state)).await;
    let text = r["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("late-but-fine"), "{r}");
}
