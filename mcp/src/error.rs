//! Every error the MCP backend produces, in one place. Three kinds:
//!
//! - [`Error`]: talking to a target (or building the backend) failed. Its cause in the
//!   gateway's error model comes from `From<Error> for switchboard_core::Error`; answering a
//!   client request, it becomes [`ProtocolError::Target`].
//! - [`ProtocolError`]: a JSON-RPC error answering one request inside an MCP exchange (unknown
//!   tool, method not found, invalid params, target timed out...), or a request of a target
//!   that the gateway answers for the client. The one constructor of in-protocol errors: a
//!   cause has one code and one message wherever it is raised (the table is [`ProtocolError::code`]).
//! - HTTP-level refusals that end the exchange before any JSON-RPC request is served (no
//!   session, unknown session, bad headers, a bad body, a method or path not served) are
//!   [`switchboard_core::Error`]s built by the functions of [`refuse`]; the gateway renders
//!   them in the route's format (JSON-RPC, `id: null`).

use std::borrow::Cow;

use http::StatusCode;
use serde_json::{Value, json};
use switchboard_core::Cause;

/// Errors of talking to targets and of building the backend. Sent to clients only through
/// [`ProtocolError::Target`] (no upstream internals); the details go to the log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend configuration is invalid.
    #[error("invalid mcp config: {0}")]
    Config(String),
    /// An upstream did not answer in time.
    #[error("target `{0}` timed out")]
    Timeout(String),
    /// An upstream could not be reached or broke the connection.
    #[error("target `{target}` unavailable: {reason}")]
    Unavailable {
        /// Target name.
        target: String,
        /// Short cause (logged, not sent to clients).
        reason: String,
    },
    /// An upstream answered with something that is not MCP.
    #[error("target `{target}` sent an invalid reply: {reason}")]
    Protocol {
        /// Target name.
        target: String,
        /// Short cause.
        reason: String,
    },
    /// An upstream sent a message larger than the route's `max_reply_bytes`.
    #[error("target `{target}` sent a message over {limit} bytes")]
    TooLarge {
        /// Target name.
        target: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Spawning a stdio target failed.
    #[error("spawning target `{target}` failed: {source}")]
    Spawn {
        /// Target name.
        target: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The client cancelled the request.
    #[error("request cancelled")]
    Cancelled,
    /// An HTTP client error.
    #[error("http client: {0}")]
    Http(#[from] reqwest::Error),
}

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The cause in the gateway's error model.
    pub fn cause(&self) -> Cause {
        match self {
            Error::Timeout(_) => Cause::Timeout,
            Error::Unavailable { .. }
            | Error::Spawn { .. }
            | Error::Http(_)
            | Error::Protocol { .. }
            | Error::TooLarge { .. } => Cause::Upstream,
            Error::Cancelled => Cause::BadRequest,
            Error::Config(_) => Cause::Internal,
        }
    }

    /// The message a client may see (no internals).
    fn public_message(&self) -> String {
        match self {
            Error::Timeout(t) => format!("target `{t}` timed out"),
            Error::Unavailable { target, .. } | Error::Spawn { target, .. } => {
                format!("target `{target}` is unavailable")
            }
            Error::Protocol { target, .. } => format!("target `{target}` sent an invalid reply"),
            Error::TooLarge { target, .. } => {
                format!("target `{target}` sent a reply larger than the gateway accepts")
            }
            Error::Cancelled => "request cancelled".into(),
            Error::Http(_) => "upstream unavailable".into(),
            Error::Config(_) => "internal error".into(),
        }
    }
}

impl From<Error> for switchboard_core::Error {
    fn from(e: Error) -> Self {
        switchboard_core::Error::new(e.cause(), e.public_message()).with_source(e)
    }
}

/// JSON-RPC parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC method not found.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC invalid params.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC internal error.
pub const INTERNAL_ERROR: i64 = -32603;
/// A target, or the client, did not answer in time.
pub const TIMED_OUT: i64 = -32001;
/// A target cannot be reached.
pub const UNAVAILABLE: i64 = -32002;
/// JSON-RPC error code (HTTP 421) of a session whose stdio targets run on another replica that
/// this one does not forward to (no `sessions.peer`, or a forwarded request that reached a
/// replica other than the owner).
pub const PINNED_ELSEWHERE: i64 = -32003;
/// The request was cancelled by the client.
pub const CANCELLED: i64 = -32800;
/// A 2026-07-28 request whose routing headers (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`)
/// disagree with its body.
pub const HEADER_MISMATCH: i64 = -32020;

/// What a tool, prompt or resource name that resolves to nothing was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// `tools/call`.
    Tool,
    /// `prompts/get`.
    Prompt,
    /// `resources/read`, `resources/subscribe`, `resources/unsubscribe`.
    Resource,
}

