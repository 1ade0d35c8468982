//! The downstream side: [`McpBackend::handle`] serves Streamable HTTP (POST/GET/DELETE) at the
//! route's prefix, stateless 2026-07-28 requests, and the legacy HTTP+SSE transport at
//! `{prefix}/sse` + `{prefix}/message` (`legacy`), JSON-RPC batches of the revisions that have
//! them included (`batch`); every request is then federated over the route's targets
//! (`federation`).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::body::Body;
use bytes::Bytes;
use dashmap::DashMap;
use futures::StreamExt;
use globset::{Glob, GlobSet, GlobSetBuilder};
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::config::{McpConfig, PrefixMode, StdioSessions, TargetConfig, TransportKind};
use crate::error::{Error, Result, refuse};
use crate::metrics::Metrics;
use crate::outbox::{Bound, Inbox, Mode, Outbox, outbox};
use crate::request::{self as rpc, Message};
use crate::session::{Appender, Naming, Registry, Session, spawn_appender};
use crate::upstream::Sink;
use crate::upstream::Upstream;
use crate::upstream::http::header_map;
use crate::upstream::stdio::{StdioPool, StdioProcess};
pub use switchboard_core::{Access, Item, RequestContext};
use switchboard_sessions::{ReleaseReason, ReleaseSubscription, SessionManager};

mod batch;
mod federation;
mod legacy;
mod mrtr;
mod resume;

pub use crate::error::PINNED_ELSEWHERE;
pub use crate::revision::{LAST_BATCH_VERSION, batches_allowed};
pub use batch::DEFAULT_MAX_BATCH;

pub use crate::revision::{LATEST_VERSION, SESSION_VERSIONS, STATELESS_VERSION};
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const MAX_BODY: usize = 8 * 1024 * 1024;
/// Reconnect delay announced in priming events (SEP-1699): how long a client waits before
/// resuming a stream the gateway closed.
const SSE_RETRY_MS: u64 = 3000;

/// What outlives a config reload: the HTTP client, metrics, the stdio children, the id
/// counter and the session manager (tokens, event logs). Build once at start and pass to every
/// [`McpBackend::new`].
#[derive(Clone, Debug)]
pub struct McpShared {
    idle_timeout: std::time::Duration,
    client: reqwest::Client,
    stdio: StdioPool,
    metrics: Metrics,
    ids: Arc<AtomicU64>,
    /// The gateway's manager ([`with_sessions`](Self::with_sessions)), else a private one made
    /// on first use.
    sessions: Arc<std::sync::OnceLock<SessionManager>>,
    /// Started on first use (needs a runtime; `new` may run outside one).
    appender: Arc<std::sync::OnceLock<Appender>>,
}

impl McpShared {
    /// Build the shared parts (needs a rustls crypto provider installed for `https` targets).
    pub fn new(metrics: Metrics) -> Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()?;
        Ok(Self {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            client,
            stdio: StdioPool::default(),
            metrics,
            ids: Arc::new(AtomicU64::new(1)),
            sessions: Arc::default(),
            appender: Arc::default(),
        })
    }

    /// Use the gateway's session manager (one per process, shared by every MCP route): its
    /// keys seal the `Mcp-Session-Id` tokens, its store holds the event logs, and its reaper
    /// decides when a session's upstream connections are released.
    pub fn with_sessions(mut self, sessions: SessionManager) -> Self {
        self.sessions = Arc::new(std::sync::OnceLock::from(sessions));
        self
    }

    /// The session manager in use: without [`with_sessions`](Self::with_sessions), a private
    /// in-memory one with a random key (sessions then neither survive a restart nor move
    /// between replicas; it warns so when made).
    pub fn sessions(&self) -> &SessionManager {
        self.sessions.get_or_init(|| {
            let cfg = switchboard_sessions::SessionsConfig::default();
            let store = Arc::new(switchboard_sessions::MemoryStore::new(
                switchboard_sessions::StoreLimits::from_config(&cfg),
            ));
            // Invariant: `new` fails only on keys it cannot decode, and the default config
            // has none.
            #[allow(clippy::expect_used)]
            SessionManager::new(&cfg, store, switchboard_sessions::Metrics::default())
                .expect("the default sessions config has no keys to decode")
        })
    }

    fn appender(&self) -> Appender {
        self.appender.get_or_init(spawn_appender).clone()
    }

    /// Sessions idle this long (no request, no open stream) are closed, their upstream
    /// sessions too (default 30 minutes; the gateway passes `sessions.idle_timeout`).
    pub fn with_idle_timeout(mut self, idle: std::time::Duration) -> Self {
        self.idle_timeout = idle;
        self
    }
}

