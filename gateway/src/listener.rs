//! Listeners: bind, accept, optional TLS, one hyper connection (HTTP/1.1, h2c or h2 over TLS)
//! per client, and the request pipeline each request goes through:
//! limits → route → policies → backend → response policies → observed body.
//!
//! A listener's routes live in an `ArcSwap` that reloads replace; each request loads it once,
//! so a request finishes on the generation it started with.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use axum::body::Body;
use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::body::{Completion, ObservedBody};
use crate::config::ListenerLimits;
use crate::context::RequestCx;
use crate::error::{ErrorFormat, ProxyError};
use crate::metrics::{ListenerLabels, Metrics};
use crate::policy::{Admission, RouteFacts};
use crate::router::{self, Route};

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
}

/// A bound listener and the handles to update or stop it.
pub struct ListenerHandle {
    /// The bind address as configured.
    pub bind: String,
    /// The address actually bound (port 0 resolved).
    pub local_addr: SocketAddr,
    /// The routes generation in use.
    pub runtime: Arc<ArcSwap<ListenerRuntime>>,
    /// TLS acceptor, when the listener serves TLS.
    pub tls: Arc<ArcSwapOption<TlsAcceptor>>,
    stop: CancellationToken,
}

impl ListenerHandle {
    /// Stops accepting; open connections finish on their own.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `addr` and spawns the accept loop.
pub async fn bind(
    bind: &str,
    addr: SocketAddr,
    runtime: ListenerRuntime,
    tls: Option<TlsAcceptor>,
    deps: ListenerDeps,
) -> std::io::Result<ListenerHandle> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    let local_addr = listener.local_addr()?;
    let handle = ListenerHandle {
        bind: bind.to_string(),
        local_addr,
        runtime: Arc::new(ArcSwap::from_pointee(runtime)),
        tls: Arc::new(ArcSwapOption::new(tls.map(Arc::new))),
        stop: CancellationToken::new(),
    };
    let acceptor = Acceptor {
        listener,
        runtime: handle.runtime.clone(),
        tls: handle.tls.clone(),
        stop: handle.stop.clone(),
        deps,
        open: Arc::new(AtomicUsize::new(0)),
    };
    tokio::spawn(acceptor.run());
    Ok(handle)
}

struct Acceptor {
    listener: TcpListener,
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    tls: Arc<ArcSwapOption<TlsAcceptor>>,
    stop: CancellationToken,
    deps: ListenerDeps,
    open: Arc<AtomicUsize>,
}

/// Decrements the open-connection count and gauge when a connection ends.
struct ConnGuard {
    open: Arc<AtomicUsize>,
    gauge: Gauge,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.gauge.dec();
    }
}

impl Acceptor {
    async fn run(self) {
        loop {
            let accepted = tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = self.deps.shutdown.cancelled() => break,
                r = self.listener.accept() => r,
            };
            let (stream, remote) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let rt = self.runtime.load_full();
            let gauge = self
                .deps
                .metrics
                .open_connections
                .get_or_create_owned(&ListenerLabels {
                    listener: rt.name.clone(),
                });
            gauge.inc();
            let count = self.open.fetch_add(1, Ordering::Relaxed) + 1;
            let guard = ConnGuard {
                open: self.open.clone(),
                gauge,
            };
            let overloaded = count > rt.limits.max_connections;
            let conn = Conn {
                runtime: self.runtime.clone(),
                remote,
                remote_ip: HeaderValue::try_from(remote.ip().to_string())
                    .unwrap_or(HeaderValue::from_static("unknown")),
                scheme: if self.tls.load().is_some() {
                    "https"
                } else {
                    "http"
                },
                deps: self.deps.clone(),
                overloaded,
                requests: std::sync::atomic::AtomicU64::new(0),
            };
            let tls = self.tls.load_full();
            match &self.deps.workers {
                None => {
                    self.deps.connections.spawn(async move {
                        let _guard = guard;
                        serve_tcp(stream, tls, conn).await;
                    });
                }
                Some(workers) => {
                    // Re-registered with the chosen thread's reactor on arrival.
                    let std = match stream.into_std() {
                        Ok(s) => s,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot hand a connection over");
                            continue;
                        }
                    };
                    let (handle, placed) = workers.pick();
                    self.deps.connections.spawn_on(
                        async move {
                            let _guard = guard;
                            let _placed = placed;
                            match TcpStream::from_std(std) {
                                Ok(stream) => serve_tcp(stream, tls, conn).await,
                                Err(e) => tracing::warn!(error = %e, "cannot adopt a connection"),
                            }
                        },
                        handle,
                    );
                }
            }
        }
        tracing::debug!(addr = ?self.listener.local_addr().ok(), "listener closed");
    }
}

