//! A mock LLM provider speaking the OpenAI, Azure OpenAI, Anthropic, Gemini and Bedrock wire
//! formats (streaming included) with deterministic content, used by tests and as the benchmark
//! upstream. It does no per-request heavy work.
//!
//! Failures are injected per request by the model name (containing `fail-500`, `fail-429`,
//! `slow`, `midstream`, `drop` or `hang`, or the hostile `giant-body`, `giant-sse` and
//! `not-json`), by an `x-mock-fail` header with the same words, or
//! for every request via `POST /mock/mode {"mode": "500"}` (`ok` resets). `GET /mock/stats`
//! reports the request count and the credentials the last request carried.

use axum::serve::ListenerExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

/// Prompt tokens every chat response reports (cached ones included).
pub const INPUT_TOKENS: u64 = 42;
/// Of which read from the prompt cache.
pub const CACHED_TOKENS: u64 = 10;
/// Completion tokens every chat response reports.
pub const OUTPUT_TOKENS: u64 = 17;
/// The tool call arguments the mock makes when tools are offered.
pub const TOOL_ARGS: &str = r#"{"city":"Paris","days":3}"#;
/// Fragments the tool arguments are streamed in.
const TOOL_ARG_FRAGMENTS: [&str; 3] = [r#"{"city":"#, r#""Paris","#, r#""days":3}"#];
/// How long `slow` waits before the first byte.
pub const SLOW: Duration = Duration::from_millis(1500);

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Behave.
    #[default]
    Ok,
    /// 500 with an error body.
    Fail500,
    /// 429 with `retry-after: 1`.
    Fail429,
    /// Wait [`SLOW`] before the first byte.
    Slow,
    /// Stream part of the answer, then an error event.
    MidStream,
    /// Stream part of the answer, then drop the connection.
    Drop,
    /// Never answer.
    Hang,
    /// Stream half of the answer, then wait for [`MockState::release`] before the rest (lets a
    /// test prove that bytes reach the client while the provider is still streaming).
    Hold,
    /// A hostile provider: a `200` JSON reply of [`GIANT`] bytes, streamed without a length.
    GiantBody,
    /// A hostile provider: a `200` SSE stream whose first line is [`GIANT`] bytes long.
    GiantSse,
    /// A hostile provider: a `200` reply that is not JSON (an HTML page).
    NotJson,
}

/// Size of the hostile replies (`giant-body`, `giant-sse`).
pub const GIANT: usize = 8 << 20;

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        let s = s.to_ascii_lowercase();
        [
            ("fail-500", Mode::Fail500),
            ("500", Mode::Fail500),
            ("fail-429", Mode::Fail429),
            ("429", Mode::Fail429),
            ("slow", Mode::Slow),
            ("midstream", Mode::MidStream),
            ("drop", Mode::Drop),
            ("hang", Mode::Hang),
            ("hold", Mode::Hold),
            ("giant-body", Mode::GiantBody),
            ("giant-sse", Mode::GiantSse),
            ("not-json", Mode::NotJson),
            ("ok", Mode::Ok),
        ]
        .into_iter()
        .find(|(k, _)| s.contains(k))
        .map(|(_, m)| m)
    }
}

#[derive(Debug)]
struct Inner {
    mode: Mutex<Mode>,
    requests: AtomicU64,
    last_auth: Mutex<Option<String>>,
    gate: Arc<tokio::sync::Semaphore>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            mode: Mutex::default(),
            requests: AtomicU64::default(),
            last_auth: Mutex::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
        }
    }
}

/// Shared state of one mock server (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct MockState {
    inner: Arc<Inner>,
}

impl MockState {
    /// Sets the failure mode for every following request.
    pub fn set_mode(&self, mode: Mode) {
        *self.inner.mode.lock().unwrap() = mode;
    }

    /// Lets one held stream ([`Mode::Hold`]) continue.
    pub fn release(&self) {
        self.inner.gate.add_permits(1);
    }

    /// Requests served so far (admin endpoints excluded).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// The credential header the last request carried (`authorization`, `x-api-key`,
    /// `api-key` or `x-goog-api-key`), as `name: value`.
    pub fn last_auth(&self) -> Option<String> {
        self.inner.last_auth.lock().unwrap().clone()
    }

