//! The HTTP/1.1 connection pool of every path that sends to a plain `http://` upstream on
//! hyper directly: the `http` route, MCP targets' POSTs and LLM providers' chat calls.
//!
//! Each serving thread has its own connections, by `host:port` as written in the config, and
//! a connection is driven by whoever holds it: the request's future until the response's head
//! has come, then the response's body ([`ResponseBody`]), whose reader (the client's
//! connection, an LLM or MCP call) polls the upstream connection as it polls the body. So a
//! request and its response are one task's work, with no task per connection to wake and no
//! channel hop between them; an idle connection waits in its thread's list, polled by nobody,
//! until it is given the next request (a close from the upstream meanwhile is seen then). No
//! task per request returns it either (hyper-util's legacy pool spawns one, and hashes its key
//! with SipHash twice per request). Keyed by the string, not by [`Authority`]: its `Hash`
//! feeds the hasher one lowercased byte at a time.
//!
//! What hyper-util's client did and this pool does too: a request that a pooled connection
//! closed on before taking it is sent once more on a new connection; a connection that sent
//! no request for the idle timeout is closed (checked when its upstream is next used, and for
//! the whole thread whenever it opens a connection); at most `max_per_upstream` idle
//! connections are kept per upstream and thread (more are opened when all are busy; one that
//! finds the bound full when its response has been read is closed). A response body dropped
//! before its end closes its connection, as hyper's own does; one whose connection is still
//! sending the request's body, or closing, when the response ends is left to a task of its
//! own, and so is an upgraded (101) connection, which hands its socket over.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::uri::Authority;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// A boxed error, as hyper's client and bodies give them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the pool's connections are opened and kept.
#[derive(Debug, Clone, Copy)]
pub struct PoolOptions {
    /// Longest wait for the TCP connection (name resolution included); none when `None`.
    pub connect_timeout: Option<Duration>,
    /// TCP keep-alive: idle time before the first probe, the interval between probes, and how
    /// many unanswered probes close the connection.
    pub keepalive: Option<(Duration, Duration, u32)>,
    /// `TCP_USER_TIMEOUT`: how long sent data may stay unacknowledged.
    pub user_timeout: Option<Duration>,
    /// A connection that sent no request for this long is closed.
    pub idle_timeout: Duration,
    /// Most idle connections kept per upstream and thread.
    pub max_per_upstream: usize,
}

impl PoolOptions {
    /// The connector and pool of the gateway's reqwest clients, for the paths that skip
    /// reqwest (LLM providers, MCP targets): `tcp_nodelay`, TCP keep-alive after 15 s (probes
    /// every 15 s, 3 of them), a 30 s TCP user timeout, idle connections kept 90 s, no limit per
    /// upstream.
    pub fn like_reqwest(connect_timeout: Option<Duration>) -> Self {
        PoolOptions {
            connect_timeout,
            keepalive: Some((Duration::from_secs(15), Duration::from_secs(15), 3)),
            user_timeout: Some(Duration::from_secs(30)),
            idle_timeout: Duration::from_secs(90),
            max_per_upstream: usize::MAX,
        }
    }
}

/// One connection pool per serving thread (see the module's documentation). Clones share the
/// pools.
pub struct H1Pool<B: Send> {
    opts: PoolOptions,
    threads: Arc<thread_local::ThreadLocal<Idle<B>>>,
}

impl<B: Send> Clone for H1Pool<B> {
    fn clone(&self) -> Self {
        H1Pool {
            opts: self.opts,
            threads: self.threads.clone(),
        }
    }
}

impl<B: Send> std::fmt::Debug for H1Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H1Pool")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// One thread's idle connections: a list per upstream.
struct Idle<B>(RefCell<HashMap<Box<str>, Arc<Slot<B>>>>);

impl<B> Default for Idle<B> {
    fn default() -> Self {
        Idle(RefCell::default())
    }
}

/// One thread's idle connections to one upstream, where each of them returns (it holds its
/// slot: no second lookup by name). Behind a lock no other thread takes in the gateway (a
/// response read on another thread's runtime, as in tests, still returns its connection to
/// the thread that opened it): an uncontended lock where a `RefCell` would do, so that a
/// connection, which a response body carries, can hold it.
type Slot<B> = Mutex<Vec<Box<dyn Link<B>>>>;

