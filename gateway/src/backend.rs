//! The backend stage: what a matched route sends its request to. One variant per backend kind
//! of the config; each turns a request into a response or a [`RequestError`].

pub mod http;
pub mod redirect;

use ::http::{Method, Request, Response};
use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use switchboard_core::ApiFormat;
use switchboard_llm::{Front, LlmBackend};
use switchboard_mcp::McpBackend;

use crate::context::RequestCx;
use crate::error::RequestError;
use crate::json_body::{BodyKind, BoundedJson, JsonLimits};
use http::HttpBackend;

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
    /// No upstream: every request is answered with a redirect.
    Redirect(Box<redirect::Redirect>),
}

impl Backend {
    /// The API format for errors on this route, for a request to `path`.
    pub fn error_format(&self, path: &str) -> ApiFormat {
        match self {
            Backend::Http(_) | Backend::Redirect(_) => ApiFormat::Plain,
            // The one rule the LLM backend's own streams follow too.
            Backend::Llm(_) => Front::format_for_path(path).into(),
            Backend::A2a(_) | Backend::Mcp(_) => ApiFormat::JsonRpc,
        }
    }

    /// Serves one request. The `http` and `redirect` paths run inline; the others are boxed,
    /// so that their large futures (an MCP call's is tens of kilobytes) are not part of every
    /// request's future, which hyper and each await copy whole.
    pub async fn serve(
        &self,
        req: Request<Incoming>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, RequestError> {
        match self {
            Backend::Http(h) => h.forward(req, cx).await,
            Backend::Redirect(r) => r.serve(&req, cx),
            Backend::Llm(l) => switchboard_core::boxed(|| serve_llm(l, req, cx)).await,
            Backend::A2a(a) => switchboard_core::boxed(|| serve_a2a(a, req, cx)).await,
            Backend::Mcp(m) => switchboard_core::boxed(|| serve_mcp(m, req, cx)).await,
        }
    }

    /// A short description of the upstream for access logs.
    pub fn upstream_label(&self) -> &str {
        match self {
            Backend::Http(h) => h.authority(),
            Backend::Redirect(_) => "redirect",
            Backend::Llm(_) => "llm",
            Backend::Mcp(_) => "mcp",
            Backend::A2a(a) => a.upstream_label(),
        }
    }
}

/// An `llm` route's request.
async fn serve_llm(
    l: &LlmBackend,
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
) -> Result<Response<Body>, RequestError> {
    let req = request_body(req, cx, BodyKind::Json).await?;
    match cx.guardrails {
        Some(g) => crate::guardrails::llm::serve(g, l, req, &cx.context).await,
        None => l.handle(req, &cx.context).await,
    }
}

/// An `a2a` route's request.
async fn serve_a2a(
    a: &crate::a2a::A2aBackend,
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
) -> Result<Response<Body>, RequestError> {
    let req = request_body(req, cx, BodyKind::JsonRpc).await?;
    a.serve(req, cx).await
}

/// An `mcp` route's request, served here or by the replica that owns its session.
async fn serve_mcp(
    m: &McpBackend,
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
) -> Result<Response<Body>, RequestError> {
    let ctx = cx.context.clone();
    let owner = match cx.peers {
        Some(p) => p.owner_of(&req, cx.prefix).await.map(|o| (p, o)),
        None => None,
    };
    let req = request_body(req, cx, BodyKind::JsonRpc).await?;
    let req = match cx.guardrails {
        Some(g) => {
            match crate::guardrails::mcp::check_request(
                g,
                crate::guardrails::Site::of(&ctx),
                req,
                cx.tool_pins,
            )
            .await
            {
                Ok(req) => req,
                Err(answer) => return Ok(answer),
            }
        }
        None => req,
    };
    let guard = |resp: Response<Body>| match cx.guardrails {
        Some(g) => {
            crate::guardrails::mcp::wrap(g, crate::guardrails::Site::of(&ctx), resp, cx.tool_pins)
        }
        None => resp,
    };
    let req = match owner {
        // A session whose stdio targets run on another replica: served there.
        Some((peers, owner)) => {
            let principal = req.extensions().get::<crate::auth::Principal>().cloned();
            match peers
                .forward(&owner, cx.listener, &ctx.route, principal.as_ref(), req)
                .await?
            {
                crate::peer::Forwarded::Answer(resp) => return Ok(guard(resp)),
                crate::peer::Forwarded::OwnerGone(req) => {
                    let token = req
                        .headers()
                        .get("mcp-session-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    // Adopted here, or ended with an error for the client.
                    m.owner_gone(&token, &ctx).await?;
                    req
                }
            }
        }
        None => req,
    };
    m.handle(req, &ctx).await.map(guard)
}

/// A POST's JSON body read whole ([`read_json`]); other methods (GET for SSE streams, DELETE)
/// have none to read and keep theirs, only bounded.
async fn request_body(
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
    kind: BodyKind,
) -> Result<Request<Body>, RequestError> {
    if req.method() == Method::POST {
        read_json(req, cx, kind).await
    } else {
        Ok(limited(req, cx.max_body_bytes))
    }
}

/// The request with its JSON body read whole, bounded by the listener's
/// `limits.json` and `max_body_bytes` and its nesting checked (see [`crate::json_body`]), before the
/// backend parses it. A refusal becomes the route's API format in [`crate::error::render`].
async fn read_json(
    req: Request<Incoming>,
    cx: &RequestCx<'_>,
    kind: BodyKind,
) -> Result<Request<Body>, RequestError> {
    let limits = cx.json;
    let declared = req
        .headers()
        .get(::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let (parts, body) = req.into_parts();
    let bytes = read_json_body(body, &limits, cx.max_body_bytes, kind, declared).await?;
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Reads a JSON request body bounded by `limits` and `max_body_bytes` (see [`BoundedJson`]).
/// Errors are [`RequestError`]s the caller renders in the route's API format.
async fn read_json_body<B>(
    body: B,
    limits: &JsonLimits,
    max_body_bytes: u64,
    kind: BodyKind,
    declared: Option<u64>,
) -> Result<Bytes, RequestError>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let limit = usize::try_from(max_body_bytes).unwrap_or(usize::MAX);
    let mut reader = BoundedJson::new(limits, limit, kind, declared)?;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|_| crate::error::bad_request("the request body could not be read"))?;
        if let Ok(data) = frame.into_data() {
            reader.push(data)?;
        }
    }
    Ok(reader.finish()?)
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
