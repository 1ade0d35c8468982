//! The `a2a` backend: a proxy for A2A agents (protocol 0.3 and 1.0, JSON-RPC binding).
//!
//! A request flows like this. `GET {prefix}/.well-known/agent-card.json` (or the older
//! `agent.json`) fetches the card from a replica and [`card::rewrite`]s it to point at the
//! gateway. A JSON-RPC `POST` is read whole (requests are small) and [`rpc::classify`]d: its
//! method, the task or conversation it names, and any push-notification URL it registers,
//! which must pass the route's allow list or the call is refused with a JSON-RPC error. The
//! request then goes to a replica: the one pinned to its task (or conversation) in the sessions
//! store, else the next in turn. The answer comes back either as one JSON document, read to
//! learn the tasks it reveals, or as an SSE stream passed through frame by frame while a
//! [`stream::SseScanner`] reads each event on the side. Every task id and context id seen in a
//! result or event is pinned to the replica that produced it (`a2a:{route}:t:{id}` →
//! replica URL, with a TTL), before the bytes that revealed it go to the client, so a follow-up
//! through any gateway sharing the store lands on the right replica. When a pinning is missing
//! (memory store, expired) a request naming a task tries the replicas in turn until one does
//! not answer "task not found".
//!
//! Each exchange ends with one `a2a` log line (method, task id, task state, replica, outcome)
//! and counts in `switchboard_a2a_requests_total{method,outcome}` and
//! `switchboard_a2a_task_states_total{state}`; task ids stay out of metric labels.

pub mod card;
pub mod rpc;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde_json::Value;
use switchboard_sessions::SessionStore;

use crate::config::A2aBackendConfig;
use crate::context::RequestCx;
use crate::error::ProxyError;
use crate::forwarding::strip_response;
use crate::metrics::Metrics;
use card::RouteSecurity;
use rpc::{Call, Seen};

use crate::body::is_event_stream;
use crate::upstream::HttpClient;

/// Labels of A2A request counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aRequestLabels {
    /// Route name.
    pub route: Arc<str>,
    /// The JSON-RPC method (one of [`rpc::METHODS`], `agent_card`, or `unknown`).
    pub method: &'static str,
    /// `ok`, `error` (a JSON-RPC error from the agent), `refused` (by the gateway),
    /// `upstream_error`, or `aborted` (a stream the client left).
    pub outcome: &'static str,
}

/// Labels of the task state counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aStateLabels {
    /// Route name.
    pub route: Arc<str>,
    /// Normalized task state (`working`, `completed`, `input_required`, ...).
    pub state: &'static str,
}

/// The A2A metric families, created once per gateway and shared by every config generation.
#[derive(Clone)]
pub struct A2aMetrics {
    /// A2A calls by route, method and outcome.
    pub requests: Family<A2aRequestLabels, Counter>,
    /// Task states seen in results and stream events, by route and state.
    pub task_states: Family<A2aStateLabels, Counter>,
    /// Stream events passed through, by route.
    pub stream_events: Family<A2aStateLabels, Counter>,
    /// Task and context pinning lookups on multi-replica routes, by result (`hit`, `miss`).
    pub pinning: Family<A2aPinLabels, Counter>,
}

/// Labels of the pinning lookup counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct A2aPinLabels {
    /// Route name.
    pub route: Arc<str>,
    /// `hit` (a replica is pinned) or `miss` (none, or the store failed).
    pub result: &'static str,
}

impl A2aMetrics {
    /// Creates the families and registers them with the gateway's registry.
    pub fn new(metrics: &Metrics) -> Self {
        let m = A2aMetrics {
            requests: Family::default(),
            task_states: Family::default(),
            stream_events: Family::default(),
            pinning: Family::default(),
        };
        metrics.with_registry(|r| {
            r.register(
                "a2a_requests",
                "A2A JSON-RPC calls and agent card fetches, by route, method and outcome",
                m.requests.clone(),
            );
            r.register(
                "a2a_task_states",
                "A2A task states seen in results and stream events, by route and state",
                m.task_states.clone(),
            );
            r.register(
                "a2a_stream_events",
                "A2A stream events passed through, by route and task state (`none` without one)",
                m.stream_events.clone(),
            );
            r.register(
                "a2a_pinning_lookups",
                "A2A task/context pinning lookups on multi-replica routes, by result",
                m.pinning.clone(),
            );
        });
        m
    }
}

