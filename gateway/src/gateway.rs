//! The running gateway: builds each config generation (routes, policies, backends, TLS),
//! binds and reconciles listeners, swaps generations atomically, and shuts down gracefully.
//!
//! Only the control path (start, reload, shutdown) takes the state lock; the data path reads
//! each listener's `ArcSwap` and never waits on it.

mod admin_view;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin;
use crate::backend::Backend;
use crate::backend::http::HttpBackend;
use crate::config::{Config, ConfigErrors, parse_bind};
use crate::error::{Error, Result};
use crate::listener::{self, ListenerDeps, ListenerHandle, ListenerRuntime};
use crate::metrics::{Metrics, ReloadLabels, ReloadResult};
use crate::policy::RoutePolicies;
use crate::router::{Matcher, Route};
use crate::upstream::HttpClients;
use switchboard_sessions::SessionManager;

/// How long shutdown lets open streams write their `retry:` hints before it cuts them.
const STREAM_FLUSH: Duration = Duration::from_millis(200);

/// The configuration generation that is serving, as `/config` shows it.
pub struct Generation {
    /// The validated config.
    pub config: Config,
    /// 1 for the config loaded at start, +1 per successful reload.
    pub version: u64,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// A refused reload, as `/config` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadFailure {
    /// When it was refused.
    #[serde(with = "humantime_serde")]
    pub at: SystemTime,
    /// Every problem, formatted `FILE:LINE:COL: path: message` (or a start-up error).
    pub errors: Vec<String>,
}

/// A cheap handle to the running gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config_path: Option<PathBuf>,
    base_dir: PathBuf,
    metrics: Metrics,
    /// Built once at start from `sessions:`; keys are re-read on reload, the store is not.
    sessions: SessionManager,
    /// LLM backends' shared HTTP client and metrics.
    llm: switchboard_llm::LlmDeps,
    /// MCP backends' shared client, metrics and stdio children.
    mcp: switchboard_mcp::McpShared,
    clients: HttpClients,
    a2a_metrics: crate::a2a::A2aMetrics,
    deps: ListenerDeps,
    current: ArcSwap<Generation>,
    last_failure: ArcSwapOption<ReloadFailure>,
    version: AtomicU64,
    ready: AtomicBool,
    /// Serializes start/reload/shutdown; never taken on the data path.
    control: tokio::sync::Mutex<Control>,
    /// Virtual keys (`/api/keys`), in the sessions store.
    keys: crate::auth::virtual_keys::KeyStore,
    /// Spend totals and budgets, where the keys are.
    spend: crate::spend::Spend,
    /// Which `llm.cache` keys Redis holds (with a Redis sessions store), for all routes.
    llm_cache_index: Option<crate::llm_cache::CacheIndex>,
    /// Each serving listener's runtime, for requests forwarded by other replicas.
    runtimes: Arc<crate::peer_listener::Runtimes>,
    /// Stops the peer listener and its registration (at the end of shutdown).
    peer_stop: CancellationToken,
    /// The peer listener's address, when `sessions.peer` is configured.
    peer_addr: std::sync::OnceLock<SocketAddr>,
}

#[derive(Default)]
struct Control {
    listeners: HashMap<String, ListenerHandle>,
    admin: Option<admin::AdminHandle>,
    /// State that outlives a config generation, keyed by (listener, route).
    carried: Carried,
}

/// Per-route state carried from one generation to the next while its config is unchanged:
/// LLM pool health (ejections, latency averages) and rate-limit windows.
#[derive(Default)]
struct Carried {
    llm: HashMap<(String, String), switchboard_llm::LlmBackend>,
    /// MCP backends are kept whole while their config is equal: dropping one ends its
    /// sessions, and clients would have to re-initialize.
    mcp: HashMap<(String, String), (switchboard_mcp::McpConfig, switchboard_mcp::McpBackend)>,
    limiters: HashMap<(String, String), crate::rate_limit::Limiter>,
}

