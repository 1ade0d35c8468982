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
use hyper_util::rt::TokioExecutor;

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
                h1: H1Pool::new(switchboard_core::h1pool::PoolOptions {
                    connect_timeout: Some(connect_timeout),
                    keepalive: None,
                    user_timeout: None,
                    idle_timeout: Duration::from_secs(90),
                    max_per_upstream: H1_MAX_IDLE,
                }),
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
    h1: H1Pool,
    h2c: Arc<thread_local::ThreadLocal<ClientH2c>>,
}

/// Most pooled connections kept per upstream and thread.
const H1_MAX_IDLE: usize = 256;

type H1Pool = switchboard_core::h1pool::H1Pool<Body>;
/// A boxed error, as hyper's client and bodies give them.
pub type BoxError = switchboard_core::h1pool::BoxError;

impl HttpClient {
    /// This thread's client.
    pub fn here(&self) -> &Client1 {
        self.per_thread
            .get_or(|| build_client(self.connect_timeout))
    }

    /// Sends `req` (origin-form URI, `Host` set) to the plain-HTTP upstream at `authority`
    /// over one of this thread's HTTP/1.1 connections ([`switchboard_core::h1pool`]).
    pub async fn send_h1(
        &self,
        authority: &Authority,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, BoxError> {
        self.h1
            .send(authority, req)
            .await
            .map_err(switchboard_core::h1pool::SendError::into_box)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_routes_plain_pool_closes_idle_connections_after_90_s() {
        let client = HttpClients::default().get(Duration::from_secs(3));
        let o = client.h1.options();
        // The README's "a pooled connection that sent no request for 90 s is closed"; the
        // closing itself is core's `h1pool` test of the idle timeout.
        assert_eq!(o.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(3)));
        assert_eq!(o.max_per_upstream, H1_MAX_IDLE);
    }
}
