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
//!
//! Errors: a failure before a JSON-RPC id is known (a method other than `POST`, a refused
//! body, the agent card) is a [`RequestError`] the gateway renders at its edge; one answering a
//! call carries the call's id ([`errors`]).
//!
//! Files: [`metrics`] (families), `replica` (one agent replica and its replies), `discovery`
//! (the agent card served), [`card`] (the card rewritten), `call` (one JSON-RPC call),
//! [`rpc`] (what a call and its answer name), `list` (`ListTasks` across replicas), `pinning`
//! (which replica holds a task), `exchange` (log line, metrics, SSE pass-through), [`stream`]
//! (SSE events read on the side), `errors` (JSON-RPC errors), [`tasks`] (the tasks seen recently, for
//! the admin UI).

mod call;
pub mod card;
mod discovery;
mod errors;
mod exchange;
mod list;
pub mod metrics;
mod pinning;
mod replica;
pub mod rpc;
pub mod stream;
pub mod tasks;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::body::Body;
use http::{Method, Request, Response};
use switchboard_core::Cause;
use switchboard_sessions::SessionStore;

pub use metrics::{A2aMetrics, A2aPinLabels, A2aRequestLabels, A2aStateLabels};

use crate::config::A2aBackendConfig;
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::upstream::HttpClient;
use card::RouteSecurity;
use replica::Upstream;

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
    ) -> Result<Response<Body>, RequestError> {
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
            _ => Err(RequestError::new(
                Cause::MethodNotAllowed,
                "this A2A route serves JSON-RPC over POST and the agent card at /.well-known/agent-card.json",
            )),
        }
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
