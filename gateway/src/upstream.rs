//! HTTP clients to upstreams, shared by the `http` backend ([`crate::backend::http`]) and
//! the A2A proxy ([`crate::a2a`]): connections pooled per serving thread with keep-alive and
//! TCP_NODELAY, TLS with the platform's and webpki roots, one pool per connect timeout.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use dashmap::DashMap;
use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

type Client1 = Client<HttpsConnector<HttpConnector>, Body>;
type ClientH2c = Client<HttpConnector, Body>;

/// Pooled upstream clients, one per connect timeout, shared by every config generation so
/// that a reload keeps warm connections.
#[derive(Clone, Default)]
pub struct HttpClients {
    by_connect_timeout: Arc<DashMap<Duration, HttpClient>>,
}

impl HttpClients {
    /// The client for `connect_timeout`, created on first use.
    pub fn get(&self, connect_timeout: Duration) -> HttpClient {
        self.by_connect_timeout
            .entry(connect_timeout)
            .or_insert_with(|| HttpClient {
                connect_timeout,
                per_thread: Arc::default(),
                h1: Arc::default(),
                held: Arc::default(),
                h2c: Arc::default(),
            })
            .clone()
    }
}

/// An upstream client with one connection pool per serving thread
/// ([`crate::workers`]): hyper runs each pooled connection as a task on the runtime that
/// opened it, so a thread that only uses its own pool never wakes another core.
#[derive(Clone)]
pub struct HttpClient {
    connect_timeout: Duration,
    per_thread: Arc<thread_local::ThreadLocal<Client1>>,
    h1: Arc<thread_local::ThreadLocal<H1Idle>>,
    held: Arc<thread_local::ThreadLocal<HeldIdle>>,
    h2c: Arc<thread_local::ThreadLocal<ClientH2c>>,
}

/// Most pooled connections kept per upstream and thread.
const H1_MAX_IDLE: usize = 256;

/// This thread's plain-HTTP/1.1 upstream connections, by `host:port`. A connection stays in
/// the list while it serves a response and is taken again once hyper reports it ready; no
/// task per request returns it (the legacy pool spawns one), and no lock is shared.
#[derive(Default)]
struct H1Idle(std::cell::RefCell<std::collections::HashMap<Authority, Vec<H1Sender>>>);

type H1Sender = hyper::client::conn::http1::SendRequest<Body>;
type H1Conn = hyper::client::conn::http1::Connection<TokioIo<tokio::net::TcpStream>, Body>;

/// This thread's idle held connections ([`HttpClient::send_h1_held`]), by `host:port`.
#[derive(Default)]
struct HeldIdle(std::cell::RefCell<std::collections::HashMap<Authority, Vec<Held>>>);

/// A plain-HTTP/1.1 upstream connection that no task of its own drives: whoever holds it
/// polls it, the request's future while the response head is awaited, then the response
/// body ([`UpstreamBody`]). A request and its response then never wake a second task (the
/// spawned connection task of [`HttpClient::send_h1`] is woken, and wakes the caller, twice
/// per request). Idle ones wait in this thread's [`HeldIdle`], polled by nobody.
struct Held {
    sender: H1Sender,
    conn: std::pin::Pin<Box<H1Conn>>,
    /// The connection future finished: closed, or failed.
    done: bool,
}

impl Held {
    /// Polls the connection once; `false` once it has finished (closed or failed).
    fn drive(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        if !self.done && self.conn.as_mut().poll(cx).is_ready() {
            self.done = true;
        }
        !self.done
    }

    /// Polls the connection without a task to wake: it takes in what it has read (a close,
    /// the end of a response) and tells its sender whether it is ready for a request.
    fn settle(&mut self) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        self.drive(&mut cx)
    }
}