impl Gateway {
    /// Starts serving `config`: binds the admin listener and every listener. `config_path`
    /// (when the config came from a file) is what `/config` names and what relative TLS paths
    /// resolve against.
    /// Connections are served on [`crate::workers::default_count`] serving threads.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Gateway> {
        Self::start_with_workers(config, config_path, crate::workers::default_count()).await
    }

    /// [`Gateway::start`] with `workers` serving threads; 0 serves connections on the
    /// calling runtime instead (tests that pause time need that).
    pub async fn start_with_workers(
        config: Config,
        config_path: Option<PathBuf>,
        workers: usize,
    ) -> Result<Gateway> {
        let workers = if workers == 0 {
            None
        } else {
            Some(crate::workers::Workers::start(workers).map_err(Error::Workers)?)
        };
        let base_dir = config_path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let metrics = Metrics::new();
        let access_log =
            crate::body::access_log::AccessLog::start(&config.access_log, &base_dir, &metrics)
                .map_err(Error::AccessLog)?;
        let otel = match crate::otel::Settings::resolve(config.tracing.as_ref(), &|k| {
            std::env::var(k).ok()
        })
        .map_err(Error::Tracing)?
        {
            Some(s) => Some(crate::otel::Otel::start(&s).map_err(Error::Tracing)?),
            None => None,
        };
        let session_metrics = metrics.with_registry(switchboard_sessions::Metrics::new);
        fn provider_client() -> reqwest::Result<reqwest::Client> {
            reqwest::Client::builder().tcp_nodelay(true).build()
        }
        // Each serving thread builds its own; this fails only without a TLS backend, which is
        // compiled in, so check once, here.
        provider_client().map_err(|e| Error::Backend {
            route: "llm".into(),
            message: format!("HTTP client: {e}"),
        })?;
        let llm = switchboard_llm::LlmDeps {
            client: switchboard_llm::ProviderClients::new(
                #[allow(
                    clippy::expect_used,
                    reason = "the same builder succeeded just above; it depends on no input"
                )]
                || provider_client().expect("checked when the gateway started"),
            ),
            metrics: metrics
                .with_registries(|own, plain| switchboard_llm::Metrics::new_split(plain, own)),
        };
        let sessions = SessionManager::from_config(&config.sessions, session_metrics)
            .await
            .map_err(|e| Error::Sessions(e.to_string()))?;
        let mcp =
            switchboard_mcp::McpShared::new(metrics.with_registry(switchboard_mcp::Metrics::new))
                .map_err(|e| Error::Backend {
                    route: "mcp".into(),
                    message: e.to_string(),
                })?
                .with_idle_timeout(config.sessions.idle_timeout)
                .with_sessions(sessions.clone())
                .with_base_dir(&base_dir);
        let clients = HttpClients::default();
        let peers = config
            .sessions
            .peer
            .as_ref()
            .map(|_| crate::peer::Peers::new(sessions.clone(), &clients));
        let tool_pins = crate::guardrails::pins::ToolPins::new(sessions.store().clone());
        // Like the sessions store, where keys and spend live is fixed at start.
        let keys = match (sessions.redis_link(), &config.sessions.redis) {
            (Some(link), Some(redis)) => {
                crate::auth::virtual_keys::KeyStore::redis(link.clone(), &redis.prefix)
            }
            _ => crate::auth::virtual_keys::KeyStore::memory(),
        };
        let spend = crate::spend::Spend::new(keys.clone(), &metrics);
        let shutdown = CancellationToken::new();
        let llm_cache_index = match (sessions.redis_link(), &config.sessions.redis) {
            (Some(link), Some(redis)) => Some(crate::llm_cache::CacheIndex::start(
                link.clone(),
                format!("{}llmcache:", redis.prefix),
                &shutdown,
                &metrics,
            )),
            _ => None,
        };
        let gw = Gateway {
            inner: Arc::new(Inner {
                config_path,
                base_dir,
                sessions,
                llm,
                mcp,
                deps: ListenerDeps {
                    metrics: metrics.clone(),
                    shutdown,
                    end_streams: CancellationToken::new(),
                    connections: TaskTracker::new(),
                    workers,
                    peers,
                    access_log,
                    tool_pins: Some(tool_pins),
                    otel,
                },
                a2a_metrics: crate::a2a::A2aMetrics::new(&metrics),
                metrics,
                clients,
                current: ArcSwap::from_pointee(Generation {
                    config: Config::default(),
                    version: 0,
                    loaded_at: SystemTime::now(),
                }),
                last_failure: ArcSwapOption::empty(),
                version: AtomicU64::new(0),
                ready: AtomicBool::new(false),
                control: tokio::sync::Mutex::new(Control::default()),
                keys,
                spend,
                llm_cache_index,
                runtimes: Arc::default(),
                peer_stop: CancellationToken::new(),
                peer_addr: std::sync::OnceLock::new(),
            }),
        };
        let peer_cfg = config.sessions.peer.clone();
        gw.apply(config).await?;
        // Changes of `sessions.peer` take effect at restart, like the store's.
        if let Some(peer) = &peer_cfg {
            let p = crate::peer_listener::serve(
                peer,
                gw.inner.sessions.clone(),
                gw.inner.runtimes.clone(),
                gw.inner.peer_stop.clone(),
            )
            .await
            .map_err(|source| Error::Bind {
                what: "sessions.peer".into(),
                addr: peer.bind.clone(),
                source,
            })?;
            let _ = gw.inner.peer_addr.set(p.local_addr);
        }
        gw.inner.ready.store(true, Ordering::Release);
        let reaper = gw.inner.sessions.clone();
        reaper.spawn_reaper(gw.inner.deps.shutdown.clone().cancelled_owned());
        Ok(gw)
    }

    /// Validated and built, the new config replaces the serving one; on any error nothing
    /// changes. Listeners that appear are bound, ones that disappear are closed, and requests
    /// already in flight finish on the generation they started with.
    pub async fn apply(&self, config: Config) -> Result<()> {
        let mut control = self.inner.control.lock().await;
        let store_changed = {
            let old = &self.inner.current.load().config.sessions;
            old.store != config.sessions.store || old.redis != config.sessions.redis
        };
        if store_changed && self.inner.version.load(Ordering::Acquire) > 0 {
            tracing::warn!("sessions.store and sessions.redis changes take effect at restart");
        }
        if self.inner.version.load(Ordering::Acquire) > 0
            && self.inner.current.load().config.access_log != config.access_log
        {
            tracing::warn!("access_log changes take effect at restart");
        }
        if self.inner.version.load(Ordering::Acquire) > 0
            && self.inner.current.load().config.tracing != config.tracing
        {
            tracing::warn!("tracing changes take effect at restart");
        }
        // Only changed keys: without keys, a new keyring is a new random key, which would
        // refuse every session of the process.
        if self.inner.current.load().config.sessions.keys != config.sessions.keys {
            self.inner
                .sessions
                .reload_keys(&config.sessions)
                .map_err(|e| Error::Sessions(e.to_string()))?;
        }
        let mut runtimes = Vec::with_capacity(config.listeners.len());
        let mut carried = Carried::default();
        for l in &config.listeners {
            let tls = match &l.tls {
                Some(t) => Some(crate::tls::acceptor(&l.name, t, &self.inner.base_dir)?),
                None => None,
            };
            let rt = self
                .build_listener(&config, l, &control.carried, &mut carried)
                .await?;
            runtimes.push((rt, tls));
        }

        // Bind what is new before touching what serves, so a failed bind changes nothing.
        let mut fresh: HashMap<String, ListenerHandle> = HashMap::new();
        for (l, (rt, tls)) in config.listeners.iter().zip(runtimes.iter_mut()) {
            let reuse = control
                .listeners
                .get(&l.name)
                .is_some_and(|h| h.bind == l.bind);
            if reuse {
                continue;
            }
            let addr = parse_bind(&l.bind).ok_or_else(|| Error::Bind {
                what: l.name.clone(),
                addr: l.bind.clone(),
                source: std::io::Error::other("not a socket address"),
            })?;
            let runtime = take_runtime(rt);
            let handle =
                listener::bind(&l.bind, addr, runtime, tls.take(), self.inner.deps.clone())
                    .await
                    .map_err(|source| Error::Bind {
                        what: format!("listener `{}`", l.name),
                        addr: l.bind.clone(),
                        source,
                    })?;
            tracing::info!(listener = %l.name, addr = %handle.local_addr, tls = l.tls.is_some(), "listening");
            fresh.insert(l.name.clone(), handle);
        }

        let admin_changed = control
            .admin
            .as_ref()
            .is_none_or(|a| a.bind != config.admin.bind);
        let new_admin = if admin_changed {
            let addr = parse_bind(&config.admin.bind).ok_or_else(|| Error::Bind {
                what: "admin".into(),
                addr: config.admin.bind.clone(),
                source: std::io::Error::other("not a socket address"),
            })?;
            Some(admin::serve(&config.admin.bind, addr, self.clone()).await?)
        } else {
            None
        };

        // Commit: swap runtimes of kept listeners, install new ones, close removed ones.
        for (l, (rt, tls)) in config.listeners.iter().zip(runtimes.iter_mut()) {
            if let Some(h) = fresh.remove(&l.name) {
                if let Some(old) = control.listeners.insert(l.name.clone(), h) {
                    old.close();
                }
            } else if let Some(h) = control.listeners.get(&l.name) {
                h.runtime.store(Arc::new(take_runtime(rt)));
                h.tls.store(tls.take().map(Arc::new));
            }
        }
        let keep: std::collections::HashSet<&str> =
            config.listeners.iter().map(|l| l.name.as_str()).collect();
        control.listeners.retain(|name, h| {
            let kept = keep.contains(name.as_str());
            if !kept {
                tracing::info!(listener = %name, addr = %h.local_addr, "listener closed by reload");
                h.close();
            }
            kept
        });
        if let Some(a) = new_admin
            && let Some(old) = control.admin.replace(a)
        {
            old.close();
        }
        control.carried = carried;
        self.inner.runtimes.store(Arc::new(
            control
                .listeners
                .iter()
                .map(|(name, h)| (name.clone(), h.runtime.clone()))
                .collect(),
        ));

        let version = self.inner.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.inner.current.store(Arc::new(Generation {
            config,
            version,
            loaded_at: SystemTime::now(),
        }));
        Ok(())
    }

    async fn build_listener(
        &self,
        config: &Config,
        l: &crate::config::ListenerConfig,
        prev: &Carried,
        next: &mut Carried,
    ) -> Result<ListenerRuntime> {
        let name: Arc<str> = l.name.as_str().into();
        let mut routes = Vec::with_capacity(l.routes.len());
        for r in &l.routes {
            let key = (l.name.clone(), r.name.clone());
            // The one merge of listener and route policies; everything below reads `merged`.
            let merged = crate::policy::merge(l.policies.as_ref(), r.policies.as_ref());
            let mut policies = RoutePolicies::compile(&merged, &self.inner.base_dir);
            if merged.authn.as_ref().is_some_and(|a| a.virtual_keys) {
                policies.authn = policies
                    .authn
                    .map(|a| a.with_virtual_keys(self.inner.keys.clone()));
            }
            if r.llm.is_some() {
                policies.spend = Some(self.inner.spend.clone());
            }
            let backend_err = |message: String| Error::Backend {
                route: r.name.clone(),
                message,
            };
            let backend = if let Some(h) = &r.http {
                Backend::Http(Box::new(
                    HttpBackend::new(h, self.inner.clients.get(policies.timeouts.connect))
                        .map_err(backend_err)?,
                ))
            } else if let Some(cfg) = &r.llm {
                let deps = self.inner.llm.clone();
                let built = match prev.llm.get(&key) {
                    Some(old) => old.reload(cfg, deps),
                    None => switchboard_llm::LlmBackend::new(cfg, deps),
                }
                .map_err(|e| backend_err(e.to_string()))?;
                if let (Some(link), Some(index)) = (
                    self.inner.sessions.redis_link(),
                    &self.inner.llm_cache_index,
                ) {
                    built.use_cache_store(Arc::new(crate::llm_cache::RedisCacheStore::new(
                        link.clone(),
                        index.clone(),
                    )));
                }
                next.llm.insert(key.clone(), built.clone());
                Backend::Llm(built)
            } else if let Some(cfg) = &r.mcp {
                let built = match prev.mcp.get(&key) {
                    Some((old_cfg, old)) if old_cfg == cfg => old.clone(),
                    _ => switchboard_mcp::McpBackend::new(cfg.clone(), &self.inner.mcp)
                        .map_err(|e| backend_err(e.to_string()))?,
                };
                // Also on a kept backend: the route's `upstream_auth` may have changed.
                built.set_upstream_credentials(&crate::auth::mcp_target_credentials(
                    &policies.upstream_credentials,
                    cfg,
                    &|name| std::env::var(name).ok(),
                    &self.inner.base_dir,
                ));
                next.mcp.insert(key.clone(), (cfg.clone(), built.clone()));
                Backend::Mcp(built)
            } else if let Some(a) = &r.a2a {
                Backend::A2a(Box::new(
                    crate::a2a::A2aBackend::new(
                        &r.name,
                        a,
                        self.inner.clients.get(policies.timeouts.connect),
                        self.inner.sessions.store().clone(),
                        self.inner.a2a_metrics.clone(),
                    )
                    .map_err(backend_err)?
                    .with_security(
                        merged
                            .authn
                            .as_ref()
                            .map(crate::a2a::card::RouteSecurity::from_authn)
                            .unwrap_or_default(),
                    ),
                ))
            } else if let Some(rd) = &r.redirect {
                Backend::Redirect(Box::new(
                    crate::backend::redirect::Redirect::new(rd).map_err(backend_err)?,
                ))
            } else {
                return Err(backend_err("route has no backend".into()));
            };
            let rate_limit = merged.rate_limit.as_ref();
            let limiter = match rate_limit {
                None => None,
                Some(policy) => Some(match prev.limiters.get(&key) {
                    Some(old) if old.policy() == policy => old.clone(),
                    _ => self
                        .build_limiter(config, policy)
                        .await
                        .map_err(backend_err)?,
                }),
            };
            if let Some(lim) = &limiter {
                next.limiters.insert(key, lim.clone());
            }
            let mut route = Route::new(
                &name,
                &r.name,
                Matcher::compile(&r.matcher),
                policies,
                backend,
                &self.inner.metrics,
            );
            route.limiter = limiter;
            routes.push(route);
        }
        Ok(ListenerRuntime {
            name,
            routes,
            limits: l.limits.clone(),
            trusted: crate::forwarding::TrustedProxies::new(&l.trusted_proxies),
            paths: (&l.paths).into(),
            proxy_protocol: l.proxy_protocol,
        })
    }

    /// A limiter for `policy`: shared through Redis when the sessions store is Redis (so a
    /// fleet enforces one budget), local otherwise.
    async fn build_limiter(
        &self,
        config: &Config,
        policy: &crate::rate_limit::RateLimitPolicy,
    ) -> std::result::Result<crate::rate_limit::Limiter, String> {
        match (self.inner.sessions.redis_link(), &config.sessions.redis) {
            (Some(link), Some(redis)) => {
                let prefix = format!("{}ratelimit:", redis.prefix);
                Ok(crate::rate_limit::Limiter::redis(
                    policy.clone(),
                    link.clone(),
                    &prefix,
                ))
            }
            _ => Ok(crate::rate_limit::Limiter::local(policy.clone())),
        }
    }

    /// Loads the config file again and applies it; a refused version is logged, counted and
    /// kept for `/config`, and the serving config stays.
    pub async fn reload_from_file(&self) -> bool {
        let Some(path) = self.inner.config_path.clone() else {
            return false;
        };
        let outcome = match crate::config::load_file(&path) {
            Err(errors) => Err(format_errors(&errors)),
            Ok(config) => {
                if config == self.inner.current.load().config {
                    tracing::debug!("config file changed on disk but not in effect; nothing to do");
                    return true;
                }
                self.apply(config).await.map_err(|e| vec![e.to_string()])
            }
        };
        self.record_reload(outcome)
    }

    /// Records a reload's outcome in metrics, logs and `/config`.
    pub fn record_reload(&self, outcome: std::result::Result<(), Vec<String>>) -> bool {
        let ok = outcome.is_ok();
        self.inner
            .metrics
            .config_reloads
            .get_or_create(&ReloadLabels {
                result: if ok {
                    ReloadResult::Success
                } else {
                    ReloadResult::Failure
                },
            })
            .inc();
        match outcome {
            Ok(()) => {
                tracing::info!(version = self.version(), "configuration reloaded");
                self.inner.last_failure.store(None);
            }
            Err(errors) => {
                for e in &errors {
                    tracing::error!(error = %e, "configuration reload refused; the previous configuration keeps serving");
                }
                self.inner.last_failure.store(Some(Arc::new(ReloadFailure {
                    at: SystemTime::now(),
                    errors,
                })));
            }
        }
        ok
    }

    /// Drains this replica without stopping it: `/readyz` fails (load balancers move new
    /// clients away) and open session streams send a `retry:` hint and close, so their clients
    /// reconnect, to another replica, and resume from the shared event log. Requests are still
    /// served, so nothing in flight is lost.
    pub fn drain(&self) {
        self.inner.ready.store(false, Ordering::Release);
        self.inner.sessions.drain();
        tracing::info!("draining: readiness off, session streams told to reconnect");
    }

    /// Begins shutdown and waits up to `grace` for connections to finish: stops accepting,
    /// fails readiness, ends open streams cleanly and lets in-flight requests complete. MCP
    /// calls whose streams were handed to the shared event log keep writing it, within the
    /// same grace period.
    pub async fn shutdown(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        self.inner.ready.store(false, Ordering::Release);
        // Open session streams send a `retry:` hint and close, so clients resume elsewhere.
        self.inner.sessions.drain();
        let deps = &self.inner.deps;
        deps.shutdown.cancel();
        {
            let mut control = self.inner.control.lock().await;
            for (_, h) in control.listeners.drain() {
                h.close();
            }
            if let Some(a) = control.admin.take() {
                a.close();
            }
        }
        // A moment for those hints to be written before the remaining streams are cut.
        tokio::time::sleep(STREAM_FLUSH.min(grace)).await;
        deps.end_streams.cancel();
        deps.connections.close();
        if tokio::time::timeout_at(deadline, deps.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "grace period over; closing the remaining connections"
            );
        }
        if tokio::time::timeout_at(deadline, self.inner.sessions.producers_done())
            .await
            .is_err()
        {
            tracing::warn!(
                ?grace,
                "grace period over; MCP calls still writing the event log are cut"
            );
        }
        // Sessions pinned here were served to the end; other replicas stop forwarding now.
        self.inner.peer_stop.cancel();
        if self.inner.peer_addr.get().is_some()
            && let Err(e) = self.inner.sessions.unregister_peer().await
        {
            tracing::debug!(error = %e, "session store: withdrawing the peer registration failed");
        }
        // Budget slices this replica holds go back to the fleet's counters.
        self.inner.spend.shutdown().await;
        // Lines of the requests served to the end are written before the process exits.
        if let Some(log) = deps.access_log.clone() {
            let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(2))).await;
        }
        // Spans of those requests too.
        if let Some(otel) = &deps.otel {
            otel.shutdown(Duration::from_secs(5)).await;
        }
    }

    /// The bound address of the peer listener (`sessions.peer`), when there is one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.inner.peer_addr.get().copied()
    }

    /// A token cancelled when shutdown begins.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.deps.shutdown.clone()
    }

    /// The serving generation.
    pub fn current(&self) -> Arc<Generation> {
        self.inner.current.load_full()
    }

    /// The serving generation's version.
    pub fn version(&self) -> u64 {
        self.inner.current.load().version
    }

    /// The last refused reload, if the latest attempt failed.
    pub fn last_failure(&self) -> Option<Arc<ReloadFailure>> {
        self.inner.last_failure.load_full()
    }

    /// The config file, when there is one.
    pub fn config_path(&self) -> Option<&Path> {
        self.inner.config_path.as_deref()
    }

    /// Whether the gateway is ready (config loaded, listeners bound, not shutting down, and,
    /// with `sessions.redis.required_for_ready`, the Redis store's circuit breaker closed).
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
            && self
                .inner
                .sessions
                .redis_link()
                .is_none_or(|l| !l.required_for_ready() || l.is_up())
    }

    /// The session manager (tokens, store, event logs), shared by every config generation.
    pub fn sessions(&self) -> &SessionManager {
        &self.inner.sessions
    }

    /// Gateway metrics (other components register their families here).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The bound address of a listener (port 0 resolved).
    pub async fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.inner
            .control
            .lock()
            .await
            .listeners
            .get(name)
            .map(|h| h.local_addr)
    }

    /// The bound address of the admin listener.
    pub async fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner
            .control
            .lock()
            .await
            .admin
            .as_ref()
            .map(|a| a.local_addr)
    }
}

