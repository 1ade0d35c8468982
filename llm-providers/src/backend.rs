//! The `llm` route backend: path dispatch, model lookup, token budget, pool execution,
//! translation, accounting, and errors in the caller's format.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;
use switchboard_core::{Item, RequestContext, TokenReservation};
use tokio::time::Instant;

use crate::config::{
    LlmConfig, LlmTimeouts, ModelConfig, ModelPrice, OutlierConfig, ProviderKind, RetryConfig,
};
use crate::format::anthropic as a;
use crate::format::openai as o;
use crate::format::{ApiFormat, Usage, bedrock, gemini};
use crate::metrics::{Metrics, RequestLabels, cost};
use crate::pool::{AttemptResult, Outcome, Pool};
use crate::provider::{self, Member, Operation};
use crate::translate::errors::{body_retry_delay, upstream_message};
use crate::translate::stream::{StreamTranslator, UpstreamFormat};
use crate::translate::{self, unix_now};
use crate::{Error, Result};

/// Largest provider error body read (only its message is used; the rest is dropped unread).
const MAX_ERROR_BODY: usize = 64 * 1024;

fn check_access(ctx: &RequestContext, model: &str) -> Result<()> {
    if ctx.allows(Item::Model(model)) {
        Ok(())
    } else {
        Err(Error::ModelNotAllowed(model.to_string()))
    }
}

/// Process-lifetime dependencies, built once by the gateway and reused across reloads.
#[derive(Debug, Clone)]
pub struct LlmDeps {
    /// HTTP clients for provider calls (rustls; connection pools survive reloads).
    pub client: ProviderClients,
    /// Metric families.
    pub metrics: Metrics,
}

/// Provider HTTP clients, one per thread that uses them. reqwest runs each pooled
/// connection as a task on the runtime that opened it; the gateway serves each client
/// connection on one thread, and a pool of that thread's own keeps a request and its provider
/// exchange there instead of waking another core for every chunk.
#[derive(Clone)]
pub struct ProviderClients {
    build: Arc<dyn Fn() -> reqwest::Client + Send + Sync>,
    per_thread: Arc<thread_local::ThreadLocal<reqwest::Client>>,
}

impl ProviderClients {
    /// Clients made by `build`, once per thread on first use.
    pub fn new(build: impl Fn() -> reqwest::Client + Send + Sync + 'static) -> Self {
        ProviderClients {
            build: Arc::new(build),
            per_thread: Arc::default(),
        }
    }

    /// This thread's client.
    pub fn here(&self) -> &reqwest::Client {
        self.per_thread.get_or(|| (self.build)())
    }
}

impl std::fmt::Debug for ProviderClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClients").finish_non_exhaustive()
    }
}

/// The endpoint a request addresses (by path suffix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Front {
    /// `POST …/chat/completions`.
    ChatCompletions,
    /// `POST …/messages` (Anthropic).
    Messages,
    /// `POST …/embeddings`.
    Embeddings,
    /// `GET …/models`.
    Models,
    /// `POST …/responses`.
    Responses,
}

impl Front {
    /// The endpoint for a path (query excluded).
    pub fn from_path(path: &str) -> Option<Front> {
        let path = path.trim_end_matches('/');
        [
            ("/chat/completions", Front::ChatCompletions),
            ("/messages", Front::Messages),
            ("/embeddings", Front::Embeddings),
            ("/models", Front::Models),
            ("/responses", Front::Responses),
        ]
        .into_iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, f)| f)
    }

    /// The API format the caller of `path` speaks (OpenAI unless it is a `/messages` path), for
    /// errors the gateway produces on an `llm` route (e.g. a request-limit 429).
    pub fn format_for_path(path: &str) -> ApiFormat {
        Front::from_path(path).map_or(ApiFormat::OpenAi, Front::format)
    }

    /// The API format of the endpoint's errors and streams.
    pub fn format(self) -> ApiFormat {
        if self == Front::Messages {
            ApiFormat::Anthropic
        } else {
            ApiFormat::OpenAi
        }
    }
}

#[derive(Debug)]
struct Model {
    name: Arc<str>,
    members: Vec<Member>,
    pool: Pool,
    /// What the pool was built from, to keep its health state across reloads.
    source: (ModelConfig, RetryConfig, LlmTimeouts, OutlierConfig),
}