    fn begin(&self, headers: &HeaderMap, model: &str) -> Mode {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let auth = ["authorization", "x-api-key", "api-key", "x-goog-api-key"]
            .into_iter()
            .find_map(|n| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| format!("{n}: {v}"))
            });
        *self.inner.last_auth.lock().unwrap() = auth;
        headers
            .get("x-mock-fail")
            .and_then(|v| v.to_str().ok())
            .and_then(Mode::parse)
            .or_else(|| Mode::parse(model).filter(|m| *m != Mode::Ok))
            .unwrap_or_else(|| *self.inner.mode.lock().unwrap())
    }
}

/// The mock's router.
pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/responses", post(responses))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1beta/models/{action}", post(gemini))
        .route("/model/{model}/{action}", post(bedrock))
        .route("/mock/mode", post(set_mode))
        .route("/mock/stats", get(stats))
        // Requests as large as a gateway's `limits.json.max_message_bytes` allows.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves the mock on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, state: MockState) -> std::io::Result<()> {
    axum::serve(listener.tap_io(crate::nodelay), router(state)).await
}

/// Serves the mock until `shutdown` resolves, then drains open connections.
pub async fn serve_until(
    listener: tokio::net::TcpListener,
    state: MockState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener.tap_io(crate::nodelay), router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `127.0.0.1:0`, serves in the background, returns the address and the state.
pub async fn spawn() -> std::io::Result<(SocketAddr, MockState)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let state = MockState::default();
    let s = state.clone();
    tokio::spawn(async move {
        let _ = serve(listener, s).await;
    });
    Ok((addr, state))
}

async fn set_mode(State(state): State<MockState>, body: Bytes) -> Response {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match v.get("mode").and_then(Value::as_str).and_then(Mode::parse) {
        Some(m) => {
            state.set_mode(m);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            "mode must be ok, 500, 429, slow, midstream, drop or hang",
        )
            .into_response(),
    }
}

async fn stats(State(state): State<MockState>) -> Response {
    json_resp(
        StatusCode::OK,
        &json!({"requests": state.requests(), "last_auth": state.last_auth()}),
    )
}

fn json_resp(status: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[derive(Clone, Copy, PartialEq)]
enum Api {
    OpenAi,
    Anthropic,
    Gemini,
    Bedrock,
}

fn error_resp(api: Api, mode: Mode) -> Response {
    let (status, kind, msg) = match mode {
        Mode::Fail429 => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "mock rate limit",
        ),
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "mock internal error",
        ),
    };
    let body = match api {
        Api::OpenAi => {
            json!({"error": {"message": msg, "type": if status == 429 { "rate_limit_error" } else { "server_error" }, "param": null, "code": null}})
        }
        Api::Anthropic => json!({"type": "error", "error": {"type": kind, "message": msg}}),
        Api::Gemini => {
            json!({"error": {"code": status.as_u16(), "message": msg, "status": if status == 429 { "RESOURCE_EXHAUSTED" } else { "INTERNAL" }}})
        }
        Api::Bedrock => json!({"message": msg}),
    };
    let mut r = json_resp(status, &body);
    if status == StatusCode::TOO_MANY_REQUESTS {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if api == Api::Bedrock {
        let t = if status == 429 {
            "ThrottlingException"
        } else {
            "InternalServerException"
        };
        r.headers_mut()
            .insert("x-amzn-errortype", HeaderValue::from_static(t));
    }
    r
}

/// The replies of a hostile provider, sent in 64 KiB chunks without a length.
fn hostile(mode: Mode) -> Response {
    let (content_type, head, tail): (&str, &[u8], &[u8]) = match mode {
        Mode::NotJson => {
            return Response::builder()
                .header(header::CONTENT_TYPE, "text/html")
                .body(Body::from("<html><body>upstream proxy error</body></html>"))
                .unwrap();
        }
        Mode::GiantSse => ("text/event-stream", b"data: {\"pad\":\"", b"\"}\n\n"),
        _ => ("application/json", b"{\"id\":\"giant\",\"pad\":\"", b"\"}"),
    };
    let chunk = Bytes::from(vec![b'x'; 64 << 10]);
    let parts = std::iter::once(Bytes::from_static(head))
        .chain(std::iter::repeat_n(chunk, GIANT / (64 << 10)))
        .chain(std::iter::once(Bytes::from_static(tail)))
        .map(Ok::<_, std::io::Error>);
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(futures::stream::iter(parts)))
        .unwrap()
}

