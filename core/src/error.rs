//! The error model. Every failure that ends a request is an [`Error`]: a [`Cause`] (what went
//! wrong, which fixes the status and the machine-readable kind), a public message (safe to send:
//! fixed text or limits from config, never upstream internals or secrets), headers the response
//! must carry (`retry-after`, `www-authenticate`, `x-ratelimit-*`), and an optional source that
//! is logged, never sent.
//!
//! [`Error::render`] is the one place an error becomes a response, in the caller's
//! [`ApiFormat`]. The same cause gives the same status and the same body shape on every route.

use std::borrow::Cow;
use std::fmt;

use axum::body::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use serde_json::{Value, json};

/// The wire format an error is written in, chosen by the route's backend (and, on LLM routes,
/// by the API the caller speaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiFormat {
    /// `{"error": {"type": KIND, "message": ...}}`: http routes, admin, and before routing.
    #[default]
    Plain,
    /// `{"error": {"message", "type", "param": null, "code": KIND}}`: OpenAI-compatible routes.
    OpenAi,
    /// `{"type": "error", "error": {"type", "message"}}`: Anthropic's `/v1/messages`.
    Anthropic,
    /// A JSON-RPC 2.0 error response with `data.type = KIND`: MCP and A2A routes.
    JsonRpc,
}

/// Why a request failed. Fixes the HTTP status and the kind every format reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The request is malformed (400).
    BadRequest,
    /// The body is not JSON the route can parse, or nests too deep to parse (400).
    InvalidJson,
    /// The body is larger than a limit (413).
    PayloadTooLarge,
    /// The request head is larger than a limit (431).
    HeadersTooLarge,
    /// No valid credential (401).
    Unauthenticated,
    /// Authenticated but not allowed (403).
    Forbidden,
    /// No route, endpoint, model or item of that name (404).
    NotFound,
    /// The method is not served here (405).
    MethodNotAllowed,
    /// The request's `Accept` rules out every representation the endpoint has (406).
    NotAcceptable,
    /// A rate, token or other limit is spent (429). Request and token limits alike.
    RateLimited,
    /// The gateway is overloaded or draining (503, `retry-after: 1`).
    Overloaded,
    /// The upstream did not answer in time (504).
    Timeout,
    /// The upstream could not be reached, broke the exchange or sent something invalid (502).
    Upstream,
    /// The upstream answered with an error status, passed on as it was (LLM providers' 4xx/5xx).
    UpstreamStatus(StatusCode),
    /// A framing or feature the gateway does not implement (501, connection closed).
    NotImplemented,
    /// A bug or misconfiguration inside the gateway (500).
    Internal,
}

impl Cause {
    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            Cause::BadRequest | Cause::InvalidJson => StatusCode::BAD_REQUEST,
            Cause::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Cause::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Cause::Unauthenticated => StatusCode::UNAUTHORIZED,
            Cause::Forbidden => StatusCode::FORBIDDEN,
            Cause::NotFound => StatusCode::NOT_FOUND,
            Cause::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Cause::NotAcceptable => StatusCode::NOT_ACCEPTABLE,
            Cause::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Cause::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Cause::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Cause::Upstream => StatusCode::BAD_GATEWAY,
            Cause::UpstreamStatus(s) => s,
            Cause::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            Cause::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable kind: `error.type` in plain bodies, `error.code` in OpenAI bodies,
    /// `error.data.type` in JSON-RPC bodies.
    pub fn kind(self) -> &'static str {
        match self {
            Cause::BadRequest => "bad_request",
            Cause::InvalidJson => "invalid_json",
            Cause::PayloadTooLarge => "payload_too_large",
            Cause::HeadersTooLarge => "request_header_fields_too_large",
            Cause::Unauthenticated => "unauthorized",
            Cause::Forbidden => "forbidden",
            Cause::NotFound => "not_found",
            Cause::MethodNotAllowed => "method_not_allowed",
            Cause::NotAcceptable => "not_acceptable",
            Cause::RateLimited => "rate_limit_exceeded",
            Cause::Overloaded => "overloaded",
            Cause::Timeout => "gateway_timeout",
            Cause::Upstream => "bad_gateway",
            Cause::UpstreamStatus(_) => "upstream_error",
            Cause::NotImplemented => "not_implemented",
            Cause::Internal => "internal_error",
        }
    }

    /// `error.type` in OpenAI bodies (by status, as OpenAI reports them).
    pub fn openai_type(self) -> &'static str {
        match self.status().as_u16() {
            400 | 405 | 406 | 413 | 422 | 431 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        }
    }

    /// `error.type` in Anthropic bodies (Anthropic's documented error types).
    pub fn anthropic_type(self) -> &'static str {
        match self.status().as_u16() {
            413 => "request_too_large",
            400 | 405 | 406 | 422 | 431 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            503 | 529 => "overloaded_error",
            504 => "timeout_error",
            _ => "api_error",
        }
    }

    /// The JSON-RPC error code for an HTTP-level failure on a JSON-RPC route: -32700 for
    /// unparseable JSON, -32600 for other malformed or oversized requests, -32000 otherwise
    /// (`data.type` says which).
    pub fn jsonrpc_code(self) -> i64 {
        match self {
            Cause::InvalidJson => -32700,
            Cause::BadRequest
            | Cause::PayloadTooLarge
            | Cause::HeadersTooLarge
            | Cause::NotAcceptable => -32600,
            _ => -32000,
        }
    }
}