impl Model {
    /// The member at the index the pool chose.
    // Invariant: `pool` is built from `members` (one pool entry per member, same order) and
    // only hands out indices below its length.
    #[allow(clippy::indexing_slicing)]
    fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }
}

#[derive(Debug)]
struct Shared {
    models: HashMap<String, Model>,
    order: Vec<String>,
    prices: HashMap<String, ModelPrice>,
    estimate_cap: u64,
    attempt_timeout: Duration,
    /// `llm.max_response_bytes`.
    max_response_bytes: usize,
    /// `llm.max_event_bytes`.
    max_event_bytes: usize,
    deps: LlmDeps,
}

/// The LLM backend of one route (cheap to clone; rebuilt on every config load).
#[derive(Debug, Clone)]
pub struct LlmBackend {
    shared: Arc<Shared>,
}

/// A provider's answer to one attempt.
enum Answer {
    Body(Bytes),
    Stream {
        first: Bytes,
        rest: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    },
    Error {
        status: StatusCode,
        message: Option<String>,
        retry_after: Option<Duration>,
    },
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Body(b) => write!(f, "Body({} bytes)", b.len()),
            Answer::Stream { .. } => f.write_str("Stream"),
            Answer::Error { status, .. } => write!(f, "Error({status})"),
        }
    }
}

/// The parsed request of a chat endpoint.
enum ChatInput {
    OpenAi(o::ChatRequest),
    Anthropic(a::MessagesRequest),
}

impl LlmBackend {
    /// Builds the backend from its config (validated by the gateway first). Reads
    /// `api_key_env` and AWS variables now, so a reload picks up rotated credentials.
    pub fn new(config: &LlmConfig, deps: LlmDeps) -> Result<Self> {
        Self::build(config, deps, None)
    }

    /// Builds the backend for a new config like [`LlmBackend::new`], but keeps the pool state
    /// (outlier ejections, latency averages) of every model whose providers and pool settings
    /// did not change. Credentials are re-read either way.
    pub fn reload(&self, config: &LlmConfig, deps: LlmDeps) -> Result<Self> {
        Self::build(config, deps, Some(self))
    }

    fn build(config: &LlmConfig, deps: LlmDeps, previous: Option<&LlmBackend>) -> Result<Self> {
        let issues = config.validate("llm");
        if let Some((path, msg)) = issues.first() {
            return Err(Error::Config(format!("{path}: {msg}")));
        }
        let mut models = HashMap::new();
        let mut order = Vec::new();
        for m in &config.models {
            let members = m
                .providers
                .iter()
                .map(provider::build)
                .collect::<Result<Vec<_>>>()?;
            let source = (
                m.clone(),
                config.retry.clone(),
                config.timeouts.clone(),
                config.outlier.clone(),
            );
            let kept = previous
                .and_then(|p| p.shared.models.get(&m.name))
                .filter(|old| old.source == source)
                .map(|old| old.pool.clone());
            let pool = kept.unwrap_or_else(|| {
                let shape: Vec<(u32, u32)> =
                    m.providers.iter().map(|p| (p.weight, p.priority)).collect();
                Pool::new(
                    m.strategy,
                    &shape,
                    config.retry.clone(),
                    config.timeouts.clone(),
                    config.outlier.clone(),
                )
            });
            order.push(m.name.clone());
            models.insert(
                m.name.clone(),
                Model {
                    name: m.name.as_str().into(),
                    members,
                    pool,
                    source,
                },
            );
        }
        Ok(LlmBackend {
            shared: Arc::new(Shared {
                models,
                order,
                prices: config
                    .prices
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                estimate_cap: u64::from(config.max_tokens_estimate),
                attempt_timeout: config.timeouts.attempt,
                max_response_bytes: config.max_response_bytes,
                max_event_bytes: config.max_event_bytes,
                deps,
            }),
        })
    }

