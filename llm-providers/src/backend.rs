//! The `llm` route backend's HTTP front: which endpoint a request addresses ([`Front`]), its
//! body parsed into the caller's API types, the model looked up and the caller's access to it
//! checked, `/models` answered, and the response headers every answer carries. What happens
//! to a request once it names a model is the execution engine's:
//!
//! * `execute`: one request through the model's provider pool (attempts, failover,
//!   retries: [`crate::pool`]), the provider's answer classified, the token budget reserved;
//! * `direct`: a plain-HTTP, non-streaming provider call on hyper's client, without
//!   reqwest's per-request layers (everything else goes through reqwest);
//! * `native`: the request in each provider's API and the answer back in the caller's;
//! * `stream`: the streaming hand-off to the client, and end-of-request accounting.
//!
//! `status` is a read-only view of the models and their pools' health (the admin UI's).

mod cached;
mod count;
mod direct;
mod execute;
mod meter;
mod native;
mod passed;
mod status;
mod stream;

pub use status::{ModelStatus, ProviderStatus};

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde_json::Value;
use switchboard_core::{Item, RequestContext};

use crate::config::{LlmConfig, LlmTimeouts, ModelConfig, ModelPrice, OutlierConfig, RetryConfig};
use crate::format::ApiFormat;
use crate::format::anthropic as a;
use crate::format::openai as o;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::provider::{self, Member, Operation};
use crate::{Error, Result};

/// The caller may use `model`: the gateway's say (its `authz` rules on `llm.model`, an API
/// key's model list); a refused model is 403 and is left out of `/models`.
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
///
/// Beside each reqwest client, a hyper client for the calls that need none of reqwest's layers
/// (plain `http://` chat to OpenAI-compatible providers: `direct`), configured as reqwest's
/// defaults are; `build` is expected to make a client with reqwest's defaults for plain HTTP
/// (the gateway's sets only `tcp_nodelay`, a default too).
#[derive(Clone)]
pub struct ProviderClients {
    build: Arc<dyn Fn() -> reqwest::Client + Send + Sync>,
    per_thread: Arc<thread_local::ThreadLocal<reqwest::Client>>,
    /// Each thread's own HTTP/1.1 connections ([`switchboard_core::h1pool`]).
    direct: direct::DirectClient,
}

impl ProviderClients {
    /// Clients made by `build`, once per thread on first use.
    pub fn new(build: impl Fn() -> reqwest::Client + Send + Sync + 'static) -> Self {
        ProviderClients {
            build: Arc::new(build),
            per_thread: Arc::default(),
            direct: direct::DirectClient::new(),
        }
    }

    /// This thread's client.
    pub fn here(&self) -> &reqwest::Client {
        self.per_thread.get_or(|| (self.build)())
    }

