//! The `http` backend: a streaming reverse proxy. Bodies flow both ways frame by frame (never
//! collected), upstream connections are pooled with keep-alive and TCP_NODELAY, and the
//! `Upgrade` the route allows ([`crate::forwarding`]; WebSocket by default) becomes a byte
//! tunnel after the upstream's 101. Hop-by-hop and forwarding headers were dealt with by the
//! forwarding stage before the request got here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use bytes::Bytes;
use tokio::sync::Semaphore;

use crate::config::{HttpBackendConfig, PathModifier};
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::forwarding::{ClientBodyError, UpgradePolicy, strip_response};
use crate::upstream::{BoxError, DisplayChain, HttpClient};

/// One upstream of the backend: where requests go and the `Host` they carry.
struct Target {
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    /// Base path of the upstream URL without a trailing slash; empty when none.
    base_path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url.parse().map_err(|e| format!("bad url: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or("url has no scheme")?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        Ok(Target {
            host_header: HeaderValue::from_str(authority.as_str())
                .map_err(|_| "bad host".to_string())?,
            base_path: uri.path().trim_end_matches('/').to_string(),
            scheme,
            authority,
        })
    }
}

/// `http.retries`, compiled.
struct Retries {
    attempts: u32,
    on: Vec<StatusCode>,
    backoff: Duration,
    max_body_bytes: u64,
}

/// `http.mirror`, compiled: the target and a bound on copies in flight.
struct Mirror {
    target: Target,
    percent: u8,
    in_flight: Arc<Semaphore>,
}

/// Most mirrored requests in flight per route; beyond it requests are not mirrored.
const MIRROR_MAX_IN_FLIGHT: usize = 256;
/// Body frames queued for a mirror; a mirror that falls further behind is abandoned.
const MIRROR_QUEUE_FRAMES: usize = 32;

/// A compiled `http` backend.
pub struct HttpBackend {
    targets: Vec<Target>,
    /// Running sums of the weights (one per target), for a weighted pick; empty with one
    /// target.
    cumulative: Vec<u32>,
    preserve_host: bool,
    host_rewrite: Option<HeaderValue>,
    path_rewrite: Option<PathModifier>,
    upgrades: UpgradePolicy,
    http2: bool,
    retries: Option<Retries>,
    mirror: Option<Mirror>,
    client: HttpClient,
    /// The upstream as access logs name it.
    label: String,
}