/// One agent replica.
struct Upstream {
    /// The configured URL without a trailing slash: the value pinned in the store.
    url: Arc<str>,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// Path of the URL without a trailing slash; empty when none.
    base_path: String,
}

impl Upstream {
    fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim_end_matches('/');
        let uri: Uri = raw.parse().map_err(|e| format!("bad url `{raw}`: {e}"))?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        Ok(Upstream {
            url: trimmed.into(),
            scheme: uri.scheme().cloned().ok_or("url has no scheme")?,
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| "bad host".to_string())?,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    fn uri(&self, rest: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
        let mut pq = String::with_capacity(self.base_path.len() + rest.len() + 1);
        pq.push_str(&self.base_path);
        if !rest.is_empty() && !rest.starts_with('/') {
            pq.push('/');
        }
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| ProxyError::BadRequest("request path cannot be forwarded"))
    }
}

/// A compiled `a2a` backend. Built on every config load; the HTTP client, the sessions store
/// and the metrics are passed in and outlive it.
pub struct A2aBackend {
    route: Arc<str>,
    upstreams: Vec<Upstream>,
    label: String,
    public_url: Option<String>,
    push_allow: Vec<url::Url>,
    task_ttl: Duration,
    /// `a2a.max_response_bytes`: the largest JSON answer read to inspect it.
    max_response_bytes: usize,
    /// `a2a.max_card_bytes`: the largest agent card fetched.
    max_card_bytes: usize,
    security: RouteSecurity,
    client: HttpClient,
    store: Arc<dyn SessionStore>,
    metrics: A2aMetrics,
    next: AtomicUsize,
}

