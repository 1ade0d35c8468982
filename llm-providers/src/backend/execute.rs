//! The execution engine: one request through its model's provider pool. The pool picks the
//! attempt order and runs attempts, failover and retries ([`crate::pool`]); each attempt here
//! sends the request in the provider's API and classifies the answer (a body, a stream whose
//! first bytes arrived, or an error status with its retry hint) before anything reaches the
//! client. The answer then becomes the response: translated ([`super::native`]), streamed
//! ([`super::stream`]), or the provider's error passed on.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde_json::Value;
use switchboard_core::RequestContext;
use tokio::time::Instant;

use super::meter::{Reserved, UsageTap, body_usage};
use super::native::{native_body, translate_body};
use super::stream::{BodyError, Completion, ProviderStream, stream_response};
use super::{ChatInput, LlmBackend, check_access, identity_headers, json_response, sse_headers};
use crate::Error;
use crate::config::ProviderKind;
use crate::format::{ApiFormat, Usage};
use crate::metrics::{RequestLabels, unset as unknown};
use crate::pool::{AttemptResult, Outcome};
use crate::provider::{Member, Operation};
use crate::translate::errors::{body_retry_delay, upstream_message};
use crate::translate::stream::StreamTranslator;
use crate::translate::unix_now;

/// Largest provider error body read (only its message is used; the rest is dropped unread).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The CLIENT span of one attempt at `member` (GenAI semantic conventions), named
/// `{operation} {model}`. `n` counts attempts of the request from 1 (retries and failovers).
fn attempt_span(
    parent: &switchboard_core::Trace,
    op: &'static str,
    model: &str,
    member: &Member,
    n: u32,
) -> switchboard_core::Trace {
    use opentelemetry::KeyValue;
    parent.child(
        format!("{op} {model}"),
        switchboard_core::trace::Kind::Client,
        vec![
            KeyValue::new("gen_ai.operation.name", op),
            KeyValue::new("gen_ai.request.model", model.to_owned()),
            KeyValue::new("gen_ai.response.model", member.model.to_string()),
            KeyValue::new("gen_ai.provider.name", semconv_provider(member.kind)),
            KeyValue::new("switchboard.llm.provider", member.name.to_string()),
            KeyValue::new("switchboard.attempt", i64::from(n)),
        ],
    )
}

/// `gen_ai.provider.name`'s well-known values.
fn semconv_provider(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai => "openai",
        ProviderKind::AzureOpenai => "azure.ai.openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Gemini => "gcp.gemini",
        ProviderKind::Bedrock => "aws.bedrock",
    }
}

