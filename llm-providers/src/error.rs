//! The crate's error type, and the one mapping of it onto the gateway's error model
//! ([`switchboard_core::Error`]): the cause, and the message a caller may see.

use std::borrow::Cow;

use http::StatusCode;
use switchboard_core::Cause;

/// Everything that can go wrong inside the LLM backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend configuration is invalid (the message names the key path).
    #[error("invalid llm configuration: {0}")]
    Config(String),
    /// The client sent something we cannot serve.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is not JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// The request body could not be read.
    #[error("request body too large or unreadable")]
    BodyUnreadable,
    /// The client asked for a model that is not configured on this route.
    #[error("model `{0}` is not available on this route")]
    UnknownModel(String),
    /// The caller may not use this model (the gateway's authorization said no).
    #[error("model `{0}` is not allowed for this caller")]
    ModelNotAllowed(String),
    /// No path handler matches.
    #[error("no such endpoint")]
    NotFound,
    /// The endpoint exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A provider could not be reached or did not answer in time.
    #[error("upstream provider unavailable: {0}")]
    Upstream(String),
    /// All attempts ran out of time.
    #[error("upstream provider timed out")]
    Timeout,
    /// A provider answered with something we could not understand.
    #[error("unexpected response from upstream provider: {0}")]
    Protocol(String),
    /// A provider answered with an error status (the last attempt's, after failover).
    #[error("upstream provider returned {status}")]
    Provider {
        /// The provider's status.
        status: StatusCode,
        /// The provider's error message, when its body had one.
        message: Option<String>,
    },
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A request body serde could not read: not JSON at all ([`Error::InvalidJson`]), or JSON
    /// of the wrong shape for the endpoint ([`Error::BadRequest`]).
    pub fn invalid_body(e: &serde_json::Error) -> Self {
        let message = format!("invalid request body: {e}");
        if e.is_syntax() || e.is_eof() {
            Error::InvalidJson(message)
        } else {
            Error::BadRequest(message)
        }
    }
}

impl From<Error> for switchboard_core::Error {
    /// The cause of each failure, and what the caller is told: never internals or secrets.
    /// A provider's error status passes through with its message, except 401/403: the
    /// gateway's own credentials were refused, which is not the caller's fault (502), and the
    /// provider's message may quote part of the key.
    fn from(e: Error) -> Self {
        let (cause, message): (Cause, Cow<'static, str>) = match &e {
            Error::Config(_) => (Cause::Internal, "internal gateway error".into()),
            Error::BadRequest(m) => (Cause::BadRequest, m.clone().into()),
            Error::InvalidJson(m) => (Cause::InvalidJson, m.clone().into()),
            Error::Json(_) => (Cause::BadRequest, e.to_string().into()),
            Error::BodyUnreadable => (Cause::PayloadTooLarge, e.to_string().into()),
            Error::UnknownModel(_) | Error::NotFound => (Cause::NotFound, e.to_string().into()),
            Error::ModelNotAllowed(_) => (Cause::Forbidden, e.to_string().into()),
            Error::MethodNotAllowed => (Cause::MethodNotAllowed, e.to_string().into()),
            Error::Upstream(_) => (Cause::Upstream, "upstream provider unavailable".into()),
            Error::Protocol(_) => (
                Cause::Upstream,
                "unexpected response from upstream provider".into(),
            ),
            Error::Timeout => (Cause::Timeout, e.to_string().into()),
            Error::Provider { status, .. } if matches!(status.as_u16(), 401 | 403) => (
                Cause::Upstream,
                "upstream provider rejected the gateway's credentials".into(),
            ),
            Error::Provider { status, message } => (
                Cause::UpstreamStatus(*status),
                message.clone().map_or_else(
                    || format!("upstream provider returned {}", status.as_u16()).into(),
                    Cow::Owned,
                ),
            ),
        };
        switchboard_core::Error::new(cause, message).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use switchboard_core::ApiFormat;

    use super::*;

    fn core(e: Error) -> switchboard_core::Error {
        e.into()
    }

    #[test]
    fn provider_statuses_pass_through_but_credential_refusals_do_not() {
        let e = core(Error::Provider {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: Some("slow down".into()),
        });
        assert_eq!(e.status(), 429);
        assert_eq!(e.message(), "slow down");
        let e = core(Error::Provider {
            status: StatusCode::UNAUTHORIZED,
            message: Some("bad key sk-123".into()),
        });
        assert_eq!(e.status(), 502);
        assert!(!e.body(ApiFormat::OpenAi).to_string().contains("sk-123"));
    }

    #[test]
    fn internals_stay_out_of_bodies() {
        for e in [
            Error::Config("secret path".into()),
            Error::Upstream("connect error to 10.0.0.1".into()),
            Error::Protocol("expected value at line 1".into()),
        ] {
            let body = core(e).body(ApiFormat::Anthropic).to_string();
            assert!(!body.contains("secret") && !body.contains("10.0") && !body.contains("line"));
        }
    }
}