impl A2aBackend {
    /// Builds the backend from validated config. `client` is the gateway's pooled upstream
    /// client ([`crate::upstream::HttpClients`]), `store` the gateway's sessions store (task
    /// pinning lives there), `metrics` the gateway-wide A2A families.
    pub fn new(
        route: &str,
        cfg: &A2aBackendConfig,
        client: HttpClient,
        store: Arc<dyn SessionStore>,
        metrics: A2aMetrics,
    ) -> Result<Self, String> {
        let urls: Vec<&str> = match &cfg.url {
            Some(u) => vec![u.as_str()],
            None => cfg.upstreams.iter().map(String::as_str).collect(),
        };
        if urls.is_empty() {
            return Err("a2a route has no upstream".into());
        }
        let upstreams = urls
            .iter()
            .map(|u| Upstream::parse(u))
            .collect::<Result<Vec<_>, _>>()?;
        let label = upstreams
            .iter()
            .map(|u| u.authority.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let push_allow = cfg
            .push_notifications
            .allowed_urls
            .iter()
            .map(|u| url::Url::parse(u).map_err(|e| format!("bad allowed url `{u}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(A2aBackend {
            route: route.into(),
            upstreams,
            label,
            public_url: cfg
                .public_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_owned()),
            push_allow,
            task_ttl: cfg.task_ttl,
            max_response_bytes: cfg.max_response_bytes,
            max_card_bytes: cfg.max_card_bytes,
            security: RouteSecurity::default(),
            client,
            store,
            metrics,
            next: AtomicUsize::new(0),
        })
    }

    /// Advertise the route's own authentication in the rewritten card.
    pub fn with_security(mut self, security: RouteSecurity) -> Self {
        self.security = security;
        self
    }

    /// The upstream authorities, for access logs.
    pub fn upstream_label(&self) -> &str {
        &self.label
    }

    /// Serves one request: the agent card on `GET`, JSON-RPC on `POST`.
    pub async fn serve(
        &self,
        req: Request<Body>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, ProxyError> {
        let prefix = cx.prefix.unwrap_or("").trim_end_matches('/');
        let path = req.uri().path();
        let rest = path.strip_prefix(prefix).unwrap_or(path).to_owned();
        match *req.method() {
            Method::GET | Method::HEAD
                if rest == "/.well-known/agent-card.json" || rest == "/.well-known/agent.json" =>
            {
                self.card(req.headers(), req.uri(), cx, prefix).await
            }
            Method::POST => self.rpc(req, cx, &rest).await,
            _ => Ok(rpc_error(
                StatusCode::METHOD_NOT_ALLOWED,
                &Value::Null,
                -32600,
                "this A2A route serves JSON-RPC over POST and the agent card at /.well-known/agent-card.json",
                "method_not_allowed",
            )),
        }
    }

    // ---- agent card ----

    /// The URL clients reach this route at, without a trailing slash.
    fn public_base(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        cx: &RequestCx<'_>,
        prefix: &str,
    ) -> Result<String, ProxyError> {
        if let Some(p) = &self.public_url {
            return Ok(p.clone());
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(Authority::as_str))
            .filter(|h| !h.is_empty() && h.parse::<Authority>().is_ok())
            .ok_or(ProxyError::BadRequest("the request has no usable Host"))?;
        Ok(format!("{}://{host}{prefix}", cx.scheme))
    }

    async fn card(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        cx: &RequestCx<'_>,
        prefix: &str,
    ) -> Result<Response<Body>, ProxyError> {
        let public = self.public_base(headers, uri, cx, prefix)?;
        let mut last_err = None;
        for up in &self.upstreams {
            let mut found = None;
            for path in ["/.well-known/agent-card.json", "/.well-known/agent.json"] {
                match self.fetch_json(up, path, cx).await {
                    Ok(Some(v)) => {
                        found = Some(v);
                        break;
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        last_err = Some(e);
                        break;
                    }
                }
            }
            let Some(mut card) = found else { continue };
            let changed = card::rewrite(&mut card, &public, &up.base_path, &self.security);
            self.log_rewrite(&changed);
            self.count("agent_card", "ok");
            let mut resp = Response::new(Body::from(card.to_string()));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(resp);
        }
        self.count("agent_card", "upstream_error");
        Err(last_err.unwrap_or(ProxyError::Upstream(
            "no replica serves an agent card".into(),
        )))
    }

    fn log_rewrite(&self, changed: &card::Rewritten) {
        if changed.signatures_dropped > 0 {
            tracing::info!(
                route = %self.route,
                signatures = changed.signatures_dropped,
                "agent card signatures dropped: the card was rewritten to point at the gateway, so they would no longer verify"
            );
        }
        if !changed.interfaces_dropped.is_empty() {
            tracing::debug!(
                route = %self.route,
                bindings = ?changed.interfaces_dropped,
                "agent card interfaces other than JSON-RPC dropped: this route proxies JSON-RPC only"
            );
        }
    }

    /// GETs a JSON document from a replica; `None` on 404.
    async fn fetch_json(
        &self,
        up: &Upstream,
        path: &str,
        cx: &RequestCx<'_>,
    ) -> Result<Option<Value>, ProxyError> {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = up.uri(path, None)?;
        req.headers_mut().insert(header::HOST, up.host.clone());
        req.headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let resp = match tokio::time::timeout(cx.timeouts.request, self.client.request(req)).await {
            Err(_) => return Err(ProxyError::Timeout(cx.timeouts.request)),
            Ok(Err(e)) => return Err(upstream_failed(e)),
            Ok(Ok(r)) => r,
        };
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            tracing::warn!(route = %self.route, status = resp.status().as_u16(), upstream = %up.url, "agent card fetch failed");
            return Err(ProxyError::Upstream(
                format!("agent card answered {}", resp.status()).into(),
            ));
        }
        let bytes = self
            .read_reply(up, resp.into_body(), self.max_card_bytes, "agent card")
            .await?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(card) if card.is_object() => Ok(Some(card)),
            _ => {
                tracing::warn!(route = %self.route, upstream = %up.url, "A2A agent card is not a JSON object");
                Err(ProxyError::Upstream(
                    "agent card is not a JSON object".into(),
                ))
            }
        }
    }