fn lock<B>(slot: &Slot<B>) -> MutexGuard<'_, Vec<Box<dyn Link<B>>>> {
    // Nothing panics with the lock held, and the list stays whole if something did.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection: hyper's sender and the future that drives the connection, which whoever
/// holds it polls (the request's future, then the response's body), not a task of its own.
/// `C` is hyper's upgradeable connection, a type that cannot be named.
struct Driven<B, C> {
    sender: SendRequest<B>,
    /// The connection's future, until it has ended.
    conn: Option<C>,
    /// What the connection is polled with.
    gate: Arc<Gate>,
    /// `gate` as a waker.
    waker: Waker,
    /// When it was last given a request.
    used: Instant,
    /// Its upstream's list in the pool of the thread that opened it, where it returns.
    slot: Arc<Slot<B>>,
    /// Most idle connections its home keeps for its upstream.
    max: usize,
}

/// The waker a connection is polled with: it wakes the task that drives the connection, but
/// not for what happens while that task is polling it. hyper wakes whoever polled a
/// connection last when a request is handed to it and when its response body's frame is
/// taken, and with the connection driven in the reader's task, both happen in that task's
/// own poll: each would poll the whole task (a server connection's dispatcher, ~2k
/// instructions) once more for nothing. A wake that comes during such a poll is passed on
/// only when the poll ends `Pending`; one that ends `Ready` is followed by another poll of
/// the body, which polls the connection again, or by none when the reader stops (and then
/// nothing need drive it). While the connection is idle its wakes go nowhere.
#[derive(Default)]
struct Gate {
    /// The driving task's waker; none while the connection is idle (and once woken, until
    /// the task polls again).
    task: atomic_waker::AtomicWaker,
    /// The driving task is polling the connection.
    polling: AtomicBool,
    /// A wake came while it was.
    missed: AtomicBool,
}

impl std::task::Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(Ordering::SeqCst) {
            self.missed.store(true, Ordering::SeqCst);
            return;
        }
        self.task.wake();
    }
}

impl Gate {
    /// The task of `cx` starts polling the connection.
    fn enter(&self, cx: &Context<'_>) {
        self.task.register(cx.waker());
        self.missed.store(false, Ordering::SeqCst);
        self.polling.store(true, Ordering::SeqCst);
    }

    /// The poll ends: a wake that came meanwhile is passed on when it ends `Pending`.
    fn leave(&self, pending: bool, cx: &Context<'_>) {
        self.polling.store(false, Ordering::SeqCst);
        if self.missed.swap(false, Ordering::SeqCst) && pending {
            cx.waker().wake_by_ref();
        }
    }

    /// No task drives the connection any more (idle, or driven by a task of its own).
    fn idle(&self) {
        self.polling.store(false, Ordering::SeqCst);
        drop(self.task.take());
    }
}

/// What a response body does with its connection ([`Driven`] with its types erased).
trait Drive: Send {
    /// The task of `cx` starts polling the connection ([`Gate::enter`]).
    fn enter(&self, cx: &Context<'_>);
    /// Ends that ([`Gate::leave`]).
    fn leave(&self, pending: bool, cx: &Context<'_>);
    /// Polls the connection's future (between `enter` and `leave`): `Ready` once it has
    /// ended.
    fn poll_conn(&mut self) -> Poll<()>;
    /// The response has been read to its end (between `enter` and `leave`, which it ends):
    /// back to its pool when it can take another request, else driven to its end by a task
    /// of its own.
    fn release(self: Box<Self>);
    /// Driven to its end (an upgrade's hand-over included) by a task of its own.
    fn detach(self: Box<Self>);
    /// The response's body was dropped: back to its pool when hyper has read all of the
    /// response already (a body that was never read, or not to its end), else closed.
    fn drop_body(self: Box<Self>, at_end: bool);
}

/// A pooled connection, as the pool hands it a request.
trait Link<B>: Drive {
    /// Whether it is worth keeping at `now`: open, and idle for less than `idle_timeout`.
    fn alive(&self, now: Instant, idle_timeout: Duration) -> bool;
    /// Its sender, to be given a request at `now`.
    fn take_request(&mut self, now: Instant) -> &mut SendRequest<B>;
}

impl<B, C> Drive for Driven<B, C>
where
    B: Send + 'static,
    C: Future<Output = hyper::Result<()>> + Unpin + Send + 'static,
{
    fn enter(&self, cx: &Context<'_>) {
        self.gate.enter(cx);
    }

    fn leave(&self, pending: bool, cx: &Context<'_>) {
        self.gate.leave(pending, cx);
    }

    fn poll_conn(&mut self) -> Poll<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(());
        };
        let result = std::task::ready!(Pin::new(conn).poll(&mut Context::from_waker(&self.waker)));
        if let Err(e) = result {
            tracing::debug!(error = %e, "upstream connection ended with error");
        }
        self.conn = None;
        Poll::Ready(())
    }

