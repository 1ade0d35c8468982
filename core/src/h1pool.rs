//! The HTTP/1.1 connection pool of every path that sends to a plain `http://` upstream on
//! hyper directly: the `http` route, MCP targets' POSTs and LLM providers' chat calls.
//!
//! Each serving thread has its own connections, by `host:port` as written in the config: hyper
//! runs a connection as a task on the runtime that opened it, so a thread that only uses its
//! own never wakes another core, and no lock is shared. A connection stays in its list while it
//! serves a response and is taken again once hyper reports it ready; no task per request
//! returns it (hyper-util's legacy pool spawns one, and hashes its key with SipHash twice per
//! request). Keyed by the string, not by [`Authority`]: its `Hash` feeds the hasher one
//! lowercased byte at a time.
//!
//! What hyper-util's client did and this pool does too: a request that a pooled connection
//! closed on before taking it is sent once more on a new connection; a connection that sent
//! no request for the idle timeout is closed (checked when its upstream is next used, and for
//! the whole thread whenever it opens a connection); at most `max_per_upstream` connections
//! are kept per upstream and thread (more are opened when all are busy, and closed after
//! their response).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{HeaderValue, Request, Response, Uri};
use hyper::body::{Body, Incoming};
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
    /// Most connections kept per upstream and thread.
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

/// One thread's connections, by upstream.
struct Idle<B>(RefCell<HashMap<Box<str>, Vec<Pooled<B>>>>);

impl<B> Default for Idle<B> {
    fn default() -> Self {
        Idle(RefCell::default())
    }
}

struct Pooled<B> {
    sender: SendRequest<B>,
    /// When it was last given a request.
    used: Instant,
}

impl<B> Pooled<B> {
    /// Whether it is worth keeping at `now`: open, and busy or not idle for too long.
    fn alive(&self, now: Instant, idle_timeout: Duration) -> bool {
        let idle_too_long =
            self.sender.is_ready() && now.saturating_duration_since(self.used) >= idle_timeout;
        !self.sender.is_closed() && !idle_too_long
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
    /// this thread's connections, opening one when none is ready. A request that a pooled
    /// connection closed on before taking it is sent once more on a new connection.
    pub async fn send(
        &self,
        authority: &Authority,
        req: Request<B>,
    ) -> Result<Response<Incoming>, SendError> {
        let now = Instant::now();
        let idle_timeout = self.opts.idle_timeout;
        // One lookup of this thread's pool: a ready connection is handed the request where it
        // sits in the list (it stays there).
        let pooled = {
            let mut map = self.threads.get_or_default().0.borrow_mut();
            let ready = map.get_mut(authority.as_str()).and_then(|list| {
                list.retain(|p| p.alive(now, idle_timeout));
                list.iter_mut().find(|p| p.sender.is_ready())
            });
            match ready {
                Some(p) => {
                    p.used = now;
                    Ok(p.sender.try_send_request(req))
                }
                None => Err(req),
            }
        };
        let req = match pooled {
            Ok(fut) => match fut.await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    Some(req) => req,
                    None => return Err(SendError::Request(e.into_error())),
                },
            },
            Err(req) => req,
        };
        // Boxed: opening a connection (resolving, connecting, the handshake) is a future of
        // a few hundred bytes that a pooled request never needs, and every future that awaits
        // this one would carry it and be moved with it.
        Box::pin(self.send_new(authority, req, now)).await
    }

    /// Sends `req` on a new connection, which joins the pool.
    async fn send_new(
        &self,
        authority: &Authority,
        req: Request<B>,
        now: Instant,
    ) -> Result<Response<Incoming>, SendError> {
        let mut sender = self.connect(authority).await.map_err(SendError::Connect)?;
        let fut = sender.send_request(req);
        self.checkin(authority, sender, now);
        fut.await.map_err(SendError::Request)
    }

    /// Adds a new connection to `authority` to this thread's pool, and drops this thread's
    /// closed and idle ones.
    fn checkin(&self, authority: &Authority, sender: SendRequest<B>, now: Instant) {
        let idle_timeout = self.opts.idle_timeout;
        let mut map = self.threads.get_or_default().0.borrow_mut();
        map.retain(|_, list| {
            list.retain(|p| p.alive(now, idle_timeout));
            !list.is_empty()
        });
        let list = map.entry(authority.as_str().into()).or_default();
        if list.len() < self.opts.max_per_upstream {
            list.push(Pooled { sender, used: now });
        }
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<B>, BoxError> {
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
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with error");
            }
        });
        Ok(sender)
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
