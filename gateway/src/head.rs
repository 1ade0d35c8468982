//! The edge stage: each request's head (path and authority) is parsed and normalized once,
//! before routing, and written back into the request, so routing, policies (CEL
//! `request.path`), prefix handling, every backend and the upstream all see the same value and
//! nothing downstream can read the raw one.
//!
//! - The path ([`path::normalize`], RFC 3986 §6.2.2): percent-encoded unreserved characters
//!   are decoded, other percent-encodings uppercased, dot segments removed, repeated slashes
//!   merged (`listeners[].paths.merge_slashes`). An encoded `/` or `\` is refused unless
//!   `listeners[].paths.escaped_slashes: keep`; a NUL, a raw `\`, a broken percent-encoding or
//!   a `..` above the root is always refused. The query is kept exactly as sent.
//! - The authority ([`authority::resolve`]): one value from the absolute-form target (or
//!   HTTP/2 `:authority`) and the `Host` header, which must agree; host lowercased, a trailing
//!   dot removed, the port checked. HTTP/1.1 needs exactly one `Host`.
//!
//! A refused head is a 400 ([`HeadError`]). Backend base paths are joined with
//! [`path::join_base`], which cannot leave the base.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod authority;
pub mod path;

pub use authority::{AuthorityError, HostPort};
use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Uri};
pub use path::{PathError, Rules};

/// Why a request head was refused (each is a 400).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// The path cannot be normalized.
    #[error(transparent)]
    Path(#[from] PathError),
    /// The authority is missing, duplicated, malformed or inconsistent.
    #[error(transparent)]
    Authority(#[from] AuthorityError),
}

impl HeadError {
    /// The fixed message for the client (no request data echoed).
    pub fn message(&self) -> &'static str {
        match self {
            HeadError::Path(e) => e.message(),
            HeadError::Authority(e) => e.message(),
        }
    }
}

/// A request's head after the edge checks: the normalized path with the query as sent, and
/// the one authority of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Normalized path and the raw query, origin-form.
    pub path_and_query: PathAndQuery,
    /// The request's host and port, when it names one (HTTP/1.0 may not).
    pub authority: Option<HostPort>,
}

impl RequestHead {
    /// Parses and checks the head of `req`. `Ok(None)` for the targets that are not a path
    /// (`CONNECT host:port`, `OPTIONS *`): they are left as sent for the protocol checks that
    /// refuse them.
    pub fn parse<B>(req: &Request<B>, paths: Rules) -> Result<Option<Self>, HeadError> {
        let uri = req.uri();
        if req.method() == Method::CONNECT || uri.path() == "*" {
            return Ok(None);
        }
        let authority = authority::resolve(req.version(), uri, req.headers())?;
        let raw = uri.path();
        let path = path::normalize(raw, paths)?;
        let path_and_query = match (&path, uri.path_and_query()) {
            // Already normal: reuse the parsed value (no allocation on the common path).
            (std::borrow::Cow::Borrowed(_), Some(pq)) => pq.clone(),
            _ => {
                let s = match uri.query() {
                    Some(q) => format!("{path}?{q}"),
                    None => path.into_owned(),
                };
                PathAndQuery::try_from(s).map_err(|_| PathError::InvalidEncoding)?
            }
        };
        Ok(Some(RequestHead {
            path_and_query,
            authority,
        }))
    }

    /// Writes the head into `req`: an origin-form URI with the normalized path, and `Host` set
    /// to the canonical authority (removed when there is none). After this the raw target and
    /// `Host` are gone.
    pub fn apply<B>(self, req: &mut Request<B>) {
        let uri = req.uri();
        if uri.scheme().is_some()
            || uri.authority().is_some()
            || uri.path_and_query() != Some(&self.path_and_query)
        {
            *req.uri_mut() = Uri::from(self.path_and_query);
        }
        let headers = req.headers_mut();
        match &self.authority {
            Some(a) => {
                let same = headers
                    .get(header::HOST)
                    .is_some_and(|h| a.is_written_as(h.as_bytes()));
                if !same && let Ok(v) = HeaderValue::try_from(a.to_string()) {
                    headers.insert(header::HOST, v);
                }
            }
            None => {
                headers.remove(header::HOST);
            }
        }
    }
}

/// Normalizes `req` in place ([`RequestHead::parse`] then [`RequestHead::apply`]).
pub fn normalize<B>(req: &mut Request<B>, paths: Rules) -> Result<(), HeadError> {
    if let Some(head) = RequestHead::parse(req, paths)? {
        head.apply(req);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(version: http::Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut b = Request::builder().version(version).uri(uri);
        for h in hosts {
            b = b.header("host", *h);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn applies_one_path_and_one_host() {
        let mut r = req(
            http::Version::HTTP_11,
            "http://Public.Example./%61dmin/./x/../y?q=/../%2f",
            &["public.example"],
        );
        normalize(&mut r, Rules::default()).unwrap();
        assert_eq!(r.uri().to_string(), "/admin/y?q=/../%2f");
        assert_eq!(r.headers()["host"], "public.example");
    }

    #[test]
    fn unchanged_requests_keep_their_values() {
        let mut r = req(http::Version::HTTP_11, "/a/b?x", &["h:8080"]);
        normalize(&mut r, Rules::default()).unwrap();
        assert_eq!(r.uri().to_string(), "/a/b?x");
        assert_eq!(r.headers()["host"], "h:8080");
    }

    #[test]
    fn connect_and_asterisk_are_left_alone() {
        let mut r = Request::builder()
            .method("OPTIONS")
            .uri("*")
            .body(())
            .unwrap();
        assert_eq!(RequestHead::parse(&r, Rules::default()), Ok(None));
        normalize(&mut r, Rules::default()).unwrap();
        assert_eq!(r.uri().path(), "*");
    }
}