    fn release(mut self: Box<Self>) {
        if self.conn.is_some() && !self.sender.is_ready() {
            // The end of the response was read in this poll: one more takes the connection
            // to where it waits for the next request.
            let _ = self.poll_conn();
        }
        if self.conn.is_none() || !self.sender.is_ready() {
            // Closing (`Connection: close`), or still sending the request's body.
            self.detach();
        } else {
            self.checkin();
        }
    }

    fn drop_body(mut self: Box<Self>, at_end: bool) {
        if at_end
            && !self.sender.is_ready()
            && let Some(conn) = self.conn.as_mut()
            && Pin::new(conn)
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_ready()
        {
            self.conn = None;
        }
        // Ready only once the response has been read off the socket (its body, whole, may
        // wait in hyper's channel): nothing of it is left for the next request to meet.
        if self.conn.is_some() && self.sender.is_ready() {
            self.checkin();
        } else if at_end {
            self.detach();
        }
    }

    fn detach(self: Box<Self>) {
        self.gate.idle();
        let Some(conn) = self.conn else {
            return;
        };
        // Outside a runtime (one shutting down) the connection is dropped, which closes it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "upstream connection ended with error");
                }
            });
        }
    }
}

impl<B, C> Driven<B, C>
where
    B: Send + 'static,
    C: Future<Output = hyper::Result<()>> + Unpin + Send + 'static,
{
    /// Back to its home's list for its upstream (closed when that is full).
    fn checkin(self: Box<Self>) {
        self.gate.idle();
        let slot = self.slot.clone();
        let mut list = lock(&slot);
        // Closed when the bound is full.
        if list.len() < self.max {
            list.push(self);
        }
    }
}

impl<B, C> Link<B> for Driven<B, C>
where
    B: Send + 'static,
    C: Future<Output = hyper::Result<()>> + Unpin + Send + 'static,
{
    fn alive(&self, now: Instant, idle_timeout: Duration) -> bool {
        self.conn.is_some()
            && !self.sender.is_closed()
            && now.saturating_duration_since(self.used) < idle_timeout
    }

    fn take_request(&mut self, now: Instant) -> &mut SendRequest<B> {
        self.used = now;
        &mut self.sender
    }
}

/// A response's body from [`H1Pool::send`]: hyper's, and the connection it comes on, which
/// polling the body drives. Once the body has been read to its end the connection goes back
/// to its pool; a body dropped before its end closes it, as hyper does. Also made from any
/// other hyper body ([`From<Incoming>`]), which needs no driving.
pub struct ResponseBody {
    incoming: Incoming,
    conn: Option<Box<dyn Drive>>,
}