impl HttpBackend {
    /// Builds the backend from validated config.
    pub fn new(cfg: &HttpBackendConfig, client: HttpClient) -> Result<Self, String> {
        let (targets, weights): (Vec<Target>, Vec<u32>) = if cfg.upstreams.is_empty() {
            (vec![Target::parse(&cfg.url)?], vec![1])
        } else {
            let mut t = Vec::with_capacity(cfg.upstreams.len());
            for u in &cfg.upstreams {
                t.push(Target::parse(&u.url)?);
            }
            (t, cfg.upstreams.iter().map(|u| u.weight).collect())
        };
        let cumulative = if targets.len() > 1 {
            weights
                .iter()
                .scan(0u32, |sum, w| {
                    *sum = sum.saturating_add(*w);
                    Some(*sum)
                })
                .collect()
        } else {
            Vec::new()
        };
        let label = targets
            .iter()
            .map(|t| t.authority.as_str())
            .collect::<Vec<_>>()
            .join(",");
        let rewrite = cfg.rewrite.clone().unwrap_or_default();
        Ok(HttpBackend {
            host_rewrite: rewrite
                .host
                .as_deref()
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|_| "bad rewrite.host".to_string())?,
            path_rewrite: rewrite.path,
            targets,
            cumulative,
            preserve_host: cfg.preserve_host,
            // An HTTP/2 upstream connection has no `Upgrade`.
            upgrades: if cfg.http2 {
                UpgradePolicy::none()
            } else {
                UpgradePolicy::new(cfg.upgrades.as_deref())
            },
            http2: cfg.http2,
            retries: cfg.retries.as_ref().map(|r| Retries {
                attempts: r.attempts,
                on: r
                    .on
                    .iter()
                    .filter_map(|s| StatusCode::from_u16(*s).ok())
                    .collect(),
                backoff: r.backoff,
                max_body_bytes: u64::from(r.max_body_bytes),
            }),
            mirror: match &cfg.mirror {
                Some(m) => Some(Mirror {
                    target: Target::parse(&m.url)?,
                    percent: m.percent,
                    in_flight: Arc::new(Semaphore::new(MIRROR_MAX_IN_FLIGHT)),
                }),
                None => None,
            },
            client,
            label,
        })
    }

    /// The `Upgrade` protocols this route tunnels.
    pub fn upgrades(&self) -> &UpgradePolicy {
        &self.upgrades
    }

    /// `host:port` of the upstream (comma-separated for a weighted split).
    pub fn authority(&self) -> &str {
        &self.label
    }

    /// The target of one request: the only one, or one picked at random by weight.
    fn pick(&self) -> Option<&Target> {
        match self.cumulative.last() {
            None => self.targets.first(),
            Some(0) => None,
            Some(&total) => {
                let r = fast_rand() % total;
                let i = self.cumulative.partition_point(|&c| c <= r);
                self.targets.get(i)
            }
        }
    }

    /// The path and query after `rewrite.path`: `None` when there is no rewrite.
    fn rewritten(&self, uri: &Uri, prefix: Option<&str>) -> Option<String> {
        let pm = self.path_rewrite.as_ref()?;
        Some(rewrite_path(pm, uri.path(), uri.query(), prefix))
    }

    /// The URI the upstream request carries: origin-form for plain HTTP/1.1 (sent on the
    /// thread's own connections), absolute otherwise.
    fn upstream_uri(
        &self,
        t: &Target,
        uri: &Uri,
        prefix: Option<&str>,
    ) -> Result<Uri, RequestError> {
        fn bad<E>(_: E) -> RequestError {
            crate::error::bad_request("request path cannot be forwarded")
        }
        let pq = match self.rewritten(uri, prefix) {
            Some(p) => PathAndQuery::try_from(p).map_err(bad)?,
            None => uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        };
        let pq = if t.base_path.is_empty() {
            pq
        } else {
            // Never above the base path, whatever the request path holds.
            PathAndQuery::try_from(crate::head::path::join_base(
                &t.base_path,
                prefix,
                pq.as_str(),
            ))
            .map_err(bad)?
        };
        if t.scheme == Scheme::HTTP && !self.http2 {
            return Ok(Uri::from(pq));
        }
        Uri::builder()
            .scheme(t.scheme.clone())
            .authority(t.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(bad)
    }

    /// Sends one request to `t` over the connection kind it needs.
    async fn send(&self, t: &Target, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        if t.scheme == Scheme::HTTP {
            if self.http2 {
                self.client.send_h2c(req).await
            } else {
                // Plain HTTP: this thread's own HTTP/1.1 connections.
                self.client.send_h1(&t.authority, req).await
            }
        } else {
            self.client
                .request(req)
                .await
                .map_err(|e| Box::new(e) as BoxError)
        }
    }

    /// [`Self::send`] as one attempt: with tracing on, a CLIENT span around it (attempt
    /// number, upstream address, status) whose `traceparent` the upstream receives.
    async fn send_attempt(
        &self,
        t: &Target,
        req: Request<Body>,
        cx: &RequestCx<'_>,
        attempt: u32,
    ) -> Result<Response<Incoming>, BoxError> {
        match &cx.context.trace {
            None => self.send(t, req).await,
            // Boxed: the untraced request's future stays the size it was without tracing.
            Some(parent) => Box::pin(self.send_traced(parent, t, req, attempt)).await,
        }
    }

    /// [`Self::send_attempt`] with tracing on.
    async fn send_traced(
        &self,
        parent: &switchboard_core::Trace,
        t: &Target,
        mut req: Request<Body>,
        attempt: u32,
    ) -> Result<Response<Incoming>, BoxError> {
        use opentelemetry::KeyValue;
        let span = parent.child(
            req.method().as_str().to_owned(),
            switchboard_core::trace::Kind::Client,
            vec![
                KeyValue::new("http.request.method", req.method().as_str().to_owned()),
                KeyValue::new("server.address", t.authority.host().to_owned()),
                KeyValue::new(
                    "server.port",
                    i64::from(
                        t.authority
                            .port_u16()
                            .unwrap_or(if t.scheme == Scheme::HTTPS { 443 } else { 80 }),
                    ),
                ),
                KeyValue::new(
                    "url.full",
                    format!("{}://{}{}", t.scheme, t.authority, req.uri().path()),
                ),
                KeyValue::new("http.request.resend_count", i64::from(attempt)),
                KeyValue::new("switchboard.attempt", i64::from(attempt) + 1),
            ],
        );
        span.inject(req.headers_mut());
        let r = self.send(t, req).await;
        match &r {
            Ok(resp) => {
                let status = resp.status().as_u16();
                span.set(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status),
                ));
                if status >= 500 {
                    span.error(status.to_string());
                }
            }
            Err(_) => span.error("connect"),
        }
        span.end();
        r
    }

    /// The `Host` header for a request to `t`.
    fn host_for(&self, t: &Target, original: Option<&HeaderValue>) -> Option<HeaderValue> {
        if let Some(h) = &self.host_rewrite {
            Some(h.clone())
        } else if self.preserve_host {
            original.cloned()
        } else {
            Some(t.host_header.clone())
        }
    }

    /// Forwards one request and streams the response back.
    pub async fn forward(
        &self,
        mut req: Request<Incoming>,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Body>, RequestError> {
        // The forwarding stage left the upgrade the route allows, if the client asked for one.
        let upgrade = req
            .extensions_mut()
            .remove::<crate::forwarding::Upgrade>()
            .map(|u| u.0);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

        let (mut parts, body) = req.into_parts();
        // HTTP/2 clients name the host in the URI, not in a Host header: read it before the
        // URI is rewritten for the upstream.
        let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let Some(target) = self.pick() else {
            return Err(crate::error::upstream(
                "every upstream of the route has weight 0",
            ));
        };
        let client_uri = std::mem::take(&mut parts.uri);
        parts.uri = self.upstream_uri(target, &client_uri, cx.prefix)?;
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if let Some(h) = self.host_for(target, original_host.as_ref()) {
            parts.headers.insert(header::HOST, h);
        }
        // hyper's client picks the protocol from the connection; a client's HTTP/2 request
        // goes out as HTTP/1.1 unless the route speaks HTTP/2 to its upstream (`http2`) or the
        // upstream negotiates h2 over TLS.
        parts.version = http::Version::HTTP_11;

        // A request that may be replayed: no body, or a small one read whole first.
        let replayable = match &self.retries {
            Some(r) if upgrade.is_none() => {
                let limit = r.max_body_bytes.min(cx.max_body_bytes);
                if http_body::Body::is_end_stream(&body) {
                    Payload::Buffered(Bytes::new())
                } else if http_body::Body::size_hint(&body)
                    .exact()
                    .is_some_and(|n| n <= limit)
                {
                    match Limited::new(body.map_err(ClientBodyError), limit as usize)
                        .collect()
                        .await
                    {
                        Ok(b) => Payload::Buffered(b.to_bytes()),
                        Err(e) => return Err(classify(e, cx.max_body_bytes)),
                    }
                } else {
                    Payload::Stream(body)
                }
            }
            _ => Payload::Stream(body),
        };

        let started = Instant::now();
        let result = match replayable {
            Payload::Buffered(bytes) => {
                if let Some(m) = &self.mirror {
                    let _ = self.mirror(m, &parts, Body::empty(), Some(bytes.clone()), cx);
                }
                tokio::time::timeout(
                    cx.timeouts.request,
                    self.send_with_retries(target, parts, &client_uri, original_host, bytes, cx),
                )
                .await
            }
            Payload::Stream(body) => {
                // The client's body errors are marked so that `classify` answers them with 400.
                let mut body = Body::new(
                    Limited::new(body.map_err(ClientBodyError), cx.max_body_bytes as usize)
                        .map_err(|e| -> BoxError { e }),
                );
                if let Some(m) = &self.mirror
                    && upgrade.is_none()
                {
                    body = self.mirror(m, &parts, body, None, cx);
                }
                let upstream_req = Request::from_parts(parts, body);
                tokio::time::timeout(
                    cx.timeouts.request,
                    self.send_attempt(target, upstream_req, cx, 0),
                )
                .await
            }
        };
        cx.upstream_duration
            .observe(started.elapsed().as_secs_f64());
        let mut resp = match result {
            Err(_) => return Err(crate::error::timeout(cx.timeouts.request)),
            Ok(Err(e)) => return Err(classify(e, cx.max_body_bytes)),
            Ok(Ok(r)) => r,
        };

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // A switch the client did not ask for (or to another protocol) would turn the
            // connection into a tunnel no route or policy sees.
            let Some(client_upgrade) = client_upgrade
                .filter(|_| crate::forwarding::switch_matches(resp.headers(), upgrade.as_ref()))
            else {
                tracing::warn!(upstream = %self.label, "upstream switched protocols unasked; answered 502");
                return Err(crate::error::upstream(
                    "upstream answered 101 to a request that did not ask for that upgrade",
                ));
            };
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let gauge = cx.open_streams.clone();
            let shutdown = cx.shutdown.clone();
            tokio::spawn(async move {
                let (Ok(client), Ok(upstream)) = tokio::join!(client_upgrade, upstream_upgrade)
                else {
                    return;
                };
                gauge.inc();
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                tokio::select! {
                    r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "upgraded tunnel closed with error");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
                gauge.dec();
            });
            let (mut parts, _) = resp.into_parts();
            strip_response(&mut parts.headers);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            if let Some(proto) = upgrade {
                parts.headers.insert(header::UPGRADE, proto);
            }
            return Ok(Response::from_parts(parts, Body::empty()));
        }

        let (mut parts, body) = resp.into_parts();
        strip_response(&mut parts.headers);
        Ok(Response::from_parts(parts, Body::new(body)))
    }

    /// Sends a buffered request, and again (after `backoff`, to a target picked anew) while
    /// it fails to connect or answers a status of `retries.on`, at most `attempts` more times.
    async fn send_with_retries(
        &self,
        mut target: &Target,
        mut parts: http::request::Parts,
        client_uri: &Uri,
        original_host: Option<HeaderValue>,
        bytes: Bytes,
        cx: &RequestCx<'_>,
    ) -> Result<Response<Incoming>, BoxError> {
        let Some(r) = &self.retries else {
            return self
                .send_attempt(target, Request::from_parts(parts, Body::from(bytes)), cx, 0)
                .await;
        };
        let mut attempt = 0;
        loop {
            let req = copy_head(&parts).map(|()| Body::from(bytes.clone()));
            let res = self.send_attempt(target, req, cx, attempt).await;
            let again = attempt < r.attempts
                && match &res {
                    Err(e) => {
                        tracing::debug!(error = %DisplayChain(&**e), "upstream request failed; retrying");
                        true
                    }
                    Ok(resp) => r.on.contains(&resp.status()),
                };
            if !again {
                return res;
            }
            drop(res);
            attempt += 1;
            tokio::time::sleep(r.backoff).await;
            if let Some(t) = self.pick()
                && !std::ptr::eq(t, target)
            {
                target = t;
                parts.uri = self
                    .upstream_uri(t, client_uri, cx.prefix)
                    .map_err(|_| BoxError::from("request path cannot be forwarded"))?;
                if let Some(h) = self.host_for(t, original_host.as_ref()) {
                    parts.headers.insert(header::HOST, h);
                }
            }
        }
    }

    /// Starts a fire-and-forget copy of the request to the mirror and returns the body to send
    /// upstream: `body` itself, or a tee feeding the copy without ever waiting for it (a copy
    /// that falls behind is abandoned). A `buffered` body is copied whole. Skipped when too
    /// many copies are in flight.
    fn mirror(
        &self,
        m: &Mirror,
        parts: &http::request::Parts,
        body: Body,
        buffered: Option<Bytes>,
        cx: &RequestCx<'_>,
    ) -> Body {
        if m.percent < 100 && fast_rand() % 100 >= u32::from(m.percent) {
            return body;
        }
        let Ok(permit) = m.in_flight.clone().try_acquire_owned() else {
            return body;
        };
        let mut head = copy_head(parts);
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let uri = if m.target.scheme == Scheme::HTTP {
            Ok(Uri::from(pq))
        } else {
            Uri::builder()
                .scheme(m.target.scheme.clone())
                .authority(m.target.authority.clone())
                .path_and_query(pq)
                .build()
        };
        let Ok(uri) = uri else {
            return body;
        };
        *head.uri_mut() = uri;
        head.headers_mut()
            .insert(header::HOST, m.target.host_header.clone());
        let (main, copy) = if let Some(b) = buffered {
            (body, Body::from(b))
        } else if http_body::Body::is_end_stream(&body) {
            (body, Body::empty())
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(MIRROR_QUEUE_FRAMES);
            let abandoned = Arc::new(AtomicBool::new(false));
            (
                Body::new(Tee {
                    inner: body,
                    tx: Some(tx),
                    abandoned: abandoned.clone(),
                }),
                Body::new(MirrorBody { rx, abandoned }),
            )
        };
        let (head, ()) = head.into_parts();
        let req = Request::from_parts(head, copy);
        let client = self.client.clone();
        let target_scheme = m.target.scheme.clone();
        let authority = m.target.authority.clone();
        let limit = cx.timeouts.request;
        tokio::spawn(async move {
            let _permit = permit;
            let send = async {
                let resp = if target_scheme == Scheme::HTTP {
                    client.send_h1(&authority, req).await?
                } else {
                    client.request(req).await?
                };
                // Read and discard the answer, so the connection can be reused.
                let _ = resp.into_body().collect().await;
                Ok::<(), BoxError>(())
            };
            match tokio::time::timeout(limit, send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(error = %DisplayChain(&*e), "mirror request failed"),
                Err(_) => tracing::debug!("mirror request timed out"),
            }
        });
        main
    }
}

