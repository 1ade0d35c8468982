//! A mock LLM provider speaking the OpenAI, Azure OpenAI, Anthropic, Gemini and Bedrock wire
//! formats (streaming included) with deterministic content, used by tests and as the benchmark
//! upstream. It does no per-request heavy work.
//!
//! Failures are injected per request by the model name (containing `fail-500`, `fail-429`,
//! `slow`, `midstream`, `drop`, `hang` or `trickle` (parts streamed with a pause between them), or the hostile `giant-body`, `giant-sse` and
//! `not-json`), by an `x-mock-fail` header with the same words, or
//! for every request via `POST /mock/mode {"mode": "500"}` (`ok` resets). `GET /mock/stats`
//! reports the request count and the credentials the last request carried.
//! `POST /v1/messages/count_tokens` answers as Anthropic does, with [`mock_token_count`].

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

mod anthropic;
mod bedrock;
mod gemini;
mod openai;

pub use anthropic::mock_token_count;
use anthropic::*;
pub use bedrock::eventstream_frame;
use bedrock::*;
use gemini::*;
use openai::*;

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
/// The pause between streamed parts in `trickle` mode.
pub const TRICKLE: Duration = Duration::from_millis(120);
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
    /// Stream the answer with [`TRICKLE`] between parts (a client can watch it arrive).
    Trickle,
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
            ("trickle", Mode::Trickle),
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
    traceparents: Mutex<Vec<String>>,
    gate: Arc<tokio::sync::Semaphore>,
    last_count_tokens: Mutex<Option<Value>>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            mode: Mutex::default(),
            requests: AtomicU64::default(),
            last_auth: Mutex::default(),
            traceparents: Mutex::default(),
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            last_count_tokens: Mutex::default(),
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

    /// The W3C `traceparent` of every request that carried one, in order.
    pub fn traceparents(&self) -> Vec<String> {
        self.inner.traceparents.lock().unwrap().clone()
    }

    /// The body of the last `POST /v1/messages/count_tokens` request.
    pub fn last_count_tokens(&self) -> Option<Value> {
        self.inner.last_count_tokens.lock().unwrap().clone()
    }

    fn count_tokens_seen(&self, body: &serde_json::Map<String, Value>) {
        *self.inner.last_count_tokens.lock().unwrap() = Some(Value::Object(body.clone()));
    }

    fn begin(&self, headers: &HeaderMap, model: &str) -> Mode {
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
            self.inner.traceparents.lock().unwrap().push(tp.to_owned());
        }
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
        .route("/v1/responses/input_tokens", post(responses_input_tokens))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(azure_chat),
        )
        .route(
            "/openai/deployments/{deployment}/embeddings",
            post(azure_embeddings),
        )
        .route("/v1/messages", post(anthropic_messages))
        .route("/v1/messages/count_tokens", post(anthropic_count_tokens))
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
    let trickle = mode == Mode::Trickle;
    let stream = futures::stream::unfold(
        (parts.into_iter().enumerate(), mode == Mode::Slow),
        move |(mut it, slow)| {
            let gate = gate.clone();
            async move {
                if slow {
                    tokio::time::sleep(SLOW).await;
                }
                let (i, part) = it.next()?;
                if trickle && i > 0 {
                    tokio::time::sleep(TRICKLE).await;
                }
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
    /// Stream the text in pieces of this many characters instead of by word.
    chars: Option<usize>,
}

impl Reply {
    /// The pieces the text is streamed in.
    fn pieces(&self) -> Vec<String> {
        match self.chars {
            Some(n) => {
                let cs: Vec<char> = self.text.chars().collect();
                cs.chunks(n.max(1)).map(|c| c.iter().collect()).collect()
            }
            None => words(&self.text),
        }
    }
}

/// A user message starting `[words=N]` gets an answer of exactly N words (N stream chunks):
/// benchmarks use it to ask for long streams through any front, LiteLLM included. One starting
/// `[chars=N] TEXT` gets `TEXT` back verbatim, streamed in pieces of N characters (guardrail
/// tests split a match across chunks with it).
fn reply(last_user: &str, tool: Option<&str>) -> Reply {
    if let Some((n, rest)) = last_user
        .strip_prefix("[chars=")
        .and_then(|r| r.split_once("] "))
        .and_then(|(n, rest)| Some((n.parse::<usize>().ok()?, rest)))
    {
        return Reply {
            text: rest.to_owned(),
            tool: tool.map(String::from),
            chars: Some(n.clamp(1, 1024)),
        };
    }
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
        chars: None,
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
