//! Errors. [`Error`] is what the library's set-up functions return (start-up, reload, I/O).
//!
//! A failure while serving one request is a [`switchboard_core::Error`]: the functions below
//! build the ones the gateway itself produces (no route, limits, authentication, upstream
//! failures), each with the status, headers and message it has always had, and backends return
//! their own. [`render`] is the one place the gateway turns such an error into a response, in
//! the route's [`ApiFormat`]; the listener calls it at the edge of the request pipeline.

use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Response, header};
use switchboard_core::{ApiFormat, Cause};

use crate::config::ConfigErrors;

/// A failure while serving one request (the error model shared by every crate).
pub type RequestError = switchboard_core::Error;

/// Errors of the gateway library (start-up, reload, I/O).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// The serving threads could not be started.
    #[error("cannot start serving threads: {0}")]
    Workers(std::io::Error),
    /// The access log file could not be opened, or its writer started.
    #[error("cannot start the access log: {0}")]
    AccessLog(std::io::Error),
    /// The OpenTelemetry settings (`tracing:`, `OTEL_*`) were unusable, or its exporter
    /// could not be built.
    #[error("cannot start tracing: {0}")]
    Tracing(String),
    /// A listener address could not be bound.
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        /// Which listener (or `admin`).
        what: String,
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TLS material could not be loaded.
    #[error("TLS for listener `{listener}`: {message}")]
    Tls {
        /// The listener.
        listener: String,
        /// What was wrong.
        message: String,
    },
    /// A backend could not be built from its configuration.
    #[error("route `{route}`: {message}")]
    Backend {
        /// The route.
        route: String,
        /// What was wrong.
        message: String,
    },
    /// The session manager could not be set up (e.g. Redis unreachable).
    #[error("sessions: {0}")]
    Sessions(String),
    /// Any other I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The gateway library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders a request's failure in the route's API format: the one place the gateway does so
/// (called by the listener for whatever the pipeline, its policies or the backend returned).
/// The error's source, if any, is logged here and never sent.
pub fn render(e: RequestError, format: ApiFormat) -> Response<Body> {
    if let Some(source) = std::error::Error::source(&e) {
        tracing::debug!(
            status = e.status().as_u16(),
            error = %source,
            "request failed"
        );
    }
    e.render(format)
}

/// No route matches (404).
pub fn no_route() -> RequestError {
    RequestError::new(Cause::NotFound, "no route matches this request")
}

/// The request body is larger than the listener allows (413).
pub fn body_too_large(limit: u64) -> RequestError {
    RequestError::new(
        Cause::PayloadTooLarge,
        format!("request body is larger than {limit} bytes"),
    )
}

/// The request headers are larger than the listener allows (431).
pub fn headers_too_large(limit: usize) -> RequestError {
    RequestError::new(
        Cause::HeadersTooLarge,
        format!("request headers are larger than {limit} bytes"),
    )
}

/// The upstream could not be reached or failed mid-request (502). `source` is logged, not
/// sent.
pub fn upstream(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> RequestError {
    RequestError::new(Cause::Upstream, "upstream request failed").with_source(source)
}

/// Too many connections or requests in flight (503, `retry-after: 1`).
pub fn overloaded() -> RequestError {
    RequestError::new(Cause::Overloaded, "the gateway is overloaded; retry later")
}

/// The upstream did not answer within `limit` (504).
pub fn timeout(limit: Duration) -> RequestError {
    RequestError::new(
        Cause::Timeout,
        format!("upstream did not respond within {limit:?}"),
    )
}

/// The request is malformed (400); `message` says how.
pub fn bad_request(message: &'static str) -> RequestError {
    RequestError::new(Cause::BadRequest, message)
}

/// No valid credential (401) with its `WWW-Authenticate` challenge. Why is not said beyond the
/// challenge's standard error code.
pub fn unauthenticated(challenge: HeaderValue) -> RequestError {
    RequestError::new(Cause::Unauthenticated, "authentication required")
        .with_header(header::WWW_AUTHENTICATE, challenge)
}

/// Authenticated but not allowed (403); with a challenge for `insufficient_scope`.
pub fn forbidden(challenge: Option<HeaderValue>) -> RequestError {
    let e = RequestError::new(Cause::Forbidden, "access denied");
    match challenge {
        Some(c) => e.with_header(header::WWW_AUTHENTICATE, c),
        None => e,
    }
}

/// A rate limit (`policies.rate_limit` or an API key's own) is spent (429); `headers` carry
/// `retry-after` and, for route limits, `x-ratelimit-*`.
pub fn rate_limited(headers: HeaderMap) -> RequestError {
    RequestError::new(Cause::RateLimited, "rate limit exceeded; retry later").with_headers(headers)
}

/// A method the gateway never forwards (`CONNECT`): 405.
pub fn method_not_allowed(message: &'static str) -> RequestError {
    RequestError::new(Cause::MethodNotAllowed, message)
}

/// A framing the gateway does not implement (a transfer coding other than `chunked`): 501,
/// and the connection is closed since its body cannot be delimited safely.
pub fn not_implemented(message: &'static str) -> RequestError {
    RequestError::new(Cause::NotImplemented, message)
}
