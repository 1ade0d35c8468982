//! The `http` backend: a streaming reverse proxy. Bodies flow both ways frame by frame (never
//! collected), upstream connections are pooled with keep-alive and TCP_NODELAY, and the
//! `Upgrade` the route allows ([`crate::forwarding`]; WebSocket by default) becomes a byte
//! tunnel after the upstream's 101. Hop-by-hop and forwarding headers were dealt with by the
//! forwarding stage before the request got here.

use std::time::Instant;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::config::HttpBackendConfig;
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::forwarding::{ClientBodyError, UpgradePolicy, strip_response};
use crate::upstream::{BoxError, DisplayChain, HttpClient};

/// A compiled `http` backend.
pub struct HttpBackend {
    scheme: Scheme,
    authority: Authority,
    host_header: HeaderValue,
    /// Base path of the upstream URL without a trailing slash; empty when none.
    base_path: String,
    preserve_host: bool,
    upgrades: UpgradePolicy,
    client: HttpClient,
}

impl HttpBackend {
    /// Builds the backend from validated config.
    pub fn new(cfg: &HttpBackendConfig, client: HttpClient) -> Result<Self, String> {
        let uri: Uri = cfg.url.parse().map_err(|e| format!("bad url: {e}"))?;
        let scheme = uri.scheme().cloned().ok_or("url has no scheme")?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        let base_path = uri.path().trim_end_matches('/').to_string();
        Ok(HttpBackend {
            host_header: HeaderValue::from_str(authority.as_str())
                .map_err(|_| "bad host".to_string())?,
            scheme,
            authority,
            base_path,
            preserve_host: cfg.preserve_host,
            upgrades: UpgradePolicy::new(cfg.upgrades.as_deref()),
            client,
        })
    }

    /// The `Upgrade` protocols this route tunnels.
    pub fn upgrades(&self) -> &UpgradePolicy {
        &self.upgrades
    }

    /// `host:port` of the upstream.
    pub fn authority(&self) -> &str {
        self.authority.as_str()
    }

    /// The URI the upstream request carries: origin-form for plain HTTP (sent on the
    /// thread's own HTTP/1.1 connections), absolute for the TLS client.
    fn upstream_uri(&self, uri: &Uri, prefix: Option<&str>) -> Result<Uri, RequestError> {
        fn bad<E>(_: E) -> RequestError {
            crate::error::bad_request("request path cannot be forwarded")
        }
        let pq = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let pq = if self.base_path.is_empty() {
            pq
        } else {
            // Never above the base path, whatever the request path holds.
            PathAndQuery::try_from(crate::head::path::join_base(
                &self.base_path,
                prefix,
                pq.as_str(),
            ))
            .map_err(bad)?
        };
        if self.scheme == Scheme::HTTP {
            return Ok(Uri::from(pq));
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(bad)
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
        parts.uri = self.upstream_uri(&parts.uri, cx.prefix)?;
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        if self.preserve_host {
            if let Some(h) = &original_host {
                parts.headers.insert(header::HOST, h.clone());
            }
        } else {
            parts.headers.insert(header::HOST, self.host_header.clone());
        }
        // hyper's client picks the protocol from the connection; a client's HTTP/2 request
        // still goes out as HTTP/1.1 unless the upstream negotiates h2 over TLS.
        parts.version = http::Version::HTTP_11;

        // The client's body errors are marked so that `classify` answers them with 400.
        let body = Body::new(
            Limited::new(body.map_err(ClientBodyError), cx.max_body_bytes as usize)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e }),
        );
        let started = Instant::now();
        let result = if self.scheme == Scheme::HTTP {
            // Plain HTTP: this thread's own HTTP/1.1 connections.
            let upstream_req = Request::from_parts(parts, body);
            tokio::time::timeout(
                cx.timeouts.request,
                self.client.send_h1(&self.authority, upstream_req),
            )
            .await
        } else {
            let upstream_req = Request::from_parts(parts, body);
            tokio::time::timeout(cx.timeouts.request, async {
                self.client
                    .request(upstream_req)
                    .await
                    .map_err(|e| Box::new(e) as BoxError)
            })
            .await
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
                tracing::warn!(upstream = %self.authority, "upstream switched protocols unasked; answered 502");
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