    /// Serves one request. A failure known before the response starts (unknown endpoint or
    /// model, bad body, spent token budget, the provider's error after failover) is an
    /// [`switchboard_core::Error`] that the gateway renders in the caller's API format,
    /// [`Front::format_for_path`]; failures after it started are error events in the stream.
    /// The body is expected in memory already, bounded by the caller (the gateway reads it
    /// against `listeners[].limits.json`); it is taken as it is, without a copy.
    pub async fn handle(
        &self,
        req: http::Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let path = req.uri().path();
        let suffix = path.strip_prefix(&*ctx.prefix).unwrap_or(path);
        let front = Front::from_path(suffix).ok_or(Error::NotFound)?;
        let expected = if front == Front::Models {
            Method::GET
        } else {
            Method::POST
        };
        if req.method() != expected {
            return Err(Error::MethodNotAllowed.into());
        }
        if front == Front::Models {
            return Ok(self.models(req.headers(), ctx));
        }
        // Beta flags are feature switches, not credentials: Anthropic callers keep them when the
        // provider is Anthropic too.
        let beta = req.headers().get("anthropic-beta").cloned();
        // The gateway has read the body already, bounded by `listeners[].limits.json`
        // (`max_message_bytes`, `max_depth`): this takes that one buffer without a copy.
        let body = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|_| Error::BodyUnreadable)?;
        match front {
            // Once parsed, the raw body is dropped: it is not held through the provider call.
            Front::ChatCompletions => match serde_json::from_slice(&body) {
                Ok(r) => {
                    let len = body.len();
                    drop(body);
                    self.chat(ChatInput::OpenAi(r), len, None, ctx).await
                }
                Err(e) => Err(Error::BadRequest(format!("invalid request body: {e}")).into()),
            },
            Front::Messages => match serde_json::from_slice(&body) {
                Ok(r) => {
                    let len = body.len();
                    drop(body);
                    self.chat(ChatInput::Anthropic(r), len, beta, ctx).await
                }
                Err(e) => Err(Error::BadRequest(format!("invalid request body: {e}")).into()),
            },
            Front::Embeddings => self.passthrough(Operation::Embeddings, body, ctx).await,
            Front::Responses => self.passthrough(Operation::Responses, body, ctx).await,
            Front::Models => unreachable!("handled above"),
        }
    }

    fn models(&self, headers: &HeaderMap, ctx: &RequestContext) -> http::Response<Body> {
        let visible: Vec<&String> = self
            .shared
            .order
            .iter()
            .filter(|n| ctx.allows(Item::Model(n)))
            .collect();
        // Anthropic SDKs send `anthropic-version`; answer them in their own list shape.
        let body = if headers.contains_key("anthropic-version") {
            let data: Vec<Value> = visible
                .iter()
                .map(|n| serde_json::json!({"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}))
                .collect();
            serde_json::json!({"data": data, "has_more": false, "first_id": visible.first(), "last_id": visible.last()})
        } else {
            let list = o::ModelList {
                object: "list".into(),
                data: visible
                    .iter()
                    .map(|n| o::ModelInfo {
                        id: (*n).clone(),
                        object: "model".into(),
                        created: 0,
                        owned_by: "switchboard".into(),
                    })
                    .collect(),
            };
            serde_json::to_value(list).unwrap_or_default()
        };
        json_response(StatusCode::OK, Bytes::from(body.to_string()), None)
    }

    fn model(&self, name: &str) -> Result<&Model> {
        self.shared
            .models
            .get(name)
            .ok_or_else(|| Error::UnknownModel(name.chars().take(200).collect()))
    }

    async fn chat(
        &self,
        mut input: ChatInput,
        body_len: usize,
        beta: Option<HeaderValue>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let (format, model_name, stream, include_usage, cap) = match &input {
            ChatInput::OpenAi(r) => (
                ApiFormat::OpenAi,
                r.model.as_str(),
                r.stream == Some(true),
                r.stream_options.as_ref().and_then(|s| s.include_usage) == Some(true),
                r.output_cap(),
            ),
            ChatInput::Anthropic(r) => (
                ApiFormat::Anthropic,
                r.model.as_str(),
                r.stream == Some(true),
                false,
                Some(r.max_tokens),
            ),
        };
        check_access(ctx, model_name)?;
        let model = self.model(model_name)?;
        // Roughly four bytes per token for the prompt, plus the (capped) output allowance.
        let estimate = body_len as u64 / 4
            + cap
                .unwrap_or(self.shared.estimate_cap)
                .min(self.shared.estimate_cap);
        // The caller's token budget (`policies.rate_limit.tokens`), settled in `Completion`.
        let reservation = match &ctx.tokens {
            Some(meter) => Some(meter.reserve(estimate).await?),
            None => None,
        };
        let start = Instant::now();
        let client = self.shared.deps.client.here();
        let max_response = self.shared.max_response_bytes;
        let outcome = model
            .pool
            .execute(|i| {
                let member = model.member(i);
                let body = native_body(&mut input, member);
                let beta = beta
                    .clone()
                    .filter(|_| member.kind == ProviderKind::Anthropic);
                async move {
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => return AttemptResult::Err(e),
                    };
                    let mut rb =
                        match member
                            .provider
                            .request(client, Operation::Chat, body, stream)
                        {
                            Ok(rb) => rb,
                            Err(e) => return AttemptResult::Err(e),
                        };
                    if let Some(beta) = beta {
                        rb = rb.header("anthropic-beta", beta);
                    }
                    attempt(rb, stream, max_response, &member.name).await
                }
            })
            .await;
        let mut done = Completion {
            metrics: self.shared.deps.metrics.clone(),
            labels: RequestLabels {
                gen_ai_operation_name: "chat",
                gen_ai_provider_name: String::new(),
                gen_ai_request_model: model.name.to_string(),
                gen_ai_response_model: String::new(),
                error_type: String::new(),
            },
            start,
            reservation,
            price: None,
            finished: false,
        };
        let (i, answer) = match outcome {
            Outcome::Served(i, a) => (i, a),
            Outcome::Failed(i, a) => (i, a),
            Outcome::Unavailable(e) => {
                done.labels.error_type = if matches!(e, Error::Timeout) {
                    "timeout".into()
                } else {
                    "unavailable".into()
                };
                done.finish(Some(Usage::default()));
                return Err(e.into());
            }
        };
        let member = model.member(i);
        done.labels.gen_ai_provider_name = member.name.to_string();
        done.labels.gen_ai_response_model = member.model.to_string();
        done.price = self.shared.prices.get(&*member.model).cloned();
        let native = member.provider.native();
        match answer {
            Answer::Error {
                status,
                message,
                retry_after,
            } => {
                done.labels.error_type = status.as_str().to_string();
                done.finish(Some(Usage::default()));
                Err(upstream_error(status, message, retry_after, member))
            }
            Answer::Body(bytes) => {
                let (out, usage) = match translate_body(format, native, &bytes, &member.model) {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(provider = %member.name, error = %e, "provider reply has the wrong shape");
                        done.labels.error_type = "protocol".into();
                        done.finish(Some(Usage::default()));
                        return Err(e.into());
                    }
                };
                done.finish(usage);
                Ok(json_response(StatusCode::OK, out, Some(member)))
            }
            Answer::Stream { first, rest } => {
                let translator =
                    StreamTranslator::new(format, native, include_usage, &member.model, unix_now())
                        .with_max_event(self.shared.max_event_bytes, &member.name);
                Ok(stream_response(translator, first, rest, done, member))
            }
        }
    }

    /// Embeddings and Responses: OpenAI-compatible providers only, body passed through with the
    /// model rewritten, response passed through.
    async fn passthrough(
        &self,
        op: Operation,
        body: Bytes,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let mut v: serde_json::Map<String, Value> = serde_json::from_slice(&body)
            .map_err(|e| Error::BadRequest(format!("invalid request body: {e}")))?;
        drop(body);
        let name = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest("`model` is required".into()))?;
        check_access(ctx, name)?;
        let model = self.model(name)?;
        let stream = v.get("stream").and_then(Value::as_bool) == Some(true);
        let client = self.shared.deps.client.here();
        let max_response = self.shared.max_response_bytes;
        let start = Instant::now();
        let outcome = model
            .pool
            .execute(|i| {
                let member = model.member(i);
                v.insert("model".into(), Value::String(member.model.to_string()));
                let body = serde_json::to_vec(&v).map(Bytes::from);
                async move {
                    if !member.provider.supports(op) {
                        // Not this provider's job: move on without judging its health.
                        let status = StatusCode::BAD_REQUEST;
                        let message = Some("this model does not support this endpoint".to_string());
                        return AttemptResult::Retry {
                            value: Answer::Error {
                                status,
                                message,
                                retry_after: None,
                            },
                            retry_after: Some(Duration::MAX),
                            failure: false,
                        };
                    }
                    let Ok(body) = body else {
                        return AttemptResult::Err(Error::BadRequest("invalid body".into()));
                    };
                    match member.provider.request(client, op, body, stream) {
                        Ok(rb) => attempt(rb, stream, max_response, &member.name).await,
                        Err(e) => AttemptResult::Err(e),
                    }
                }
            })
            .await;
        let (i, answer) = match outcome {
            Outcome::Served(i, a) | Outcome::Failed(i, a) => (i, a),
            Outcome::Unavailable(e) => return Err(e.into()),
        };
        let member = model.member(i);
        let op_name = if op == Operation::Embeddings {
            "embeddings"
        } else {
            "responses"
        };
        let labels = RequestLabels {
            gen_ai_operation_name: op_name,
            gen_ai_provider_name: member.name.to_string(),
            gen_ai_request_model: model.name.to_string(),
            gen_ai_response_model: member.model.to_string(),
            error_type: String::new(),
        };
        match answer {
            Answer::Error {
                status,
                message,
                retry_after,
            } => Err(upstream_error(status, message, retry_after, member)),
            Answer::Body(bytes) => {
                if op == Operation::Embeddings
                    && let Ok(r) = serde_json::from_slice::<o::EmbeddingsResponse>(&bytes)
                    && let Some(u) = r.usage.as_ref()
                {
                    let m = &self.shared.deps.metrics;
                    m.record_usage(
                        op_name,
                        &member.name,
                        &model.name,
                        &member.model,
                        &u.normalize(),
                    );
                }
                self.shared
                    .deps
                    .metrics
                    .record_duration(&labels, start.elapsed());
                Ok(json_response(StatusCode::OK, bytes, Some(member)))
            }
            Answer::Stream { first, rest } => {
                let body = futures::stream::once(async move { Ok::<_, reqwest::Error>(first) })
                    .chain(rest);
                let mut resp = http::Response::new(Body::from_stream(body));
                sse_headers(resp.headers_mut(), member);
                Ok(resp)
            }
        }
    }

    /// The attempt timeout (time to response headers and first bytes).
    pub fn attempt_timeout(&self) -> Duration {
        self.shared.attempt_timeout
    }
}