/// The request body as the retry logic holds it.
enum Payload {
    /// Streamed once.
    Stream(Incoming),
    /// Read whole; may be sent again.
    Buffered(Bytes),
}

/// A copy of a request head (method, URI, version, headers).
fn copy_head(parts: &http::request::Parts) -> Request<()> {
    let mut r = Request::new(());
    *r.method_mut() = parts.method.clone();
    *r.uri_mut() = parts.uri.clone();
    *r.version_mut() = parts.version;
    *r.headers_mut() = parts.headers.clone();
    r
}

/// The path (and the query, kept) after a Gateway API path modifier. `prefix` is the route's
/// `path_prefix` that `Prefix` replaces.
pub fn rewrite_path(
    pm: &PathModifier,
    path: &str,
    query: Option<&str>,
    prefix: Option<&str>,
) -> String {
    let mut out = match (&pm.full, &pm.prefix) {
        (Some(v), _) => v.clone(),
        (None, None) => path.to_string(),
        (None, Some(v)) => {
            let p = prefix.unwrap_or("").trim_end_matches('/');
            let rest = path.strip_prefix(p).unwrap_or(path);
            let v = v.trim_end_matches('/');
            match (v.is_empty(), rest.is_empty()) {
                (true, true) => "/".to_string(),
                (true, false) => rest.to_string(),
                (false, _) => format!("{v}{rest}"),
            }
        }
    };
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

pin_project_lite::pin_project! {
    /// The upstream body of a mirrored request: frames pass through untouched and a copy of
    /// each data frame is queued for the mirror when there is room, never waited for.
    struct Tee {
        #[pin]
        inner: Body,
        tx: Option<tokio::sync::mpsc::Sender<Bytes>>,
        abandoned: Arc<AtomicBool>,
    }
}

impl http_body::Body for Tee {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(tx)) = (frame.data_ref(), this.tx.as_ref())
                    && tx.try_send(data.clone()).is_err()
                {
                    this.abandoned.store(true, Ordering::Relaxed);
                    *this.tx = None;
                }
            }
            std::task::Poll::Ready(Some(Err(_))) => {
                this.abandoned.store(true, Ordering::Relaxed);
                *this.tx = None;
            }
            std::task::Poll::Ready(None) => *this.tx = None,
            std::task::Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The mirror's copy of the body; it fails (rather than ending early) when the copy was
