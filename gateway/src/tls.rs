//! Server-side TLS with rustls (ring provider): PEM certificate chain and key from files,
//! ALPN offering h2 and http/1.1.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// Loads a TLS acceptor. Relative paths are resolved against `base` (the config file's folder).
pub fn acceptor(listener: &str, cfg: &TlsConfig, base: &Path) -> Result<TlsAcceptor> {
    let err = |message: String| Error::Tls {
        listener: listener.to_string(),
        message,
    };
    let cert_path = base.join(&cfg.cert);
    let key_path = base.join(&cfg.key);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| err(format!("cannot read {}: {e}", cert_path.display())))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| err(format!("bad certificate in {}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(err(format!("no certificate in {}", cert_path.display())));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        err(format!(
            "cannot read a private key from {}: {e}",
            key_path.display()
        ))
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| err(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| err(format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
