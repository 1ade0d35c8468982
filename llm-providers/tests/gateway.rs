//! End-to-end tests: an axum server mounting `LlmBackend::handle` in front of the mock provider
//! from `switchboard-examples`, driven by reqwest and by the real Python `openai` and
//! `anthropic` SDKs.

use std::path::{Path, PathBuf};
use std::time::Duration;
use switchboard_testing::redis::RedisServer;

use axum::body::Body;
use serde_json::{Value, json};
use switchboard_examples::mock_llm::{
    self, CACHED_TOKENS, INPUT_TOKENS, Mode, OUTPUT_TOKENS, TOOL_ARGS,
};
use switchboard_llm::limits::{LimitBy, RateLimitPolicy};
use switchboard_llm::{Limiter, LlmBackend, LlmConfig, LlmDeps, Metrics, RequestContext};

async fn gateway(config: Value, limiter: Option<Limiter>) -> String {
    gateway_with(config, limiter, Metrics::unregistered()).await
}

async fn gateway_with(config: Value, limiter: Option<Limiter>, metrics: Metrics) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg: LlmConfig = serde_json::from_value(config).expect("config parses");
    let deps = LlmDeps {
        client: switchboard_llm::ProviderClients::new(reqwest::Client::new),
        metrics,
    };
    let backend = LlmBackend::new(&cfg, deps).expect("backend builds");
    let ctx = RequestContext {
        route: "models".into(),
        prefix: "/v1".into(),
        principal: None,
        api_key: None,
        limiter,
        model_access: None,
    };
    let app = axum::Router::new().fallback(move |req: http::Request<Body>| {
        let (b, ctx) = (backend.clone(), ctx.clone());
        async move { b.handle(req, &ctx).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn provider(kind: &str, name: &str, model: &str, mock: &std::net::SocketAddr) -> Value {
    let base = match kind {
        "openai" => format!("http://{mock}/v1"),
        _ => format!("http://{mock}"),
    };
    let mut p = json!({"provider": kind, "name": name, "model": model, "api_key": format!("cfg-{kind}-key"), "base_url": base});
    if kind == "bedrock" {
        p["access_key_id"] = json!("AKIDEXAMPLE");
        p["region"] = json!("us-east-1");
    }
    p
}

fn fast_retries(mut cfg: Value) -> Value {
    cfg["retry"] =
        json!({"attempts": 2, "backoff": "10ms", "max_backoff": "50ms", "max_retry_wait": "100ms"});
    cfg["timeouts"] = json!({"attempt": "500ms", "deadline": "10s"});
    cfg["outlier"] =
        json!({"consecutive_failures": 2, "base_ejection": "300ms", "max_ejection": "1s"});
    cfg
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])
}

async fn post(url: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Assembles an OpenAI SSE body: (text, tool calls (id, name, args), finish, usage, error).
#[derive(Debug, Default)]
struct Assembled {
    text: String,
    tools: Vec<(String, String, String)>,
    finish: Option<String>,
    usage: Option<Value>,
    error: Option<Value>,
    done: bool,
}

fn assemble_openai(body: &str) -> Assembled {
    let mut a = Assembled::default();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            a.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        if let Some(e) = v.get("error") {
            a.error = Some(e.clone());
            continue;
        }
        if !v["usage"].is_null() {
            a.usage = Some(v["usage"].clone());
        }
        for ch in v["choices"].as_array().unwrap() {
            a.text
                .push_str(ch["delta"]["content"].as_str().unwrap_or(""));
            for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
                let i = tc["index"].as_u64().unwrap() as usize;
                if a.tools.len() <= i {
                    a.tools.resize(i + 1, Default::default());
                }
                if let Some(id) = tc["id"].as_str() {
                    a.tools[i].0 = id.into();
                }
                if let Some(n) = tc["function"]["name"].as_str() {
                    a.tools[i].1 = n.into();
                }
                a.tools[i]
                    .2
                    .push_str(tc["function"]["arguments"].as_str().unwrap_or(""));
            }
            if let Some(f) = ch["finish_reason"].as_str() {
                a.finish = Some(f.into());
            }
        }
    }
    a
}

fn python() -> Option<PathBuf> {
    switchboard_testing::peers::require_python(&[])
}

