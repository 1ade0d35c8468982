//! One agent replica: its URL, the requests the gateway sends it, and how its replies are read
//! (bounded) and its failures become gateway errors (logged with the replica, 502 or 504 for
//! the caller).

use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::A2aBackend;
use crate::error::RequestError;

/// One agent replica.
pub(super) struct Upstream {
    /// The configured URL without a trailing slash: the value pinned in the store.
    pub(super) url: Arc<str>,
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    pub(super) host: HeaderValue,
    /// Path of the URL without a trailing slash; empty when none.
    pub(super) base_path: String,
}

impl Upstream {
    pub(super) fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim_end_matches('/');
        let uri: Uri = raw.parse().map_err(|e| format!("bad url `{raw}`: {e}"))?;
        let authority = uri.authority().cloned().ok_or("url has no host")?;
        Ok(Upstream {
            url: trimmed.into(),
            scheme: uri.scheme().cloned().ok_or("url has no scheme")?,
            host: HeaderValue::from_str(authority.as_str()).map_err(|_| "bad host".to_string())?,
            authority,
            base_path: uri.path().trim_end_matches('/').to_string(),
        })
    }

    pub(super) fn uri(&self, rest: &str, query: Option<&str>) -> Result<Uri, RequestError> {
        let mut pq = String::with_capacity(self.base_path.len() + rest.len() + 1);
        pq.push_str(&self.base_path);
        if !rest.is_empty() && !rest.starts_with('/') {
            pq.push('/');
        }
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| crate::error::bad_request("request path cannot be forwarded"))
    }
}

impl A2aBackend {
    /// Reads an agent's JSON reply (`what`: "agent card" or "answer"), at most `limit` bytes.
    /// A larger or unreadable one is logged, naming the agent, and becomes a 502 for the
    /// caller; nothing beyond `limit` is buffered.
    pub(super) async fn read_reply(
        &self,
        up: &Upstream,
        body: Incoming,
        limit: usize,
        what: &'static str,
    ) -> Result<Bytes, RequestError> {
        match Limited::new(body, limit).collect().await {
            Ok(b) => Ok(b.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                tracing::warn!(route = %self.route, upstream = %up.url, limit, "A2A agent {what} is larger than the limit");
                Err(crate::error::upstream(format!(
                    "agent {what} larger than {limit} bytes"
                )))
            }
            Err(e) => {
                tracing::warn!(route = %self.route, upstream = %up.url, error = %e, "A2A agent {what} could not be read");
                Err(crate::error::upstream(e))
            }
        }
    }

    pub(super) fn upstream_request(
        &self,
        up: &Upstream,
        headers: &HeaderMap,
        rest: &str,
        query: Option<&str>,
        body: Bytes,
    ) -> Result<Request<Body>, RequestError> {
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = up.uri(rest, query)?;
        // Hop-by-hop and forwarding headers were settled by the forwarding stage.
        let h = req.headers_mut();
        *h = headers.clone();
        h.remove(header::CONTENT_LENGTH);
        h.insert(header::HOST, up.host.clone());
        Ok(req)
    }
}

pub(super) fn upstream_failed(e: hyper_util::client::legacy::Error) -> RequestError {
    tracing::warn!(error = %crate::upstream::DisplayChain(&e), "A2A upstream request failed");
    crate::error::upstream(e)
}

/// An agent's 101: A2A never asks to switch protocols, so it is the agent's error (502).
pub(super) fn unasked_switch(upstream: &str) -> RequestError {
    tracing::warn!(upstream = %upstream, "A2A agent switched protocols unasked; answered 502");
    crate::error::upstream("the agent answered 101 to a request that asked for no upgrade")
}