/// Default idle timeout of downstream sessions.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// The `mcp` backend of one route (cheap clone).
#[derive(Clone)]
pub struct McpBackend(Arc<Core>);

struct Target {
    name: Arc<str>,
    cfg: TargetConfig,
    kind: TransportKind,
    headers: HeaderMap,
    stdio: Option<StdioProcess>,
    /// The target's `x-mcp-header` bindings, learned from its tool listings.
    tool_headers: crate::param_headers::ToolHeaders,
    /// After a failed connect, lazy reconnects (from any session) wait until then, so a dead
    /// target does not cost every request its timeout.
    down_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

/// How long a target that failed to connect is skipped by lazy reconnects.
const RECONNECT_HOLDOFF: std::time::Duration = std::time::Duration::from_secs(5);

struct Core {
    cfg: McpConfig,
    naming: Arc<Naming>,
    targets: Vec<Target>,
    shared: McpShared,
    sessions: Registry,
    /// Legacy SSE connections by session id, with the principal that opened them.
    legacy: DashMap<String, (Outbox<Value>, Option<Arc<str>>)>,
    allow: Option<GlobSet>,
    deny: GlobSet,
    /// Shortened tool names → (target, upstream name); deterministic, so any session may use them.
    shortened: DashMap<String, (usize, String)>,
    /// Calls of stateless clients parked until they send their input responses.
    inputs: mrtr::Parked,
    /// Subscribed to the shared stdio children (which hold them weakly).
    _every_session: Vec<Arc<dyn Sink>>,
    /// Drops local state of sessions the manager expires, revokes or sees move away.
    _release: Option<ReleaseSubscription>,
}

impl Drop for Core {
    /// A backend replaced by a reload lets go of its sessions' local state. Managed sessions
    /// keep their tokens: the new backend rebuilds them on their next request, reusing the
    /// upstream sessions (so those are not closed here); legacy sessions end.
    fn drop(&mut self) {
        let sessions = self.sessions.all();
        self.sessions.clear();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for s in sessions {
                    let ups = s.take_upstreams();
                    if s.0.managed.get().is_none() {
                        for u in ups {
                            u.close().await;
                        }
                    }
                }
            });
        }
    }
}

/// What a shared stdio child sends outside requests (`list_changed`, `resources/updated`): to
/// every session of the backend.
struct EverySession {
    core: std::sync::Weak<Core>,
    target: usize,
}

impl Sink for EverySession {
    fn deliver(&self, msg: Value) {
        if let Some(core) = self.core.upgrade() {
            for s in core.sessions.all() {
                s.deliver_from_upstream(self.target, msg.clone(), None);
            }
        }
    }
}

fn globset(globs: &[String]) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| Error::Config(e.to_string()))?);
    }
    b.build().map_err(|e| Error::Config(e.to_string()))
}

