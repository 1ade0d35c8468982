//! A provider call on hyper's client directly, for the common case that needs nothing of
//! reqwest's layers: a chat request (streamed or not) to an OpenAI-compatible provider over
//! plain `http://` (a local vLLM, Ollama, a sidecar), no proxy for that host, no trace context
//! to inject. reqwest 0.13 parses the request's URL back into a `Url` twice per request (its
//! redirect policy, the response's URL), clones its client stack and the request (retry layer)
//! on every call: about a tenth of the gateway's CPU on this path (issue 19, BENCHMARKS.md).
//!
//! The connections are the serving thread's own, in the pool the `http` route uses too
//! ([`switchboard_core::h1pool`]): no lock, no task per request, no SipHash of the key as
//! hyper-util's pool had. What stays as it was: connections are opened as reqwest opens them
//! (`tcp_nodelay`, TCP keep-alive 15 s × 3, `TCP_USER_TIMEOUT` 30 s, the system resolver) and
//! kept as its pool keeps them (idle 90 s, no limit per host), HTTP/1.1 as reqwest speaks to an
//! `http://` URL, the same request headers in the same order, the same bounded read of the
//! reply and the same error strings. A provider that answers with a redirect is asked again
//! through reqwest, which follows it (the redirect answer itself had no effect there). A
//! stream's body is hyper's, data frames as reqwest's `bytes_stream` yields them. Everything
//! else (TLS, proxies, tracing, other providers and operations) goes through reqwest as before.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use switchboard_core::h1pool::{H1Pool, PoolOptions};

use crate::provider::DirectTarget;

/// The hyper client for direct calls: each thread's own connections (see
/// [`super::ProviderClients`]).
#[derive(Debug, Clone)]
pub(crate) struct DirectClient(H1Pool<Full<Bytes>>);

impl DirectClient {
    /// Configured as `reqwest::Client::builder().tcp_nodelay(true).build()` is for `http://`.
    pub(crate) fn new() -> Self {
        DirectClient(H1Pool::new(PoolOptions::like_reqwest(None)))
    }
}

/// What a direct call came to.
pub(super) enum Sent {
    /// The reply's status, headers and body (bounded: `Err` when over the limit).
    Reply(
        StatusCode,
        HeaderMap,
        Result<Bytes, super::execute::TooLarge>,
    ),
    /// The request did not get a reply (the error's kind, without the URL).
    Failed(&'static str),
    /// A redirect: to be sent again through reqwest, which follows it.
    Redirect,
}

/// What a streamed direct call came to.
pub(super) enum Opened {
    /// A successful reply: its body, not read yet.
    Stream(Incoming),
    /// An error status, its headers and the start of its body (at most `max_error` bytes;
    /// empty when longer or unreadable).
    Reply(StatusCode, HeaderMap, Bytes),
    /// The request did not get a reply (the error's kind, without the URL).
    Failed(&'static str),
    /// A redirect: to be sent again through reqwest, which follows it.
    Redirect,
}

/// `POST`s `body` to `target`: the reply's head, or the kind of error; `None` for a redirect.
async fn post(
    client: &DirectClient,
    target: &DirectTarget,
    body: Bytes,
) -> Result<Option<http::Response<Incoming>>, &'static str> {
    let headers = target.headers_for(body.len());
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = target.target().origin.clone();
    *req.headers_mut() = headers;
    let resp = match client.0.send(&target.target().authority, req).await {
        Ok(r) => r,
        Err(e) => {
            return Err(if timed_out(&e) {
                "timeout"
            } else if e.is_connect() {
                "connect error"
            } else {
                "request error"
            });
        }
    };
    // reqwest's default policy follows these when they say where to.
    if matches!(resp.status().as_u16(), 301 | 302 | 303 | 307 | 308)
        && resp.headers().contains_key(header::LOCATION)
    {
        return Ok(None);
    }
    Ok(Some(resp))
}

/// `POST`s `body` to `target` and reads the reply: at most `max` bytes of a successful one,
/// at most `max_error` of another.
pub(super) async fn send(
    client: &DirectClient,
    target: &DirectTarget,
    body: Bytes,
    max: usize,
    max_error: usize,
) -> Sent {
    let resp = match post(client, target, body).await {
        Ok(Some(r)) => r,
        Ok(None) => return Sent::Redirect,
        Err(kind) => return Sent::Failed(kind),
    };
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let limit = if status.is_success() { max } else { max_error };
    match read_bounded(body, declared(&parts.headers), limit).await {
        Ok(b) => Sent::Reply(status, parts.headers, b),
        Err(_) if !status.is_success() => Sent::Reply(status, parts.headers, Ok(Bytes::new())),
        Err(e) => Sent::Failed(body_error(&e)),
    }
}

/// `POST`s `body` to `target` for a stream: a successful reply's body is handed back unread,
/// the start of another (at most `max_error` bytes) is read.
pub(super) async fn open(
    client: &DirectClient,
    target: &DirectTarget,
    body: Bytes,
    max_error: usize,
) -> Opened {
    let resp = match post(client, target, body).await {
        Ok(Some(r)) => r,
        Ok(None) => return Opened::Redirect,
        Err(kind) => return Opened::Failed(kind),
    };
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    if status.is_success() {
        return Opened::Stream(body);
    }
    let body = match read_bounded(body, declared(&parts.headers), max_error).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) | Err(_) => Bytes::new(),
    };
    Opened::Reply(status, parts.headers, body)
}

/// A streamed reply's data frames (trailers skipped), as reqwest's `bytes_stream` yields them;
/// an error is its kind.
pub(super) fn data_stream(body: Incoming) -> super::stream::ProviderStream {
    use futures::StreamExt;
    http_body_util::BodyDataStream::new(body)
        .map(|r| r.map_err(|e| super::stream::BodyError(body_error(&e))))
        .boxed()
}

/// The kind of an error while reading a reply's body.
fn body_error(e: &hyper::Error) -> &'static str {
    if timed_out(e) {
        "timeout"
    } else {
        "body error"
    }
}

/// Whether an I/O timeout is among the causes (reqwest's `is_timeout`).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The declared `Content-Length`, as reqwest's `Response::content_length` reads it.
fn declared(h: &HeaderMap) -> Option<usize> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
        .and_then(|n| usize::try_from(n).ok())
}

/// The bounded read of [`super::execute::read_chunks_bounded`], on hyper's body.
async fn read_bounded(
    body: Incoming,
    declared: Option<usize>,
    max: usize,
) -> Result<Result<Bytes, super::execute::TooLarge>, hyper::Error> {
    super::execute::read_chunks_bounded(body, declared, max).await
}

impl super::execute::Chunks for Incoming {
    type Error = hyper::Error;
    /// The next data frame (trailers skipped, as reqwest's `chunk` does).
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, hyper::Error> {
        while let Some(frame) = self.frame().await {
            if let Ok(data) = frame?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}