/// The request body in the member's native format.
///
/// A request already in the member's format is changed in place (its model name) rather than
/// copied: the caller's model name has been looked up by then, and what is set is the same for
/// every attempt at a member of this format.
fn native_body(input: &mut ChatInput, member: &Member) -> Result<Bytes> {
    let model = &*member.model;
    let v = match (input, member.provider.native()) {
        (ChatInput::OpenAi(r), UpstreamFormat::OpenAi) => {
            r.model = model.to_string();
            if r.stream == Some(true) {
                // Always ask for usage; the translator hides it if the caller did not.
                r.stream_options
                    .get_or_insert_with(Default::default)
                    .include_usage = Some(true);
            }
            serde_json::to_vec(&*r)?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Anthropic) => {
            serde_json::to_vec(&translate::anthropic::chat_to_messages(r, model))?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Gemini) => {
            serde_json::to_vec(&translate::gemini::chat_to_generate(r))?
        }
        (ChatInput::OpenAi(r), UpstreamFormat::Bedrock) => {
            serde_json::to_vec(&translate::bedrock::chat_to_converse(r))?
        }
        (ChatInput::Anthropic(r), UpstreamFormat::Anthropic) => {
            r.model = model.to_string();
            serde_json::to_vec(&*r)?
        }
        (ChatInput::Anthropic(r), native) => {
            let chat = translate::anthropic::messages_to_chat(r, model);
            match native {
                UpstreamFormat::Gemini => {
                    serde_json::to_vec(&translate::gemini::chat_to_generate(&chat))?
                }
                UpstreamFormat::Bedrock => {
                    serde_json::to_vec(&translate::bedrock::chat_to_converse(&chat))?
                }
                _ => serde_json::to_vec(&chat)?,
            }
        }
    };
    Ok(Bytes::from(v))
}