async fn sdk(py: &Path, check: &str, base: &str, model: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/sdk_check.py");
    let out = tokio::process::Command::new(py)
        .arg(script)
        .args([check, base, model])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{check} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{check} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openai_sdk_streams_tool_call_through_anthropic_translation() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "smart", "providers": [provider("anthropic", "claude", "mock-claude", &mock)]}]}), None).await;
    let r = sdk(&py, "openai_stream_tool", &gw, "smart").await;
    assert_eq!(r["finish_reason"], "tool_calls");
    assert_eq!(r["tool_calls"][0]["id"], "toolu_mock_1");
    assert_eq!(r["tool_calls"][0]["name"], "get_weather");
    assert_eq!(
        r["tool_calls"][0]["arguments"],
        serde_json::from_str::<Value>(TOOL_ARGS).unwrap()
    );
    // Anthropic reported input 32 + cache read 10: OpenAI's prompt_tokens includes the cache.
    assert_eq!(
        r["usage"],
        json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "cached_tokens": CACHED_TOKENS})
    );
    // The provider got the configured key, not the client's.
    assert_eq!(
        state.last_auth().as_deref(),
        Some("x-api-key: cfg-anthropic-key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_anthropic_sdk_streams_tool_call_through_openai_translation() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]}]}), None).await;
    let r = sdk(&py, "anthropic_stream_tool", &gw, "smart").await;
    assert_eq!(r["stop_reason"], "tool_use");
    assert_eq!(r["tool_calls"][0]["id"], "call_mock_1");
    assert_eq!(r["tool_calls"][0]["name"], "get_weather");
    assert_eq!(
        r["tool_calls"][0]["input"],
        serde_json::from_str::<Value>(TOOL_ARGS).unwrap()
    );
    // OpenAI reported prompt 42 incl. 10 cached: Anthropic's input_tokens excludes the cache.
    assert_eq!(
        r["usage"],
        json!({"input_tokens": INPUT_TOKENS - CACHED_TOKENS, "output_tokens": OUTPUT_TOKENS, "cache_read_input_tokens": CACHED_TOKENS})
    );
    assert_eq!(
        state.last_auth().as_deref(),
        Some("authorization: Bearer cfg-openai-key")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openai_sdk_stream_without_include_usage_sees_no_usage() {
    let Some(py) = python() else { return };
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]}]}), None).await;
    let r = sdk(&py, "openai_stream_text", &gw, "smart").await;
    assert_eq!(r["text"], "Mock reply to: Say hello");
    assert_eq!(r["usage_seen"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_openai_sdk_embeddings() {
    let Some(py) = python() else { return };
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "embed", "providers": [provider("openai", "gpt", "mock-embed", &mock)]}]}), None).await;
    let r = sdk(&py, "embeddings", &gw, "embed").await;
    assert_eq!(r, json!({"count": 2, "dims": [8, 8], "prompt_tokens": 3}));
}