/// A failure that ends one request. See the module docs.
pub struct Error {
    cause: Cause,
    message: Cow<'static, str>,
    headers: Option<Box<HeaderMap>>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// An error of `cause` with a public `message`.
    pub fn new(cause: Cause, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            cause,
            message: message.into(),
            headers: None,
            source: None,
        }
    }

    /// Adds a header the response must carry.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .append(name, value);
        self
    }

    /// Adds headers the response must carry.
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers
            .get_or_insert_with(Default::default)
            .extend(headers);
        self
    }

    /// Attaches the underlying cause (logged by whoever logs the error, never sent).
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Why the request failed.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The public message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.cause.status()
    }

    /// Headers the response carries, if any.
    pub fn headers(&self) -> Option<&HeaderMap> {
        self.headers.as_deref()
    }

    /// The error body in `format` (also what in-band errors, such as an error event in an
    /// LLM stream, carry). JSON-RPC bodies have `id: null`; see [`Error::jsonrpc_object`] for
    /// an error answering a known request id.
    pub fn body(&self, format: ApiFormat) -> Value {
        let (message, kind) = (self.message.as_ref(), self.cause.kind());
        match format {
            ApiFormat::Plain => json!({"error": {"type": kind, "message": message}}),
            ApiFormat::OpenAi => json!({"error": {
                "message": message,
                "type": self.cause.openai_type(),
                "param": null,
                "code": kind,
            }}),
            ApiFormat::Anthropic => json!({
                "type": "error",
                "error": {"type": self.cause.anthropic_type(), "message": message},
            }),
            ApiFormat::JsonRpc => json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": self.jsonrpc_object(),
            }),
        }
    }

    /// The JSON-RPC `error` member for this failure: `{"code", "message", "data": {"type"}}`.
    pub fn jsonrpc_object(&self) -> Value {
        json!({
            "code": self.cause.jsonrpc_code(),
            "message": self.message.as_ref(),
            "data": {"type": self.cause.kind()},
        })
    }

    /// The response for this error in `format`: the cause's status (OpenAI callers get 503 for a
    /// provider's non-standard 529), the body, `content-type: application/json`, the error's
    /// headers, `retry-after: 1` on 503 unless set, and `connection: close` on 501.
    pub fn render(self, format: ApiFormat) -> Response<Body> {
        let mut status = self.cause.status();
        if format == ApiFormat::OpenAi && status.as_u16() == 529 {
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
        let mut resp = Response::new(Body::from(self.body(format).to_string()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(extra) = self.headers {
            h.extend(*extra);
        }
        if status == StatusCode::SERVICE_UNAVAILABLE && !h.contains_key(header::RETRY_AFTER) {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.cause == Cause::NotImplemented {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("cause", &self.cause)
            .field("message", &self.message)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What a backend returns: a response, or an error the gateway renders in the route's format.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_reports_the_same_cause() {
        let e = || Error::new(Cause::PayloadTooLarge, "body is larger than 10 bytes");
        let plain = e().body(ApiFormat::Plain);
        assert_eq!(plain["error"]["type"], "payload_too_large");
        let openai = e().body(ApiFormat::OpenAi);
        assert_eq!(openai["error"]["code"], "payload_too_large");
        assert_eq!(openai["error"]["type"], "invalid_request_error");
        let anthropic = e().body(ApiFormat::Anthropic);
        assert_eq!(anthropic["error"]["type"], "request_too_large");
        let rpc = e().body(ApiFormat::JsonRpc);
        assert_eq!(rpc["error"]["code"], -32600);
        assert_eq!(rpc["error"]["data"]["type"], "payload_too_large");
        for f in [
            ApiFormat::Plain,
            ApiFormat::OpenAi,
            ApiFormat::Anthropic,
            ApiFormat::JsonRpc,
        ] {
            assert_eq!(e().render(f).status(), StatusCode::PAYLOAD_TOO_LARGE);
        }
    }

    #[test]
    fn not_acceptable_is_a_406_invalid_request() {
        let e = || Error::new(Cause::NotAcceptable, "needs Accept: text/event-stream");
        assert_eq!(e().status(), StatusCode::NOT_ACCEPTABLE);
        assert_eq!(e().body(ApiFormat::JsonRpc)["error"]["code"], -32600);
        assert_eq!(
            e().body(ApiFormat::OpenAi)["error"]["type"],
            "invalid_request_error"
        );
        assert_eq!(
            e().body(ApiFormat::Anthropic)["error"]["type"],
            "invalid_request_error"
        );
        assert_eq!(
            e().body(ApiFormat::Plain)["error"]["type"],
            "not_acceptable"
        );
    }

    #[test]
    fn headers_and_defaults_reach_the_response() {
        let r = Error::new(Cause::RateLimited, "rate limit exceeded")
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("7"))
            .render(ApiFormat::Anthropic);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "7");
        let r = Error::new(Cause::Overloaded, "busy").render(ApiFormat::Plain);
        assert_eq!(r.headers()[header::RETRY_AFTER], "1");
        let r = Error::new(Cause::NotImplemented, "no").render(ApiFormat::Plain);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = Error::new(
            Cause::UpstreamStatus(StatusCode::from_u16(529).unwrap()),
            "busy",
        )
        .render(ApiFormat::OpenAi);
        assert_eq!(r.status(), 503);
    }

    #[test]
    fn the_source_is_kept_but_never_rendered() {
        let e = Error::new(Cause::Upstream, "upstream request failed")
            .with_source(std::io::Error::other("secret-token-123 refused"));
        assert!(std::error::Error::source(&e).is_some());
        let body = e.body(ApiFormat::Plain).to_string();
        assert!(!body.contains("secret"), "{body}");
    }
}