/// Handles the failure modes that replace the whole response; returns the mode for the
/// stream-shaping ones.
async fn preflight(api: Api, mode: Mode) -> Result<Mode, Response> {
    match mode {
        Mode::Fail500 | Mode::Fail429 => Err(error_resp(api, mode)),
        Mode::GiantBody | Mode::GiantSse | Mode::NotJson => Err(hostile(mode)),
        Mode::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        m => Ok(m),
    }
}

/// A body that sends `parts`, shaped by the mode: `slow` delays the first part, `midstream`
/// appends `error_part` after half of them, `drop` cuts the connection there.
fn scripted_body(
    parts: Vec<Bytes>,
    mode: Mode,
    error_part: Option<Bytes>,
    state: &MockState,
) -> Body {
    let cut = parts.len() / 2;
    let parts: Vec<Bytes> = match mode {
        Mode::MidStream => parts.into_iter().take(cut).chain(error_part).collect(),
        _ => parts,
    };
    let drop_at = (mode == Mode::Drop).then_some(cut);
    let hold_at = (mode == Mode::Hold).then_some(cut);
    let gate = state.inner.gate.clone();
    let stream = futures::stream::unfold(
        (parts.into_iter().enumerate(), mode == Mode::Slow),
        move |(mut it, slow)| {
            let gate = gate.clone();
            async move {
                if slow {
                    tokio::time::sleep(SLOW).await;
                }
                let (i, part) = it.next()?;
                if Some(i) == hold_at {
                    gate.acquire().await.ok()?.forget();
                }
                if Some(i) == drop_at {
                    // Let the server flush what was sent so far: the client must see a partial body
                    // and then the connection die, not an empty reply.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    return Some((
                        Err(std::io::Error::other("mock dropped the connection")),
                        (it, false),
                    ));
                }
                Some((Ok::<Bytes, std::io::Error>(part), (it, false)))
            }
        },
    );
    Body::from_stream(stream)
}