async fn serve_tcp(stream: TcpStream, tls: Option<Arc<TlsAcceptor>>, conn: Conn) {
    match tls {
        None => {
            // hyper's protocol sniffing waits for the first bytes without a timer: a client
            // that connects and never speaks would hold the connection forever.
            let timeout = conn.runtime.load().limits.header_read_timeout;
            let mut first = [0u8; 1];
            match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => serve_io(stream, conn).await,
                Ok(_) => {}
                Err(_) => tracing::debug!(remote = %conn.remote, "client sent nothing; closed"),
            }
        }
        Some(acceptor) => {
            let timeout = conn.runtime.load().limits.header_read_timeout;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls_stream)) => serve_io(tls_stream, conn).await,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, remote = %conn.remote, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(remote = %conn.remote, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<I>(io: I, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.runtime.load().limits.clone();
    let shutdown = conn.deps.shutdown.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // Headers over our limit get a JSON 431 from the pipeline; hyper's own (bodiless) 431
        // only answers heads far beyond it.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size((limits.max_header_bytes * 2).min(u32::MAX as usize) as u32);
    let conn = Arc::new(conn);
    let watched = conn.clone();
    let opened = Instant::now();
    let svc = hyper::service::service_fn(move |req| {
        let conn = conn.clone();
        async move { Ok::<_, Infallible>(conn.handle(req).await) }
    });
    let activity = Activity::new();
    let io = Tracked {
        inner: io,
        activity: activity.clone(),
    };
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
    tokio::pin!(connection);
    // Ticking at least twice per header timeout keeps a timer on this thread that expires
    // before the head-read deadline hyper arms for every request; without one, arming it
    // (earlier than anything else pending) forces tokio to wake its driver through an eventfd
    // write on every request.
    let check_every = (limits.idle_timeout / 4)
        .min(limits.header_read_timeout / 2)
        .max(std::time::Duration::from_millis(10));
    let mut ticker = tokio::time::interval(check_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = connection.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with error");
                }
                return;
            }
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {
                if watched.requests.load(Ordering::Relaxed) == 0
                    && opened.elapsed() >= limits.header_read_timeout
                {
                    tracing::debug!(remote = %watched.remote, "no request head within the header timeout; closed");
                    // No graceful GOAWAY for a client that never finished a head: dropping
                    // the connection closes the socket at once.
                    return;
                }
                if activity.idle_for() >= limits.idle_timeout {
                    tracing::debug!(idle = ?limits.idle_timeout, "idle connection closed");
                    break;
                }
            }
        }
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// When a connection last moved bytes, shared between its IO wrapper and its watchdog.
#[derive(Clone)]
struct Activity {
    epoch: Instant,
    last_ms: Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            epoch: Instant::now(),
            last_ms: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> std::time::Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        self.epoch
            .elapsed()
            .saturating_sub(std::time::Duration::from_millis(last))
    }
}

pin_project_lite::pin_project! {
    /// Client IO that records activity for the idle timeout.
    struct Tracked<I> {
        #[pin]
        inner: I,
        activity: Activity,
    }
}

impl<I: AsyncRead> AsyncRead for Tracked<I> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl<I: AsyncWrite> AsyncWrite for Tracked<I> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if matches!(r, std::task::Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

struct Conn {
    runtime: Arc<ArcSwap<ListenerRuntime>>,
    remote: SocketAddr,
    /// The client's IP as a header value, for `X-Forwarded-For` (formatted once per
    /// connection, not per request).
    remote_ip: HeaderValue,
    scheme: &'static str,
    deps: ListenerDeps,
    overloaded: bool,
    /// Requests whose head arrived on this connection. hyper bounds the time to send a head
    /// on HTTP/1.1 only; the watchdog uses this to close an HTTP/2 (or any) connection that
    /// trickles bytes without ever completing a request head (slowloris).
    requests: std::sync::atomic::AtomicU64,
}

static NONE: &str = "none";

impl Conn {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<ObservedBody> {
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
        let format = format.unwrap_or(ErrorFormat::Plain);
        let result = match head {
            Ok(()) => self.pipeline(&rt, route, req, &client).await,
            // A refused head is a 400 with a fixed message (no request data echoed).
            Err(e) => Err(ProxyError::BadRequest(e.message())),
        };
        let (resp, is_stream, refused) = match result {
            Ok(resp) => {
                let is_stream = is_event_stream(&resp);
                (resp, is_stream, false)
            }
            Err(e) => (e.into_response(format), false, true),
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
        let completion = Completion {
            requests: self.deps.metrics.requests.clone(),
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
    ) -> Result<Response<Body>, ProxyError> {
        if self.overloaded {
            return Err(ProxyError::Overloaded);
        }
        let header_bytes: usize = req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum();
        if header_bytes > rt.limits.max_header_bytes {
            return Err(ProxyError::HeadersTooLarge {
                limit: rt.limits.max_header_bytes,
            });
        }
        crate::forwarding::check_request(&req)?;
        if let Some(resp) = crate::oauth_metadata::serve(
            || rt.routes.iter().filter_map(Route::protected_resource),
            &req,
            self.scheme,
        ) {
            return Ok(resp);
        }
        let route = route.ok_or(ProxyError::NoRoute)?;
        if let Some(len) = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            && len > rt.limits.max_body_bytes
        {
            return Err(ProxyError::BodyTooLarge {
                limit: rt.limits.max_body_bytes,
            });
        }
        // The policy stage, its phases in their one order (`policy::Phase::REQUEST`); the
        // forwarding preparation is its `Forwarding` phase.
        let facts = RouteFacts {
            name: &route.name,
            prefix: &route.prefix,
            path_prefix: route.matcher.prefix(),
            limiter: route.limiter.as_ref(),
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
        let context = match route.policies.admit(facts, &mut req, forward).await? {
            Admission::Answered(resp) => return Ok(resp),
            Admission::Admitted(context) => context,
        };
        let cx = RequestCx {
            context,
            json: rt.limits.json,
            limiter: route.limiter.as_ref(),
            remote: self.remote,
            remote_ip: &client.ip_header,
            scheme: self.scheme,
            prefix: route.matcher.prefix(),
            timeouts: route.policies.timeouts,
            max_body_bytes: rt.limits.max_body_bytes,
            upstream_duration: &route.upstream_duration,
            open_streams: &route.open_streams,
            shutdown: &self.deps.shutdown,
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
        Backend::Mcp(_) | Backend::Llm(_) | Backend::A2a(_) => {
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
        Backend::Http(_) | Backend::A2a(_) => false,
    }
}

fn is_event_stream<B>(resp: &Response<B>) -> bool {
    resp.status() == StatusCode::OK
        && resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"))
}
