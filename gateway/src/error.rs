//! Errors. [`Error`] is what the library's set-up functions return; [`ProxyError`] is what can
//! go wrong while serving one request, and [`ProxyError::into_response`] is the one place that
//! turns such a failure into a response, by cause and in the route's API format, without
//! internals.

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode, header};

use crate::config::ConfigErrors;

/// Errors of the gateway library (start-up, reload, I/O).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration:\n{0}")]
    Config(#[from] ConfigErrors),
    /// The serving threads could not be started.
    #[error("cannot start serving threads: {0}")]
    Workers(std::io::Error),
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

/// The wire format errors are written in, chosen by the route's backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorFormat {
    /// `{"error": {"type": "...", "message": "..."}}` (http routes, and before routing).
    #[default]
    Plain,
    /// A JSON-RPC 2.0 error object (MCP and A2A routes).
    JsonRpc,
    /// OpenAI's error shape (LLM routes).
    OpenAi,
    /// Anthropic's error shape (`/v1/messages`).
    Anthropic,
}

/// A failure while serving one request.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// No route matches.
    #[error("no route matches this request")]
    NoRoute,
    /// The request body is larger than the listener allows.
    #[error("request body is larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The request headers are larger than the listener allows.
    #[error("request headers are larger than {limit} bytes")]
    HeadersTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The upstream could not be reached or failed mid-request. The cause is logged, not sent.
    #[error("upstream request failed")]
    Upstream(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Too many connections or requests in flight.
    #[error("the gateway is overloaded; retry later")]
    Overloaded,
    /// The upstream did not answer in time.
    #[error("upstream did not respond within {0:?}")]
    Timeout(std::time::Duration),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(&'static str),
    /// No valid credential (401). Why is not said beyond the challenge's standard error code.
    #[error("authentication required")]
    Unauthenticated {
        /// The `WWW-Authenticate` challenge.
        challenge: HeaderValue,
    },
    /// Authenticated but not allowed (403); with a challenge for `insufficient_scope`.
    #[error("access denied")]
    Forbidden {
        /// The `WWW-Authenticate` challenge, when the client can step up.
        challenge: Option<HeaderValue>,
    },
    /// A rate limit (`policies.rate_limit` or an API key's own) is spent (429); `headers`
    /// carry `retry-after` and, for route limits, `x-ratelimit-*`.
    #[error("rate limit exceeded; retry later")]
    RateLimited {
        /// Headers for the 429.
        headers: http::HeaderMap,
    },
    /// A JSON body the gateway parses is over a limit or malformed.
    #[error("{0}")]
    Input(#[from] crate::json_body::InputError),
    /// A method the gateway never forwards (`CONNECT`): 405.
    #[error("{0}")]
    MethodNotAllowed(&'static str),
    /// A framing the gateway does not implement (a transfer coding other than `chunked`):
    /// 501, and the connection is closed since its body cannot be delimited safely.
    #[error("{0}")]
    NotImplemented(&'static str),
}

impl ProxyError {
    /// The HTTP status for this cause.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProxyError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ProxyError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ProxyError::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            ProxyError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::Input(e) => e.status(),
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// A short machine-readable cause.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "not_found",
            ProxyError::BodyTooLarge { .. } => "payload_too_large",
            ProxyError::HeadersTooLarge { .. } => "request_header_fields_too_large",
            ProxyError::Upstream(_) => "bad_gateway",
            ProxyError::Overloaded => "overloaded",
            ProxyError::Timeout(_) => "gateway_timeout",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::Unauthenticated { .. } => "unauthorized",
            ProxyError::Forbidden { .. } => "forbidden",
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::Input(crate::json_body::InputError::TooLarge { .. }) => "payload_too_large",
            ProxyError::Input(_) => "bad_request",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::NotImplemented(_) => "not_implemented",
        }
    }

    /// Renders the error in `format`. Messages are fixed strings or limits from config, never
    /// upstream details or secrets.
    pub fn into_response(self, format: ErrorFormat) -> Response<Body> {
        let code = match &self {
            ProxyError::Input(e) => e.jsonrpc_code(),
            _ => -32000,
        };
        let mut resp = error_body(self.status(), self.kind(), &self.to_string(), format, code);
        let h = resp.headers_mut();
        match self {
            ProxyError::Unauthenticated { challenge }
            | ProxyError::Forbidden {
                challenge: Some(challenge),
            } => {
                h.insert(header::WWW_AUTHENTICATE, challenge);
            }
            ProxyError::RateLimited { headers } => {
                h.extend(headers);
            }
            ProxyError::NotImplemented(_) => {
                h.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

/// Builds an error response of the given status in `format`. Used by [`ProxyError`] and by
/// backends that need the same shapes.
pub fn error_response(
    status: StatusCode,
    kind: &str,
    message: &str,
    format: ErrorFormat,
) -> Response<Body> {
    error_body(status, kind, message, format, -32000)
}

/// [`error_response`] with the JSON-RPC error code to use on JSON-RPC routes.
fn error_body(
    status: StatusCode,
    kind: &str,
    message: &str,
    format: ErrorFormat,
    jsonrpc_code: i64,
) -> Response<Body> {
    let body = match format {
        ErrorFormat::Plain => serde_json::json!({"error": {"type": kind, "message": message}}),
        ErrorFormat::OpenAi => serde_json::json!({
            "error": {"message": message, "type": kind, "param": null, "code": kind}
        }),
        ErrorFormat::Anthropic => serde_json::json!({
            "type": "error",
            "error": {"type": anthropic_type(status), "message": message}
        }),
        ErrorFormat::JsonRpc => serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": jsonrpc_code, "message": message, "data": {"type": kind}}
        }),
    };
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

fn anthropic_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 413 | 431 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}