/// A JSON-RPC error answering one request. See the module docs; [`ProtocolError::code`] is
/// the table of causes and codes.
#[derive(Debug)]
pub enum ProtocolError {
    /// The message is not a JSON-RPC request the gateway can serve as it is.
    InvalidRequest(Cow<'static, str>),
    /// A method the gateway (or the client it speaks for) does not serve.
    MethodNotFound(String),
    /// A server-to-client request the client cannot take: it lacks the capability, or there is
    /// no client session to take it.
    NotSupported(Cow<'static, str>),
    /// Parameters missing or of the wrong type.
    InvalidParams(Cow<'static, str>),
    /// A tool, prompt or resource that does not exist or the caller may not use (answered
    /// alike, so refusals do not reveal what exists).
    Unknown(ItemKind, String),
    /// A `completion/complete` whose reference resolves to nothing the caller may use.
    UnknownReference,
    /// A 2026-07-28 retry whose `requestState` names no call parked here.
    UnknownRequestState(&'static str),
    /// A 2026-07-28 request whose routing headers disagree with its body.
    HeaderMismatch(String),
    /// The session's stdio targets run on replica `owner`.
    PinnedElsewhere(String),
    /// The client did not answer a request the gateway asked for a target in time.
    ClientTimeout(String),
    /// Talking to a target failed.
    Target(Error),
    /// A failure of the gateway's own that answers a request (e.g. the session store is down),
    /// with the code of its cause in the gateway's error model.
    Gateway(switchboard_core::Error),
    /// Anything else that ends the request; the message says what.
    Internal(Cow<'static, str>),
    /// An error object a target or the client sent, passed on as it is.
    Forwarded(Value),
}

impl ProtocolError {
    /// The JSON-RPC error code: one per cause.
    ///
    /// | cause | code |
    /// |---|---|
    /// | invalid request | -32600 |
    /// | method not found, request the client cannot take | -32601 |
    /// | invalid params, unknown tool/prompt/resource/reference, unknown `requestState` | -32602 |
    /// | internal, target sent an invalid or oversized reply | -32603 |
    /// | target or client timed out | -32001 |
    /// | target unavailable | -32002 |
    /// | session pinned to another replica | -32003 |
    /// | routing header mismatch | -32020 |
    /// | cancelled | -32800 |
    /// | gateway failure | its cause's ([`switchboard_core::Cause::jsonrpc_code`]) |
    /// | an error a target or the client sent | its own |
    pub fn code(&self) -> i64 {
        match self {
            ProtocolError::InvalidRequest(_) => INVALID_REQUEST,
            ProtocolError::MethodNotFound(_) | ProtocolError::NotSupported(_) => METHOD_NOT_FOUND,
            ProtocolError::InvalidParams(_)
            | ProtocolError::Unknown(..)
            | ProtocolError::UnknownReference
            | ProtocolError::UnknownRequestState(_) => INVALID_PARAMS,
            ProtocolError::HeaderMismatch(_) => HEADER_MISMATCH,
            ProtocolError::PinnedElsewhere(_) => PINNED_ELSEWHERE,
            ProtocolError::ClientTimeout(_) => TIMED_OUT,
            ProtocolError::Target(e) => match e {
                Error::Timeout(_) => TIMED_OUT,
                Error::Unavailable { .. } | Error::Spawn { .. } | Error::Http(_) => UNAVAILABLE,
                Error::Cancelled => CANCELLED,
                Error::Protocol { .. } | Error::TooLarge { .. } | Error::Config(_) => {
                    INTERNAL_ERROR
                }
            },
            ProtocolError::Gateway(e) => e.cause().jsonrpc_code(),
            ProtocolError::Internal(_) => INTERNAL_ERROR,
            ProtocolError::Forwarded(e) => e
                .get("code")
                .and_then(Value::as_i64)
                .unwrap_or(INTERNAL_ERROR),
        }
    }

    /// The message a client sees.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            ProtocolError::InvalidRequest(m)
            | ProtocolError::NotSupported(m)
            | ProtocolError::InvalidParams(m)
            | ProtocolError::Internal(m) => Cow::Borrowed(m),
            ProtocolError::MethodNotFound(m) => format!("Method not found: {m}").into(),
            ProtocolError::Unknown(kind, name) => {
                let what = match kind {
                    ItemKind::Tool => "tool",
                    ItemKind::Prompt => "prompt",
                    ItemKind::Resource => "resource",
                };
                format!("Unknown {what}: {name}").into()
            }
            ProtocolError::UnknownReference => "unknown completion reference".into(),
            ProtocolError::UnknownRequestState(why) => {
                format!("unknown or expired requestState: {why}").into()
            }
            ProtocolError::HeaderMismatch(m) => Cow::Borrowed(m),
            ProtocolError::PinnedElsewhere(owner) => format!(
                "session is pinned to replica `{owner}` because it has stdio targets, which \
                 run there, and this replica cannot forward to it (see sessions.peer): send its \
                 requests to that replica, or initialize a new session"
            )
            .into(),
            ProtocolError::ClientTimeout(method) => {
                format!("the client did not answer `{method}` in time").into()
            }
            ProtocolError::Target(e) => e.public_message().into(),
            ProtocolError::Gateway(e) => Cow::Borrowed(e.message()),
            ProtocolError::Forwarded(e) => e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .into(),
        }
    }

    /// The HTTP status when this error is the whole answer to a POST (200 for errors that
    /// answer a request the gateway took).
    pub fn status(&self) -> StatusCode {
        match self {
            ProtocolError::HeaderMismatch(_) => StatusCode::BAD_REQUEST,
            ProtocolError::PinnedElsewhere(_) => StatusCode::MISDIRECTED_REQUEST,
            _ => StatusCode::OK,
        }
    }

    /// The JSON-RPC `error` member.
    pub fn to_jsonrpc(&self) -> Value {
        match self {
            ProtocolError::Gateway(e) => e.jsonrpc_object(),
            ProtocolError::Forwarded(e) => e.clone(),
            _ => json!({"code": self.code(), "message": self.message()}),
        }
    }

    /// The JSON-RPC error response to request `id`.
    pub fn reply(&self, id: Value) -> Value {
        json!({"jsonrpc": "2.0", "id": id, "error": self.to_jsonrpc()})
    }
}

impl From<Error> for ProtocolError {
    fn from(e: Error) -> Self {
        ProtocolError::Target(e)
    }
}

/// A request turned away before it is served.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// An HTTP-level refusal, rendered by the gateway.
    Http(switchboard_core::Error),
    /// A JSON-RPC error answering the request, sent with [`ProtocolError::status`].
    Rpc(ProtocolError),
}

impl From<switchboard_core::Error> for Rejected {
    fn from(e: switchboard_core::Error) -> Self {
        Rejected::Http(e)
    }
}

impl From<ProtocolError> for Rejected {
    fn from(e: ProtocolError) -> Self {
        Rejected::Rpc(e)
    }
}

/// HTTP-level refusals, as [`switchboard_core::Error`]s the gateway renders. One function per
/// cause, so each has one status and one message.
pub mod refuse {
    use switchboard_core::{Cause, Error};

    /// A request without `Mcp-Session-Id` that needs one.
    pub fn no_session_id() -> Error {
        Error::new(Cause::BadRequest, "missing Mcp-Session-Id header")
    }

    /// An unknown, expired, revoked, tampered or foreign session (the client must initialize
    /// a new one).
    pub fn session_not_found() -> Error {
        Error::new(Cause::NotFound, "session not found")
    }

    /// A session whose stdio targets ran on a replica that is gone: their state is lost, the
    /// session ended, and the client must initialize a new one (404, like any ended session).
    pub fn owner_gone() -> Error {
        Error::new(
            Cause::NotFound,
            "session ended: its stdio targets ran on a gateway replica that is gone, and their \
             state is lost; initialize a new session",
        )
    }

    /// The session store failed; details go to the log only.
    pub fn store_unavailable() -> Error {
        Error::new(Cause::Overloaded, "session store unavailable")
    }

    /// `initialize` on a session that has one.
    pub fn already_initialized() -> Error {
        Error::new(Cause::BadRequest, "session already initialized")
    }

    /// A `MCP-Protocol-Version` header of a revision the gateway does not speak.
    pub fn unsupported_version() -> Error {
        Error::new(Cause::BadRequest, "unsupported MCP-Protocol-Version")
    }

    /// A body that is JSON but not a JSON-RPC message.
    pub fn invalid_message() -> Error {
        Error::new(Cause::BadRequest, "invalid JSON-RPC message")
    }

    /// A body that is not JSON.
    pub fn parse_error() -> Error {
        Error::new(Cause::InvalidJson, "parse error")
    }

    /// A body over the backend's own cap.
    pub fn body_too_large() -> Error {
        Error::new(Cause::PayloadTooLarge, "body too large")
    }

    /// A JSON-RPC batch refused as a whole (empty, too long, not in this revision).
    pub fn batch(message: String) -> Error {
        Error::new(Cause::BadRequest, message)
    }

    /// A GET that does not accept an event stream.
    pub fn not_event_stream() -> Error {
        Error::new(Cause::NotAcceptable, "GET needs Accept: text/event-stream")
    }

    /// DNS-rebinding protection refused the `Origin` or `Host`.
    pub fn origin() -> Error {
        Error::new(Cause::Forbidden, "origin or host not allowed")
    }

    /// An HTTP method the endpoint does not serve.
    pub fn method_not_allowed() -> Error {
        Error::new(Cause::MethodNotAllowed, "method not allowed")
    }

    /// A path under the route's prefix that is no MCP endpoint.
    pub fn no_endpoint() -> Error {
        Error::new(Cause::NotFound, "not found")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_code_and_message_per_cause() {
        let e = ProtocolError::Unknown(ItemKind::Tool, "x".into());
        assert_eq!(
            e.reply(json!(3)),
            json!({"jsonrpc": "2.0", "id": 3, "error": {"code": -32602, "message": "Unknown tool: x"}})
        );
        let t = ProtocolError::Target(Error::Timeout("a".into()));
        assert_eq!(t.to_jsonrpc()["code"], -32001);
        assert_eq!(t.to_jsonrpc()["message"], "target `a` timed out");
        let u = ProtocolError::from(Error::Unavailable {
            target: "a".into(),
            reason: "secret detail".into(),
        });
        assert_eq!(u.code(), -32002);
        assert!(!u.to_jsonrpc().to_string().contains("secret"));
        let g = ProtocolError::Gateway(refuse::store_unavailable());
        assert_eq!(g.to_jsonrpc()["code"], -32000);
        assert_eq!(g.to_jsonrpc()["data"]["type"], "overloaded");
        assert_eq!(
            ProtocolError::PinnedElsewhere("r1".into()).status(),
            StatusCode::MISDIRECTED_REQUEST
        );
    }

    #[test]
    fn target_errors_have_a_cause_and_no_internals() {
        let e: switchboard_core::Error = Error::Unavailable {
            target: "a".into(),
            reason: "connection refused to 10.0.0.1".into(),
        }
        .into();
        assert_eq!(e.cause(), Cause::Upstream);
        assert_eq!(e.message(), "target `a` is unavailable");
        let e: switchboard_core::Error = Error::Timeout("a".into()).into();
        assert_eq!(e.status(), StatusCode::GATEWAY_TIMEOUT);
        let e: switchboard_core::Error = Error::Config("bad glob".into()).into();
        assert_eq!(e.cause(), Cause::Internal);
    }
}
