//! The backend stage: what a matched route sends its request to. One variant per backend kind
//! of the config; each turns a request into a response or a [`ProxyError`].

use std::net::SocketAddr;

use axum::body::Body;
use http::{HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use switchboard_llm::{Front, Limiter, LlmBackend};
use switchboard_mcp::McpBackend;

use crate::auth::Principal;
use crate::authz::{Authorizer, AuthzContext, McpAttributes};
use crate::error::{ErrorFormat, ProxyError};
use crate::input::{BodyKind, JsonLimits, read_json_body};
use crate::policy::Timeouts;
use crate::proxy::HttpBackend;

/// A route's backend.
pub enum Backend {
    /// Reverse proxy to an HTTP upstream.
    Http(Box<HttpBackend>),
    /// LLM providers (switchboard-llm).
    Llm(LlmBackend),
    /// MCP federation (switchboard-mcp).
    Mcp(McpBackend),
    /// A2A agent proxy (JSON-RPC, agent card, task pinning).
    A2a(Box<crate::a2a::A2aBackend>),
}

/// Per-request facts a backend may need, borrowed from the connection and the route.
pub struct RequestCx<'a> {
    /// The route's name.
    pub route: &'a Arc<str>,
    /// The route's path prefix, shared (for backends that keep it).
    pub prefix_arc: &'a Arc<str>,
    /// The route's rate limiter, when it has `policies.rate_limit`.
    pub limiter: Option<&'a Limiter>,
    /// The client's address.
    pub remote: SocketAddr,
    /// The client's IP, formatted for `X-Forwarded-For`.
    pub remote_ip: &'a HeaderValue,
    /// `http` or `https`, as the client connected.
    pub scheme: &'static str,
    /// The route's path prefix, if it has one.
    pub prefix: Option<&'a str>,
    /// The route's timeouts.
    pub timeouts: Timeouts,
    /// Request body limit in bytes.
    pub max_body_bytes: u64,
    /// Upstream latency histogram of the route.
    pub upstream_duration: &'a Histogram,
    /// Open streams gauge of the route (upgraded connections count here).
    pub open_streams: &'a Gauge,
    /// Cancelled when the gateway shuts down; long-lived tunnels end with it.
    pub shutdown: &'a CancellationToken,
}

impl Backend {
    /// The API format for errors on this route, for a request to `path`.
    pub fn error_format(&self, path: &str) -> ErrorFormat {
        match self {
            Backend::Http(_) => ErrorFormat::Plain,
            Backend::Llm(_) => match Front::from_path(path) {
                Some(Front::Messages) => ErrorFormat::Anthropic,
                _ => ErrorFormat::OpenAi,
            },
            Backend::A2a(_) | Backend::Mcp(_) => ErrorFormat::JsonRpc,
        }
    }

    /// Serves one request.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        match self {
            Backend::Http(h) => h.forward(req, cx).await,
            Backend::Llm(l) => {
                let who = Caller::of(&req);
                let ctx = switchboard_llm::RequestContext {
                    route: cx.route.clone(),
                    prefix: cx.prefix_arc.clone(),
                    principal: who.subject(),
                    api_key: who.api_key(),
                    limiter: cx.limiter.cloned(),
                    model_access: who
                        .checker(|c, model| c.allows_model(model))
                        .map(switchboard_llm::ModelAccess),
                };
                let req = if req.method() == Method::POST {
                    read_json(req, cx, BodyKind::Json).await?
                } else {
                    limited(req, cx.max_body_bytes)
                };
                Ok(l.handle(req, &ctx).await)
            }
            Backend::A2a(a) => {
                let req = if req.method() == Method::POST {
                    read_json(req, cx, BodyKind::JsonRpc).await?
                } else {
                    limited(req, cx.max_body_bytes)
                };
                a.serve(req, cx).await
            }
            Backend::Mcp(m) => {
                let who = Caller::of(&req);
                let ctx = switchboard_core::RequestContext {
                    route: cx.route.clone(),
                    prefix: cx.prefix_arc.clone(),
                    principal: who.subject(),
                    api_key: who.api_key(),
                    access: who.mcp_access(),
                    tokens: None,
                    max_batch: req.extensions().get::<JsonLimits>().map(|l| l.max_batch),
                };
                // GET (SSE streams) and DELETE have no JSON body to read.
                let req = if req.method() == Method::POST {
                    read_json(req, cx, BodyKind::JsonRpc).await?
                } else {
                    limited(req, cx.max_body_bytes)
                };
                Ok(m.handle(req, &ctx)
                    .await
                    .unwrap_or_else(|e| e.render(switchboard_core::ApiFormat::JsonRpc)))
            }
        }
    }

    /// A short description of the upstream for access logs.
    pub fn upstream_label(&self) -> &str {
        match self {
            Backend::Http(h) => h.authority(),
            Backend::Llm(_) => "llm",
            Backend::Mcp(_) => "mcp",
            Backend::A2a(a) => a.upstream_label(),
        }
    }
}