    /// Reads an agent's JSON reply (`what`: "agent card" or "answer"), at most `limit` bytes.
    /// A larger or unreadable one is logged, naming the agent, and becomes a 502 for the
    /// caller; nothing beyond `limit` is buffered.
    async fn read_reply(
        &self,
        up: &Upstream,
        body: Incoming,
        limit: usize,
        what: &'static str,
    ) -> Result<Bytes, ProxyError> {
        match Limited::new(body, limit).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                tracing::warn!(route = %self.route, upstream = %up.url, limit, "A2A agent {what} is larger than the limit");
                Err(ProxyError::Upstream(
                    format!("agent {what} larger than {limit} bytes").into(),
                ))
            }
            Err(e) => {
                tracing::warn!(route = %self.route, upstream = %up.url, error = %e, "A2A agent {what} could not be read");
                Err(ProxyError::Upstream(e))
            }
        }
    }

    // ---- JSON-RPC ----

    async fn rpc(
        &self,
        req: Request<Body>,
        cx: &RequestCx<'_>,
        rest: &str,
    ) -> Result<Response<Body>, ProxyError> {
        let (parts, body) = req.into_parts();
        // Already read and bounded by the backend stage (`backend::read_json`); this is a no-copy
        // collect of that one buffer.
        let body = match Limited::new(
            body,
            usize::try_from(cx.max_body_bytes).unwrap_or(usize::MAX),
        )
        .collect()
        .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ProxyError::BodyTooLarge {
                    limit: cx.max_body_bytes,
                });
            }
            Err(_) => return Err(ProxyError::BadRequest("the request body could not be read")),
        };
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            self.count("unknown", "refused");
            return Ok(rpc_error(
                StatusCode::OK,
                &Value::Null,
                -32700,
                "parse error: the body is not JSON",
                "parse_error",
            ));
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            self.count("unknown", "refused");
            return Ok(rpc_error(
                StatusCode::OK,
                &id,
                -32600,
                "invalid request: a single JSON-RPC request object with a method is expected",
                "invalid_request",
            ));
        };
        let call = rpc::classify(method, msg.get("params").unwrap_or(&Value::Null));
        let mut ex = Exchange::new(self, call.method, call.task_id.clone());

        if let Some(bad) = call.push_urls.iter().find(|u| !self.push_allowed(u)) {
            tracing::warn!(
                route = %self.route,
                method = call.method,
                host = url::Url::parse(bad).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(),
                "push notification URL refused: not in push_notifications.allowed_urls"
            );
            ex.outcome = "refused";
            return Ok(rpc_error(
                StatusCode::OK,
                &id,
                -32602,
                "push notification URL is not allowed by this gateway",
                "push_url_not_allowed",
            ));
        }

        let plan = if call.method == "ListTasks" && self.upstreams.len() > 1 {
            let pinned = match &call.context_id {
                Some(ctx) => self.pinned('c', ctx).await,
                None => None,
            };
            match pinned {
                // One conversation's tasks live on its replica.
                Some(i) => Plan {
                    order: vec![i],
                    probe: false,
                    failover: false,
                },
                None => return self.list_across(&parts, rest, msg, &id, cx, &mut ex).await,
            }
        } else {
            self.plan(&call).await
        };
        let query = parts.uri.query();
        let mut last: Option<Response<Body>> = None;
        for (n, &i) in plan.order.iter().enumerate() {
            let Some(up) = self.upstreams.get(i) else {
                continue;
            };
            let more = n + 1 < plan.order.len();
            ex.replica = up.url.clone();
            let upstream_req =
                self.upstream_request(up, &parts.headers, rest, query, body.clone())?;
            let started = Instant::now();
            let result =
                tokio::time::timeout(cx.timeouts.request, self.client.request(upstream_req)).await;
            cx.upstream_duration
                .observe(started.elapsed().as_secs_f64());
            let resp = match result {
                Err(_) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(
                        ProxyError::Timeout(cx.timeouts.request),
                        &id,
                    ));
                }
                Ok(Err(e)) if e.is_connect() && more && (plan.failover || plan.probe) => {
                    tracing::warn!(route = %self.route, upstream = %up.url, error = %crate::upstream::DisplayChain(&e), "A2A replica unreachable; trying the next");
                    continue;
                }
                Ok(Err(e)) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(upstream_failed(e), &id));
                }
                Ok(Ok(r)) if r.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(unasked_switch(&up.url), &id));
                }
                Ok(Ok(r)) => r,
            };
            let learner = Learner {
                store: self.store.clone(),
                prefix: format!("a2a:{}:", self.route),
                replica: up.url.clone(),
                ttl: self.task_ttl,
                written: HashSet::new(),
            };
            if is_event_stream(resp.headers()) {
                return Ok(self.stream_through(resp, learner, ex));
            }
            let (mut rparts, rbody) = resp.into_parts();
            let bytes = match self
                .read_reply(up, rbody, self.max_response_bytes, "answer")
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(e, &id));
                }
            };
            strip_response(&mut rparts.headers);
            rparts.headers.remove(header::CONTENT_LENGTH);
            let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
                // Not JSON (an HTML error page, say): the caller gets a JSON-RPC error.
                tracing::warn!(route = %self.route, upstream = %up.url, status = rparts.status.as_u16(), "A2A agent answer is not JSON");
                ex.outcome = "upstream_error";
                return Ok(proxy_rpc_error(
                    ProxyError::Upstream("agent answer is not JSON".into()),
                    &id,
                ));
            };
            if let Some(code) = rpc::error_code(&answer) {
                ex.outcome = "error";
                if plan.probe && more && code == rpc::TASK_NOT_FOUND {
                    last = Some(Response::from_parts(rparts, Body::from(bytes)));
                    continue;
                }
                return Ok(Response::from_parts(rparts, Body::from(bytes)));
            }
            ex.outcome = "ok";
            let mut learner = learner;
            if let Some(result) = answer.get_mut("result") {
                let mut seen = Vec::new();
                rpc::observe(result, &mut seen);
                for s in &seen {
                    ex.saw(s);
                }
                learner.learn(&seen).await;
                if call.returns_card {
                    let public = self.public_base(
                        &parts.headers,
                        &parts.uri,
                        cx,
                        cx.prefix.unwrap_or("").trim_end_matches('/'),
                    )?;
                    let changed = card::rewrite(result, &public, &up.base_path, &self.security);
                    self.log_rewrite(&changed);
                    return Ok(Response::from_parts(rparts, Body::from(answer.to_string())));
                }
            }
            return Ok(Response::from_parts(rparts, Body::from(bytes)));
        }
        // Every replica said "task not found" (or the last one was unreachable).
        Ok(last.unwrap_or_else(|| {
            ex.outcome = "upstream_error";
            proxy_rpc_error(ProxyError::Upstream("no A2A replica reachable".into()), &id)
        }))
    }

    /// `ListTasks` on a multi-replica route: pages through the replicas one after the other.
    /// The client's `pageToken` is ours (`sb.{replica}.{replica's token}`), so each page is one
    /// replica's page (its `pageSize` holds) and paging continues on the next replica when one
    /// is exhausted. `totalSize` is that of the replica being paged.
    async fn list_across(
        &self,
        parts: &http::request::Parts,
        rest: &str,
        mut msg: Value,
        id: &Value,
        cx: &RequestCx<'_>,
        ex: &mut Exchange,
    ) -> Result<Response<Body>, ProxyError> {
        let token = msg
            .pointer("/params/pageToken")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some((mut i, mut inner)) = page_token::decode(token, self.upstreams.len()) else {
            ex.outcome = "refused";
            return Ok(rpc_error(
                StatusCode::OK,
                id,
                -32602,
                "invalid pageToken",
                "invalid_params",
            ));
        };
        loop {
            let Some(up) = self.upstreams.get(i) else {
                ex.outcome = "refused";
                return Ok(rpc_error(
                    StatusCode::OK,
                    id,
                    -32602,
                    "invalid pageToken",
                    "invalid_params",
                ));
            };
            ex.replica = up.url.clone();
            // `msg` is an object (it has a method); its params become one if they are not.
            let params = msg.as_object_mut().map(|m| {
                let p = m
                    .entry("params")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !p.is_object() {
                    *p = Value::Object(Default::default());
                }
                p
            });
            if let Some(params) = params.and_then(Value::as_object_mut) {
                if inner.is_empty() {
                    params.remove("pageToken");
                } else {
                    params.insert("pageToken".into(), Value::String(inner.clone()));
                }
            }
            let body = Bytes::from(msg.to_string());
            let req = self.upstream_request(up, &parts.headers, rest, parts.uri.query(), body)?;
            let started = Instant::now();
            let result = tokio::time::timeout(cx.timeouts.request, self.client.request(req)).await;
            cx.upstream_duration
                .observe(started.elapsed().as_secs_f64());
            let resp = match result {
                Err(_) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(
                        ProxyError::Timeout(cx.timeouts.request),
                        id,
                    ));
                }
                Ok(Err(e)) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(upstream_failed(e), id));
                }
                Ok(Ok(r)) if r.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(unasked_switch(&up.url), id));
                }
                Ok(Ok(r)) => r,
            };
            let (mut rparts, rbody) = resp.into_parts();
            let bytes = match self
                .read_reply(up, rbody, self.max_response_bytes, "answer")
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    ex.outcome = "upstream_error";
                    return Ok(proxy_rpc_error(e, id));
                }
            };
            strip_response(&mut rparts.headers);
            rparts.headers.remove(header::CONTENT_LENGTH);
            let mut answer = match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if v.get("result").is_some_and(Value::is_object) => v,
                // An error (or not JSON-RPC): the client sees it as the replica sent it.
                _ => {
                    ex.outcome = "error";
                    return Ok(Response::from_parts(rparts, Body::from(bytes)));
                }
            };
            let Some(result) = answer.get_mut("result") else {
                ex.outcome = "error";
                return Ok(Response::from_parts(rparts, Body::from(bytes)));
            };
            let mut seen = Vec::new();
            rpc::observe(result, &mut seen);
            let mut learner = Learner {
                store: self.store.clone(),
                prefix: format!("a2a:{}:", self.route),
                replica: up.url.clone(),
                ttl: self.task_ttl,
                written: HashSet::new(),
            };
            learner.learn(&seen).await;
            let next_inner = result
                .get("nextPageToken")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let empty = result
                .get("tasks")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            let next = if !next_inner.is_empty() {
                Some((i, next_inner))
            } else if i + 1 < self.upstreams.len() {
                Some((i + 1, String::new()))
            } else {
                None
            };
            // An exhausted replica with nothing on this page: go straight on to the next.
            if empty
                && let Some((ni, ninner)) = &next
                && *ni != i
            {
                i = *ni;
                inner = ninner.clone();
                continue;
            }
            let token = next
                .map(|(ni, t)| page_token::encode(ni, &t))
                .unwrap_or_default();
            result["nextPageToken"] = Value::String(token);
            ex.outcome = "ok";
            return Ok(Response::from_parts(rparts, Body::from(answer.to_string())));
        }
    }

    fn push_allowed(&self, raw: &str) -> bool {
        let Ok(u) = url::Url::parse(raw) else {
            return false;
        };
        if !matches!(u.scheme(), "http" | "https")
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return false;
        }
        self.push_allow.iter().any(|a| {
            a.scheme() == u.scheme()
                && a.host_str() == u.host_str()
                && a.port_or_known_default() == u.port_or_known_default()
                && path_under(a.path(), u.path())
        })
    }

    /// Which replicas to try, in order.
    async fn plan(&self, call: &Call) -> Plan {
        let n = self.upstreams.len();
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        let rotation: Vec<usize> = (start..n).chain(0..start).collect();
        if let Some(task) = &call.task_id {
            if let Some(i) = self.pinned('t', task).await {
                return Plan {
                    order: vec![i],
                    probe: false,
                    failover: false,
                };
            }
            // The pinning is gone (memory store, expiry): ask each replica until one knows it.
            return Plan {
                order: rotation,
                probe: true,
                failover: false,
            };
        }
        if let Some(ctx) = &call.context_id
            && let Some(i) = self.pinned('c', ctx).await
        {
            let mut order = vec![i];
            order.extend(rotation.into_iter().filter(|&j| j != i));
            return Plan {
                order,
                probe: false,
                failover: true,
            };
        }
        Plan {
            order: rotation,
            probe: false,
            failover: true,
        }
    }

    async fn pinned(&self, kind: char, id: &str) -> Option<usize> {
        if self.upstreams.len() == 1 {
            return Some(0);
        }
        let key = format!("a2a:{}:{kind}:{id}", self.route);
        let found = match self.store.get_affinity(&key).await {
            Ok(Some(url)) => self.upstreams.iter().position(|u| *u.url == *url),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(route = %self.route, error = %e, "A2A task pinning lookup failed; trying replicas in turn");
                None
            }
        };
        self.metrics
            .pinning
            .get_or_create(&A2aPinLabels {
                route: self.route.clone(),
                result: if found.is_some() { "hit" } else { "miss" },
            })
            .inc();
        found
    }

    fn upstream_request(
        &self,
        up: &Upstream,
        headers: &HeaderMap,
        rest: &str,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Body>, ProxyError> {
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = up.uri(rest, query)?;
        // Hop-by-hop and forwarding headers were settled by the forwarding stage.
        let h = req.headers_mut();
        *h = headers.clone();
        h.remove(header::CONTENT_LENGTH);
        h.insert(header::HOST, up.host.clone());
        Ok(req)
    }

    /// Passes an SSE answer through frame by frame, reading its events on the side.
    fn stream_through(
        &self,
        resp: Response<Incoming>,
        learner: Learner,
        mut ex: Exchange,
    ) -> Response<Body> {
        let (mut parts, body) = resp.into_parts();
        strip_response(&mut parts.headers);
        ex.outcome = "aborted";
        let state = StreamState {
            body,
            scanner: stream::SseScanner::default(),
            learner,
            ex,
            done: false,
        };
        let frames = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                match st.body.frame().await {
                    None => {
                        // The exchange is logged when `st` drops here.
                        st.ex.ended();
                        return None;
                    }
                    Some(Err(e)) => {
                        st.done = true;
                        st.ex.outcome = "upstream_error";
                        return Some((Err(e), st));
                    }
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        let mut seen = Vec::new();
                        let ex = &mut st.ex;
                        st.scanner.feed(&data, |event| ex.event(event, &mut seen));
                        // Pin before the client sees the event, so its next call (through
                        // any gateway) finds the replica.
                        st.learner.learn(&seen).await;
                        return Some((Ok(data), st));
                    }
                }
            }
        });
        Response::from_parts(parts, Body::from_stream(frames))
    }

    fn count(&self, method: &'static str, outcome: &'static str) {
        self.metrics
            .requests
            .get_or_create(&A2aRequestLabels {
                route: self.route.clone(),
                method,
                outcome,
            })
            .inc();
    }
}