use std::future::Future as _;
/// A boxed error, as hyper's client and bodies give them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl HttpClient {
    /// This thread's client.
    pub fn here(&self) -> &Client1 {
        self.per_thread
            .get_or(|| build_client(self.connect_timeout))
    }

    /// Sends `req` (origin-form URI, `Host` set) to the plain-HTTP upstream at `authority`
    /// over one of this thread's HTTP/1.1 connections, opening one when none is ready. A
    /// request that a pooled connection closed on before taking it is sent once more on a new
    /// connection.
    pub async fn send_h1(
        &self,
        authority: &Authority,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        let req = match self.checkout(authority) {
            Some(mut sender) => {
                let fut = sender.try_send_request(req);
                self.checkin(authority, sender);
                match fut.await {
                    Ok(resp) => return Ok(resp),
                    Err(mut e) => match e.take_message() {
                        Some(req) => req,
                        None => return Err(Box::new(e.into_error())),
                    },
                }
            }
            None => req,
        };
        let mut sender = self.connect_h1(authority).await?;
        let fut = sender.send_request(req);
        self.checkin(authority, sender);
        fut.await.map_err(|e| Box::new(e) as BoxError)
    }

    /// [`Self::send_h1`] on a connection the caller's task drives itself ([`Held`]): the
    /// response body it returns carries the connection and gives it back to this thread's
    /// idle list once read to its end. Not for upgrades: the connection does not hand its
    /// socket over after a 101.
    pub async fn send_h1_held(
        &self,
        authority: &Authority,
        req: Request<Body>,
    ) -> Result<Response<UpstreamBody>, BoxError> {
        let req = match self.checkout_held(authority) {
            Some(held) => match drive_send(held, req).await {
                Ok(resp) => return Ok(self.held_response(authority, resp)),
                Err(SendFailed::Unsent(req)) => req,
                Err(SendFailed::Failed(e)) => return Err(e),
            },
            None => req,
        };
        let held = self.connect_held(authority).await?;
        match drive_send(held, req).await {
            Ok(resp) => Ok(self.held_response(authority, resp)),
            Err(SendFailed::Unsent(_)) => Err(BoxError::from(
                "upstream connection closed before the request was sent",
            )),
            Err(SendFailed::Failed(e)) => Err(e),
        }
    }

    fn held_response(
        &self,
        authority: &Authority,
        (resp, held): (Response<Incoming>, Held),
    ) -> Response<UpstreamBody> {
        let (parts, inner) = resp.into_parts();
        let body = UpstreamBody {
            inner,
            held: Some(HeldHome {
                held,
                pool: self.held.clone(),
                authority: authority.clone(),
            }),
            ended: false,
        };
        Response::from_parts(parts, body)
    }

    fn checkout_held(&self, authority: &Authority) -> Option<Held> {
        let mut map = self.held.get_or_default().0.borrow_mut();
        let list = map.get_mut(authority)?;
        while let Some(mut held) = list.pop() {
            if held.settle() && held.sender.is_ready() {
                return Some(held);
            }
        }
        None
    }

    async fn connect_held(&self, authority: &Authority) -> Result<Held, BoxError> {
        let stream = self.connect_tcp(authority).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        Ok(Held {
            sender,
            conn: Box::pin(conn),
            done: false,
        })
    }

    fn checkout(&self, authority: &Authority) -> Option<H1Sender> {
        let mut map = self.h1.get_or_default().0.borrow_mut();
        let list = map.get_mut(authority)?;
        list.retain(|s| !s.is_closed());
        let i = list.iter().position(H1Sender::is_ready)?;
        Some(list.swap_remove(i))
    }

    fn checkin(&self, authority: &Authority, sender: H1Sender) {
        let mut map = self.h1.get_or_default().0.borrow_mut();
        let list = map.entry(authority.clone()).or_default();
        if list.len() < H1_MAX_IDLE {
            list.push(sender);
        }
    }

    async fn connect_h1(&self, authority: &Authority) -> Result<H1Sender, BoxError> {
        let stream = self.connect_tcp(authority).await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with error");
            }
        });
        Ok(sender)
    }

    async fn connect_tcp(&self, authority: &Authority) -> Result<tokio::net::TcpStream, BoxError> {
        let addr = (
            authority.host().trim_matches(['[', ']']),
            authority.port_u16().unwrap_or(80),
        );
        let stream =
            tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| {
                    BoxError::from(format!(
                        "connect timed out after {:?}",
                        self.connect_timeout
                    ))
                })??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Sends `req` (absolute `http://` URI) over HTTP/2 with prior knowledge (h2c), on this
    /// thread's multiplexed connections: gRPC and other HTTP/2-only upstreams.
    pub async fn send_h2c(&self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let client = self.h2c.get_or(|| {
            let mut http = HttpConnector::new();
            http.set_nodelay(true);
            http.set_connect_timeout(Some(self.connect_timeout));
            http.set_keepalive(Some(Duration::from_secs(60)));
            Client::builder(TokioExecutor::new())
                .http2_only(true)
                .pool_idle_timeout(Duration::from_secs(90))
                .build(http)
        });
        client
            .request(req)
            .await
            .map_err(|e| Box::new(e) as BoxError)
    }

    /// Sends a request with this thread's pool.
    pub fn request(&self, req: Request<Body>) -> hyper_util::client::legacy::ResponseFuture {
        self.here().request(req)
    }
}

