//! The POSTs of a streamable HTTP target on hyper's client directly, when they need nothing of
//! reqwest's layers: a plain `http://` URL without credentials in it, and no proxy from the
//! environment for it. reqwest 0.13 parses the request's URL twice per request (its redirect
//! layer, the response's URL) and runs its client stack's layers around hyper-util's client:
//! about a tenth of the gateway's CPU on a `tools/call` (issue 19, BENCHMARKS.md round five).
//!
//! The connections are the serving thread's own, in the pool the `http` route uses too
//! ([`switchboard_core::h1pool`]): no lock, no task per request, no SipHash of the key as
//! hyper-util's pool had. What stays as it was: connections are opened as reqwest opens them
//! (`tcp_nodelay`, connect timeout 10 s, TCP keep-alive 15 s × 3, `TCP_USER_TIMEOUT` 30 s) and
//! kept as its pool keeps them (idle 90 s, no limit per host), HTTP/1.1 as reqwest speaks to an
//! `http://` URL, the same request headers in the same order (the caller builds them as
//! reqwest's builder would, [`replace_headers`]; `Host` last, as hyper-util's client adds it),
//! the same error strings. A target that answers with a redirect is asked again through reqwest,
//! which follows it. GET streams, DELETE, TLS and proxies go through reqwest as before.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, StatusCode, Uri};
use http_body_util::{BodyDataStream, Full};
use hyper::body::Incoming;
use switchboard_core::h1pool::{H1Pool, H1Target, PoolOptions};

/// The targets' hyper client: each thread's own connections (see [`super::Clients`]).
#[derive(Clone)]
pub(crate) struct DirectClient(H1Pool<Full<Bytes>>);

impl DirectClient {
    /// Configured as the targets' reqwest client (`connect_timeout(10s)`, `tcp_nodelay`) is
    /// for `http://`.
    pub(crate) fn new() -> Self {
        DirectClient(H1Pool::new(PoolOptions::like_reqwest(Some(
            Duration::from_secs(10),
        ))))
    }
}

/// Where a target's POSTs go without reqwest, made once per upstream session.
pub(crate) struct DirectTarget {
    target: H1Target,
    /// The URL as reqwest's errors print it.
    url: Box<str>,
}

impl DirectTarget {
    /// The target for `url` (as reqwest parsed it), or `None` when reqwest is needed: a
    /// fragment in the URL, or any case of [`H1Target::direct`] (not plain `http://`,
    /// credentials in the URL, or a proxy from the environment applies to it).
    pub(crate) fn new(url: &reqwest::Url) -> Option<Self> {
        if url.fragment().is_some() {
            return None;
        }
        let uri: Uri = url.as_str().parse().ok()?;
        let target = H1Target::direct(&uri)?;
        Some(DirectTarget {
            target,
            url: url.as_str().into(),
        })
    }

    /// `POST`s `body` with `headers`: the response as it comes (its body not read yet), or
    /// `None` for a redirect, which the caller sends again through reqwest.
    pub(crate) async fn post(
        &self,
        client: &DirectClient,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Option<Reply>, String> {
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = http::Method::POST;
        *req.headers_mut() = headers;
        self.target.prepare(&mut req);
        let resp = client
            .0
            .send(&self.target.authority, req)
            .await
            // reqwest's error for any failure to get a response (its `Kind::Request`).
            .map_err(|_| format!("error sending request for url ({})", self.url))?;
        // reqwest's default policy follows these when they say where to.
        if matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308)
            && resp.headers().contains_key(http::header::LOCATION)
        {
            return Ok(None);
        }
        Ok(Some(Reply::Direct(resp)))
    }
}

/// reqwest's `RequestBuilder::headers`: each name in `src` replaces that name's values in
/// `dst` (kept at its place when it was there), the others are added in `src`'s order.
pub(crate) fn replace_headers(dst: &mut HeaderMap, src: HeaderMap) {
    let mut prev: Option<http::header::OccupiedEntry<'_, http::HeaderValue>> = None;
    for (key, value) in src {
        match key {
            Some(key) => match dst.entry(key) {
                http::header::Entry::Occupied(mut e) => {
                    e.insert(value);
                    prev = Some(e);
                }
                http::header::Entry::Vacant(e) => prev = Some(e.insert_entry(value)),
            },
            // `HeaderMap::into_iter` yields a name before its further values.
            None => {
                if let Some(e) = prev.as_mut() {
                    e.append(value);
                }
            }
        }
    }
}

/// A target's response, from either client.
pub(crate) enum Reply {
    /// Sent through reqwest.
    Reqwest(reqwest::Response),
    /// Sent on hyper's client ([`DirectTarget::post`]).
    Direct(http::Response<Incoming>),
}

/// A response body's chunks.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BodyError>> + Send>>;

/// A response body that broke off.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// reqwest's.
    Reqwest(reqwest::Error),
    /// hyper's, printed as reqwest prints it (`Kind::Decode`, no URL).
    Direct,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Reqwest(e) => e.fmt(f),
            BodyError::Direct => f.write_str("error decoding response body"),
        }
    }
}

impl Reply {
    /// The response's status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Reply::Reqwest(r) => r.status(),
            Reply::Direct(r) => r.status(),
        }
    }

    /// The response's headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        match self {
            Reply::Reqwest(r) => r.headers(),
            Reply::Direct(r) => r.headers(),
        }
    }

    /// The body's length when known in advance (reqwest's `content_length`: the body's exact
    /// size hint).
    pub(crate) fn content_length(&self) -> Option<u64> {
        match self {
            Reply::Reqwest(r) => r.content_length(),
            Reply::Direct(r) => hyper::body::Body::size_hint(r.body()).exact(),
        }
    }

    /// The body's data chunks (trailers skipped).
    pub(crate) fn bytes_stream(self) -> BodyStream {
        match self {
            Reply::Reqwest(r) => Box::pin(r.bytes_stream().map(|c| c.map_err(BodyError::Reqwest))),
            Reply::Direct(r) => Box::pin(
                BodyDataStream::new(r.into_body()).map(|c| c.map_err(|_| BodyError::Direct)),
            ),
        }
    }
}