struct Plan {
    order: Vec<usize>,
    /// Try the next replica when one answers "task not found".
    probe: bool,
    /// Try the next replica when one cannot be reached (nothing was sent to it).
    failover: bool,
}

struct StreamState {
    body: Incoming,
    scanner: stream::SseScanner,
    learner: Learner,
    ex: Exchange,
    done: bool,
}

/// Pins task and context ids to the replica that revealed them.
struct Learner {
    store: Arc<dyn SessionStore>,
    prefix: String,
    replica: Arc<str>,
    ttl: Duration,
    /// Keys already written during this exchange (a stream names its task in every event).
    written: HashSet<String>,
}

impl Learner {
    async fn learn(&mut self, seen: &[Seen]) {
        for s in seen {
            for (kind, id) in [('t', &s.task_id), ('c', &s.context_id)] {
                let Some(id) = id else { continue };
                let key = format!("{}{kind}:{id}", self.prefix);
                if self.written.contains(&key) {
                    continue;
                }
                match self.store.put_affinity(&key, &self.replica, self.ttl).await {
                    Ok(()) => {
                        self.written.insert(key);
                    }
                    Err(e) => tracing::warn!(error = %e, "A2A task pinning could not be stored"),
                }
            }
        }
    }
}

/// One A2A exchange, for its log line and metrics (written when it is dropped: at the end of
/// a JSON call, or when a stream ends or the client leaves it).
struct Exchange {
    metrics: A2aMetrics,
    route: Arc<str>,
    method: &'static str,
    task_id: Option<String>,
    state: Option<&'static str>,
    replica: Arc<str>,
    outcome: &'static str,
    events: u64,
    started: Instant,
}

