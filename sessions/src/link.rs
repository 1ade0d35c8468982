//! The fleet's connection to Redis, whatever its topology (one server, a Cluster, or a master
//! found through Sentinel), with a timeout on every call and a circuit breaker.
//!
//! Every Redis call of the session store and of the gateway's shared rate limits goes through
//! [`RedisLink::run`]: the breaker admits it (or fails it at once), the call runs under
//! `sessions.redis.timeout` (connecting included), and its outcome feeds the breaker and the
//! `switchboard_store_up` / `switchboard_store_failures_total` metrics. So a dead or paused
//! Redis costs each request one fast failure once the breaker is open, not a timeout each.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures::future::BoxFuture;
use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ErrorKind, IntoConnectionInfo, Pipeline, RedisError, RedisFuture,
    RedisResult, ServerErrorKind, Value,
};
use tokio::time::Instant;

use crate::config::{BreakerConfig, RedisConfig};
use crate::metrics::{Metrics, StoreFailure};
use crate::{Error, Result};

/// A cheap, cloneable handle to the fleet's Redis.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    conn: Topology,
    timeout: Duration,
    breaker: Breaker,
    metrics: Metrics,
    required_for_ready: bool,
}

enum Topology {
    /// The manager for calls, and its client for dedicated (pub/sub) connections.
    Single(ConnectionManager, Box<redis::Client>),
    Cluster(ClusterConnection),
    Sentinel(Box<Sentinel>),
}

/// The master found through the sentinels, asked again after a connection error or a
/// `READONLY` reply (the master was demoted by a failover).
struct Sentinel {
    client: tokio::sync::Mutex<SentinelClient>,
    current: ArcSwapOption<MultiplexedConnection>,
    config: AsyncConnectionConfig,
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field(
                "topology",
                &match self.inner.conn {
                    Topology::Single(..) => "single",
                    Topology::Cluster(_) => "cluster",
                    Topology::Sentinel(_) => "sentinel",
                },
            )
            .field("timeout", &self.inner.timeout)
            .field("up", &self.is_up())
            .finish()
    }
}

/// One connection for one call, whatever the topology: scripts and commands run on it.
pub enum Conn {
    /// A standalone server (reconnects in the background).
    Single(ConnectionManager),
    /// A Redis Cluster (follows MOVED/ASK and failovers).
    Cluster(ClusterConnection),
    /// The current master of a Sentinel set-up.
    Master(MultiplexedConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Master(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Master(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Master(c) => c.get_db(),
        }
    }
}

fn with_credentials(url: &str, cfg: &RedisConfig) -> RedisResult<redis::ConnectionInfo> {
    let info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &cfg.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &cfg.password {
        settings = settings.set_password(password);
    }
    Ok(info.set_redis_settings(settings))
}

fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://")
}

/// The CA certificates of `redis.tls_ca`, when set.
fn certificates(cfg: &RedisConfig) -> Result<Option<redis::TlsCertificates>> {
    let Some(path) = &cfg.tls_ca else {
        return Ok(None);
    };
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("redis.tls_ca: reading {}: {e}", path.display())))?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

