//! The request pipeline: what each request goes through once its connection's hyper service
//! hands it over ([`Conn::handle`]):
//! edge checks ([`crate::head`]: normalized path, one authority) → route ([`crate::router`])
//! → listener limits → the policy stage ([`crate::policy`]) → backend ([`crate::backend`])
//! → response policies → [`ObservedBody`] (access log and metrics when the body ends). A
//! refusal anywhere becomes a response in the route's API format.
//!
//! A listener's routes live in an `ArcSwap` that reloads replace; each request loads its
//! [`ListenerRuntime`] once, so a request finishes on the generation it started with.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{Completion, ObservedBody};
use crate::config::ListenerLimits;
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::metrics::Metrics;
use crate::policy::{Admission, RouteFacts};
use crate::router::{self, Route};
use switchboard_core::ApiFormat;

/// One config generation of a listener.
pub struct ListenerRuntime {
    /// Listener name.
    pub name: Arc<str>,
    /// Routes in match order.
    pub routes: Vec<Route>,
    /// Limits.
    pub limits: ListenerLimits,
    /// Proxies whose forwarding headers are believed (`trusted_proxies`).
    pub trusted: crate::forwarding::TrustedProxies,
    /// Path normalization options.
    pub paths: crate::head::Rules,
    /// The PROXY protocol header every connection must start with (`proxy_protocol`).
    pub proxy_protocol: Option<crate::config::ProxyProtocol>,
}

/// What the accept loop and connections share with the rest of the gateway.
#[derive(Clone)]
pub struct ListenerDeps {
    /// Gateway metrics.
    pub metrics: Metrics,
    /// Cancelled when the gateway begins to shut down: stop accepting, drain connections.
    pub shutdown: CancellationToken,
    /// Cancelled when open streams must end (at the start of the grace period).
    pub end_streams: CancellationToken,
    /// Tracks every connection task, so shutdown can wait for them.
    pub connections: TaskTracker,
    /// The serving threads connections are handed to; `None` serves them on the runtime
    /// that accepts them.
    pub workers: Option<crate::workers::Workers>,
    /// The hop to other replicas (`sessions.peer`), when configured.
    pub peers: Option<crate::peer::Peers>,
    /// The access log writer, when the access log is on.
    pub access_log: Option<crate::body::access_log::AccessLog>,
    /// Pinned MCP tool definitions (tool-poisoning defence), kept in the sessions store.
    pub tool_pins: Option<crate::guardrails::pins::ToolPins>,
    /// The OpenTelemetry tracer, when tracing is on (`tracing:` or `OTEL_*`).
    pub otel: Option<crate::otel::Otel>,
}

/// One client connection as the request pipeline sees it (the connection layer in
/// [`crate::listener`] builds it and hands each request to [`Conn::handle`]).
pub struct Conn {
    /// The listener's serving generation.
    pub runtime: Arc<ArcSwap<ListenerRuntime>>,
    /// The TCP peer.
    pub remote: SocketAddr,
    /// The client's IP as a header value, for `X-Forwarded-For` (formatted once per
    /// connection, not per request).
    pub remote_ip: HeaderValue,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// What connections share with the rest of the gateway.
    pub deps: ListenerDeps,
    /// Accepted over `max_connections`: every request gets 503 and the connection closes.
    pub overloaded: bool,
    /// Requests whose head arrived on this connection. hyper bounds the time to send a head
    /// on HTTP/1.1 only; the watchdog uses this to close an HTTP/2 (or any) connection that
    /// trickles bytes without ever completing a request head (slowloris).
    pub requests: std::sync::atomic::AtomicU64,
}

static NONE: &str = "none";

