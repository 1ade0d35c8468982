//! The connection layer: bind, accept (with the connection limit), optional TLS, one hyper
//! connection (HTTP/1.1, h2c or h2 over TLS) per client with its header-read and idle
//! timeouts, handed to a serving thread. Each request then goes through the request pipeline
//! in [`crate::pipeline`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use arc_swap::{ArcSwap, ArcSwapOption};
use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::metrics::ListenerLabels;
use crate::pipeline::Conn;
pub use crate::pipeline::{ListenerDeps, ListenerRuntime};

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

async fn serve_tcp(mut stream: TcpStream, tls: Option<Arc<TlsAcceptor>>, mut conn: Conn) {
    let (timeout, proxy_protocol) = {
        let rt = conn.runtime.load();
        (rt.limits.header_read_timeout, rt.proxy_protocol)
    };
    if let Some(accept) = proxy_protocol {
        // Before TLS: the balancer's header, bounded in size and by the header timeout. Its
        // source address is the peer from here on (forwarding headers, CEL, rate limits,
        // access logs, `trusted_proxies`).
        let header =
            match tokio::time::timeout(timeout, crate::proxy_protocol::read(&mut stream, accept))
                .await
            {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => return proxy_header_refused(&conn, &e.to_string()),
                Err(_) => return proxy_header_refused(&conn, "no PROXY protocol header in time"),
            };
        if let Some(source) = header.source {
            conn.remote = source;
            conn.remote_ip = HeaderValue::try_from(source.ip().to_string())
                .unwrap_or(HeaderValue::from_static("unknown"));
        }
        if !header.rest.is_empty() {
            // The client's first bytes came with the header: no need to wait for them.
            let io = crate::proxy_protocol::Prefixed::new(header.rest, stream);
            return match tls {
                None => serve_io(io, conn).await,
                Some(acceptor) => serve_tls(io, &acceptor, conn).await,
            };
        }
    }
    match tls {
        None => {
            // hyper's protocol sniffing waits for the first bytes without a timer: a client
            // that connects and never speaks would hold the connection forever.
            let mut first = [0u8; 1];
            match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
                Ok(Ok(n)) if n > 0 => serve_io(stream, conn).await,
                Ok(_) => {}
                Err(_) => tracing::debug!(remote = %conn.remote, "client sent nothing; closed"),
            }
        }
        Some(acceptor) => serve_tls(stream, &acceptor, conn).await,
    }
}

/// Counts and logs (debug) a connection closed for its PROXY protocol header.
fn proxy_header_refused(conn: &Conn, why: &str) {
    let listener = conn.runtime.load().name.clone();
    conn.deps
        .metrics
        .proxy_protocol_rejected
        .get_or_create(&ListenerLabels {
            listener: listener.clone(),
        })
        .inc();
    tracing::debug!(%listener, remote = %conn.remote, reason = why, "PROXY protocol header refused; closed");
}

async fn serve_tls<I>(io: I, acceptor: &TlsAcceptor, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let timeout = conn.runtime.load().limits.header_read_timeout;
    match tokio::time::timeout(timeout, acceptor.accept(io)).await {
        Ok(Ok(tls_stream)) => serve_io(tls_stream, conn).await,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, remote = %conn.remote, "TLS handshake failed")
        }
        Err(_) => tracing::debug!(remote = %conn.remote, "TLS handshake timed out"),
    }
}