/// A complete native response in the caller's format, with its usage.
fn translate_body(
    format: ApiFormat,
    native: UpstreamFormat,
    bytes: &Bytes,
    model: &str,
) -> Result<(Bytes, Option<Usage>)> {
    let proto = |e: serde_json::Error| Error::Protocol(e.to_string());
    let now = unix_now();
    let chat: o::ChatResponse = match native {
        UpstreamFormat::Anthropic => {
            let r: a::MessagesResponse = serde_json::from_slice(bytes).map_err(proto)?;
            let usage = Some(r.usage.normalize());
            if format == ApiFormat::Anthropic {
                return Ok((bytes.clone(), usage));
            }
            let chat = translate::anthropic::messages_response_to_chat(&r, now);
            return Ok((Bytes::from(serde_json::to_vec(&chat)?), usage));
        }
        UpstreamFormat::OpenAi => {
            let r: o::ChatResponse = serde_json::from_slice(bytes).map_err(proto)?;
            if format == ApiFormat::OpenAi {
                let usage = r.usage.as_ref().map(o::Usage::normalize);
                return Ok((bytes.clone(), usage));
            }
            r
        }
        UpstreamFormat::Gemini => {
            let r: gemini::GenerateContentResponse =
                serde_json::from_slice(bytes).map_err(proto)?;
            translate::gemini::generate_to_chat(&r, model, now)
        }
        UpstreamFormat::Bedrock => {
            let r: bedrock::ConverseResponse = serde_json::from_slice(bytes).map_err(proto)?;
            let usage = r.usage.as_ref().map(bedrock::BedrockUsage::normalize);
            let chat = translate::bedrock::converse_to_chat(&r, model, now);
            let out = match format {
                ApiFormat::OpenAi => serde_json::to_vec(&chat)?,
                ApiFormat::Anthropic => {
                    serde_json::to_vec(&translate::anthropic::chat_response_to_messages(&chat))?
                }
            };
            return Ok((Bytes::from(out), usage));
        }
    };
    let usage = chat.usage.as_ref().map(o::Usage::normalize);
    let out = match format {
        ApiFormat::OpenAi => serde_json::to_vec(&chat)?,
        ApiFormat::Anthropic => {
            serde_json::to_vec(&translate::anthropic::chat_response_to_messages(&chat))?
        }
    };
    Ok((Bytes::from(out), usage))
}