impl From<Incoming> for ResponseBody {
    fn from(incoming: Incoming) -> Self {
        ResponseBody {
            incoming,
            conn: None,
        }
    }
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody")
            .field("incoming", &self.incoming)
            .field("pooled", &self.conn.is_some())
            .finish()
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let Some(conn) = this.conn.as_mut() else {
            return Pin::new(&mut this.incoming).poll_frame(cx);
        };
        // Only the connection, polled here, gives the body its frames (or its error when it
        // ends): the body is looked at before and after each poll of it with a waker that
        // does nothing, and the connection's wakes meanwhile are the gate's to pass on.
        conn.enter(cx);
        let mut unwoken = Context::from_waker(Waker::noop());
        let polled = match Pin::new(&mut this.incoming).poll_frame(&mut unwoken) {
            Poll::Pending => {
                // It reads the next frame (or sends more of the request's body).
                if conn.poll_conn().is_ready() {
                    // Ended: nothing of it is left to wake this task.
                    Pin::new(&mut this.incoming).poll_frame(cx)
                } else {
                    Pin::new(&mut this.incoming).poll_frame(&mut unwoken)
                }
            }
            ready => ready,
        };
        let ended = match &polled {
            Poll::Ready(Some(Ok(_))) => this.incoming.is_end_stream(),
            Poll::Ready(_) => true,
            Poll::Pending => false,
        };
        match this.conn.take() {
            Some(conn) if ended => conn.release(),
            Some(conn) => {
                conn.leave(polled.is_pending(), cx);
                this.conn = Some(conn);
            }
            None => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // A body with nothing (more) to read need not have been polled to its end (a `HEAD`,
        // a 204, a reader that stopped at the last frame); one dropped early may have been
        // read by hyper all the same (a retried error answer).
        if let Some(conn) = self.conn.take() {
            conn.drop_body(self.incoming.is_end_stream());
        }
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (an I/O error of kind `TimedOut` when the connect timeout
    /// passed).
    Connect(BoxError),
    /// The connection failed while sending the request or reading the response's head.
    Request(hyper::Error),
}

impl SendError {
    /// Whether opening the connection failed.
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }

    /// As a boxed error (the cause itself, without this wrapper).
    pub fn into_box(self) -> BoxError {
        match self {
            SendError::Connect(e) => e,
            SendError::Request(e) => Box::new(e),
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "connect error: {e}"),
            SendError::Request(e) => write!(f, "request error: {e}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Connect(e) => Some(&**e),
            SendError::Request(e) => Some(e),
        }
    }
}

/// Polls `link`'s connection, then `answer` (hyper's future for the response to the request
/// just given to it). Only the connection, polled here, answers (or drops the answer when it
/// ends): the answer is looked at with a waker that does nothing, and the connection's wakes
/// meanwhile are the gate's to pass on.
fn poll_answer<B, F: Future>(
    link: &mut dyn Link<B>,
    answer: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output> {
    link.enter(cx);
    let _ = link.poll_conn();
    let answered = answer.poll(&mut Context::from_waker(Waker::noop()));
    link.leave(answered.is_pending(), cx);
    answered
}

/// The response that came on `link`, with a body that drives the connection on (an
/// upgrade's connection is handed to a task of its own, which completes the switch).
fn respond<B>(link: Box<dyn Link<B>>, resp: Response<Incoming>) -> Response<ResponseBody> {
    let conn: Box<dyn Drive> = link;
    let conn = if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        conn.detach();
        None
    } else {
        Some(conn)
    };
    resp.map(|incoming| ResponseBody { incoming, conn })
}

impl<B> H1Pool<B>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    /// How its connections are opened and kept.
    pub fn options(&self) -> &PoolOptions {
        &self.opts
    }

    /// An empty pool.
    pub fn new(opts: PoolOptions) -> Self {
        H1Pool {
            opts,
            threads: Arc::default(),
        }
    }

    /// Sends `req` (origin-form URI, `Host` set) to the upstream at `authority` over one of
    /// this thread's idle connections, opening one when there is none. A request that a pooled
    /// connection closed on before taking it is sent once more on a new connection. The
    /// connection is driven by this future and then by the response's body (no task of its
    /// own), and is idle again once the body has been read to its end.
    pub async fn send(
        &self,
        authority: &Authority,
        req: Request<B>,
    ) -> Result<Response<ResponseBody>, SendError> {
        let now = Instant::now();
        let idle_timeout = self.opts.idle_timeout;
        // One lookup of this thread's pool; the most recently used connection is taken.
        let pooled = {
            let map = self.threads.get_or_default().0.borrow();
            map.get(authority.as_str()).and_then(|slot| {
                let mut list = lock(slot);
                list.retain(|p| p.alive(now, idle_timeout));
                list.pop()
            })
        };
        let req = match pooled {
            Some(mut link) => {
                let mut answer = pin!(link.take_request(now).try_send_request(req));
                match poll_fn(|cx| poll_answer(&mut *link, answer.as_mut(), cx)).await {
                    Ok(resp) => return Ok(respond(link, resp)),
                    Err(mut e) => match e.take_message() {
                        Some(req) => req,
                        None => return Err(SendError::Request(e.into_error())),
                    },
                }
            }
            None => req,
        };
        // Boxed: opening a connection (resolving, connecting, the handshake) is a future of
        // a few hundred bytes that a pooled request never needs, and every future that awaits
        // this one would carry it and be moved with it.
        Box::pin(self.send_new(authority, req, now)).await
    }