    /// The hyper client for direct calls (its connections are this thread's).
    fn direct_here(&self) -> &direct::DirectClient {
        &self.direct
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
    /// `POST …/messages/count_tokens` (Anthropic token counting).
    CountTokens,
    /// `POST …/responses/input_tokens` (OpenAI token counting).
    InputTokens,
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
            ("/messages/count_tokens", Front::CountTokens),
            ("/responses/input_tokens", Front::InputTokens),
        ]
        .into_iter()
        .find(|(suffix, _)| path.ends_with(suffix))
        .map(|(_, f)| f)
    }

    /// The API format the caller of `path` speaks (OpenAI unless it is a `/messages` path): the
    /// format of every error on an `llm` route, the gateway's own (a request-limit 429, a body
    /// over `limits.json`) and the backend's (what [`LlmBackend::handle`] returns), which the
    /// gateway renders at its edge. A function of the path alone, so the gateway knows it
    /// before the backend runs and no error has to carry it; streams use the same rule.
    pub fn format_for_path(path: &str) -> ApiFormat {
        Front::from_path(path).map_or(ApiFormat::OpenAi, Front::format)
    }

    /// The API format of the endpoint's errors and streams.
    pub fn format(self) -> ApiFormat {
        if matches!(self, Front::Messages | Front::CountTokens) {
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
    /// `llm.virtual_models`, compiled.
    routes: crate::routing::Routes,
    /// `llm.cache`.
    cache_config: Option<crate::config::CacheConfig>,
    /// The memory store of `llm.cache` (kept across reloads while the block is unchanged).
    memory_cache: Option<crate::cache::MemoryStore>,
    /// The response cache: set at build for a memory store, by the gateway for Redis.
    cache: std::sync::OnceLock<crate::cache::ResponseCache>,
    deps: LlmDeps,
}

/// The LLM backend of one route (cheap to clone; rebuilt on every config load).
#[derive(Debug, Clone)]
pub struct LlmBackend {
    shared: Arc<Shared>,
}

/// The parsed request of a chat endpoint.
enum ChatInput {
    OpenAi(o::ChatRequest),
    /// An OpenAI request kept as the caller's bytes, for OpenAI-compatible providers; made
    /// [`ChatInput::OpenAi`] the first time a provider of another API needs the tree.
    Passed(passed::PassedChat),
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
        let cache_config = config.cache.clone();
        let memory_cache = cache_config
            .as_ref()
            .filter(|c| c.store == crate::config::CacheStoreKind::Memory)
            .map(|c| {
                previous
                    .filter(|p| p.shared.cache_config.as_ref() == Some(c))
                    .and_then(|p| p.shared.memory_cache.clone())
                    .unwrap_or_else(|| crate::cache::MemoryStore::new(c.max_entries, c.max_bytes))
            });
        let cache = std::sync::OnceLock::new();
        if let (Some(c), Some(m)) = (&cache_config, &memory_cache) {
            let _ = cache.set(
                crate::cache::ResponseCache::new(c, Arc::new(m.clone()))
                    .with_metrics(deps.metrics.clone()),
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
                routes: crate::routing::Routes::compile(&config.virtual_models)
                    .map_err(Error::Config)?,
                cache_config,
                memory_cache,
                cache,
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
        // Routing rules see the headers; only kept when the route has any.
        let headers = (!self.shared.routes.is_empty()).then(|| req.headers().clone());
        let body = axum::body::to_bytes(req.into_body(), usize::MAX)
            .await
            .map_err(|_| Error::BodyUnreadable)?;
        let routed = match &headers {
            Some(h) if front != Front::Embeddings && front != Front::Responses => {
                self.route(&body, h, front, ctx)?
            }
            _ => None,
        };
        // A routed request was allowed its virtual name; its target is the route's choice.
        let unrestricted;
        let ctx = match &routed {
            Some(_) => {
                unrestricted = RequestContext {
                    access: None,
                    ..ctx.clone()
                };
                &unrestricted
            }
            None => ctx,
        };
        let resp = match front {
            // Once parsed, the raw body is dropped: it is not held through the provider call.
            Front::ChatCompletions => match passed::PassedChat::parse(body) {
                Ok(mut p) => {
                    if let Some(to) = &routed {
                        p.model = to.to_string();
                    }
                    let len = p.len();
                    self.chat(ChatInput::Passed(p), len, None, ctx).await
                }
                // Not of the shape: the typed parse says why (or serves it, should the
                // borrowed parse be the stricter one).
                Err(body) => match serde_json::from_slice::<o::ChatRequest>(&body) {
                    Ok(mut r) => {
                        let len = body.len();
                        drop(body);
                        if let Some(to) = &routed {
                            r.model = to.to_string();
                        }
                        self.chat(ChatInput::OpenAi(r), len, None, ctx).await
                    }
                    Err(e) => Err(Error::invalid_body(&e).into()),
                },
            },
            Front::Messages => match serde_json::from_slice::<a::MessagesRequest>(&body) {
                Ok(mut r) => {
                    let len = body.len();
                    drop(body);
                    if let Some(to) = &routed {
                        r.model = to.to_string();
                    }
                    self.chat(ChatInput::Anthropic(r), len, beta, ctx).await
                }
                Err(e) => Err(Error::invalid_body(&e).into()),
            },
            Front::Embeddings => self.passthrough(Operation::Embeddings, body, ctx).await,
            Front::Responses => self.passthrough(Operation::Responses, body, ctx).await,
            Front::CountTokens => {
                self.count_tokens(Operation::CountTokens, body, routed.clone(), beta, ctx)
                    .await
            }
            Front::InputTokens => {
                self.count_tokens(Operation::InputTokens, body, routed.clone(), None, ctx)
                    .await
            }
            Front::Models => unreachable!("handled above"),
        };
        resp.map(|mut r| {
            if let Some(to) = routed
                && let Ok(v) = HeaderValue::from_str(&to)
            {
                r.headers_mut().insert("x-switchboard-routed-to", v);
            }
            r
        })
    }

    /// The model a request for a virtual model (`llm.virtual_models`) goes to, after checking
    /// the caller may use the virtual name; `None` for any other model name.
    fn route(
        &self,
        body: &[u8],
        headers: &HeaderMap,
        front: Front,
        ctx: &RequestContext,
    ) -> Result<Option<Arc<str>>> {
        /// Only the model: requests for pools are not parsed into a tree here.
        #[derive(serde::Deserialize)]
        struct Named<'a> {
            #[serde(borrow)]
            model: Option<std::borrow::Cow<'a, str>>,
        }
        let named = serde_json::from_slice::<Named<'_>>(body).ok();
        let Some(name) = named.as_ref().and_then(|n| n.model.as_deref()) else {
            // Not an object with a model: the endpoint's own parse reports it.
            return Ok(None);
        };
        if !self.shared.routes.is_virtual(name) {
            return Ok(None);
        }
        let Ok(Value::Object(parsed)) = serde_json::from_slice::<Value>(body) else {
            return Ok(None);
        };
        check_access(ctx, name)?;
        let facts = crate::routing::Facts {
            headers,
            ctx,
            body: &parsed,
            format: front.format(),
        };
        Ok(self.shared.routes.resolve(name, &facts))
    }

    fn models(&self, headers: &HeaderMap, ctx: &RequestContext) -> http::Response<Body> {
        let visible: Vec<&String> = self
            .shared
            .order
            .iter()
            .chain(self.shared.routes.names())
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
        json_response(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            None,
        )
    }

    fn model(&self, name: &str) -> Result<&Model> {
        self.shared
            .models
            .get(name)
            .ok_or_else(|| Error::UnknownModel(name.chars().take(200).collect()))
    }

    /// The attempt timeout (time to response headers and first bytes).
    pub fn attempt_timeout(&self) -> Duration {
        self.shared.attempt_timeout
    }
}

const PROVIDER_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchboard-provider");
const MODEL_HEADER: http::HeaderName = http::HeaderName::from_static("x-switchboard-model");

/// The member's identity headers, their values built once with the member.
fn identity_headers(h: &mut HeaderMap, member: &Member) {
    let [provider, model] = &member.identity;
    if let Some(v) = provider {
        h.insert(PROVIDER_HEADER, v.clone());
    }
    if let Some(v) = model {
        h.insert(MODEL_HEADER, v.clone());
    }
}

fn identity_headers_of(h: &mut HeaderMap, provider: &str, model: &str) {
    if let Ok(v) = HeaderValue::from_str(provider) {
        h.insert(PROVIDER_HEADER, v);
    }
    if let Ok(v) = HeaderValue::from_str(model) {
        h.insert(MODEL_HEADER, v);
    }
}

fn json_response(status: StatusCode, body: Bytes, member: Option<&Member>) -> http::Response<Body> {
    let mut resp = http::Response::new(Body::from(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = switchboard_core::http::reply_headers();
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
        assert_eq!(
            Front::from_path("/v1/messages/count_tokens"),
            Some(Front::CountTokens)
        );
        assert_eq!(
            Front::from_path("/v1/responses/input_tokens"),
            Some(Front::InputTokens)
        );
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
}
