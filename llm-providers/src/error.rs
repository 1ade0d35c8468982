//! The crate's error type and its mapping onto caller-facing API errors.

use http::StatusCode;

/// Everything that can go wrong inside the LLM backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend configuration is invalid (the message names the key path).
    #[error("invalid llm configuration: {0}")]
    Config(String),
    /// The client sent something we cannot serve.
    #[error("{0}")]
    BadRequest(String),
    /// The client asked for a model that is not configured on this route.
    #[error("model `{0}` is not available on this route")]
    UnknownModel(String),
    /// The caller may not use this model (the gateway's authorization said no).
    #[error("model `{0}` is not allowed for this caller")]
    ModelNotAllowed(String),
    /// No path handler matches.
    #[error("no such endpoint")]
    NotFound,
    /// A provider could not be reached or did not answer in time.
    #[error("upstream provider unavailable: {0}")]
    Upstream(String),
    /// All attempts ran out of time.
    #[error("upstream provider timed out")]
    Timeout,
    /// A provider answered with something we could not understand.
    #[error("unexpected response from upstream provider: {0}")]
    Protocol(String),
    /// The Redis store behind a shared rate limit failed.
    #[error("rate limit store: {0}")]
    Store(String),
    /// JSON (de)serialization failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status this error becomes when it reaches the client.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) | Error::Json(_) => StatusCode::BAD_REQUEST,
            Error::UnknownModel(_) | Error::NotFound => StatusCode::NOT_FOUND,
            Error::ModelNotAllowed(_) => StatusCode::FORBIDDEN,
            Error::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Error::Upstream(_) | Error::Protocol(_) => StatusCode::BAD_GATEWAY,
            Error::Config(_) | Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message shown to the client: never internals or secrets.
    pub fn public_message(&self) -> String {
        match self {
            Error::Config(_) | Error::Store(_) => "internal gateway error".to_string(),
            Error::Upstream(_) => "upstream provider unavailable".to_string(),
            Error::Protocol(_) => "unexpected response from upstream provider".to_string(),
            other => other.to_string(),
        }
    }
}