impl Exchange {
    fn new(b: &A2aBackend, method: &'static str, task_id: Option<String>) -> Self {
        Exchange {
            metrics: b.metrics.clone(),
            route: b.route.clone(),
            method,
            task_id,
            state: None,
            replica: Arc::from(""),
            outcome: "upstream_error",
            events: 0,
            started: Instant::now(),
        }
    }

    fn saw(&mut self, s: &Seen) {
        if self.task_id.is_none() {
            self.task_id.clone_from(&s.task_id);
        }
        if let Some(state) = s.state {
            self.state = Some(state);
            self.metrics
                .task_states
                .get_or_create(&A2aStateLabels {
                    route: self.route.clone(),
                    state,
                })
                .inc();
        }
    }

    /// The stream ended cleanly (an error event in it keeps the outcome `error`).
    fn ended(&mut self) {
        if self.outcome != "error" {
            self.outcome = "ok";
        }
    }

    /// One SSE event's data.
    fn event(&mut self, data: &str, seen: &mut Vec<Seen>) {
        self.events += 1;
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        if v.get("error").is_some() {
            self.outcome = "error";
        }
        let before = seen.len();
        if let Some(result) = v.get("result") {
            rpc::observe(result, seen);
        }
        let new = seen.get(before..).unwrap_or_default();
        for s in new {
            self.saw(s);
        }
        let state = new.iter().rev().find_map(|s| s.state).unwrap_or("none");
        self.metrics
            .stream_events
            .get_or_create(&A2aStateLabels {
                route: self.route.clone(),
                state,
            })
            .inc();
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.metrics
            .requests
            .get_or_create(&A2aRequestLabels {
                route: self.route.clone(),
                method: self.method,
                outcome: self.outcome,
            })
            .inc();
        tracing::info!(
            target: "a2a",
            route = %self.route,
            method = self.method,
            task_id = self.task_id.as_deref().unwrap_or(""),
            task_state = self.state.unwrap_or(""),
            replica = %self.replica,
            outcome = self.outcome,
            events = self.events,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "a2a call"
        );
    }
}