impl RedisLink {
    /// Connects as `cfg` says. Fails when Redis does not answer within a few seconds (a
    /// gateway does not start against a Redis it never reached); afterwards connections are
    /// re-established on their own and calls fail fast while Redis is away.
    pub async fn connect(cfg: &RedisConfig, metrics: Metrics) -> Result<Self> {
        // Starting is allowed longer than one call: a cold cluster client reads the slot map.
        let start = cfg.timeout.max(Duration::from_secs(3));
        let certs = certificates(cfg)?;
        let conn = if let Some(url) = &cfg.url {
            let info = with_credentials(url, cfg)?;
            let client = match &certs {
                Some(c) => redis::Client::build_with_tls(info, c.clone())?,
                None => redis::Client::open(info)?,
            };
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(start))
                .set_response_timeout(Some(cfg.timeout))
                .set_number_of_retries(1);
            let conn = tokio::time::timeout(
                start,
                ConnectionManager::new_with_config(client.clone(), config),
            )
            .await
            .map_err(|_| Error::Unavailable("no answer from redis at start".to_owned()))??;
            Topology::Single(conn, Box::new(client))
        } else if !cfg.cluster.is_empty() {
            let seeds = cfg
                .cluster
                .iter()
                .map(|u| with_credentials(u, cfg))
                .collect::<RedisResult<Vec<_>>>()?;
            let mut builder = redis::cluster::ClusterClientBuilder::new(seeds)
                .connection_timeout(cfg.timeout)
                .response_timeout(cfg.timeout)
                .retries(3)
                .min_retry_wait(10)
                .max_retry_wait(100);
            if let Some(user) = &cfg.username {
                builder = builder.username(user);
            }
            if let Some(password) = &cfg.password {
                builder = builder.password(password);
            }
            if let Some(c) = &certs {
                builder = builder.certs(c.clone());
            }
            let client = builder.build()?;
            let conn = tokio::time::timeout(start, client.get_async_connection())
                .await
                .map_err(|_| {
                    Error::Unavailable("no answer from redis cluster at start".to_owned())
                })??;
            Topology::Cluster(conn)
        } else if let Some(s) = &cfg.sentinel {
            let nodes = s
                .nodes
                .iter()
                .map(|u| Ok(u.as_str().into_connection_info()?.addr().clone()))
                .collect::<RedisResult<Vec<_>>>()?;
            let mut builder =
                SentinelClientBuilder::new(nodes, &s.master, SentinelServerType::Master)?;
            if s.nodes.first().is_some_and(|u| is_tls(u)) {
                builder = builder.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
            }
            if let Some(user) = &cfg.username {
                builder = builder.set_client_to_redis_username(user);
            }
            if let Some(password) = &cfg.password {
                builder = builder.set_client_to_redis_password(password);
            }
            if let Some(c) = &certs {
                builder = builder
                    .set_client_to_redis_certificates(c.clone())
                    .set_client_to_sentinel_certificates(c.clone());
            }
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(cfg.timeout))
                .set_response_timeout(Some(cfg.timeout));
            let sentinel = Sentinel {
                client: tokio::sync::Mutex::new(builder.build()?),
                current: ArcSwapOption::empty(),
                config,
            };
            tokio::time::timeout(start, sentinel.connection())
                .await
                .map_err(|_| {
                    Error::Unavailable("no answer from the sentinels at start".to_owned())
                })??;
            Topology::Sentinel(Box::new(sentinel))
        } else {
            return Err(Error::Config(
                "redis: one of url, cluster or sentinel is required".to_owned(),
            ));
        };
        metrics.store_up.set(1);
        let link = RedisLink {
            inner: Arc::new(Inner {
                conn,
                timeout: cfg.timeout,
                breaker: Breaker::new(cfg.breaker),
                metrics,
                required_for_ready: cfg.required_for_ready,
            }),
        };
        link.spawn_prober(cfg.breaker.cool_down);
        Ok(link)
    }

    /// While the breaker is open, probes Redis once per cool-down even without traffic, so
    /// `/readyz` and `switchboard_store_up` recover on their own (a replica taken out of its
    /// load balancer gets no request that could probe). Ends when the last handle is dropped.
    fn spawn_prober(&self, every: Duration) {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every.max(Duration::from_millis(10))).await;
                let Some(inner) = weak.upgrade() else { return };
                let link = RedisLink { inner };
                if !link.is_up() {
                    let _ = link
                        .run(|mut c| async move {
                            redis::cmd("PING").query_async::<String>(&mut c).await
                        })
                        .await;
                }
            }
        });
    }

    /// Runs one Redis operation under the timeout and the breaker. `op` gets a connection;
    /// what it returns is the call's outcome. A refused `READONLY` write on a Sentinel master
    /// that was just demoted is retried once on the new master (it did not run).
    ///
    /// The future is boxed (type-erased): callers deep in request futures stay shallow.
    pub fn run<'a, T, F, Fut>(&'a self, op: F) -> BoxFuture<'a, Result<T>>
    where
        T: Send + 'a,
        F: Fn(Conn) -> Fut + Send + Sync + 'a,
        Fut: Future<Output = RedisResult<T>> + Send + 'a,
    {
        Box::pin(self.run_inner(op))
    }

    async fn run_inner<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let inner = &self.inner;
        if !inner.breaker.admit() {
            inner.metrics.store_failed(StoreFailure::BreakerOpen);
            return Err(Error::Unavailable("circuit breaker open".to_owned()));
        }
        let attempt = async {
            let first = self.once(&op).await;
            match first {
                Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) => {
                    self.once(&op).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(inner.timeout, attempt).await {
            Ok(Ok(v)) => {
                self.succeeded();
                Ok(v)
            }
            Ok(Err(e)) if e.is_timeout() => {
                // The connection's own response timeout (the same bound) fired first.
                self.failed(StoreFailure::Timeout);
                Err(Error::Unavailable(format!(
                    "no answer within {:?}",
                    inner.timeout
                )))
            }
            Ok(Err(e)) if unavailable(&e) => {
                self.failed(StoreFailure::Error);
                Err(Error::Redis(e))
            }
            Ok(Err(e)) => {
                // Redis answered: it is up, the call itself was wrong.
                self.succeeded();
                Err(Error::Redis(e))
            }
            Err(_) => {
                self.failed(StoreFailure::Timeout);
                if let Topology::Sentinel(s) = &inner.conn {
                    // A paused or partitioned master: ask the sentinels again next time.
                    s.current.store(None);
                }
                Err(Error::Unavailable(format!(
                    "no answer within {:?}",
                    inner.timeout
                )))
            }
        }
    }

    async fn once<T, F, Fut>(&self, op: &F) -> RedisResult<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match &self.inner.conn {
            Topology::Single(c, _) => op(Conn::Single(c.clone())).await,
            Topology::Cluster(c) => op(Conn::Cluster(c.clone())).await,
            Topology::Sentinel(s) => {
                let conn = s.connection().await?;
                let out = op(Conn::Master(conn)).await;
                if let Err(e) = &out
                    && (unavailable(e) || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly))
                {
                    s.current.store(None);
                }
                out
            }
        }
    }

    fn succeeded(&self) {
        if self.inner.breaker.success() {
            tracing::info!("redis store reachable again; circuit breaker closed");
        }
        self.inner.metrics.store_up.set(1);
    }

    fn failed(&self, why: StoreFailure) {
        self.inner.metrics.store_failed(why);
        if self.inner.breaker.failure() {
            tracing::warn!(
                cool_down = ?self.inner.breaker.cfg.cool_down,
                "redis store failing; circuit breaker open"
            );
            self.inner.metrics.store_up.set(0);
        }
    }

    /// Whether [`pubsub`](Self::pubsub) can follow every write: a single server or a Sentinel
    /// master. Not a Cluster (its keys and their publishes are spread over several nodes).
    pub fn supports_pubsub(&self) -> bool {
        !matches!(self.inner.conn, Topology::Cluster(_))
    }

    /// A dedicated pub/sub connection to the server (or the current Sentinel master), opened
    /// within the call timeout (at least a second). It is not managed: when it drops, its
    /// message stream ends and the caller connects again.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub> {
        let within = self.inner.timeout.max(Duration::from_secs(1));
        let connect = async {
            match &self.inner.conn {
                Topology::Single(_, client) => client.get_async_pubsub().await,
                Topology::Sentinel(s) => {
                    let client = s.client.lock().await.async_get_client().await?;
                    client.get_async_pubsub().await
                }
                Topology::Cluster(_) => Err(RedisError::from((
                    ErrorKind::Client,
                    "pub/sub is not followed on a Redis Cluster",
                ))),
            }
        };
        match tokio::time::timeout(within, connect).await {
            Ok(r) => r.map_err(Error::Redis),
            Err(_) => Err(Error::Unavailable(format!(
                "no pub/sub connection within {within:?}"
            ))),
        }
    }

    /// False while the breaker is open (Redis is considered away).
    pub fn is_up(&self) -> bool {
        !self.inner.breaker.is_open()
    }

    /// Whether `/readyz` should follow [`is_up`](Self::is_up) (`sessions.redis.required_for_ready`).
    pub fn required_for_ready(&self) -> bool {
        self.inner.required_for_ready
    }

    /// How long the breaker fails calls at once: what a `Retry-After` should say.
    pub fn cool_down(&self) -> Duration {
        self.inner.breaker.cfg.cool_down
    }
}