/// Moves a built runtime out, leaving an empty one (each runtime is installed exactly once).
fn take_runtime(rt: &mut ListenerRuntime) -> ListenerRuntime {
    std::mem::replace(
        rt,
        ListenerRuntime {
            name: rt.name.clone(),
            routes: Vec::new(),
            limits: rt.limits.clone(),
            trusted: rt.trusted.clone(),
            paths: rt.paths,
            proxy_protocol: rt.proxy_protocol,
        },
    )
}

/// Formats config errors one per line as `validate` prints them.
pub fn format_errors(errors: &ConfigErrors) -> Vec<String> {
    errors
        .issues
        .iter()
        .map(|i| i.display_with_file(&errors.file).to_string())
        .collect()
}

impl admin::AdminState for Gateway {
    fn is_ready(&self) -> bool {
        Gateway::is_ready(self)
    }

    fn tool_pins(&self) -> Option<crate::guardrails::pins::ToolPins> {
        self.inner.deps.tool_pins.clone()
    }

    fn spend(&self) -> Option<crate::spend::Spend> {
        Some(self.inner.spend.clone())
    }

    fn store_up(&self) -> Option<bool> {
        self.inner.sessions.redis_link().map(|l| l.is_up())
    }

    fn drain(&self) {
        Gateway::drain(self)
    }

    fn metrics_text(&self) -> String {
        self.metrics().encode()
    }

    fn admin_token(&self) -> Option<String> {
        self.current().config.admin.token.clone()
    }

    async fn snapshot(&self) -> admin::Snapshot {
        self.admin_snapshot().await
    }

    fn config_view(&self) -> admin::ConfigView {
        let generation = self.current();
        admin::ConfigView {
            config: serde_json::to_value(&generation.config).unwrap_or(serde_json::Value::Null),
            version: generation.version,
            loaded_at: generation.loaded_at,
            source: self.config_path().map(|p| p.display().to_string()),
            last_reload_error: self
                .last_failure()
                .map(|f| serde_json::to_value(&*f).unwrap_or(serde_json::Value::Null)),
        }
    }
}