fn token_policy(tokens: u64) -> RateLimitPolicy {
    RateLimitPolicy {
        requests: None,
        tokens: Some(tokens),
        per: Duration::from_secs(60),
        by: LimitBy::Route,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdks_see_429_with_retry_after_when_token_budget_is_spent() {
    let Some(py) = python() else { return };
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let cfg = json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]}]});
    let gw = gateway(cfg.clone(), Some(Limiter::local(token_policy(1000)))).await;
    let r = sdk(&py, "openai_rate_limited", &gw, "smart").await;
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error_type"], "rate_limit_error", "{r}");
    let retry: u64 = r["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{r}");
    assert_eq!(r["remaining"], "0");
    // Each request really uses 59 tokens: the 1000-token budget admits 16 or 17 (the last one
    // may overshoot by at most its own estimate).
    let ok = r["ok_before"].as_u64().unwrap();
    assert!((15..=18).contains(&ok), "{r}");

    let gw = gateway(cfg, Some(Limiter::local(token_policy(300)))).await;
    let r = sdk(&py, "anthropic_rate_limited", &gw, "smart").await;
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["error_type"], "rate_limit_error");
    assert!(r["retry_after"].as_str().unwrap().parse::<u64>().unwrap() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_bedrock_and_azure_stream_tool_calls_to_openai_callers() {
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let mut azure = provider("azure_openai", "azure", "dep-1", &mock);
    azure["api_version"] = json!("2024-10-21");
    let cfg = json!({"models": [
        {"name": "g", "providers": [provider("gemini", "gemini", "mock-gemini", &mock)]},
        {"name": "b", "providers": [provider("bedrock", "bedrock", "anthropic.claude-3:0", &mock)]},
        {"name": "az", "providers": [azure]}
    ]});
    let gw = gateway(cfg, None).await;
    for (model, tool_id) in [
        ("g", "call_0"),
        ("b", "tooluse_mock_1"),
        ("az", "call_mock_1"),
    ] {
        let resp = post(
            &format!("{gw}/v1/chat/completions"),
            json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                   "messages": [{"role": "user", "content": "weather?"}], "tools": weather_tool()}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{model}");
        assert_eq!(
            resp.headers()["x-switchboard-provider"],
            if model == "az" {
                "azure"
            } else if model == "g" {
                "gemini"
            } else {
                "bedrock"
            }
        );
        let a = assemble_openai(&resp.text().await.unwrap());
        assert_eq!(
            a.tools,
            vec![(
                tool_id.to_string(),
                "get_weather".to_string(),
                TOOL_ARGS.to_string()
            )],
            "{model}"
        );
        assert_eq!(a.finish.as_deref(), Some("tool_calls"), "{model}");
        let u = a.usage.unwrap();
        assert_eq!(u["prompt_tokens"], INPUT_TOKENS, "{model}");
        assert_eq!(u["completion_tokens"], OUTPUT_TOKENS, "{model}");
        assert_eq!(
            u["prompt_tokens_details"]["cached_tokens"], CACHED_TOKENS,
            "{model}"
        );
        assert!(a.done);
        if model == "b" {
            assert!(
                state
                    .last_auth()
                    .unwrap()
                    .starts_with("authorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
            );
        }
    }
    // Non-streaming through the same providers, Anthropic callers included.
    for model in ["g", "b"] {
        let v: Value = post(&format!("{gw}/v1/messages"), json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hello there"}]}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            v["content"][0]["text"], "Mock reply to: hello there",
            "{model}: {v}"
        );
        assert_eq!(v["stop_reason"], "end_turn");
        assert_eq!(v["usage"]["input_tokens"], INPUT_TOKENS - CACHED_TOKENS);
        assert_eq!(v["usage"]["cache_read_input_tokens"], CACHED_TOKENS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_errors_in_callers_format() {
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]},
                                       {"name": "fast", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]}]}), None).await;
    let v: Value = reqwest::get(format!("{gw}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["smart", "fast"]
    );
    let resp = post(
        &format!("{gw}/v1/chat/completions"),
        json!({"model": "nope", "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "not_found_error");
    let resp = post(
        &format!("{gw}/v1/messages"),
        json!({"model": "nope", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let resp = post(&format!("{gw}/v1/messages"), json!({"model": "smart"})).await;
    assert_eq!(resp.status(), 400);
    // Responses API passes through to OpenAI-compatible providers.
    let resp = post(
        &format!("{gw}/v1/responses"),
        json!({"model": "smart", "input": "hi"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-model"], "mock-gpt");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["output"][0]["content"][0]["text"], "Mock reply to: hi");
    let resp = post(
        &format!("{gw}/v1/responses"),
        json!({"model": "smart", "input": "hi there", "stream": true}),
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let body = resp.text().await.unwrap();
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .filter(|v| v["type"] == "response.output_text.delta")
        .map(|v| v["delta"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(text, "Mock reply to: hi there");
    assert!(body.contains("event: response.completed"));
}

async fn served_by(gw: &str) -> (u16, String) {
    let resp = post(
        &format!("{gw}/v1/chat/completions"),
        json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let status = resp.status().as_u16();
    let p = resp
        .headers()
        .get("x-switchboard-provider")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, p)
}

async fn failover_case(mode: Mode) {
    let (p, primary) = mock_llm::spawn().await.unwrap();
    let (s, secondary) = mock_llm::spawn().await.unwrap();
    let mut a = provider("openai", "primary", "mock-gpt", &p);
    a["priority"] = json!(0);
    let mut b = provider("anthropic", "secondary", "mock-claude", &s);
    b["priority"] = json!(1);
    let gw = gateway(
        fast_retries(
            json!({"models": [{"name": "smart", "strategy": "failover", "providers": [a, b]}]}),
        ),
        None,
    )
    .await;
    assert_eq!(served_by(&gw).await, (200, "primary".into()));
    primary.set_mode(mode);
    let burst = futures::future::join_all((0..10).map(|_| served_by(&gw))).await;
    for r in &burst {
        assert_eq!(r, &(200, "secondary".to_string()), "{mode:?}: {burst:?}");
    }
    // Sequential requests: the primary is ejected after two failures, so it sees few of them.
    let before = primary.requests();
    for _ in 0..10 {
        assert_eq!(served_by(&gw).await, (200, "secondary".into()));
    }
    assert!(
        primary.requests() - before <= 2,
        "ejected primary still hammered: {}",
        primary.requests() - before
    );
    assert!(secondary.requests() >= 20);
    // Healthy again: after its ejection period a probe goes through and it takes traffic again.
    primary.set_mode(Mode::Ok);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if served_by(&gw).await.1 == "primary" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "primary never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served_by(&gw).await, (200, "primary".into()));
}

// Paused clock: attempt timeouts and the ejection period are tokio timers (mock providers
// and the backend in-process), so they are exact and take no real time.
#[tokio::test(start_paused = true)]
async fn failover_when_primary_returns_500() {
    failover_case(Mode::Fail500).await;
}

// Paused clock: attempt timeouts and the ejection period are tokio timers (mock providers
// and the backend in-process), so they are exact and take no real time.
#[tokio::test(start_paused = true)]
async fn failover_when_primary_hangs() {
    failover_case(Mode::Hang).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_when_primary_first_byte_is_slow_on_streams() {
    let (p, primary) = mock_llm::spawn().await.unwrap();
    let (s, _secondary) = mock_llm::spawn().await.unwrap();
    let mut a = provider("openai", "primary", "mock-gpt", &p);
    a["priority"] = json!(0);
    let mut b = provider("openai", "secondary", "mock-gpt", &s);
    b["priority"] = json!(1);
    let gw = gateway(
        fast_retries(json!({"models": [{"name": "smart", "providers": [a, b]}]})),
        None,
    )
    .await;
    primary.set_mode(Mode::Slow);
    let resp = post(
        &format!("{gw}/v1/chat/completions"),
        json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.headers()["x-switchboard-provider"], "secondary");
    let a = assemble_openai(&resp.text().await.unwrap());
    assert_eq!(a.text, "Mock reply to: hi");
    assert!(a.usage.is_none(), "usage was not requested by the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_429_reaches_the_client_with_retry_after() {
    let (m, state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(fast_retries(json!({"models": [{"name": "smart", "providers": [provider("anthropic", "claude", "mock-claude", &m)]}]})), None).await;
    state.set_mode(Mode::Fail429);
    let resp = post(
        &format!("{gw}/v1/chat/completions"),
        json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error");
    assert_eq!(
        state.requests(),
        1,
        "a retry-after beyond max_retry_wait is not waited for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_failures_become_error_events_and_are_not_retried() {
    for (mode, kind) in [(Mode::MidStream, "api_error"), (Mode::Drop, "api_error")] {
        let (m, state) = mock_llm::spawn().await.unwrap();
        let (s, secondary) = mock_llm::spawn().await.unwrap();
        let mut primary = provider("anthropic", "claude", "mock-claude", &m);
        primary["priority"] = json!(0);
        let mut secondary_cfg = provider("openai", "gpt", "mock-gpt", &s);
        secondary_cfg["priority"] = json!(1);
        let gw = gateway(
            fast_retries(
                json!({"models": [{"name": "smart", "providers": [primary, secondary_cfg]}]}),
            ),
            None,
        )
        .await;
        state.set_mode(mode);
        let resp = post(&format!("{gw}/v1/chat/completions"), json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]})).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-switchboard-provider"], "claude");
        let body = resp.text().await.unwrap();
        let a = assemble_openai(&body);
        assert!(
            a.text.starts_with("Mock "),
            "{mode:?}: partial text delivered: {body}"
        );
        let err = a
            .error
            .unwrap_or_else(|| panic!("{mode:?}: no error event: {body}"));
        if mode == Mode::MidStream {
            assert_eq!(err["type"], "overloaded_error");
        } else {
            assert_eq!(err["type"], kind);
        }
        assert!(!a.done);
        assert_eq!(
            secondary.requests(),
            0,
            "{mode:?}: no retry once bytes reached the client"
        );
    }
}

/// A throwaway redis-server and its URL, or `None` (skipped outside CI).
async fn redis() -> Option<(RedisServer, String)> {
    let server = RedisServer::start_or_skip(&switchboard_testing::peers::current_test())?;
    let url = format!("redis+unix://{}", server.socket().display());
    Some((server, url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_token_budget_is_shared_by_two_gateways() {
    let Some((_redis, url)) = redis().await else {
        return;
    };
    let (m, _state) = mock_llm::spawn().await.unwrap();
    let cfg = json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &m)]}]});
    let prefix = format!("sb-test-{}", uuid::Uuid::new_v4());
    let a = gateway(
        cfg.clone(),
        Some(
            Limiter::redis(token_policy(600), &url, &prefix)
                .await
                .unwrap(),
        ),
    )
    .await;
    let b = gateway(
        cfg,
        Some(
            Limiter::redis(token_policy(600), &url, &prefix)
                .await
                .unwrap(),
        ),
    )
    .await;
    let mut ok = 0;
    let mut denied = [false, false];
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let resp = post(&format!("{gw}/v1/chat/completions"), json!({"model": "smart", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})).await;
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                assert_eq!(resp.headers()["x-ratelimit-limit-tokens"], "600");
                denied[i % 2] = true;
                if denied == [true, true] {
                    break;
                }
            }
            s => panic!("unexpected status {s}"),
        }
        // Let the reconcile of the finished request land before the next estimate.
        tokio::task::yield_now().await;
    }
    // 59 real tokens per request: one shared 600-token budget admits ~10-11; two separate
    // budgets would have admitted twice that.
    assert!((6..=12).contains(&ok), "admitted {ok}");
    assert_eq!(
        denied,
        [true, true],
        "both gateways enforce the shared budget"
    );
}

fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(name) && labels.iter().all(|lab| l.contains(lab)))
        .unwrap_or_else(|| panic!("no {name} {labels:?} in:\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_accounted_even_when_the_client_did_not_ask_for_it() {
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let cfg = json!({"models": [{"name": "smart", "providers": [provider("anthropic", "claude", "mock-claude", &mock)]}],
                     "prices": {"mock-claude": {"input": 3.0, "output": 15.0, "cache_read": 0.3}}});
    let gw = gateway_with(cfg, None, metrics).await;
    let resp = post(
        &format!("{gw}/v1/chat/completions"),
        json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("prompt_tokens"),
        "usage leaked to a client that did not ask: {body}"
    );
    let a = assemble_openai(&body);
    assert!(a.done && a.usage.is_none());
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let labels = [
        "gen_ai_provider_name=\"claude\"",
        "gen_ai_request_model=\"smart\"",
        "gen_ai_response_model=\"mock-claude\"",
    ];
    let input = [&labels[..], &["gen_ai_token_type=\"input\""]].concat();
    let output = [&labels[..], &["gen_ai_token_type=\"output\""]].concat();
    assert_eq!(
        metric(&text, "gen_ai_client_token_usage_sum", &input),
        INPUT_TOKENS as f64
    );
    assert_eq!(
        metric(&text, "gen_ai_client_token_usage_sum", &output),
        OUTPUT_TOKENS as f64
    );
    assert_eq!(
        metric(&text, "gen_ai_server_time_to_first_token_count", &labels),
        1.0
    );
    assert_eq!(
        metric(&text, "gen_ai_server_request_duration_count", &labels),
        1.0
    );
    // 32 uncached x $3 + 10 cached x $0.3 + 17 output x $15, per million.
    let cost = metric(
        &text,
        "switchboard_llm_cost_usd_total",
        &["gen_ai_provider_name=\"claude\""],
    );
    assert!((cost - 354e-6).abs() < 1e-12, "{cost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_reach_the_client_while_the_provider_is_still_streaming() {
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = gateway(json!({"models": [{"name": "smart", "providers": [provider("anthropic", "claude", "mock-claude", &mock)]}]}), None).await;
    state.set_mode(Mode::Hold);
    let mut resp = post(&format!("{gw}/v1/chat/completions"), json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]})).await;
    let mut seen = String::new();
    // The provider holds back the second half of its stream until released: the first half
    // must already be readable through the gateway (a buffering gateway would deadlock here).
    let first_half = tokio::time::timeout(Duration::from_secs(10), async {
        while !seen.contains("Mock ") {
            let chunk = resp.chunk().await.unwrap().expect("stream ended early");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        first_half.is_ok(),
        "no bytes reached the client before the provider finished: gateway buffers streams"
    );
    state.release();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    let a = assemble_openai(&seen);
    assert_eq!(a.text, "Mock reply to: one two three four five six");
    assert!(a.done);
}