impl Conn {
    /// Serves one request: the edge checks, the route, the policy stage, the backend, the
    /// response policies and the observed body.
    pub async fn handle(&self, mut req: Request<Incoming>) -> Response<ObservedBody> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let rt = self.runtime.load_full();
        let method = req.method().clone();
        // An HTTP/1 request with a body that the gateway itself refuses, often before reading
        // the body: hyper closes such a connection, so the answer says so, or a client would
        // send its next request on a connection about to close (nginx closes after a 413 too).
        let unread_body_closes = req.version() < http::Version::HTTP_2
            && (req.headers().contains_key(header::TRANSFER_ENCODING)
                || req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() != b"0"));
        let origin = req.headers().get(header::ORIGIN).cloned();

        let client = crate::forwarding::Client::of(
            &rt.trusted,
            self.remote.ip(),
            &self.remote_ip,
            req.headers(),
        );
        let client_ip = client.ip;

        // The edge stage: from here on the request carries only its normalized path and its
        // one authority; routing, policies, backends and the upstream all see those.
        let head = crate::head::normalize(&mut req, rt.paths);
        let uri = req.uri().clone();
        let (route, format) = match &head {
            Ok(()) => {
                let route = router::find(&rt.routes, &req);
                let format = route.map(|r| r.error_format(uri.path()));
                (route, format)
            }
            // A refused head routes nowhere; the route the raw request would reach only
            // picks the shape of the 400.
            Err(_) => {
                let format = router::find(&rt.routes, &req).map(|r| r.error_format(uri.path()));
                (None, format)
            }
        };
        let format = format.unwrap_or(ApiFormat::Plain);
        // Tracing off: this one branch, nothing built.
        let trace = self
            .deps
            .otel
            .as_ref()
            .map(|o| server_span(o, &req, route, &rt.name, self.scheme));
        let result = match head {
            Ok(()) => {
                self.pipeline(&rt, route, req, &client, trace.as_ref())
                    .await
            }
            // A refused head is a 400 with a fixed message (no request data echoed).
            Err(e) => Err(crate::error::bad_request(e.message())),
        };
        let (resp, is_stream, refused) = match result {
            Ok(resp) => {
                let is_stream = is_ok_event_stream(&resp);
                (resp, is_stream, false)
            }
            // The one place a failure becomes a response, in the route's format.
            Err(e) => (crate::error::render(e, format), false, true),
        };

        let (mut parts, body) = resp.into_parts();
        if refused && unread_body_closes {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(route) = route {
            route.policies.respond(origin.as_ref(), &mut parts.headers);
        }
        if self.overloaded {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let stream_gauge = match (is_stream, route) {
            (true, Some(r)) => {
                r.open_streams.inc();
                Some(r.open_streams.clone())
            }
            _ => None,
        };
        // The common case's counter handle, resolved once per route (see `Route::ok_requests`).
        let counted = match route {
            Some(r) if parts.status == StatusCode::OK => Some(
                r.ok_requests
                    .get_or_init(|| {
                        self.deps.metrics.requests.get_or_create_owned(
                            &crate::metrics::RequestLabels {
                                listener: rt.name.clone(),
                                route: r.name.clone(),
                                status: StatusCode::OK.as_u16(),
                            },
                        )
                    })
                    .clone(),
            ),
            _ => None,
        };
        let completion = Completion {
            requests: self.deps.metrics.requests.clone(),
            counted,
            listener: rt.name.clone(),
            route: route.map(|r| r.name.clone()).unwrap_or_else(|| NONE.into()),
            duration: route.map(|r| r.request_duration.clone()),
            client: client_ip,
            method,
            uri,
            status: parts.status,
            upstream: route
                .map(|r| r.upstream.clone())
                .unwrap_or_else(|| NONE.into()),
            started,
            stream_gauge,
            access_log: self.deps.access_log.clone(),
            trace,
        };
        let idle = route.and_then(|r| r.policies.timeouts.idle);
        let cut = is_stream.then(|| self.deps.end_streams.clone().cancelled_owned());
        Response::from_parts(parts, ObservedBody::new(body, idle, cut, completion))
    }

    async fn pipeline(
        &self,
        rt: &ListenerRuntime,
        route: Option<&Route>,
        mut req: Request<Incoming>,
        client: &crate::forwarding::Client,
        trace: Option<&switchboard_core::Trace>,
    ) -> Result<Response<Body>, RequestError> {
        if self.overloaded {
            return Err(crate::error::overloaded());
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > rt.limits.max_header_bytes {
            return Err(crate::error::headers_too_large(rt.limits.max_header_bytes));
        }
        crate::forwarding::check_request(&req)?;
        if let Some(resp) = crate::oauth_metadata::serve(
            || rt.routes.iter().filter_map(Route::protected_resource),
            &req,
            self.scheme,
        ) {
            return Ok(resp);
        }
        let route = route.ok_or_else(crate::error::no_route)?;
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > rt.limits.max_body_bytes
        {
            return Err(crate::error::body_too_large(rt.limits.max_body_bytes));
        }
        // The policy stage, its phases in their one order (`policy::Phase::REQUEST`); the
        // forwarding preparation is its `Forwarding` phase.
        let facts = RouteFacts {
            name: &route.name,
            prefix: &route.prefix,
            path_prefix: route.matcher.prefix(),
            limiter: route.limiter.as_ref(),
            client_ip: client.ip,
            backend_checks_items: checks_items(&route.backend),
            scheme: self.scheme,
            json: &rt.limits.json,
        };
        let forward = |req: &mut Request<Incoming>| {
            let host = crate::forwarding::requested_host(req);
            crate::forwarding::prepare(
                req,
                &upgrade_policy(&route.backend),
                client,
                self.scheme,
                host.as_ref(),
            );
        };
        let mut context = match route.policies.admit(facts, &mut req, forward).await? {
            Admission::Answered(resp) => return Ok(resp),
            Admission::Admitted(context) => context,
        };
        context.trace = trace.cloned();
        let cx = RequestCx {
            context,
            json: rt.limits.json,
            remote: self.remote,
            remote_ip: &client.ip_header,
            scheme: self.scheme,
            prefix: route.matcher.prefix(),
            timeouts: route.policies.timeouts,
            max_body_bytes: rt.limits.max_body_bytes,
            upstream_duration: &route.upstream_duration,
            open_streams: &route.open_streams,
            shutdown: &self.deps.shutdown,
            listener: &rt.name,
            peers: self.deps.peers.as_ref(),
            guardrails: route.policies.guardrails.as_ref(),
            tool_pins: self.deps.tool_pins.as_ref(),
        };
        route.backend.serve(req, &cx).await
    }
}

/// The upgrades a backend may tunnel: an `http` route's `upgrades` (WebSocket by default);
/// the others answer themselves and upgrade nothing.
fn upgrade_policy(
    backend: &crate::backend::Backend,
) -> std::borrow::Cow<'_, crate::forwarding::UpgradePolicy> {
    use crate::backend::Backend;
    use std::borrow::Cow;
    match backend {
        Backend::Http(h) => Cow::Borrowed(h.upgrades()),
        Backend::Mcp(_) | Backend::Llm(_) | Backend::A2a(_) | Backend::Redirect(_) => {
            Cow::Owned(crate::forwarding::UpgradePolicy::none())
        }
    }
}

