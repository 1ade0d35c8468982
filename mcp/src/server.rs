//! The downstream side: [`McpBackend`], one route's MCP endpoint. A message goes through
//! these stages, one file each:
//!
//! 1. transport, where the HTTP request is taken apart and the reply put together:
//!    [`McpBackend::handle`] (here: origin check, path and method), `streamable` (Streamable
//!    HTTP POST/GET/DELETE at the prefix), `legacy` (HTTP+SSE at `{prefix}/sse` and
//!    `{prefix}/message`), `batch` (JSON-RPC batches up to 2025-03-26), `stateless`
//!    (2026-07-28 requests without a session, and calls parked for the client's input),
//!    `subscriptions` (2026-07-28 `subscriptions/listen` streams federated over the targets,
//!    and resource subscriptions across eras);
//! 2. parse: each message once into a `request::Message`;
//! 3. session: `initialize` opens one (`initialize`); Streamable HTTP sessions are sealed
//!    into their `Mcp-Session-Id`, resumed on every request and keep event logs
//!    (`session_store`);
//! 4. authorize and route: `dispatch` checks the caller's access per item and routes by
//!    name, URI or reference; `federation` fans lists out, merges them and resolves names;
//! 5. upstream: `forward` sends one request to its target and delivers what the target sends
//!    meanwhile; `input_rounds` runs 2026-07-28 input rounds for session-era clients;
//! 6. reply: back through the transport (JSON, or SSE events as they come).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::body::Body;
use dashmap::DashMap;
use globset::{Glob, GlobSet, GlobSetBuilder};
use http::{HeaderMap, Method, Request, Response, header};
use serde_json::Value;

use crate::config::{McpConfig, PrefixMode, StdioSessions, TargetConfig, TransportKind};
use crate::error::{Error, Result, refuse};
use crate::metrics::Metrics;
use crate::outbox::{Bound, Outbox};
use crate::session::{Appender, Naming, Registry, spawn_appender};
use crate::upstream::Sink;
use crate::upstream::Upstream;
use crate::upstream::http::header_map;
use crate::upstream::stdio::{StdioPool, StdioProcess};
pub use switchboard_core::{Access, Item, RequestContext};
use switchboard_sessions::{ReleaseReason, ReleaseSubscription, SessionManager};

mod batch;
mod dispatch;
mod federation;
mod forward;
mod initialize;
mod input_rounds;
mod legacy;
mod session_store;
mod stateless;
mod streamable;
mod subscriptions;

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
    /// The targets' HTTP clients, one per serving thread.
    client: crate::upstream::Clients,
    stdio: StdioPool,
    metrics: Metrics,
    ids: Arc<AtomicU64>,
    /// The gateway's manager ([`with_sessions`](Self::with_sessions)), else a private one made
    /// on first use.
    sessions: Arc<std::sync::OnceLock<SessionManager>>,
    /// Started on first use (needs a runtime; `new` may run outside one).
    appender: Arc<std::sync::OnceLock<Appender>>,
    /// What relative `openapi.spec` paths resolve against (the config file's folder).
    base_dir: std::path::PathBuf,
}

impl McpShared {
    /// Build the shared parts (needs a rustls crypto provider installed for `https` targets).
    pub fn new(metrics: Metrics) -> Result<Self> {
        let client = crate::upstream::Clients::new()?;
        Ok(Self {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            client,
            stdio: StdioPool::default(),
            metrics,
            ids: Arc::new(AtomicU64::new(1)),
            sessions: Arc::default(),
            appender: Arc::default(),
            base_dir: std::path::PathBuf::new(),
        })
    }

    /// Relative `openapi.spec` paths of every backend resolve against `dir` (the gateway
    /// passes the config file's folder; default: the working directory).
    pub fn with_base_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.base_dir = dir.into();
        self
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
    /// Fixed `headers` and the credential of every request to an http, sse or openapi target.
    headers: crate::credentials::UpstreamHeaders,
    /// The target's upstream credential (see [`crate::credentials`]).
    credential: crate::credentials::CredentialSlot,
    stdio: Option<StdioProcess>,
    /// The target's `x-mcp-header` bindings, learned from its tool listings.
    tool_headers: crate::param_headers::ToolHeaders,
    /// After a failed connect, lazy reconnects (from any session) wait until then, so a dead
    /// target does not cost every request its timeout.
    down_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// An `openapi` target's service (shared by every session).
    openapi: Option<Arc<crate::upstream::openapi::OpenApi>>,
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
    inputs: stateless::Parked,
    /// Open `subscriptions/listen` streams, and session clients' subscriptions held on
    /// 2026-07-28 targets.
    subs: subscriptions::Subscriptions,
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
            for s in core.sessions.all().into_iter().chain(core.subs.listening()) {
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
        if let Some((k, m)) = cfg.validate_in("mcp", &shared.base_dir).into_iter().next() {
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
                let credential = crate::credentials::CredentialSlot::default();
                let fixed = header_map(
                    &t.http
                        .as_ref()
                        .or(t.sse.as_ref())
                        .map(|h| h.headers.clone())
                        .or(t.openapi.as_ref().map(|o| o.headers.clone()))
                        .unwrap_or_default(),
                );
                Target {
                    tool_headers: Default::default(),
                    down_until: std::sync::Mutex::new(None),
                    name: t.name.as_str().into(),
                    headers: crate::credentials::UpstreamHeaders::new(fixed, credential.clone()),
                    credential,
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
                    openapi: None,
                }
            })
            .collect();
        // `openapi` targets load their documents now (a file's errors are the config's).
        let mut targets = targets;
        for (target, t) in targets.iter_mut().zip(&cfg.targets) {
            if let Some(o) = &t.openapi {
                target.openapi = Some(crate::upstream::openapi::OpenApi::new(
                    target.name.clone(),
                    &o.resolved(&shared.base_dir),
                    shared.client.clone(),
                    target.headers.clone(),
                    cfg.max_reply_bytes(),
                    t.timeout(),
                )?);
            }
        }
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
                core.subs.end_session(&r.id.to_string());
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
                inputs: stateless::Parked::default(),
                subs: Default::default(),
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

    /// Sets the upstream credentials of this backend's targets (the gateway calls it whenever
    /// it applies a configuration, also to a backend kept across a reload). Requests already
    /// on their way keep the headers they were sent with.
    pub fn set_upstream_credentials(&self, creds: &crate::TargetCredentials) {
        for t in &self.0.targets {
            t.credential.set(creds.resolve(&t.name));
            // A document URL is fetched now that its request can carry the credential.
            if let Some(o) = &t.openapi {
                o.prefetch();
            }
        }
    }

    /// The credential header target `target` is to be sent now (its own, the route's, or none),
    /// for a kind of target that builds its own requests: call it once per upstream request.
    pub fn upstream_credential(
        &self,
        target: &str,
    ) -> Option<(http::HeaderName, http::HeaderValue)> {
        let t = self.0.targets.iter().find(|t| &*t.name == target)?;
        t.headers.credential()
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
        match &ctx.trace {
            None => self.serve(req, ctx).await,
            // Boxed: the untraced request's future stays the size of `serve`'s.
            Some(t) => Box::pin(crate::trace::scoped(Some(t.clone()), self.serve(req, ctx))).await,
        }
    }

    async fn serve(
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
            let bare = switchboard_core::http::host_without_port(host);
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

    /// The per-stream queue bound of this route.
    pub(crate) fn bound(&self) -> Bound {
        Bound {
            cap: self.0.cfg.max_queued_messages(),
            metrics: self.0.shared.metrics.clone(),
        }
    }
}