/// The request with its JSON body read whole, bounded by the listener's
/// `limits.json` and `max_body_bytes` and its nesting checked (see [`crate::input`]), before the
/// backend parses it. A refusal becomes the route's API format in [`ProxyError::into_response`].
async fn read_json(
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
    kind: BodyKind,
) -> Result<Request<Body>, ProxyError> {
    let limits = req
        .extensions()
        .get::<JsonLimits>()
        .copied()
        .unwrap_or_default();
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let bytes = read_json_body(body, &limits, cx.max_body_bytes, kind, declared).await?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The request with its body capped at `max` bytes, as the body type backends take.
pub fn limited(req: Request<Incoming>, max: u64) -> Request<Body> {
    req.map(|b| {
        Body::new(
            Limited::new(b, usize::try_from(max).unwrap_or(usize::MAX))
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e }),
        )
    })
}

/// A per-request predicate over tool or model names.
type ItemCheck = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Who is calling, as the security stage left it in the request's extensions, and the route's
/// authorizer: what MCP and LLM backends need to bind sessions and check tools and models.
#[derive(Clone)]
struct Caller {
    principal: Option<Principal>,
    authz: Authorizer,
    method: Arc<str>,
    path: Arc<str>,
}

impl Caller {
    fn of<B>(req: &Request<B>) -> Self {
        let ext = req.extensions();
        Caller {
            principal: ext.get::<Principal>().cloned(),
            authz: ext.get::<Authorizer>().cloned().unwrap_or_default(),
            method: Arc::from(req.method().as_str()),
            path: Arc::from(req.uri().path()),
        }
    }

    fn subject(&self) -> Option<Arc<str>> {
        self.principal.as_ref().map(|p| p.subject.clone())
    }

    fn api_key(&self) -> Option<Arc<str>> {
        self.principal.as_ref().and_then(|p| p.api_key.clone())
    }

    /// A per-item predicate, or `None` when nothing could refuse (no rules, no key lists), so
    /// unrestricted routes pay nothing per item.
    fn checker(self, f: fn(&Caller, &str) -> bool) -> Option<ItemCheck> {
        self.restricted().then(|| {
            Arc::new(move |item: &str| f(&self, item)) as Arc<dyn Fn(&str) -> bool + Send + Sync>
        })
    }

    /// Whether anything could refuse an item: rules, or the API key's allow lists.
    fn restricted(&self) -> bool {
        self.authz.has_rules()
            || self
                .principal
                .as_ref()
                .is_some_and(|p| p.allowed_models.is_some() || p.restricts_mcp())
    }

    fn context(&self) -> AuthzContext<'_> {
        AuthzContext {
            principal: self.principal.as_ref(),
            method: &self.method,
            path: &self.path,
            ..Default::default()
        }
    }

    fn allows_model(&self, model: &str) -> bool {
        self.authz.allows(&AuthzContext {
            llm_model: Some(model),
            ..self.context()
        })
    }

    /// The MCP backend's per-item check, or `None` when nothing could refuse (no rules, no
    /// key lists). It applies to anonymous callers (`authn: optional`) too.
    fn mcp_access(self) -> Option<switchboard_core::Access> {
        if !self.restricted() {
            return None;
        }
        Some(switchboard_core::Access(Arc::new(move |item| {
            self.allows_mcp(item)
        })))
    }

    /// An item is checked as the method that uses it (see `authz`): one rule governs listing
    /// and every use.
    fn allows_mcp(&self, item: switchboard_core::Item<'_>) -> bool {
        use switchboard_core::Item;
        let (method, tool, prompt, resource) = match item {
            Item::Tool(n) => ("tools/call", Some(n), None, None),
            Item::Prompt(n) => ("prompts/get", None, Some(n), None),
            Item::Resource(u) => ("resources/read", None, None, Some(u)),
            Item::Model(m) => return self.allows_model(m),
        };
        self.authz.allows(&AuthzContext {
            mcp: Some(McpAttributes {
                method,
                tool,
                prompt,
                resource,
            }),
            ..self.context()
        })
    }
}