/// Whether a backend calls [`crate::authz::Authorizer::allows`] per tool, prompt, resource or
/// model itself, so route-level rules about `mcp`/`llm` are left to it. Deliberately
/// exhaustive: a new backend kind must decide here (MCP and LLM: true; A2A, http: false).
fn checks_items(backend: &crate::backend::Backend) -> bool {
    use crate::backend::Backend;
    match backend {
        Backend::Mcp(_) | Backend::Llm(_) => true,
        Backend::Http(_) | Backend::A2a(_) | Backend::Redirect(_) => false,
    }
}

/// The request's SERVER span (HTTP semantic conventions), child of the client's
/// `traceparent`. Named `{method} {route}`; ended with the response body ([`Completion`]).
fn server_span(
    otel: &crate::otel::Otel,
    req: &Request<Incoming>,
    route: Option<&Route>,
    listener: &Arc<str>,
    scheme: &'static str,
) -> switchboard_core::Trace {
    use opentelemetry::KeyValue;
    let method = req.method().as_str().to_owned();
    let route_name = route.map_or(NONE, |r| &*r.name);
    let mut attrs = vec![
        KeyValue::new("http.request.method", method.clone()),
        KeyValue::new("url.path", req.uri().path().to_owned()),
        KeyValue::new("url.scheme", scheme),
        KeyValue::new("switchboard.listener", listener.to_string()),
        KeyValue::new("switchboard.route", route_name.to_owned()),
    ];
    if let Some(r) = route {
        attrs.push(KeyValue::new(
            "http.route",
            r.matcher.prefix().unwrap_or(&r.name).to_owned(),
        ));
    }
    otel.server_span(req.headers(), format!("{method} {route_name}"), attrs)
}

/// A successful event stream: its body is cut at shutdown and counted as an open stream.
fn is_ok_event_stream<B>(resp: &Response<B>) -> bool {
    resp.status() == StatusCode::OK && switchboard_core::http::is_event_stream(resp.headers())
}