/// Sends one attempt and classifies the answer. For streams the first body bytes are awaited
/// here, inside the attempt timeout, so a provider that sends headers and then stalls is
/// still failed over before anything reaches the client.
async fn attempt(
    rb: reqwest::RequestBuilder,
    stream: bool,
    max_response: usize,
    provider: &str,
) -> AttemptResult<Answer> {
    let resp = match rb.send().await {
        Ok(r) => r,
        Err(e) => return AttemptResult::Err(Error::Upstream(without_url(e))),
    };
    let status = resp.status();
    if status.is_success() {
        if !stream {
            return match read_bounded(resp, max_response).await {
                Ok(Ok(b)) => AttemptResult::Ok(Answer::Body(b)),
                Ok(Err(TooLarge)) => {
                    tracing::warn!(
                        provider,
                        limit = max_response,
                        "provider reply larger than llm.max_response_bytes"
                    );
                    AttemptResult::Err(Error::Protocol(format!(
                        "provider reply larger than {max_response} bytes"
                    )))
                }
                Err(e) => AttemptResult::Err(Error::Upstream(without_url(e))),
            };
        }
        let mut rest = resp.bytes_stream().boxed();
        loop {
            match rest.next().await {
                Some(Ok(first)) if first.is_empty() => continue,
                Some(Ok(first)) => return AttemptResult::Ok(Answer::Stream { first, rest }),
                Some(Err(e)) => return AttemptResult::Err(Error::Upstream(without_url(e))),
                None => return AttemptResult::Err(Error::Upstream("empty stream".into())),
            }
        }
    }
    let headers = resp.headers().clone();
    // Only the message matters: read the start of an error body, drop the rest unread.
    let body = match read_bounded(resp, MAX_ERROR_BODY).await {
        Ok(Ok(b)) => b,
        Ok(Err(TooLarge)) | Err(_) => Bytes::new(),
    };
    let retry_after = retry_after(&headers).or_else(|| body_retry_delay(&body));
    let value = Answer::Error {
        status,
        message: upstream_message(&body),
        retry_after,
    };
    match status.as_u16() {
        429 | 408 => AttemptResult::Retry {
            value,
            retry_after,
            failure: false,
        },
        500.. => AttemptResult::Retry {
            value,
            retry_after,
            failure: true,
        },
        // Credentials or model missing at this provider: the next provider may do better, and
        // waiting will not help.
        401 | 403 | 404 => AttemptResult::Retry {
            value,
            retry_after: Some(Duration::MAX),
            failure: true,
        },
        _ => AttemptResult::Reject(value),
    }
}

/// A provider reply over its size limit.
struct TooLarge;