fn sse_resp(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn data(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

fn event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}

/// What the mock answers: text echoing the last user message, or a tool call.
struct Reply {
    text: String,
    tool: Option<String>,
}

/// A user message starting `[words=N]` gets an answer of exactly N words (N stream chunks):
/// benchmarks use it to ask for long streams through any front, LiteLLM included.
fn reply(last_user: &str, tool: Option<&str>) -> Reply {
    let words_wanted = last_user
        .strip_prefix("[words=")
        .and_then(|r| r.split_once(']'))
        .and_then(|(n, _)| n.parse::<usize>().ok())
        .map(|n| n.min(100_000));
    let text = match words_wanted {
        Some(n) => (0..n).map(|i| format!("w{i} ")).collect(),
        None => {
            let echo: String = last_user.chars().take(60).collect();
            format!("Mock reply to: {echo}")
        }
    };
    Reply {
        text,
        tool: tool.map(String::from),
    }
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        cur.push(c);
        if c == ' ' {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------- OpenAI

fn openai_reply(req: &Value) -> Reply {
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let last = msgs.last();
    let answered_tool = last.is_some_and(|m| m["role"] == "tool");
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["function"]["name"]
        .as_str()
        .filter(|_| !answered_tool && req["tool_choice"] != "none");
    reply(&last_user, tool)
}

fn openai_usage() -> Value {
    json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
           "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 0}})
}

async fn openai_chat(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    openai_chat_inner(state, headers, body, None).await
}

async fn azure_chat(
    State(state): State<MockState>,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai_chat_inner(state, headers, body, Some(dep)).await
}

async fn openai_chat_inner(
    state: MockState,
    headers: HeaderMap,
    body: Bytes,
    deployment: Option<String>,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}),
        );
    };
    let model = deployment.unwrap_or_else(|| req["model"].as_str().unwrap_or("mock").to_string());
    let mode = match preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("authorization") && !headers.contains_key("api-key") {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"message": "missing API key", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    let r = openai_reply(&req);
    let id = "chatcmpl-mock";
    let created = 1_700_000_000u64;
    if req["stream"] != true {
        if mode == Mode::Slow {
            tokio::time::sleep(SLOW).await;
        }
        let message = match &r.tool {
            Some(name) => {
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                {"id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGS}}]})
            }
            None => json!({"role": "assistant", "content": r.text, "refusal": null}),
        };
        let finish = if r.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        return json_resp(
            StatusCode::OK,
            &json!({"id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                    "usage": openai_usage(), "system_fingerprint": "fp_mock"}),
        );
    }
    let chunk = |delta: Value, finish: Value| {
        data(
            &json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    let mut parts = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    match &r.tool {
        Some(name) => {
            parts.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for frag in TOOL_ARG_FRAGMENTS {
                parts.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}),
                    Value::Null,
                ));
            }
            parts.push(chunk(json!({}), json!("tool_calls")));
        }
        None => {
            for w in words(&r.text) {
                parts.push(chunk(json!({"content": w}), Value::Null));
            }
            parts.push(chunk(json!({}), json!("stop")));
        }
    }
    if req["stream_options"]["include_usage"] == true {
        parts.push(data(&json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": openai_usage()})));
    }
    parts.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let err = data(
        &json!({"error": {"message": "mock failure mid-stream", "type": "server_error", "param": null, "code": null}}),
    );
    sse_resp(scripted_body(parts, mode, Some(err), &state))
}

fn embedding(input: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seeded values: deterministic and cheap.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h = (h ^ i as u64).wrapping_mul(0x0100_0000_01b3);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

async fn embeddings(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    embeddings_inner(state, headers, body).await
}

async fn azure_embeddings(
    State(state): State<MockState>,
    Path(_dep): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings_inner(state, headers, body).await
}

async fn embeddings_inner(state: MockState, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}),
        );
    };
    let model = req["model"].as_str().unwrap_or("mock-embed").to_string();
    if let Err(r) = preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        return r;
    }
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect(),
        _ => Vec::new(),
    };
    let dims = req["dimensions"].as_u64().unwrap_or(8) as usize;
    let base64 = req["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = embedding(s, dims);
            let emb = if base64 {
                let mut b = BytesMut::with_capacity(v.len() * 4);
                for x in &v {
                    b.put_f32_le(*x);
                }
                json!(base64::engine::general_purpose::STANDARD.encode(&b))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let tokens: u64 = inputs
        .iter()
        .map(|s| s.split_whitespace().count().max(1) as u64)
        .sum();
    json_resp(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

async fn models(State(_state): State<MockState>) -> Response {
    let data: Vec<Value> = ["mock-gpt", "mock-claude", "mock-embed"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "mock"}))
        .collect();
    json_resp(StatusCode::OK, &json!({"object": "list", "data": data}))
}

async fn responses(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    if let Err(r) = preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        return r;
    }
    let input = match &req["input"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let r = reply(&input, None);
    let done = json!({"id": "resp_mock", "object": "response", "created_at": 1_700_000_000u64, "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": r.text, "annotations": []}]}],
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                      "input_tokens_details": {"cached_tokens": CACHED_TOKENS}, "output_tokens_details": {"reasoning_tokens": 0}}});
    if req["stream"] != true {
        return json_resp(StatusCode::OK, &done);
    }
    let mut started = done.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    started["usage"] = Value::Null;
    let mut parts = vec![event(
        "response.created",
        &json!({"type": "response.created", "sequence_number": 0, "response": started}),
    )];
    for (i, w) in words(&r.text).into_iter().enumerate() {
        parts.push(event(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": w}),
        ));
    }
    let n = parts.len();
    parts.push(event(
        "response.completed",
        &json!({"type": "response.completed", "sequence_number": n, "response": done}),
    ));
    sse_resp(scripted_body(parts, Mode::Ok, None, &state))
}