/// Why [`drive_send`] gave no response.
#[allow(
    clippy::large_enum_variant,
    reason = "built at most once per request, on a failure; boxing the request would cost an allocation"
)]
enum SendFailed {
    /// The connection closed before it took the request, which comes back untouched.
    Unsent(Request<Body>),
    /// The request was (perhaps partly) sent and failed.
    Failed(BoxError),
}

/// Sends `req` on `held`, driving the connection in this task until the response head is in.
async fn drive_send(
    mut held: Held,
    req: Request<Body>,
) -> Result<(Response<Incoming>, Held), SendFailed> {
    let mut fut = std::pin::pin!(held.sender.try_send_request(req));
    let r = std::future::poll_fn(|cx| {
        // The connection first: it writes the request and reads what answers it.
        held.drive(cx);
        fut.as_mut().poll(cx)
    })
    .await;
    match r {
        Ok(resp) => Ok((resp, held)),
        Err(mut e) => match e.take_message() {
            Some(req) => Err(SendFailed::Unsent(req)),
            None => Err(SendFailed::Failed(Box::new(e.into_error()))),
        },
    }
}

/// Where a held connection goes back to once its response is read.
struct HeldHome {
    held: Held,
    pool: Arc<thread_local::ThreadLocal<HeldIdle>>,
    authority: Authority,
}

/// An upstream response body. From [`HttpClient::send_h1_held`] it also drives the held
/// connection it arrives on, and gives that connection back to the thread's idle list once
/// the body has ended (or closes it, when dropped before its end).
pub struct UpstreamBody {
    inner: Incoming,
    held: Option<HeldHome>,
    ended: bool,
}

impl From<Incoming> for UpstreamBody {
    fn from(inner: Incoming) -> Self {
        UpstreamBody {
            inner,
            held: None,
            ended: false,
        }
    }
}

impl http_body::Body for UpstreamBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Some(home) = &mut this.held {
            home.held.drive(cx);
        }
        let r = std::pin::Pin::new(&mut this.inner).poll_frame(cx);
        if let std::task::Poll::Ready(None) = r {
            this.ended = true;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let Some(mut home) = self.held.take() else {
            return;
        };
        // A body dropped before its end leaves the connection mid-response: it closes.
        if !(self.ended || http_body::Body::is_end_stream(&self.inner)) {
            return;
        }
        // Closed, or still sending a request body the upstream answered early.
        if !home.held.settle() || !home.held.sender.is_ready() {
            return;
        }
        let mut map = home.pool.get_or_default().0.borrow_mut();
        let list = map.entry(home.authority).or_default();
        if list.len() < H1_MAX_IDLE {
            list.push(home.held);
        }
    }
}

#[allow(
    clippy::expect_used,
    reason = "ring supports rustls' default protocol versions; a constant fact, not input"
)]
fn build_client(connect_timeout: Duration) -> Client1 {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_keepalive(Some(Duration::from_secs(60)));
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default protocol versions")
    .with_root_certificates(webpki_roots())
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .build(https)
}

fn webpki_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Displays an error with its sources, for logs.
pub struct DisplayChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut s = self.0.source();
        while let Some(e) = s {
            write!(f, ": {e}")?;
            s = e.source();
        }
        Ok(())
    }
}