async fn serve_io<I>(io: I, conn: Conn)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = conn.runtime.load().limits.clone();
    let shutdown = conn.deps.shutdown.clone();
    let conn = Arc::new(conn);
    let head = HeadTimer {
        conn: conn.clone(),
        due: Arc::new(HeadDue::new()),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(head.clone())
        .header_read_timeout(limits.header_read_timeout)
        // Headers over our limit get a JSON 431 from the pipeline; hyper's own (bodiless) 431
        // only answers heads far beyond it.
        .max_buf_size((limits.max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size((limits.max_header_bytes * 2).min(u32::MAX as usize) as u32);
    let watched = conn.clone();
    // tokio's clock, as every check of the watchdog's (and `HeadTimer`'s deadlines).
    let opened = tokio::time::Instant::now();
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
    // The watchdog wakes at least twice per header timeout, and at the deadline of a head
    // that hyper is waiting for when that comes before its next check; so it enforces
    // HTTP/1.1's header timeout on time although no tokio timer is armed per request (see
    // `HeadTimer`).
    let check_every = (limits.idle_timeout / 4)
        .min(limits.header_read_timeout / 2)
        .max(std::time::Duration::from_millis(10));
    let header_timeout = limits.header_read_timeout;
    let idle_timeout = limits.idle_timeout;
    let watchdog = async move {
        let sleep = tokio::time::sleep(check_every);
        tokio::pin!(sleep);
        // Quiet since the first wake that saw no bytes moved since the one before: never
        // earlier than the last bytes, so the idle timeout never cuts a connection early (and
        // closes it at most two checks late).
        let mut moved = activity.count();
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Closing::Drain,
                _ = sleep.as_mut() => {
                    let now = tokio::time::Instant::now();
                    let requests = watched.requests.load(Ordering::Relaxed);
                    // The first head (on HTTP/2 too), and HTTP/1.1's next head.
                    let head_due = head.due.waiting(requests);
                    if (requests == 0 && now.saturating_duration_since(opened) >= header_timeout)
                        || head_due.is_some_and(|due| now >= due)
                    {
                        tracing::debug!(remote = %watched.remote, "no request head within the header timeout; closed");
                        return Closing::Now;
                    }
                    let count = activity.count();
                    if count != moved {
                        moved = count;
                        quiet_since = now;
                    } else if now.saturating_duration_since(quiet_since) >= idle_timeout {
                        tracing::debug!(idle = ?idle_timeout, "idle connection closed");
                        return Closing::Drain;
                    }
                    let next = now + check_every;
                    sleep.as_mut().reset(head_due.map_or(next, |due| due.min(next)));
                }
            }
        }
    };
    // The watchdog is polled only when its own timer or the shutdown token woke it, not on
    // each of the connection's wake-ups (two or more per request): a set of one future that
    // tracks its wake-ups costs less per turn than polling an interval and a cancellation
    // (issue 19).
    let mut watchdog = futures::stream::FuturesUnordered::from_iter([watchdog]);
    let closing = tokio::select! {
        biased;
        r = connection.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with error");
            }
            return;
        }
        Some(closing) = futures::StreamExt::next(&mut watchdog) => closing,
    };
    match closing {
        // No graceful GOAWAY for a client that never finished a head: dropping the
        // connection closes the socket at once.
        Closing::Now => {}
        Closing::Drain => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// How the watchdog ends a connection.
enum Closing {
    /// Dropped at once (no request head in time).
    Now,
    /// Shut down gracefully: the request in flight finishes (idle, or the gateway stops).
    Drain,
}

/// hyper's timer for one HTTP/1.1 connection, which hyper uses for the header timeout alone:
/// it arms a deadline each time it starts waiting for a request head and drops it once the
/// head is in. This one records the deadline (and which request it waits for) for the
/// connection's watchdog, which closes the connection when the deadline passes with that
/// request still missing, and hands hyper a sleep that never fires. hyper's own timer boxed a
/// tokio sleep, registered it in the timer wheel and removed it again for every request: about
/// 0.6k instructions per request (issue 19). A head that does not arrive in time closes the
/// connection without an answer, as on the connection's first request.
#[derive(Clone)]
struct HeadTimer {
    conn: Arc<Conn>,
    due: Arc<HeadDue>,
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, duration: std::time::Duration) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(self.now() + duration)
    }

    fn sleep_until(&self, deadline: Instant) -> std::pin::Pin<Box<dyn hyper::rt::Sleep>> {
        self.due
            .arm(deadline, self.conn.requests.load(Ordering::Relaxed));
        // Zero-sized: boxing it allocates nothing.
        Box::pin(NeverFires)
    }

    // tokio's clock, which a test may pause: the watchdog compares against it.
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

/// The head deadline a [`HeadTimer`] armed last.
struct HeadDue {
    epoch: Instant,
    /// Nanoseconds from `epoch` to the deadline, plus one; 0 before the first.
    at: std::sync::atomic::AtomicU64,
    /// The connection's request count when it was armed: the head it waits for is the next.
    armed_for: std::sync::atomic::AtomicU64,
}

impl HeadDue {
    fn new() -> Self {
        HeadDue {
            epoch: tokio::time::Instant::now().into_std(),
            at: std::sync::atomic::AtomicU64::new(0),
            armed_for: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn arm(&self, deadline: Instant, requests: u64) {
        let after = deadline.saturating_duration_since(self.epoch).as_nanos();
        let at = u64::try_from(after).unwrap_or(u64::MAX - 1) + 1;
        self.at.store(at, Ordering::Relaxed);
        self.armed_for.store(requests, Ordering::Relaxed);
    }

    /// The deadline of the head hyper is waiting for, if it is still waiting (`requests`
    /// heads have arrived).
    fn waiting(&self, requests: u64) -> Option<tokio::time::Instant> {
        let at = self.at.load(Ordering::Relaxed);
        if at == 0 || self.armed_for.load(Ordering::Relaxed) != requests {
            return None;
        }
        Some(tokio::time::Instant::from_std(
            self.epoch + std::time::Duration::from_nanos(at - 1),
        ))
    }
}

/// The sleep a [`HeadTimer`] gives hyper: the watchdog acts on the deadline instead.
struct NeverFires;

impl std::future::Future for NeverFires {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        std::task::Poll::Pending
    }
}

impl hyper::rt::Sleep for NeverFires {}

/// Whether a connection moved bytes, shared between its IO wrapper and its watchdog: a count of
/// the reads and writes that moved any, which the watchdog compares at each of its wakes. (A
/// time per read and write cost two clock reads per request, issue 19.)
#[derive(Clone)]
struct Activity {
    moved: Arc<std::sync::atomic::AtomicU64>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            moved: Arc::new(std::sync::atomic::AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        // One writer, the connection's task: no need for an atomic add.
        let n = self.moved.load(Ordering::Relaxed);
        self.moved.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.moved.load(Ordering::Relaxed)
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