    /// Sends `req` on a new connection, which joins the pool once its response is read.
    async fn send_new(
        &self,
        authority: &Authority,
        req: Request<B>,
        now: Instant,
    ) -> Result<Response<ResponseBody>, SendError> {
        let mut link = self
            .connect(authority, now)
            .await
            .map_err(SendError::Connect)?;
        let mut answer = pin!(link.take_request(now).try_send_request(req));
        match poll_fn(|cx| poll_answer(&mut *link, answer.as_mut(), cx)).await {
            Ok(resp) => Ok(respond(link, resp)),
            Err(e) => Err(SendError::Request(e.into_error())),
        }
    }

    /// A new connection to `authority`. This thread's closed and idle connections are dropped
    /// meanwhile.
    async fn connect(
        &self,
        authority: &Authority,
        now: Instant,
    ) -> Result<Box<dyn Link<B>>, BoxError> {
        let slot = {
            let idle_timeout = self.opts.idle_timeout;
            let mut map = self.threads.get_or_default().0.borrow_mut();
            // A slot goes with its last connection (busy ones hold theirs).
            map.retain(|_, slot| {
                let mut list = lock(slot);
                list.retain(|p| p.alive(now, idle_timeout));
                !list.is_empty() || Arc::strong_count(slot) > 1
            });
            map.entry(authority.as_str().into()).or_default().clone()
        };
        let addr = (
            authority.host().trim_matches(['[', ']']),
            authority.port_u16().unwrap_or(80),
        );
        let stream = match self.opts.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect_any(addr, Some(limit)))
                .await
                .map_err(|_| {
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("connect timed out after {limit:?}"),
                    )
                })??,
            None => connect_any(addr, None).await?,
        };
        stream.set_nodelay(true)?;
        let sock = socket2::SockRef::from(&stream);
        if let Some((time, interval, retries)) = self.opts.keepalive {
            sock.set_tcp_keepalive(
                &socket2::TcpKeepalive::new()
                    .with_time(time)
                    .with_interval(interval)
                    .with_retries(retries),
            )?;
        }
        if let Some(limit) = self.opts.user_timeout {
            sock.set_tcp_user_timeout(Some(limit))?;
        }
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let gate = Arc::new(Gate::default());
        Ok(Box::new(Driven {
            sender,
            conn: Some(conn.with_upgrades()),
            waker: Waker::from(gate.clone()),
            gate,
            used: now,
            slot,
            max: self.opts.max_per_upstream,
        }))
    }
}

/// A connection to the first of `addr`'s addresses that takes one, in the resolver's order.
/// With a connect timeout, each address gets an even share of it (as hyper-util's connector
/// does), so an address that never answers does not use up the time of those after it.
async fn connect_any(
    addr: (&str, u16),
    limit: Option<Duration>,
) -> std::io::Result<tokio::net::TcpStream> {
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
    // One address has the caller's whole timeout, which is around this call.
    let share = limit
        .filter(|_| addrs.len() > 1)
        .map(|l| l / u32::try_from(addrs.len()).unwrap_or(u32::MAX));
    let mut last = None;
    for a in addrs {
        let attempt = tokio::net::TcpStream::connect(a);
        let result = match share {
            Some(share) => match tokio::time::timeout(share, attempt).await {
                Ok(r) => r,
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connect to {a} timed out after {share:?}"),
                )),
            },
            None => attempt.await,
        };
        match result {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} resolved to no address", addr.0),
        )
    }))
}