/// Reads a reply body of at most `max` bytes: a larger one (declared or while reading) is
/// [`TooLarge`], and nothing beyond `max` is buffered.
async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
) -> reqwest::Result<Result<Bytes, TooLarge>> {
    let declared = resp.content_length().and_then(|n| usize::try_from(n).ok());
    if declared.is_some_and(|n| n > max) {
        return Ok(Err(TooLarge));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = resp.chunk().await? {
        if chunk.len() > max.saturating_sub(buf.len()) {
            return Ok(Err(TooLarge));
        }
        if buf.is_empty() && declared.is_none_or(|n| n == chunk.len()) {
            // One chunk is the whole body in the common case: keep it without a copy.
            if let Some(more) = resp.chunk().await? {
                if chunk.len() + more.len() > max {
                    return Ok(Err(TooLarge));
                }
                buf.extend_from_slice(&chunk);
                buf.extend_from_slice(&more);
                continue;
            }
            return Ok(Ok(chunk));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(buf.freeze()))
}

fn without_url(e: reqwest::Error) -> String {
    // Error strings include the URL; keep them out of client responses and logs.
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    kind.to_string()
}

/// `retry-after-ms`, then `retry-after` (seconds).
fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
    };
    if let Some(ms) = get("retry-after-ms") {
        return Duration::try_from_secs_f64(ms / 1000.0).ok();
    }
    get("retry-after").and_then(|s| Duration::try_from_secs_f64(s).ok())
}