/// Ends an attempt's span with its outcome, or hands a served one to `served` (the chat
/// completion sets its usage and ends it).
fn close_attempt(
    span: Option<switchboard_core::Trace>,
    r: &AttemptResult<Answer>,
    served: Option<&std::sync::Mutex<Option<switchboard_core::Trace>>>,
) {
    use opentelemetry::KeyValue;
    let Some(span) = span else { return };
    match r {
        AttemptResult::Ok(_) => {
            span.set(KeyValue::new("http.response.status_code", 200i64));
            if let Some(cell) = served {
                *cell
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(span);
                return;
            }
        }
        AttemptResult::Retry { value, .. } | AttemptResult::Reject(value) => {
            if let Answer::Error { status, .. } = value {
                span.set(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                span.error(status.as_str().to_owned());
            }
        }
        AttemptResult::Err(e) => span.error(match e {
            Error::Timeout => "timeout",
            Error::Upstream(_) => "unavailable",
            _ => "error",
        }),
    }
    span.end();
}

/// A provider's answer to one attempt.
enum Answer {
    Body(Bytes),
    Stream {
        first: Bytes,
        rest: ProviderStream,
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

impl LlmBackend {
    pub(super) async fn chat(
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
            ChatInput::Passed(p) => (
                ApiFormat::OpenAi,
                p.model.as_str(),
                p.stream,
                p.include_usage,
                p.cap,
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
        // `llm.cache`: a hit is answered here, without a provider call or a token reservation.
        let cached = match self.cache() {
            Some(cache) => {
                // The caller's bytes when kept, else the typed request encoded.
                let encoded = match &input {
                    ChatInput::OpenAi(r) => serde_json::to_vec(r).map(Cow::Owned),
                    ChatInput::Passed(p) => Ok(Cow::Borrowed(p.body())),
                    ChatInput::Anthropic(r) => serde_json::to_vec(r).map(Cow::Owned),
                };
                let key = encoded
                    .ok()
                    .and_then(|b| cache.key(ctx, format, &b, model_name));
                match key {
                    Some(key) => {
                        if let Some(hit) = cache.get(&key).await {
                            // Spend counts the hit as a request at no cost.
                            if let Some(meter) = ctx.spend.clone()
                                && let Ok(rt) = tokio::runtime::Handle::try_current()
                            {
                                let (provider, served) = (hit.provider.clone(), hit.model.clone());
                                rt.spawn(async move { meter.cached(&provider, &served).await });
                            }
                            return Ok(super::cached::hit_response(
                                hit,
                                format,
                                stream,
                                include_usage,
                            ));
                        }
                        Some((cache.clone(), key))
                    }
                    None => None,
                }
            }
            None => None,
        };
        // Roughly four bytes per token for the prompt, plus the (capped) output allowance,
        // against the caller's token budget and (priced) its spend budgets; settled in
        // `Completion`.
        let Reserved {
            tokens: reservation,
            spend,
        } = self.reserve(ctx, model, body_len as u64 / 4, cap).await?;
        let start = Instant::now();
        let client = self.shared.deps.client.here();
        let direct = self.shared.deps.client.direct_here();
        let max_response = self.shared.max_response_bytes;
        // Tracing: one client span per attempt; the served one is kept for the usage.
        let served = std::sync::Mutex::new(None);
        let mut tries = 0u32;
        let outcome = model
            .pool
            .execute(|i| {
                let member = model.member(i);
                tries += 1;
                let span = ctx
                    .trace
                    .as_ref()
                    .map(|t| attempt_span(t, "chat", &model.name, member, tries));
                let served = &served;
                let body = native_body(&mut input, member);
                let beta = beta
                    .clone()
                    .filter(|_| member.kind == ProviderKind::Anthropic);
                async move {
                    let body = match body {
                        Ok(b) => b,
                        Err(e) => return AttemptResult::Err(e),
                    };
                    // Plain HTTP to an OpenAI-compatible provider: without reqwest's layers
                    // (`direct`); a redirect goes on through reqwest below.
                    if span.is_none()
                        && beta.is_none()
                        && let Some(target) = member.provider.direct(Operation::Chat, stream)
                        && let Some(r) = attempt_direct(
                            direct,
                            target,
                            body.clone(),
                            stream,
                            max_response,
                            &member.name,
                        )
                        .await
                    {
                        return r;
                    }
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
                    let r = attempt(rb, stream, max_response, &member.name, span.as_ref()).await;
                    close_attempt(span, &r, Some(served));
                    r
                }
            })
            .await;
        let mut done = Completion {
            metrics: self.shared.deps.metrics.clone(),
            labels: RequestLabels {
                gen_ai_operation_name: "chat",
                gen_ai_provider_name: unknown(),
                gen_ai_request_model: model.name.clone(),
                gen_ai_response_model: unknown(),
                error_type: Cow::Borrowed(""),
            },
            start,
            reservation,
            spend,
            price: None,
            finished: false,
            span: served
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        };
        let (i, answer) = match outcome {
            Outcome::Served(i, a) => (i, a),
            Outcome::Failed(i, a) => (i, a),
            Outcome::Unavailable(e) => {
                done.unavailable(&e);
                return Err(e.into());
            }
        };
        let member = model.member(i);
        done.served_by(member, self.shared.prices.get(&*member.model).cloned());
        let native = member.provider.native();
        match answer {
            Answer::Error {
                status,
                message,
                retry_after,
            } => {
                done.labels.error_type = Cow::Owned(status.as_str().to_string());
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
                // Kept as the bytes the caller gets, in the background.
                if let Some((cache, key)) = cached {
                    cache.put_body(key, &member.name, &member.model, out.clone());
                }
                let mut resp = json_response(StatusCode::OK, out, Some(member));
                if self.cache().is_some() {
                    super::cached::mark(&mut resp, "miss");
                }
                Ok(resp)
            }
            Answer::Stream { first, rest } => {
                let translator =
                    StreamTranslator::new(format, native, include_usage, &member.model, unix_now())
                        .with_max_event(self.shared.max_event_bytes, &member.name);
                let resp = stream_response(translator, first, rest, done, member).await;
                Ok(match cached {
                    Some((cache, key)) => super::cached::tee_stream(
                        resp,
                        cache,
                        key,
                        format,
                        member.name.to_string(),
                        member.model.to_string(),
                    ),
                    None => resp,
                })
            }
        }
    }

    /// Embeddings and Responses: OpenAI-compatible providers only, body passed through with the
    /// model rewritten, response passed through.
    pub(super) async fn passthrough(
        &self,
        op: Operation,
        body: Bytes,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let v: serde_json::Map<String, Value> =
            serde_json::from_slice(&body).map_err(|e| Error::invalid_body(&e))?;
        let len = body.len();
        drop(body);
        self.passthrough_json(op, v, None, Some(len), ctx).await
    }

    /// [`LlmBackend::passthrough`] of a body parsed already; `beta` is the caller's
    /// `anthropic-beta`, passed on to Anthropic providers. With `priced` (the body's length)
    /// the request is metered like a chat request: reserved against the caller's token and
    /// spend budgets before it is sent, settled with the usage the answer reports.
    pub(super) async fn passthrough_json(
        &self,
        op: Operation,
        mut v: serde_json::Map<String, Value>,
        beta: Option<HeaderValue>,
        priced: Option<usize>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let name = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest("`model` is required".into()))?;
        check_access(ctx, name)?;
        let model = self.model(name)?;
        let stream = v.get("stream").and_then(Value::as_bool) == Some(true);
        let reserved = match priced {
            Some(len) => {
                // Embeddings generate nothing; a Responses request may cap its output.
                let output = match op {
                    Operation::Embeddings => Some(0),
                    _ => v.get("max_output_tokens").and_then(Value::as_u64),
                };
                Some(self.reserve(ctx, model, len as u64 / 4, output).await?)
            }
            None => None,
        };
        let client = self.shared.deps.client.here();
        let max_response = self.shared.max_response_bytes;
        let start = Instant::now();
        let op_name = match op {
            Operation::Embeddings => "embeddings",
            Operation::CountTokens => "count_tokens",
            Operation::InputTokens => "input_tokens",
            Operation::Chat | Operation::Responses => "responses",
        };
        let mut tries = 0u32;
        let outcome = model
            .pool
            .execute(|i| {
                let member = model.member(i);
                tries += 1;
                let span = ctx
                    .trace
                    .as_ref()
                    .map(|t| attempt_span(t, op_name, &model.name, member, tries));
                v.insert("model".into(), Value::String(member.model.to_string()));
                let body = serde_json::to_vec(&v).map(Bytes::from);
                let beta = beta
                    .clone()
                    .filter(|_| member.kind == ProviderKind::Anthropic);
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
                    let r = match member.provider.request(client, op, body, stream) {
                        Ok(mut rb) => {
                            if let Some(beta) = beta {
                                rb = rb.header("anthropic-beta", beta);
                            }
                            attempt(rb, stream, max_response, &member.name, span.as_ref()).await
                        }
                        Err(e) => AttemptResult::Err(e),
                    };
                    close_attempt(span, &r, None);
                    r
                }
            })
            .await;
        let (tokens, spend) = reserved.map_or((None, None), |r| (r.tokens, r.spend));
        let mut done = Completion {
            metrics: self.shared.deps.metrics.clone(),
            labels: RequestLabels {
                gen_ai_operation_name: op_name,
                gen_ai_provider_name: unknown(),
                gen_ai_request_model: model.name.clone(),
                gen_ai_response_model: unknown(),
                error_type: Cow::Borrowed(""),
            },
            start,
            reservation: tokens,
            spend,
            price: None,
            finished: false,
            span: None,
        };
        let (i, answer) = match outcome {
            Outcome::Served(i, a) | Outcome::Failed(i, a) => (i, a),
            Outcome::Unavailable(e) => {
                done.unavailable(&e);
                return Err(e.into());
            }
        };
        let member = model.member(i);
        done.served_by(member, self.shared.prices.get(&*member.model).cloned());
        match answer {
            Answer::Error {
                status,
                message,
                retry_after,
            } => {
                done.labels.error_type = Cow::Owned(status.as_str().to_string());
                done.finish(Some(Usage::default()));
                Err(upstream_error(status, message, retry_after, member))
            }
            Answer::Body(bytes) => {
                done.finish(body_usage(op, &bytes));
                Ok(json_response(StatusCode::OK, bytes, Some(member)))
            }
            Answer::Stream { first, rest } => {
                let body = futures::stream::once(futures::future::ready(Ok::<_, BodyError>(first)))
                    .chain(rest);
                let body = UsageTap::new(body, done, self.shared.max_event_bytes);
                let mut resp = http::Response::new(Body::from_stream(body));
                sse_headers(resp.headers_mut(), member);
                Ok(resp)
            }
        }
    }
}

/// Sends one attempt and classifies the answer. For streams the first body bytes are awaited
/// here, inside the attempt timeout, so a provider that sends headers and then stalls is
/// still failed over before anything reaches the client.
async fn attempt(
    rb: reqwest::RequestBuilder,
    stream: bool,
    max_response: usize,
    provider: &str,
    span: Option<&switchboard_core::Trace>,
) -> AttemptResult<Answer> {
    let sent = match span {
        None => rb.send().await,
        Some(span) => {
            let (client, req) = rb.build_split();
            match req {
                Ok(mut req) => {
                    use opentelemetry::KeyValue;
                    if let Some(host) = req.url().host_str() {
                        span.set(KeyValue::new("server.address", host.to_owned()));
                    }
                    if let Some(port) = req.url().port_or_known_default() {
                        span.set(KeyValue::new("server.port", i64::from(port)));
                    }
                    span.inject(req.headers_mut());
                    client.execute(req).await
                }
                Err(e) => Err(e),
            }
        }
    };
    let resp = match sent {
        Ok(r) => r,
        Err(e) => return AttemptResult::Err(Error::Upstream(without_url(e))),
    };
    let status = resp.status();
    if status.is_success() {
        if !stream {
            return match read_bounded(resp, max_response).await {
                Ok(Ok(b)) => AttemptResult::Ok(Answer::Body(b)),
                Ok(Err(TooLarge)) => too_large(provider, max_response),
                Err(e) => AttemptResult::Err(Error::Upstream(without_url(e))),
            };
        }
        let rest = resp
            .bytes_stream()
            .map(|r| r.map_err(|e| BodyError(error_kind(&e))))
            .boxed();
        return first_bytes(rest).await;
    }
    let headers = resp.headers().clone();
    // Only the message matters: read the start of an error body, drop the rest unread.
    let body = match read_bounded(resp, MAX_ERROR_BODY).await {
        Ok(Ok(b)) => b,
        Ok(Err(TooLarge)) | Err(_) => Bytes::new(),
    };
    error_answer(status, &headers, &body)
}

/// A stream's answer once its first bytes arrived (awaited inside the attempt, so a provider
/// that sends its head and then stalls or fails is still failed over).
async fn first_bytes(mut rest: ProviderStream) -> AttemptResult<Answer> {
    loop {
        match rest.next().await {
            Some(Ok(first)) if first.is_empty() => continue,
            Some(Ok(first)) => return AttemptResult::Ok(Answer::Stream { first, rest }),
            Some(Err(e)) => return AttemptResult::Err(Error::Upstream(e.0.to_string())),
            None => return AttemptResult::Err(Error::Upstream("empty stream".into())),
        }
    }
}

/// A successful reply over `llm.max_response_bytes`.
fn too_large(provider: &str, max_response: usize) -> AttemptResult<Answer> {
    tracing::warn!(
        provider,
        limit = max_response,
        "provider reply larger than llm.max_response_bytes"
    );
    AttemptResult::Err(Error::Protocol(format!(
        "provider reply larger than {max_response} bytes"
    )))
}

/// A provider's error status, its headers and the start of its body, classified: retried
/// elsewhere (and whether it counts against the provider's health), or passed on.
fn error_answer(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> AttemptResult<Answer> {
    let retry_after = retry_after(headers).or_else(|| body_retry_delay(body));
    let value = Answer::Error {
        status,
        message: upstream_message(body),
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

/// [`attempt`] on hyper's client ([`super::direct`]); `None` for a redirect, which the caller
/// sends again through reqwest.
async fn attempt_direct(
    client: &super::direct::DirectClient,
    target: &crate::provider::DirectTarget,
    body: Bytes,
    stream: bool,
    max_response: usize,
    provider: &str,
) -> Option<AttemptResult<Answer>> {
    use super::direct::{Opened, Sent};
    if stream {
        return Some(
            match super::direct::open(client, target, body, MAX_ERROR_BODY).await {
                Opened::Stream(body) => first_bytes(super::direct::data_stream(body)).await,
                Opened::Reply(status, headers, body) => error_answer(status, &headers, &body),
                Opened::Failed(kind) => AttemptResult::Err(Error::Upstream(kind.to_string())),
                Opened::Redirect => return None,
            },
        );
    }
    Some(
        match super::direct::send(client, target, body, max_response, MAX_ERROR_BODY).await {
            Sent::Reply(status, _, Ok(b)) if status.is_success() => {
                AttemptResult::Ok(Answer::Body(b))
            }
            Sent::Reply(status, _, Err(TooLarge)) if status.is_success() => {
                too_large(provider, max_response)
            }
            Sent::Reply(status, headers, body) => {
                error_answer(status, &headers, &body.unwrap_or_default())
            }
            Sent::Failed(kind) => AttemptResult::Err(Error::Upstream(kind.to_string())),
            Sent::Redirect => return None,
        },
    )
}

/// A provider reply over its size limit.
pub(super) struct TooLarge;

/// Reads a reply body of at most `max` bytes: a larger one (declared or while reading) is
/// [`TooLarge`], and nothing beyond `max` is buffered.
async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
) -> reqwest::Result<Result<Bytes, TooLarge>> {
    let declared = resp.content_length().and_then(|n| usize::try_from(n).ok());
    read_chunks_bounded(resp, declared, max).await
}

/// A reply body read chunk by chunk: reqwest's, or hyper's ([`super::direct`]).
pub(super) trait Chunks: Send {
    type Error;
    /// The next chunk of data; `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, Self::Error>> + Send;
}

impl Chunks for reqwest::Response {
    type Error = reqwest::Error;
    fn next_chunk(&mut self) -> impl Future<Output = reqwest::Result<Option<Bytes>>> + Send {
        self.chunk()
    }
}

/// The bounded read of [`read_bounded`] on any [`Chunks`] whose length is `declared` (when the
/// reply says).
pub(super) async fn read_chunks_bounded<C: Chunks>(
    mut body: C,
    declared: Option<usize>,
    max: usize,
) -> Result<Result<Bytes, TooLarge>, C::Error> {
    if declared.is_some_and(|n| n > max) {
        return Ok(Err(TooLarge));
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = body.next_chunk().await? {
        if chunk.len() > max.saturating_sub(buf.len()) {
            return Ok(Err(TooLarge));
        }
        if buf.is_empty() && declared.is_none_or(|n| n == chunk.len()) {
            // One chunk is the whole body in the common case: keep it without a copy.
            if let Some(more) = body.next_chunk().await? {
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
    error_kind(&e).to_string()
}

/// A reqwest error's kind: error strings include the URL; keep them out of client responses
/// and logs.
fn error_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
    }
}