// ---------------------------------------------------------------- Anthropic

fn anthropic_usage(output: u64) -> Value {
    json!({"input_tokens": INPUT_TOKENS - CACHED_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": CACHED_TOKENS, "output_tokens": output})
}

async fn anthropic_messages(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "invalid JSON"}}),
        );
    };
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    let mode = match preflight(Api::Anthropic, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("x-api-key") {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            &json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}}),
        );
    }
    if req["max_tokens"].as_u64().is_none() {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}),
        );
    }
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = msgs
        .last()
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| {
            m["role"] == "user"
                && !m["content"]
                    .as_array()
                    .is_some_and(|b| b.iter().all(|b| b["type"] == "tool_result"))
        })
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["name"]
        .as_str()
        .filter(|_| !answered_tool && req["tool_choice"]["type"] != "none");
    let r = reply(&last_user, tool);
    let id = "msg_mock";
    let stop = if r.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if req["stream"] != true {
        if mode == Mode::Slow {
            tokio::time::sleep(SLOW).await;
        }
        let content = match &r.tool {
            Some(name) => {
                json!([{"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}])
            }
            None => json!([{"type": "text", "text": r.text}]),
        };
        return json_resp(
            StatusCode::OK,
            &json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                    "stop_reason": stop, "stop_sequence": null, "usage": anthropic_usage(OUTPUT_TOKENS)}),
        );
    }
    let mut parts = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    match &r.tool {
        Some(name) => {
            parts.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {}}})));
            for frag in TOOL_ARG_FRAGMENTS {
                parts.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": frag}}),
                ));
            }
        }
        None => {
            parts.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for w in words(&r.text) {
                parts.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
        }
    }
    parts.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    parts.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    parts.push(event("message_stop", &json!({"type": "message_stop"})));
    let err = event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    sse_resp(scripted_body(parts, mode, Some(err), &state))
}

// ---------------------------------------------------------------- Gemini

async fn gemini(
    State(state): State<MockState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, verb)) = action.split_once(':') else {
        return json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}),
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": 400, "message": "invalid JSON", "status": "INVALID_ARGUMENT"}}),
        );
    };
    let mode = match preflight(Api::Gemini, state.begin(&headers, model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("x-goog-api-key") {
        return json_resp(
            StatusCode::FORBIDDEN,
            &json!({"error": {"code": 403, "message": "API key missing", "status": "PERMISSION_DENIED"}}),
        );
    }
    let contents = req["contents"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = contents
        .last()
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let last_user = contents
        .iter()
        .rev()
        .find(|c| {
            c["role"] == "user"
                && c["parts"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p.get("text").is_some()))
        })
        .map(|c| text_of(&c["parts"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .filter(|_| !answered_tool);
    let r = reply(&last_user, tool);
    let usage = json!({"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS, "cachedContentTokenCount": CACHED_TOKENS, "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS});
    let resp = |parts: Value, finish: Option<&str>, usage: Option<&Value>| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        let mut v = json!({"candidates": [cand], "modelVersion": model, "responseId": "mock-resp"});
        if let Some(u) = usage {
            v["usageMetadata"] = u.clone();
        }
        v
    };
    let final_parts = match &r.tool {
        Some(name) => {
            json!([{"functionCall": {"name": name, "args": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}}])
        }
        None => json!([{"text": r.text}]),
    };
    match verb {
        "generateContent" => {
            if mode == Mode::Slow {
                tokio::time::sleep(SLOW).await;
            }
            json_resp(
                StatusCode::OK,
                &resp(final_parts, Some("STOP"), Some(&usage)),
            )
        }
        "streamGenerateContent" => {
            let mut parts = Vec::new();
            if r.tool.is_none() {
                let ws = words(&r.text);
                let n = ws.len();
                for (i, w) in ws.into_iter().enumerate() {
                    let last = i + 1 == n;
                    parts.push(Bytes::from(format!(
                        "data: {}\r\n\r\n",
                        resp(
                            json!([{"text": w}]),
                            last.then_some("STOP"),
                            last.then_some(&usage)
                        )
                    )));
                }
            } else {
                parts.push(Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    resp(json!([{"text": ""}]), None, None)
                )));
                parts.push(Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    resp(final_parts, Some("STOP"), Some(&usage))
                )));
            }
            let err = Bytes::from(format!(
                "data: {}\r\n\r\n",
                json!({"error": {"code": 503, "message": "mock failure mid-stream", "status": "UNAVAILABLE"}})
            ));
            sse_resp(scripted_body(parts, mode, Some(err), &state))
        }
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": 404, "message": "unknown method", "status": "NOT_FOUND"}}),
        ),
    }
}