/// A provider's error status after failover: passed on as it was ([`Error::Provider`]), with
/// the provider's identity and its retry hint.
fn upstream_error(
    status: StatusCode,
    message: Option<String>,
    retry_after: Option<Duration>,
    member: &Member,
) -> switchboard_core::Error {
    let mut headers = HeaderMap::new();
    identity_headers(&mut headers, member);
    if let Some(wait) = retry_after.filter(|d| *d < Duration::from_secs(86_400)) {
        if let Ok(v) = HeaderValue::try_from(wait.as_secs_f64().ceil().max(1.0).to_string()) {
            headers.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::try_from(wait.as_millis().to_string()) {
            headers.insert("retry-after-ms", v);
        }
    }
    switchboard_core::Error::from(Error::Provider { status, message }).with_headers(headers)
}

fn identity_headers(h: &mut HeaderMap, member: &Member) {
    if let Ok(v) = HeaderValue::from_str(&member.name) {
        h.insert("x-switchboard-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&member.model) {
        h.insert("x-switchboard-model", v);
    }
}

fn json_response(status: StatusCode, body: Bytes, member: Option<&Member>) -> http::Response<Body> {
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(m) = member {
        identity_headers(resp.headers_mut(), m);
    }
    resp
}

fn sse_headers(h: &mut HeaderMap, member: &Member) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    identity_headers(h, member);
}

/// End-of-request accounting: metrics, cost, token budget reconciliation. Runs once, also when
/// the client goes away mid-stream (on drop).
struct Completion {
    metrics: Metrics,
    labels: RequestLabels,
    start: Instant,
    reservation: Option<Box<dyn TokenReservation>>,
    price: Option<ModelPrice>,
    finished: bool,
}

impl Completion {
    fn finish(&mut self, usage: Option<Usage>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.metrics
            .record_duration(&self.labels, self.start.elapsed());
        if let Some(u) = usage.filter(|u| u.total() > 0) {
            let l = &self.labels;
            self.metrics.record_usage(
                "chat",
                &l.gen_ai_provider_name,
                &l.gen_ai_request_model,
                &l.gen_ai_response_model,
                &u,
            );
            if let Some(p) = &self.price {
                self.metrics.record_cost(
                    &l.gen_ai_provider_name,
                    &l.gen_ai_response_model,
                    cost(p, &u),
                );
            }
        }
        if let Some(reservation) = self.reservation.take() {
            // Without observed usage keep the estimate: under-charging is the worse error.
            let actual = usage.map_or(reservation.reserved(), |u| u.total());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(reservation.settle(actual));
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The most bytes of provider events merged into one write to the client.
const MERGE_MAX: usize = 64 * 1024;

struct StreamState {
    translator: StreamTranslator,
    first: Option<Bytes>,
    rest: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    done: Completion,
    ttft_recorded: bool,
    ended: bool,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // The client went away mid-stream: account for what the provider reported so far.
        let usage = self.translator.usage();
        self.done.finish(usage);
    }
}

fn stream_response(
    translator: StreamTranslator,
    first: Bytes,
    rest: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    done: Completion,
    member: &Member,
) -> http::Response<Body> {
    let state = StreamState {
        translator,
        first: Some(first),
        rest,
        done,
        ttft_recorded: false,
        ended: false,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            let mut out = BytesMut::new();
            let mut next = match s.first.take() {
                Some(b) => Some(Ok(b)),
                None => s.rest.next().await,
            };
            let content_before = s.translator.content_seen();
            loop {
                match next {
                    Some(Ok(chunk)) => s.translator.feed(&chunk, &mut out),
                    Some(Err(e)) => {
                        tracing::debug!(error = %without_url(e), "upstream stream failed");
                        s.translator.finish(&mut out);
                        s.ended = true;
                    }
                    None => {
                        s.translator.finish(&mut out);
                        s.ended = true;
                    }
                }
                // The first token leaves at once; before it (role and block preambles) and
                // after it, events the provider connection has already read are merged into
                // one write (one wake-up of the client instead of one per event). The
                // provider connection's task hands over one chunk at a time, so take the next
                // chunk only if it is there within two turns: never wait for the provider.
                let first_token = !content_before && s.translator.content_seen();
                if s.ended
                    || first_token
                    || s.translator.is_complete()
                    || s.translator.is_errored()
                    || out.len() >= MERGE_MAX
                {
                    break;
                }
                // The connection task needs a turn or two to decode the next chunk from
                // what it has read; if it is not there by then, the provider has not sent it.
                let mut more = s.rest.next().now_or_never();
                for _ in 0..2 {
                    if more.is_some() {
                        break;
                    }
                    tokio::task::yield_now().await;
                    more = s.rest.next().now_or_never();
                }
                match more {
                    Some(more) => next = more,
                    None => break,
                }
            }
            if !s.ttft_recorded && s.translator.content_seen() {
                s.ttft_recorded = true;
                s.done
                    .metrics
                    .record_ttft(&s.done.labels, s.done.start.elapsed());
            }
            if s.ended || s.translator.is_complete() || s.translator.is_errored() {
                s.ended = true;
                if s.translator.is_errored() && s.done.labels.error_type.is_empty() {
                    s.done.labels.error_type = "stream_error".into();
                }
                let usage = s.translator.usage();
                s.done.finish(usage);
            }
            if !out.is_empty() {
                return Some((Ok::<Bytes, std::io::Error>(out.freeze()), s));
            }
        }
    });
    let mut resp = http::Response::new(Body::from_stream(body));
    sse_headers(resp.headers_mut(), member);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_by_suffix() {
        assert_eq!(
            Front::from_path("/v1/chat/completions"),
            Some(Front::ChatCompletions)
        );
        assert_eq!(Front::from_path("/llm/v1/messages"), Some(Front::Messages));
        assert_eq!(Front::from_path("/v1/embeddings/"), Some(Front::Embeddings));
        assert_eq!(Front::from_path("/v1/models"), Some(Front::Models));
        assert_eq!(Front::from_path("/v1/responses"), Some(Front::Responses));
        assert_eq!(Front::from_path("/v1/other"), None);
    }

    #[tokio::test]
    async fn reload_keeps_pool_state_of_unchanged_models() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg: LlmConfig = serde_json::from_value(serde_json::json!({"models": [
            {"name": "a", "providers": [{"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9"}]},
            {"name": "b", "providers": [{"provider": "openai", "model": "m", "base_url": "http://127.0.0.1:9"}]}]}))
        .unwrap();
        let deps = LlmDeps {
            client: ProviderClients::new(reqwest::Client::new),
            metrics: Metrics::unregistered(),
        };
        let first = LlmBackend::new(&cfg, deps.clone()).unwrap();
        for _ in 0..3 {
            first.shared.models["a"].pool.on_failure(0);
            first.shared.models["b"].pool.on_failure(0);
        }
        let mut changed = cfg.clone();
        changed.models[1].providers[0].model = "other".into();
        let second = first.reload(&changed, deps).unwrap();
        assert_eq!(
            second.shared.models["a"].pool.health(0),
            crate::pool::Health::Ejected
        );
        assert_eq!(
            second.shared.models["b"].pool.health(0),
            crate::pool::Health::Up
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }
}