/// The gateway's `ListTasks` page tokens over several replicas: `sb.{replica index}.{the
/// replica's own token, base64url}`.
mod page_token {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(replica: usize, inner: &str) -> String {
        format!("sb.{replica}.{}", URL_SAFE_NO_PAD.encode(inner))
    }

    /// `(replica, inner token)`; the empty token starts at the first replica.
    pub fn decode(token: &str, replicas: usize) -> Option<(usize, String)> {
        if token.is_empty() {
            return Some((0, String::new()));
        }
        let rest = token.strip_prefix("sb.")?;
        let (i, inner) = rest.split_once('.')?;
        let i: usize = i.parse().ok()?;
        let inner = String::from_utf8(URL_SAFE_NO_PAD.decode(inner).ok()?).ok()?;
        (i < replicas).then_some((i, inner))
    }
}

/// Whether `path` is `prefix` or below it, on whole segments.
fn path_under(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

fn upstream_failed(e: hyper_util::client::legacy::Error) -> ProxyError {
    tracing::warn!(error = %crate::upstream::DisplayChain(&e), "A2A upstream request failed");
    ProxyError::Upstream(Box::new(e))
}

/// An agent's 101: A2A never asks to switch protocols, so it is the agent's error (502).
fn unasked_switch(upstream: &str) -> ProxyError {
    tracing::warn!(upstream = %upstream, "A2A agent switched protocols unasked; answered 502");
    ProxyError::Upstream("the agent answered 101 to a request that asked for no upgrade".into())
}

/// A gateway failure as a JSON-RPC error answering request `id`.
fn proxy_rpc_error(e: ProxyError, id: &Value) -> Response<Body> {
    rpc_error(e.status(), id, -32000, &e.to_string(), e.kind())
}

/// A JSON-RPC error response. Messages are fixed strings, never upstream details.
fn rpc_error(
    status: StatusCode,
    id: &Value,
    code: i64,
    message: &str,
    kind: &str,
) -> Response<Body> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": code, "message": message, "data": {"type": kind}},
    });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(page_token::decode("", 2), Some((0, String::new())));
        let t = page_token::encode(1, "abc/+=");
        assert_eq!(page_token::decode(&t, 2), Some((1, "abc/+=".into())));
        assert_eq!(page_token::decode(&t, 1), None);
        assert_eq!(page_token::decode("replica-token", 2), None);
        assert_eq!(page_token::decode("sb.x.y", 2), None);
    }

    #[test]
    fn push_paths_match_whole_segments() {
        assert!(path_under("/a2a/", "/a2a/x"));
        assert!(path_under("/a2a", "/a2a"));
        assert!(path_under("/a2a", "/a2a/x"));
        assert!(!path_under("/a2a", "/a2ax"));
        assert!(path_under("/", "/anything"));
    }
}
