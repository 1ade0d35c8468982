//! The crate's one error type.

/// Everything that can go wrong in the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be (de)serialized.
    #[error("serialization: {0}")]
    Serde(#[from] serde_json::Error),
    /// YAML rendering failed.
    #[error("yaml: {0}")]
    Yaml(#[from] yaml_serde::Error),
    /// An object is missing a field the controller needs (name, namespace, uid).
    #[error("object is missing {0}")]
    MissingField(&'static str),
    /// The config push server could not bind or serve.
    #[error("config push server: {0}")]
    Io(#[from] std::io::Error),
    /// The push server's certificate is unusable (unreadable, malformed, or not generated).
    #[error("push server certificate: {0}")]
    Tls(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
