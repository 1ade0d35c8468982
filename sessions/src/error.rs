//! The crate's one error type.

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong in the session layer.
///
/// Display strings are safe to show to clients for [`Error::NotFound`],
/// [`Error::TooManySessions`], [`Error::TokenTooLarge`] and [`Error::InvalidEventId`]; the store errors carry internals and
/// belong in logs only (the gateway maps them to a generic 5xx).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The session does not exist for this caller: the token is malformed, tampered, sealed with
    /// a key this replica lacks, past its maximum lifetime, idle-expired, revoked, or bound to
    /// another principal. Deliberately one variant so callers cannot tell them apart (the gateway
    /// answers 404 and the client re-initializes); the reason is logged at debug level.
    #[error("session not found")]
    NotFound,
    /// The principal already holds `sessions.max_per_principal` live sessions (gateway: 429).
    #[error("too many open sessions for this principal (limit {limit})")]
    TooManySessions {
        /// The configured cap.
        limit: u32,
    },
    /// The session's state does not fit in a token of at most
    /// [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN) characters (a token that long could not
    /// be opened again); nothing was stored. The MCP layer keeps what it seals small, so this
    /// means an oversized client or upstream value got through.
    #[error("session state too large for a session id ({len} > {limit} characters)")]
    TokenTooLarge {
        /// Length the token would have had.
        len: usize,
        /// [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN).
        limit: usize,
    },
    /// A `Last-Event-ID` that is not one of ours, or belongs to another session (gateway: 400 or
    /// ignore and start the live stream).
    #[error("invalid Last-Event-ID")]
    InvalidEventId,
    /// The session configuration is invalid; the message names the key path.
    #[error("invalid sessions config: {0}")]
    Config(String),
    /// The Redis store failed (connection, protocol or script error).
    #[error("session store: redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The Redis store did not answer within `sessions.redis.timeout`, or its circuit breaker
    /// is open: retry later (the gateway answers 503 with `Retry-After`).
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    /// Stored session metadata could not be (de)serialized.
    #[error("session store: metadata: {0}")]
    Metadata(#[from] serde_json::Error),
    /// The store answered something this version does not understand.
    #[error("session store: {0}")]
    Store(String),
}