// ---------------------------------------------------------------- Bedrock

/// Encodes one AWS event-stream message with string headers.
pub fn eventstream_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        h.put_u8(name.len() as u8);
        h.put_slice(name.as_bytes());
        h.put_u8(7);
        h.put_u16(value.len() as u16);
        h.put_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = BytesMut::with_capacity(total);
    m.put_u32(total as u32);
    m.put_u32(h.len() as u32);
    let crc = crc32fast::hash(&m[..8]);
    m.put_u32(crc);
    m.put_slice(&h);
    m.put_slice(payload);
    let crc = crc32fast::hash(&m);
    m.put_u32(crc);
    m.freeze()
}

fn bedrock_event(kind: &str, v: &Value) -> Bytes {
    eventstream_frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        v.to_string().as_bytes(),
    )
}

async fn bedrock(
    State(state): State<MockState>,
    Path((model, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(StatusCode::BAD_REQUEST, &json!({"message": "invalid JSON"}));
    };
    let mode = match preflight(Api::Bedrock, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(auth.starts_with("AWS4-HMAC-SHA256 Credential=") && headers.contains_key("x-amz-date")
        || auth.starts_with("Bearer "))
    {
        return json_resp(
            StatusCode::FORBIDDEN,
            &json!({"message": "Missing Authentication Token"}),
        );
    }
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = msgs
        .last()
        .and_then(|m| m["content"].as_array())
        .is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| {
            m["role"] == "user"
                && m["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|b| b.get("text").is_some()))
        })
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["toolConfig"]["tools"][0]["toolSpec"]["name"]
        .as_str()
        .filter(|_| !answered_tool);
    let r = reply(&last_user, tool);
    let stop = if r.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let usage = json!({"inputTokens": INPUT_TOKENS - CACHED_TOKENS, "outputTokens": OUTPUT_TOKENS, "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS, "cacheReadInputTokens": CACHED_TOKENS, "cacheWriteInputTokens": 0});
    match action.as_str() {
        "converse" => {
            if mode == Mode::Slow {
                tokio::time::sleep(SLOW).await;
            }
            let content = match &r.tool {
                Some(name) => {
                    json!([{"toolUse": {"toolUseId": "tooluse_mock_1", "name": name, "input": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}}])
                }
                None => json!([{"text": r.text}]),
            };
            json_resp(
                StatusCode::OK,
                &json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 1}}),
            )
        }
        "converse-stream" => {
            let mut parts = vec![bedrock_event("messageStart", &json!({"role": "assistant"}))];
            match &r.tool {
                Some(name) => {
                    parts.push(bedrock_event("contentBlockStart", &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_mock_1", "name": name}}})));
                    for frag in TOOL_ARG_FRAGMENTS {
                        parts.push(bedrock_event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": frag}}}),
                        ));
                    }
                }
                None => {
                    for w in words(&r.text) {
                        parts.push(bedrock_event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"text": w}}),
                        ));
                    }
                }
            }
            parts.push(bedrock_event(
                "contentBlockStop",
                &json!({"contentBlockIndex": 0}),
            ));
            parts.push(bedrock_event("messageStop", &json!({"stopReason": stop})));
            parts.push(bedrock_event(
                "metadata",
                &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
            ));
            let err = eventstream_frame(
                &[
                    (":exception-type", "modelStreamErrorException"),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                json!({"message": "mock failure mid-stream"})
                    .to_string()
                    .as_bytes(),
            );
            let mut resp = Response::new(scripted_body(parts, mode, Some(err), &state));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            resp
        }
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"message": "unknown operation"}),
        ),
    }
}