/// abandoned, so the mirror never sees a truncated body as complete.
struct MirrorBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    abandoned: Arc<AtomicBool>,
}

impl http_body::Body for MirrorBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.rx.poll_recv(cx) {
            std::task::Poll::Ready(Some(b)) => {
                std::task::Poll::Ready(Some(Ok(http_body::Frame::data(b))))
            }
            std::task::Poll::Ready(None) if self.abandoned.load(Ordering::Relaxed) => {
                std::task::Poll::Ready(Some(Err("mirror copy abandoned".into())))
            }
            std::task::Poll::Ready(None) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

/// Maps a client error to a cause: a body over the limit is the client's fault (413), so is
/// a body that cannot be read (a malformed chunk: 400), anything else is the upstream's (502).
/// The cause is logged, never sent.
fn classify(e: BoxError, limit: u64) -> RequestError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return crate::error::body_too_large(limit);
        }
        if s.is::<ClientBodyError>() {
            tracing::debug!(error = %DisplayChain(&*e), "client request body failed");
            return crate::error::bad_request("the request body is malformed or incomplete");
        }
        source = s.source();
    }
    tracing::warn!(error = %DisplayChain(&*e), "upstream request failed");
    crate::error::upstream(e)
}

/// A fast thread-local pseudo-random number (xorshift64*, seeded once per thread from the
/// std hasher's random keys): weighted picks and mirror sampling, not cryptography.
pub fn fast_rand() -> u32 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_modifiers() {
        let m = |full: Option<&str>, prefix: Option<&str>| PathModifier {
            full: full.map(Into::into),
            prefix: prefix.map(Into::into),
        };
        let full = m(Some("/new"), None);
        assert_eq!(
            rewrite_path(&full, "/old/x", Some("a=1"), Some("/old")),
            "/new?a=1"
        );
        let pre = m(None, Some("/v2"));
        assert_eq!(rewrite_path(&pre, "/v1/x/y", None, Some("/v1")), "/v2/x/y");
        assert_eq!(rewrite_path(&pre, "/v1", None, Some("/v1")), "/v2");
        let root = m(None, Some("/"));
        assert_eq!(rewrite_path(&root, "/v1/x", Some("q"), Some("/v1")), "/x?q");
        assert_eq!(rewrite_path(&root, "/v1", None, Some("/v1/")), "/");
    }
}
