//! The LLM backend end to end, without the gateway: an axum server mounting
//! `LlmBackend::handle` (its errors rendered as the gateway renders them) in front of the mock
//! provider from `switchboard-examples`, driven by reqwest and by the real Python `openai` and
//! `anthropic` SDKs. (The gateway's `llm` routes, with policies and limits, are tested in
//! gateway/tests/llm.rs.)

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use serde_json::{Value, json};
use switchboard_core::{RequestContext, TokenMeter, TokenReservation};
use switchboard_examples::mock_llm::{
    self, CACHED_TOKENS, INPUT_TOKENS, Mode, OUTPUT_TOKENS, TOOL_ARGS,
};
use switchboard_llm::{Front, LlmBackend, LlmConfig, LlmDeps, Metrics};

/// The backend served over HTTP, as the gateway serves it; `tokens` is the caller's budget.
async fn gateway(config: Value, tokens: Option<Arc<dyn TokenMeter>>) -> String {
    gateway_with(config, tokens, Metrics::unregistered()).await
}

async fn gateway_with(
    config: Value,
    tokens: Option<Arc<dyn TokenMeter>>,
    metrics: Metrics,
) -> String {
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
        tokens,
        ..Default::default()
    };
    // What the gateway does with the backend's errors: render them in the caller's format.
    let app = axum::Router::new().fallback(move |req: http::Request<Body>| {
        let (b, ctx) = (backend.clone(), ctx.clone());
        let format = Front::format_for_path(req.uri().path()).into();
        async move {
            b.handle(req, &ctx)
                .await
                .unwrap_or_else(|e| e.render(format))
        }
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

/// A token meter that records what the backend reserves and settles, with a budget of
/// `budget` reservations.
#[derive(Default)]
struct RecordingMeter {
    budget: usize,
    log: Arc<Mutex<Vec<(&'static str, u64)>>>,
}

struct Recorded(u64, Arc<Mutex<Vec<(&'static str, u64)>>>);

#[async_trait::async_trait]
impl TokenMeter for RecordingMeter {
    async fn reserve(&self, estimate: u64) -> switchboard_core::Result<Box<dyn TokenReservation>> {
        let mut log = self.log.lock().unwrap();
        if log.iter().filter(|(what, _)| *what == "reserve").count() >= self.budget {
            return Err(switchboard_core::Error::new(
                switchboard_core::Cause::RateLimited,
                "token budget spent",
            )
            .with_header(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("7"),
            ));
        }
        log.push(("reserve", estimate));
        Ok(Box::new(Recorded(estimate, self.log.clone())))
    }
}

#[async_trait::async_trait]
impl TokenReservation for Recorded {
    async fn settle(self: Box<Self>, actual: u64) {
        self.1.lock().unwrap().push(("settle", actual));
    }
    fn reserved(&self) -> u64 {
        self.0
    }
}

/// The backend charges tokens only through the meter in its request context: an estimate
/// before the provider is called, settled with the provider's usage; a refusal is the caller's
/// 429 in its own format, and the provider is not called.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_reserved_and_settled_through_the_meter() {
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let meter = RecordingMeter {
        budget: 1,
        ..Default::default()
    };
    let log = meter.log.clone();
    let gw = gateway(
        json!({"models": [{"name": "smart", "providers": [provider("openai", "gpt", "mock-gpt", &mock)]}]}),
        Some(Arc::new(meter)),
    )
    .await;
    let resp = post(&format!("{gw}/v1/chat/completions"), json!({"model": "smart", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 200);
    let settled = async {
        while log.lock().unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), settled)
        .await
        .expect("the reservation is settled");
    let log = log.lock().unwrap().clone();
    let estimate = log[0].1;
    assert!(
        estimate >= 50,
        "the output cap is part of the estimate: {log:?}"
    );
    assert_eq!(log[1], ("settle", INPUT_TOKENS + OUTPUT_TOKENS), "{log:?}");
    let served = state.requests();
    let resp = post(&format!("{gw}/v1/messages"), json!({"model": "smart", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(
        state.requests(),
        served,
        "a refused request reaches no provider"
    );
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
    // OpenAI bodies name the kind in `code`, never null.
    assert_eq!(v["error"]["code"], "not_found");
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
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let resp = reqwest::get(format!("{gw}/v1/chat/completions"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
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

/// A streamed chat through `gw` whose provider `from` breaks off after its first bytes (the
/// provider's `mode`): a 200 from `from` with the partial text, no `[DONE]`, and the error event
/// it ends in, returned.
async fn broken_after_the_first_bytes(gw: &str, from: &str, mode: Mode) -> Value {
    let resp = post(&format!("{gw}/v1/chat/completions"), json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "one two three four five six"}]})).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-provider"], from);
    let body = resp.text().await.unwrap();
    let a = assemble_openai(&body);
    assert!(
        a.text.starts_with("Mock "),
        "{mode:?}: partial text delivered: {body}"
    );
    assert!(!a.done, "{mode:?}");
    a.error
        .unwrap_or_else(|| panic!("{mode:?}: no error event: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mid_stream_failures_become_error_events_and_are_not_retried() {
    // The provider's overloaded error passes through as the provider's (`upstream_error`); a
    // dropped connection is the gateway's verdict (`bad_gateway`). OpenAI callers get OpenAI's
    // error type for both, the kind in `code`.
    for (mode, code) in [
        (Mode::MidStream, "upstream_error"),
        (Mode::Drop, "bad_gateway"),
    ] {
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
        let err = broken_after_the_first_bytes(&gw, "claude", mode).await;
        assert_eq!(err["type"], "server_error", "{err}");
        assert_eq!(err["code"], code, "{err}");
        assert_eq!(
            secondary.requests(),
            0,
            "{mode:?}: no retry once bytes reached the client"
        );
    }
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
        "llm_cost_usd_total",
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

/// A provider that records the bytes of every chat request and answers a fixed completion.
async fn recording_provider() -> (std::net::SocketAddr, Arc<Mutex<Vec<bytes::Bytes>>>) {
    let seen: Arc<Mutex<Vec<bytes::Bytes>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |body: bytes::Bytes| {
            kept.lock().unwrap().push(body);
            async {
                axum::Json(json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "up-model",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

async fn post_raw(url: &str, body: &'static str) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_request_reaches_an_openai_provider_as_sent_with_only_the_model_replaced() {
    let (up, seen) = recording_provider().await;
    let gw = gateway(
        json!({"models": [{"name": "bench", "providers": [provider("openai", "up", "up-model", &up)]}]}),
        None,
    )
    .await;
    // Unknown fields at every level, key order, number spellings and escapes the typed tree
    // would have normalized, and a duplicate unknown key it would have collapsed.
    let body = r#"{"metadata":{"z":1,"a":[1.50,1e2,-0.0]},"model":"bench","messages":[{"role":"user","content":[{"type":"text","text":"caf\u00e9","cache_control":{"type":"ephemeral"}}],"name":"n"}],"temperature":0.70,"x":1,"x":2,"seed":12345678901234567890}"#;
    let resp = post_raw(&format!("{gw}/v1/chat/completions"), body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-switchboard-model"], "up-model");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "ok");
    let sent = seen
        .lock()
        .unwrap()
        .pop()
        .expect("the provider got the request");
    assert_eq!(
        std::str::from_utf8(&sent).unwrap(),
        body.replace(r#""model":"bench""#, r#""model":"up-model""#)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_chat_requests_get_the_400_of_the_typed_parse() {
    let (up, seen) = recording_provider().await;
    let gw = gateway(
        json!({"models": [{"name": "bench", "providers": [provider("openai", "up", "up-model", &up)]}]}),
        None,
    )
    .await;
    for body in [
        "not json",
        r#"{"model":"bench","messages":[]"#,
        r#"["bench",[]]"#,
        r#"{"model":"bench"}"#,
        r#"{"model":"bench","model":"bench","messages":[]}"#,
        r#"{"model":"bench","messages":[["user","hi"]]}"#,
        r#"{"model":"bench","messages":[{"role":"user","content":7}]}"#,
        r#"{"model":"bench","messages":[{"role":"user","content":[{"text":"no type"}]}]}"#,
        r#"{"model":"bench","messages":[],"max_tokens":-1}"#,
        r#"{"model":"bench","messages":[],"stream_options":{"include_usage":"yes"}}"#,
        r#"{"model":"bench","messages":[],"tools":[{"type":"function","function":{}}]}"#,
        r#"{"model":"bench","messages":[],"x":1e400}"#,
        r#"{"model":"bench","messages":[]} {}"#,
    ] {
        let want = serde_json::from_str::<switchboard_llm::format::openai::ChatRequest>(body)
            .expect_err("the typed parse refuses it");
        let resp = post_raw(&format!("{gw}/v1/chat/completions"), body).await;
        assert_eq!(resp.status(), 400, "{body}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(
            v["error"]["message"],
            format!("invalid request body: {want}"),
            "{body}"
        );
        assert_eq!(v["error"]["type"], "invalid_request_error", "{body}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "a malformed request reached the provider"
    );
}

/// One request as a provider saw it: path, headers in order, body.
type Seen = (String, Vec<(String, String)>, bytes::Bytes);

/// A provider at `/old/v1` that redirects (307) every chat request to `/v1`, where it answers
/// (a stream when asked for one); every request it gets is recorded.
async fn redirecting_provider() -> (std::net::SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |req: http::Request<Body>| {
        let kept = kept.clone();
        async move {
            let path = req.uri().path().to_string();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            let stream = body.windows(13).any(|w| w == br#""stream":true"#);
            kept.lock().unwrap().push((path.clone(), headers, body));
            if path == "/old/v1/chat/completions" {
                return http::Response::builder()
                    .status(307)
                    .header("location", "/v1/chat/completions")
                    .body(Body::empty())
                    .unwrap();
            }
            if stream {
                return http::Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from(MOVED_EVENTS))
                    .unwrap();
            }
            let answer = json!({"id": "c1", "object": "chat.completion", "created": 1, "model": "up-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "moved"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}});
            http::Response::builder()
                .header("content-type", "application/json")
                .body(Body::from(answer.to_string()))
                .unwrap()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

/// What [`redirecting_provider`] streams.
const MOVED_EVENTS: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"moved\"},\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
);

/// What [`redirecting_provider`] saw of a request sent on hyper's client, refused with a
/// redirect, then sent again through reqwest (which followed it): the three paths, and the first
/// two requests alike, header for header, with these header names in this order. Returns the
/// first request's headers.
fn sent_direct_then_through_reqwest(seen: &[Seen], names: &[&str]) -> Vec<(String, String)> {
    let paths: Vec<&str> = seen.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/old/v1/chat/completions",
            "/old/v1/chat/completions",
            "/v1/chat/completions"
        ]
    );
    let (direct, via_reqwest) = (&seen[0], &seen[1]);
    assert_eq!(direct.1, via_reqwest.1);
    let sent: Vec<&str> = direct.1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(sent, names);
    direct.1.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_chat_sends_what_reqwest_sends_and_redirects_are_followed() {
    // A non-streaming chat to a plain-HTTP OpenAI-compatible provider goes out on hyper's
    // client, not reqwest's; a redirect is sent again through reqwest, which follows it. So
    // the provider sees the same request twice at the old place, once from each client: the
    // two must be alike, header for header, in order.
    let (up, seen) = redirecting_provider().await;
    let mut p = provider("openai", "up", "up-model", &up);
    p["base_url"] = json!(format!("http://{up}/old/v1"));
    p["headers"] = json!({"x-team": "ml", "content-type": "application/json"});
    let gw = gateway(
        json!({"models": [{"name": "bench", "providers": [p]}]}),
        None,
    )
    .await;
    let body = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}]}"#;
    let resp = post_raw(&format!("{gw}/v1/chat/completions"), body).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "moved");
    let seen = seen.lock().unwrap().clone();
    let headers = sent_direct_then_through_reqwest(
        &seen,
        &[
            "content-type",
            "content-type",
            "x-team",
            "accept",
            "authorization",
            "host",
            "content-length",
        ],
    );
    assert!(headers.contains(&("authorization".into(), "Bearer cfg-openai-key".into())));
    let sent = body.replace(r#""model":"bench""#, r#""model":"up-model""#);
    for (_, _, b) in &seen {
        assert_eq!(std::str::from_utf8(b).unwrap(), sent);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_streams_send_what_reqwest_sends_and_redirects_are_followed() {
    // A streamed chat to a plain-HTTP OpenAI-compatible provider goes out on hyper's client
    // too (through reqwest, the provider would see the request once at the old place, not
    // twice); the two requests are alike, header for header, asking for an event stream.
    let (up, seen) = redirecting_provider().await;
    let mut p = provider("openai", "up", "up-model", &up);
    p["base_url"] = json!(format!("http://{up}/old/v1"));
    p["headers"] = json!({"x-team": "ml"});
    let gw = gateway(
        json!({"models": [{"name": "bench", "providers": [p]}]}),
        None,
    )
    .await;
    let body = r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let resp = post_raw(&format!("{gw}/v1/chat/completions"), body).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), MOVED_EVENTS);
    let seen = seen.lock().unwrap().clone();
    let headers = sent_direct_then_through_reqwest(
        &seen,
        &[
            "x-team",
            "content-type",
            "accept",
            "authorization",
            "host",
            "content-length",
        ],
    );
    assert!(headers.contains(&("accept".into(), "text/event-stream".into())));
    assert_eq!(seen[0].2, seen[1].2);
}

/// A provider that answers every request with a stream's head (200, chunked) and closes the
/// connection before the body's first byte; counts the requests.
async fn head_only_provider() -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let seen = seen.clone();
            tokio::spawn(async move {
                // The request's head and body (small) arrive in a read or two.
                let mut buf = vec![0u8; 64 * 1024];
                let mut got = Vec::new();
                while !got.contains(&b'}') {
                    let n = sock.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_streams_fail_over_before_the_first_byte_and_end_in_an_error_event_after_it() {
    // OpenAI-compatible providers on plain HTTP: the streams go out on hyper's client. Before
    // the first body byte a failure moves on to the next provider (a 500, a head without a
    // body); after it the caller gets an error event and nothing is retried.
    let (s, secondary) = mock_llm::spawn().await.unwrap();
    let (head_only, head_only_requests) = head_only_provider().await;
    let (m, primary) = mock_llm::spawn().await.unwrap();
    for (first, mode) in [(m, Some(Mode::Fail500)), (head_only, None)] {
        let mut a = provider("openai", "primary", "mock-gpt", &first);
        a["priority"] = json!(0);
        let mut b = provider("openai", "secondary", "mock-gpt", &s);
        b["priority"] = json!(1);
        let gw = gateway(
            fast_retries(json!({"models": [{"name": "smart", "providers": [a, b]}]})),
            None,
        )
        .await;
        if let Some(mode) = mode {
            primary.set_mode(mode);
        }
        let before = secondary.requests();
        let resp = post(
            &format!("{gw}/v1/chat/completions"),
            json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(resp.status(), 200, "{mode:?}");
        assert_eq!(resp.headers()["x-switchboard-provider"], "secondary");
        let a = assemble_openai(&resp.text().await.unwrap());
        assert_eq!(a.text, "Mock reply to: hi", "{mode:?}");
        assert!(a.done && a.error.is_none(), "{mode:?}");
        assert_eq!(secondary.requests(), before + 1, "{mode:?}");
    }
    assert!(primary.requests() >= 1);
    assert!(head_only_requests.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    for (mode, code) in [
        (Mode::MidStream, "upstream_error"),
        (Mode::Drop, "bad_gateway"),
    ] {
        let mut a = provider("openai", "primary", "mock-gpt", &m);
        a["priority"] = json!(0);
        let mut b = provider("openai", "secondary", "mock-gpt", &s);
        b["priority"] = json!(1);
        let gw = gateway(
            fast_retries(json!({"models": [{"name": "smart", "providers": [a, b]}]})),
            None,
        )
        .await;
        primary.set_mode(mode);
        let before = secondary.requests();
        let err = broken_after_the_first_bytes(&gw, "primary", mode).await;
        assert_eq!(err["code"], code, "{mode:?}: {err}");
        assert_eq!(
            secondary.requests(),
            before,
            "{mode:?}: no retry once bytes reached the client"
        );
    }
}

/// The backend itself, without a server in front, for tests that look at the response it
/// returns (how its body is ready), not at what a client reads.
fn backend_for(mock: &std::net::SocketAddr) -> LlmBackend {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cfg: LlmConfig = serde_json::from_value(json!({"models": [{"name": "smart",
        "providers": [provider("openai", "up", "mock-gpt", mock)]}]}))
    .expect("config parses");
    let deps = LlmDeps {
        client: switchboard_llm::ProviderClients::new(reqwest::Client::new),
        metrics: Metrics::unregistered(),
    };
    LlmBackend::new(&cfg, deps).expect("backend builds")
}

/// A streamed chat completion answered by `backend`: the response as the backend returns it.
async fn stream_through(backend: &LlmBackend, content: &str) -> http::Response<Body> {
    let body = json!({"model": "smart", "stream": true,
        "messages": [{"role": "user", "content": content}]});
    let req = http::Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let ctx = RequestContext {
        route: "models".into(),
        prefix: "/v1".into(),
        ..Default::default()
    };
    backend.handle(req, &ctx).await.expect("stream answered")
}

/// The body's first frame if it is there without waiting (polled once), as the server that
/// writes the response head finds it.
fn ready_frame(resp: http::Response<Body>) -> (Option<String>, Body) {
    use futures::FutureExt;
    use http_body_util::BodyExt;
    let mut body = resp.into_body();
    let frame = body.frame().now_or_never().map(|f| {
        let data = f
            .expect("a frame")
            .expect("no error")
            .into_data()
            .expect("data");
        String::from_utf8(data.to_vec()).unwrap()
    });
    (frame, body)
}

// One thread (current-thread runtime): nothing runs between the backend's return and the
// poll, so what the first frame holds is what the backend had translated by then.
#[tokio::test]
async fn a_stream_response_comes_with_its_first_token_when_the_provider_sent_it_already() {
    let (mock, _state) = mock_llm::spawn().await.unwrap();
    let backend = backend_for(&mock);
    let resp = stream_through(&backend, "one two three").await;
    assert_eq!(resp.status(), 200);
    // The mock writes the whole stream at once: the role chunk and the first token are read
    // with the head, so they are the body's first frame, ready with the head (one write to
    // the client, not the head alone and the events after a turn of the runtime).
    let (first, body) = ready_frame(resp);
    let first = first.expect("the first frame was not ready when the response was returned");
    let a = assemble_openai(&first);
    assert_eq!(a.text, "Mock ", "first frame: {first}");
    assert!(first.contains("\"role\":\"assistant\""), "{first}");
    // The rest of the stream follows unchanged.
    let rest = String::from_utf8(
        http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let a = assemble_openai(&format!("{first}{rest}"));
    assert_eq!(a.text, "Mock reply to: one two three");
    assert_eq!(a.finish.as_deref(), Some("stop"));
    assert!(a.done);
}

// Paused time, one thread: the mock's pause between parts passes only if the backend waits
// for it (the runtime has nothing else to do).
#[tokio::test(start_paused = true)]
async fn a_stream_response_does_not_wait_for_a_first_token_the_provider_has_not_sent() {
    let (mock, state) = mock_llm::spawn().await.unwrap();
    state.set_mode(Mode::Trickle);
    let backend = backend_for(&mock);
    let resp = stream_through(&backend, "one two three").await;
    assert_eq!(resp.status(), 200);
    // Only the role chunk has arrived: it leaves with the head, and the head does not wait
    // for the first token.
    let (first, body) = ready_frame(resp);
    let first = first.expect("the role chunk was not ready with the head");
    assert!(first.contains("\"role\":\"assistant\""), "{first}");
    assert_eq!(
        assemble_openai(&first).text,
        "",
        "waited for a token: {first}"
    );
    let rest = String::from_utf8(
        http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert_eq!(
        assemble_openai(&format!("{first}{rest}")).text,
        "Mock reply to: one two three"
    );
}

/// An OpenAI-compatible provider streaming `events` as they are, whatever was asked.
async fn sse_provider(events: String) -> std::net::SocketAddr {
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move || {
            let events = events.clone();
            async move { ([(http::header::CONTENT_TYPE, "text/event-stream")], events) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_stream_reaches_an_openai_caller_byte_for_byte_and_is_metered() {
    // Fields the gateway does not model, spellings a re-encode would change, and chunks its
    // typed chunk rejects (a `null` id, a tool call fragment without `index`).
    const EVENTS: &str = concat!(
        "data: {\"id\":null,\"object\":\"chat.completion.chunk\",\"created\":1.7e9,\"model\":\"up-model\",\"system_fingerprint\":\"fp_1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"c1\",\"created\":1,\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"caf\\u00e9\",\"reasoning_content\":\"hm\"}}],\"obfuscation\":\"a1B2\",\"x\":{\"w\":[1.50,1e2]}}\n\n",
        "data: {\"id\":\"c1\",\"created\":1,\"model\":\"up-model\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    const USAGE: &str = "data: {\"id\":\"c1\",\"created\":1,\"model\":\"up-model\",\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3,\"total_tokens\":10}}\n\n";
    const DONE: &str = "data: [DONE]\n\n";
    let up = sse_provider(format!("{EVENTS}{USAGE}{DONE}")).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = Metrics::new(&mut registry);
    let cfg = json!({"models": [{"name": "smart", "providers": [provider("openai", "up", "up-model", &up)]}]});
    let gw = gateway_with(cfg, None, metrics).await;
    let url = format!("{gw}/v1/chat/completions");
    let asked = post(
        &url,
        json!({"model": "smart", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(asked.status(), 200);
    assert_eq!(
        asked.text().await.unwrap(),
        format!("{EVENTS}{USAGE}{DONE}")
    );
    // A caller that did not ask for usage gets every event but the usage-only one.
    let unasked = post(
        &url,
        json!({"model": "smart", "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(unasked.text().await.unwrap(), format!("{EVENTS}{DONE}"));
    // Both streams were metered with the provider's usage.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    let labels = [
        "gen_ai_provider_name=\"up\"",
        "gen_ai_request_model=\"smart\"",
    ];
    let input = [&labels[..], &["gen_ai_token_type=\"input\""]].concat();
    let output = [&labels[..], &["gen_ai_token_type=\"output\""]].concat();
    assert_eq!(metric(&text, "gen_ai_client_token_usage_sum", &input), 14.0);
    assert_eq!(metric(&text, "gen_ai_client_token_usage_sum", &output), 6.0);
    assert_eq!(
        metric(&text, "gen_ai_server_time_to_first_token_count", &labels),
        2.0
    );
}