impl McpBackend {
    /// Build the backend for a (validated) config. Cheap: HTTP upstream sessions open per
    /// downstream session; stdio children come from `shared`'s pool (reused when unchanged).
    pub fn new(cfg: McpConfig, shared: &McpShared) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config(
                "McpBackend::new must run inside a tokio runtime".into(),
            ));
        }
        if let Some((k, m)) = cfg.validate("mcp").into_iter().next() {
            return Err(Error::Config(format!("{k}: {m}")));
        }
        let prefixed = match cfg.prefix {
            PrefixMode::Always => true,
            PrefixMode::Never => false,
            PrefixMode::Conditional => cfg.targets.len() > 1,
        };
        let naming = Arc::new(Naming {
            targets: cfg
                .targets
                .iter()
                .map(|t| Arc::from(t.name.as_str()))
                .collect(),
            prefixed,
            epoch: AtomicU64::new(0),
        });
        let targets: Vec<Target> = cfg
            .targets
            .iter()
            .map(|t| {
                let kind = t.kind().unwrap_or(TransportKind::Http);
                Target {
                    tool_headers: Default::default(),
                    down_until: std::sync::Mutex::new(None),
                    name: t.name.as_str().into(),
                    headers: header_map(
                        &t.http
                            .as_ref()
                            .or(t.sse.as_ref())
                            .map(|h| h.headers.clone())
                            .unwrap_or_default(),
                    ),
                    // `per_session` children are spawned by the sessions (`connect`).
                    stdio: t
                        .stdio
                        .as_ref()
                        .filter(|s| s.sessions == StdioSessions::Shared)
                        .map(|s| {
                            shared
                                .stdio
                                .get(&t.name, s, shared.ids.clone(), cfg.max_reply_bytes())
                        }),
                    cfg: t.clone(),
                    kind,
                }
            })
            .collect();
        let allow = if cfg.tools.allow.is_empty() {
            None
        } else {
            Some(globset(&cfg.tools.allow)?)
        };
        let deny = globset(&cfg.tools.deny)?;
        let core = Arc::new_cyclic(|weak: &std::sync::Weak<Core>| {
            let mut every_session = Vec::new();
            for (target, t) in targets.iter().enumerate() {
                if let Some(p) = &t.stdio {
                    let sink: Arc<dyn Sink> = Arc::new(EverySession {
                        core: weak.clone(),
                        target,
                    });
                    p.subscribe(&sink);
                    every_session.push(sink);
                }
            }
            let w = weak.clone();
            let release = shared.sessions().on_release(move |r| {
                let Some(core) = w.upgrade() else { return };
                let Some(s) = core.sessions.remove(&r.id.to_string()) else {
                    return;
                };
                s.close_live();
                let ups = s.take_upstreams();
                // Moved: the client goes on elsewhere with the same upstream sessions.
                if r.reason != ReleaseReason::Moved
                    && let Ok(rt) = tokio::runtime::Handle::try_current()
                {
                    rt.spawn(async move {
                        for u in ups {
                            u.close().await;
                        }
                    });
                }
            });
            Core {
                _release: Some(release),
                cfg,
                naming,
                targets,
                shared: shared.clone(),
                sessions: Registry::new(shared.idle_timeout, shared.metrics.sessions.clone()),
                legacy: DashMap::new(),
                allow,
                deny,
                shortened: DashMap::new(),
                inputs: mrtr::Parked::default(),
                _every_session: every_session,
            }
        });
        Ok(Self(core))
    }

    /// Pids of the running shared stdio children, by target name (admin and fault tests);
    /// `per_session` children are in [`session_target_pids`](Self::session_target_pids).
    pub fn target_pids(&self) -> Vec<(String, u32)> {
        self.0
            .targets
            .iter()
            .filter_map(|t| Some((t.name.to_string(), t.stdio.as_ref()?.pid()?)))
            .collect()
    }

    /// Pids of the running `per_session` stdio children of this backend's sessions, by target
    /// name (admin and tests).
    pub fn session_target_pids(&self) -> Vec<(String, u32)> {
        let mut pids = Vec::new();
        for s in self.0.sessions.all() {
            for (t, target) in self.0.targets.iter().enumerate() {
                if let Some(Upstream::Stdio(p)) = s.upstream(t)
                    && p.is_per_session()
                    && let Some(pid) = p.pid()
                {
                    pids.push((target.name.to_string(), pid));
                }
            }
        }
        pids
    }

    /// Number of open downstream sessions.
    pub fn session_count(&self) -> usize {
        self.0.sessions.len()
    }

    /// Serve one HTTP request addressed to this route. Errors that answer a JSON-RPC request
    /// are JSON-RPC responses; HTTP-level refusals (see [`refuse`]) are returned for the
    /// gateway to render.
    pub async fn handle(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let authority = req.uri().authority().map(|a| a.as_str());
        self.check_origin(req.headers(), authority)?;
        let prefix = ctx.prefix.trim_end_matches('/');
        let path = req.uri().path();
        let rest = path.strip_prefix(prefix).unwrap_or(path);
        let rest = rest.trim_end_matches('/');
        match (req.method().clone(), rest) {
            (Method::POST, "") => self.post(req, ctx).await,
            (Method::GET, "") => self.get_stream(req, ctx).await,
            (Method::DELETE, "") => self.delete(req, ctx).await,
            (Method::GET, "/sse") => Ok(self.legacy_sse(prefix, ctx)),
            (Method::POST, "/message") => self.legacy_message(req, ctx).await,
            (_, "") => Err(refuse::method_not_allowed()),
            _ => Err(refuse::no_endpoint()),
        }
    }

    /// DNS-rebinding protection.
    fn check_origin(
        &self,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> switchboard_core::Result<()> {
        let cfg = &self.0.cfg;
        if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let ok = if cfg.allowed_origins.is_empty() {
                url::Url::parse(origin).ok().is_some_and(|u| {
                    matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
                })
            } else {
                cfg.allowed_origins
                    .iter()
                    .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
            };
            if !ok {
                return Err(refuse::origin());
            }
        }
        if !cfg.allowed_hosts.is_empty() {
            // HTTP/2 carries the host in `:authority`, not in a Host header.
            let host = headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .or(authority)
                .unwrap_or("");
            let bare = host_without_port(host);
            if !cfg
                .allowed_hosts
                .iter()
                .any(|h| h == "*" || h.eq_ignore_ascii_case(host) || h.eq_ignore_ascii_case(bare))
            {
                return Err(refuse::origin());
            }
        }
        Ok(())
    }

    async fn post(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let accepts_sse = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return Err(refuse::body_too_large());
        };
        let msg: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                self.0.shared.metrics.request("", "", "parse_error");
                return Err(refuse::parse_error());
            }
        };
        let msg = match msg {
            Value::Array(items) => {
                return self
                    .post_batch(&parts.headers, items, accepts_sse, ctx)
                    .await;
            }
            msg => msg,
        };
        let header_version = parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok());
        let session_id = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        let meta_version = msg
            .pointer(&format!(
                "/params/_meta/{}",
                META_VERSION.replace('/', "~1")
            ))
            .and_then(Value::as_str);
        let modern =
            header_version == Some(STATELESS_VERSION) || meta_version == Some(STATELESS_VERSION);
        let Ok(msg) = Message::parse(msg) else {
            return Err(refuse::invalid_message());
        };
        let req = match msg {
            Message::Request(req) => req,
            // Stateless clients' notifications and replies have no session to reach; the
            // requests they could refer to were answered within their own HTTP exchange.
            _ if session_id.is_none() && modern => return Ok(accepted()),
            msg => {
                if let Some(v) = header_version
                    && !SESSION_VERSIONS.contains(&v)
                    && v != STATELESS_VERSION
                {
                    return Err(refuse::unsupported_version());
                }
                let session_id = session_id.ok_or_else(refuse::no_session_id)?;
                let session = match self.resume(session_id, ctx).await {
                    Ok(s) => s,
                    Err(r) => return rejected(r, Value::Null),
                };
                self.client_message(&session, msg).await;
                return Ok(accepted());
            }
        };
        let is_initialize = matches!(req.method, rpc::Method::Initialize);
        if session_id.is_none()
            && !is_initialize
            && (matches!(req.method, rpc::Method::Discover) || modern)
        {
            return Ok(self.stateless(req, &parts.headers, ctx).await);
        }
        if let Some(v) = header_version
            && !SESSION_VERSIONS.contains(&v)
            && v != STATELESS_VERSION
        {
            return Err(refuse::unsupported_version());
        }
        if is_initialize {
            if session_id.is_some() {
                return Err(refuse::already_initialized());
            }
            return Ok(
                match self
                    .initialize(&req, None, ctx.principal.clone(), &ctx.route)
                    .await
                {
                    Ok((session, resp)) => {
                        let mut r = rpc_response(StatusCode::OK, resp);
                        if let Ok(v) = http::HeaderValue::from_str(&session.header_id()) {
                            r.headers_mut().insert("mcp-session-id", v);
                        }
                        r
                    }
                    Err(e) => rpc_response(StatusCode::OK, e.reply(req.id)),
                },
            );
        }
        let session_id = session_id.ok_or_else(refuse::no_session_id)?;
        let session = match self.resume(session_id, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, req.id),
        };
        Ok(self
            .respond(session, req, accepts_sse, Some(session_id), ctx)
            .await)
    }

    /// Answer one request as an SSE stream when the client accepts one (progress, logging and
    /// server requests travel with it; every event has an id, a priming event first from
    /// 2025-11-25 on), else as JSON. `ping` is always JSON: nothing can accompany it.
    async fn respond(
        &self,
        session: Session,
        req: rpc::Request,
        accepts_sse: bool,
        sid: Option<&str>,
        ctx: &RequestContext,
    ) -> Response<Body> {
        let streams = !matches!(req.method, rpc::Method::Ping);
        if !(streams && accepts_sse) {
            let resp = self.dispatch(&session, req, None, ctx.access.clone()).await;
            self.sync_targets(&session).await;
            return rpc_response(StatusCode::OK, resp);
        }
        let (tx, rx) = self.request_outbox(&session);
        let this = self.clone();
        let s2 = session.clone();
        let tx2 = tx.clone();
        let access = ctx.access.clone();
        tokio::spawn(async move {
            let resp = this.dispatch(&s2, req, Some(tx2.clone()), access).await;
            if tx2.send_last(resp).await.is_err() {
                tracing::debug!("reply not delivered: the request's stream was closed");
            }
            this.sync_targets(&s2).await;
        });
        drop(tx);
        let priming = crate::revision::primes_streams(&session.0.version);
        let mut r = if session.0.managed.get().is_some() {
            self.logged_post_stream(session, rx, priming)
        } else {
            sse_response(session, rx, priming)
        };
        if let Some(sid) = sid.and_then(|s| http::HeaderValue::from_str(s).ok()) {
            r.headers_mut().insert("mcp-session-id", sid);
        }
        r
    }

    /// The per-stream queue bound of this route.
    pub(crate) fn bound(&self) -> Bound {
        Bound {
            cap: self.0.cfg.max_queued_messages(),
            metrics: self.0.shared.metrics.clone(),
        }
    }

    /// The queue of a request answered as SSE: a managed session's is drained by the task
    /// that logs it (full: messages spill to the standalone stream, the reply waits for
    /// room); any other's by the client (full: the stream is cut).
    pub(crate) fn request_outbox(&self, session: &Session) -> (Outbox<Value>, Inbox<Value>) {
        let mode = if session.0.managed.get().is_some() {
            Mode::Spill
        } else {
            Mode::Cut
        };
        outbox(&self.bound(), mode, "request")
    }

    fn stateless_session(&self, msg: &Value, principal: Option<Arc<str>>) -> Session {
        let meta = msg.pointer("/params/_meta");
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
        let init = json!({
            "protocolVersion": LATEST_VERSION,
            "capabilities": get("io.modelcontextprotocol/clientCapabilities").unwrap_or(json!({})),
            "clientInfo": get("io.modelcontextprotocol/clientInfo").unwrap_or(json!({"name": "stateless-client", "version": "0"})),
        });
        Session::new(
            String::new(),
            STATELESS_VERSION.into(),
            init,
            principal,
            self.0.naming.clone(),
            None,
        )
    }

    /// GET: the session's standalone stream for server-initiated messages.
    async fn get_stream(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let accepts = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        if !accepts {
            return Err(refuse::not_event_stream());
        }
        let Some(sid) = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(refuse::no_session_id());
        };
        let last_event_id = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let session = match self.resume(sid, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, Value::Null),
        };
        self.standalone_stream(session, last_event_id).await
    }

    async fn delete(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let Some(sid) = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(refuse::no_session_id());
        };
        let session = match self.resume(sid, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, Value::Null),
        };
        let Some(m) = session.0.managed.get() else {
            return Err(refuse::session_not_found());
        };
        // The manager's release callback drops the local state and closes the upstreams.
        if let Err(e) = m.manager.revoke(&m.record()).await {
            tracing::warn!(error = %e, "session store: revoking a session failed");
            return Err(refuse::store_unavailable());
        }
        Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default())
    }
}

