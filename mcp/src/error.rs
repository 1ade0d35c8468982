//! The crate's error type.

/// Errors of the MCP backend. They are turned into JSON-RPC errors in one place
/// ([`Error::to_jsonrpc`]) without leaking upstream internals.
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
    /// The JSON-RPC error object sent to a client for this error (no internals).
    pub fn to_jsonrpc(&self) -> serde_json::Value {
        let (code, message) = match self {
            Error::Timeout(t) => (-32001, format!("target `{t}` timed out")),
            Error::Unavailable { target, .. } | Error::Spawn { target, .. } => {
                (-32002, format!("target `{target}` is unavailable"))
            }
            Error::Protocol { target, .. } => {
                (-32603, format!("target `{target}` sent an invalid reply"))
            }
            Error::TooLarge { target, .. } => (
                -32603,
                format!("target `{target}` sent a reply larger than the gateway accepts"),
            ),
            Error::Cancelled => (-32800, "request cancelled".to_string()),
            Error::Http(_) => (-32002, "upstream unavailable".to_string()),
            Error::Config(_) => (-32603, "internal error".to_string()),
        };
        serde_json::json!({ "code": code, "message": message })
    }
}