/// An absolute `http://` URI as [`H1Pool::send`] takes it, worked out once per upstream: the
/// pool's key, the origin-form request target, and the `Host` header hyper-util's client
/// adds (the host, with the port unless it is 80).
#[derive(Debug, Clone)]
pub struct H1Target {
    /// `host:port` as written.
    pub authority: Authority,
    /// The path and query (`/` when empty).
    pub origin: Uri,
    /// The `Host` header's value.
    pub host: HeaderValue,
}

impl H1Target {
    /// The target of `uri`, or `None` when it is not an absolute `http://` URI with a host.
    pub fn new(uri: &Uri) -> Option<Self> {
        if uri.scheme_str() != Some("http") {
            return None;
        }
        let authority = uri.authority()?.clone();
        let host = match authority.port_u16() {
            Some(port) if port != 80 => format!("{}:{port}", authority.host()),
            _ => authority.host().to_owned(),
        };
        let origin = match uri.path_and_query() {
            Some(pq) if pq.as_str() != "/" => Uri::from(pq.clone()),
            _ => Uri::from_static("/"),
        };
        Some(H1Target {
            authority,
            origin,
            host: HeaderValue::from_str(&host).ok()?,
        })
    }

    /// The target of `uri` when a request to it may skip reqwest: an absolute `http://` URI
    /// without credentials (reqwest sends them as basic auth) to which no proxy from the
    /// environment applies (`HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, read as reqwest reads them).
    pub fn direct(uri: &Uri) -> Option<Self> {
        let target = Self::new(uri)?;
        if target.authority.as_str().contains('@')
            || hyper_util::client::proxy::matcher::Matcher::from_system()
                .intercept(uri)
                .is_some()
        {
            return None;
        }
        Some(target)
    }

    /// `req`'s URI set to the origin form, and `Host` added when it has none.
    pub fn prepare<B>(&self, req: &mut Request<B>) {
        *req.uri_mut() = self.origin.clone();
        req.headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| self.host.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mcp_and_llm_pools_keep_connections_as_reqwest_does() {
        let o = PoolOptions::like_reqwest(Some(Duration::from_secs(10)));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(10)));
        assert_eq!(
            o.keepalive,
            Some((Duration::from_secs(15), Duration::from_secs(15), 3))
        );
        assert_eq!(o.user_timeout, Some(Duration::from_secs(30)));
        // The README's "a pooled connection that sent no request for 90 s is closed".
        assert_eq!(o.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.max_per_upstream, usize::MAX);
    }

    #[test]
    fn targets_are_split_as_hyper_utils_client_splits_them() {
        let t = H1Target::new(&"http://127.0.0.1:8080/mcp?x=1".parse().unwrap()).unwrap();
        assert_eq!(t.authority.as_str(), "127.0.0.1:8080");
        assert_eq!(t.origin, "/mcp?x=1");
        assert_eq!(t.host, "127.0.0.1:8080");
        let t = H1Target::new(&"http://example.com:80".parse().unwrap()).unwrap();
        assert_eq!(t.origin, "/");
        assert_eq!(t.host, "example.com");
        let t = H1Target::new(&"http://[::1]:9/v1/chat/completions".parse().unwrap()).unwrap();
        assert_eq!(t.host, "[::1]:9");
        assert!(H1Target::new(&"https://example.com/".parse().unwrap()).is_none());
        assert!(H1Target::new(&"/relative".parse().unwrap()).is_none());
        // Credentials in the URL are reqwest's to send (as basic auth).
        let with_user: Uri = "http://user:pw@127.0.0.1:8080/v1".parse().unwrap();
        assert!(H1Target::new(&with_user).is_some());
        assert!(H1Target::direct(&with_user).is_none());

        let mut req = Request::new(());
        *req.uri_mut() = "http://127.0.0.1:8080/mcp".parse().unwrap();
        let t = H1Target::new(req.uri()).unwrap();
        t.prepare(&mut req);
        assert_eq!(req.uri(), "/mcp");
        assert_eq!(req.headers()[http::header::HOST], "127.0.0.1:8080");
        // A `Host` the caller set stays.
        req.headers_mut()
            .insert(http::header::HOST, HeaderValue::from_static("other"));
        t.prepare(&mut req);
        assert_eq!(req.headers()[http::header::HOST], "other");
    }
}