/// Pipe each HTTP upstream's own standalone stream (server requests such as `roots/list`,
/// `list_changed`, logging) into the session's standalone stream `tx`, for as long as `tx` is
/// open: a task per HTTP target while the client listens, none otherwise.
fn pipe_upstream_streams(session: &Session, tx: &Outbox<Value>) {
    for t in 0..session.0.naming.targets.len() {
        if let Some(Upstream::Http(h)) = session.upstream(t) {
            let s = session.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(Some(resp)) = h.open_stream().await else {
                    return;
                };
                let mut events =
                    crate::upstream::frames::sse_events(resp.bytes_stream(), h.max_reply());
                loop {
                    tokio::select! {
                        _ = tx.closed() => break,
                        ev = events.next() => match ev {
                            Some(Ok(ev)) => {
                                if let Ok(m) = serde_json::from_str::<Value>(&ev.data) {
                                    s.deliver_from_upstream(t, m, Some(&tx));
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(target_name = %h.target(), error = ?e, "target's standalone stream dropped");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            });
        }
    }
}

/// Targets are spoken to in the session era: the per-request context keys of 2026-07-28
/// (`io.modelcontextprotocol/*` in `_meta`) were already used to open the upstream sessions.
fn strip_modern_meta(msg: &mut Value) {
    if let Some(meta) = msg
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
    {
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    }
}

/// A session-era result made a valid 2026-07-28 one: `resultType`, and the caching hints
/// (immediately stale, private) on the cacheable results.
fn modernize_result(cacheable: bool, resp: &mut Value) {
    let Some(result) = resp.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if cacheable {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
}

/// `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`.
fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |i| &host[..=i]);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// `Mcp-Method` / `Mcp-Name` routing headers (2026-07-28) must agree with the body.
fn check_routing_headers(headers: &HeaderMap, method: &rpc::Method) -> Result<(), String> {
    let body = method.item_name();
    let method = method.name();
    if let Some(h) = headers.get("mcp-method").and_then(|v| v.to_str().ok())
        && h != method
    {
        return Err(format!(
            "Mcp-Method header `{h}` does not match body method `{method}`"
        ));
    }
    if let Some(h) = headers.get("mcp-name").and_then(|v| v.to_str().ok()) {
        // Names that are not plain ASCII arrive as `=?base64?…?=`.
        let h = crate::param_headers::decode(h);
        if h.is_none() || body != h.as_deref() {
            return Err("Mcp-Name header does not match the body".into());
        }
    }
    Ok(())
}

/// A rejected request as the answer to its POST (`id`: the request's, when it has one).
fn rejected(r: crate::error::Rejected, id: Value) -> switchboard_core::Result<Response<Body>> {
    match r {
        crate::error::Rejected::Http(e) => Err(e),
        crate::error::Rejected::Rpc(e) => Ok(rpc_response(e.status(), e.reply(id))),
    }
}

/// 202 with no body: a notification or a response was taken.
fn accepted() -> Response<Body> {
    Response::builder()
        .status(StatusCode::ACCEPTED)
        .body(Body::empty())
        .unwrap_or_default()
}

fn rpc_response(status: StatusCode, body: Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
        .unwrap_or_default()
}

/// An SSE body from a channel; every event has an id. A request's stream ends when its last
/// sender (the task answering it) is gone, right after the response.
fn sse_response(session: Session, rx: Inbox<Value>, priming: bool) -> Response<Body> {
    let s2 = session.clone();
    let first = futures::stream::iter(priming.then(|| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "id: {}\nretry: {SSE_RETRY_MS}\ndata: \n\n",
            s2.event_id()
        )))
    }));
    let events = rx.into_stream().map(move |msg| {
        Ok(Bytes::from(format!(
            "id: {}\nevent: message\ndata: {}\n\n",
            session.event_id(),
            msg
        )))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(first.chain(events)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}});
        let mut h = HeaderMap::new();
        let msg = rpc::Request::parse(msg).method;
        assert!(check_routing_headers(&h, &msg).is_ok());
        h.insert("mcp-method", "tools/call".parse().unwrap());
        h.insert("mcp-name", "t".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_ok());
        h.insert("mcp-name", "u".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
        h.insert("mcp-name", "t".parse().unwrap());
        h.insert("mcp-method", "tools/list".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "日本"}});
        let msg = rpc::Request::parse(msg).method;
        let mut h = HeaderMap::new();
        h.insert("mcp-name", "=?base64?5pel5pys?=".parse().unwrap());
        assert!(
            check_routing_headers(&h, &msg).is_ok(),
            "encoded names are decoded"
        );
        h.insert("mcp-name", "=?base64?!!?=".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
    }

    #[test]
    fn modern_results_get_result_type_and_caching_hints() {
        let mut r = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        modernize_result(true, &mut r);
        assert_eq!(
            r["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let mut r = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
        modernize_result(false, &mut r);
        assert_eq!(
            r["result"],
            json!({"content": [], "resultType": "complete"})
        );
        let mut m = json!({"params": {"_meta": {"progressToken": 1, "io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        strip_modern_meta(&mut m);
        assert_eq!(m["params"]["_meta"], json!({"progressToken": 1}));
    }
}