impl Sentinel {
    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.current.load_full() {
            return Ok((*c).clone());
        }
        let mut client = self.client.lock().await;
        // Another call may have connected while this one waited.
        if let Some(c) = self.current.load_full() {
            return Ok((*c).clone());
        }
        let conn = client
            .get_async_connection_with_config(&self.config)
            .await?;
        self.current.store(Some(Arc::new(conn.clone())));
        Ok(conn)
    }
}

/// Whether an error says Redis cannot serve (as opposed to a wrong call).
fn unavailable(e: &RedisError) -> bool {
    match e.kind() {
        ErrorKind::Server(kind) => matches!(
            kind,
            ServerErrorKind::BusyLoading
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
                | ServerErrorKind::ReadOnly
        ),
        ErrorKind::Io | ErrorKind::ClusterConnectionNotFound => true,
        _ => {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
        }
    }
}

/// Closed → (N consecutive failures) → open for `cool_down` → one probe → closed or open again.
struct Breaker {
    cfg: BreakerConfig,
    state: Mutex<BreakerState>,
}

#[derive(Default)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    fn new(cfg: BreakerConfig) -> Self {
        Breaker {
            cfg,
            state: Mutex::new(BreakerState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        // No code panics while holding it; a poisoned lock still holds a usable state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go to Redis now: always while closed; once the cool-down has passed,
    /// one probe at a time.
    fn admit(&self) -> bool {
        let mut s = self.lock();
        match s.open_until {
            None => true,
            Some(until) if Instant::now() < until => false,
            Some(_) if s.probing => false,
            Some(_) => {
                s.probing = true;
                true
            }
        }
    }

    /// Records a success; true when it closed an open breaker.
    fn success(&self) -> bool {
        let mut s = self.lock();
        let was_open = s.open_until.is_some();
        *s = BreakerState::default();
        was_open
    }

    /// Records a failure; true when it opened a closed breaker.
    fn failure(&self) -> bool {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        s.probing = false;
        if s.failures >= self.cfg.failures.max(1) {
            let was_closed = s.open_until.is_none();
            s.open_until = Some(Instant::now() + self.cfg.cool_down);
            was_closed
        } else {
            false
        }
    }

    fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn breaker_opens_after_n_failures_then_probes_once() {
        let b = Breaker::new(BreakerConfig {
            failures: 3,
            cool_down: Duration::from_secs(2),
        });
        assert!(b.admit());
        assert!(!b.failure());
        assert!(!b.failure());
        // A success in between resets the count.
        assert!(!b.success());
        assert!(!b.failure() && !b.failure());
        assert!(b.failure(), "the third consecutive failure opens it");
        assert!(b.is_open());
        assert!(!b.admit(), "open: fail fast");
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert!(b.admit(), "after the cool-down: one probe");
        assert!(!b.admit(), "and only one");
        // The probe fails: open again for a full cool-down.
        assert!(!b.failure());
        assert!(!b.admit());
        tokio::time::advance(Duration::from_millis(2001)).await;
        assert!(b.admit());
        assert!(b.success(), "the probe succeeds: closed");
        assert!(!b.is_open());
        assert!(b.admit() && b.admit());
    }
}
