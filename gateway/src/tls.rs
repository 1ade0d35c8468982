//! Server-side TLS with rustls (ring provider): PEM certificate chains and keys from files,
//! ALPN offering h2 and http/1.1, and the certificate picked by the client's SNI server name
//! (`tls.sni`; exact names before `*.` wildcards, `tls.cert` otherwise).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;
use crate::error::{Error, Result};

/// Loads a TLS acceptor. Relative paths are resolved against `base` (the config file's folder).
pub fn acceptor(listener: &str, cfg: &TlsConfig, base: &Path) -> Result<TlsAcceptor> {
    let err = |message: String| Error::Tls {
        listener: listener.to_string(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let default = certified_key(&provider, base, &cfg.cert, &cfg.key).map_err(err)?;
    let mut by_name = SniResolver {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default,
    };
    for (i, sni) in cfg.sni.iter().enumerate() {
        let key = certified_key(&provider, base, &sni.cert, &sni.key).map_err(err)?;
        if sni.hostnames.is_empty() {
            return Err(err(format!("tls.sni[{i}]: hostnames must not be empty")));
        }
        for h in &sni.hostnames {
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            let (map, name) = match h.strip_prefix("*.") {
                Some(rest) => (&mut by_name.wildcard, rest.to_string()),
                None => (&mut by_name.exact, h.clone()),
            };
            if name.is_empty() || name.contains('*') {
                return Err(err(format!(
                    "tls.sni[{i}]: `{h}` is not a server name or a `*.` wildcard"
                )));
            }
            if map.insert(name, key.clone()).is_some() {
                return Err(err(format!("tls.sni[{i}]: `{h}` is listed twice")));
            }
        }
    }
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(by_name));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certified_key(
    provider: &CryptoProvider,
    base: &Path,
    cert: &str,
    key: &str,
) -> std::result::Result<Arc<CertifiedKey>, String> {
    let cert_path = base.join(cert);
    let key_path = base.join(key);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key_path.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("unusable private key in {}: {e}", key_path.display()))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| {
        format!(
            "certificate {} and key {} do not fit together: {e}",
            cert_path.display(),
            key_path.display()
        )
    })?;
    Ok(Arc::new(ck))
}

/// Picks a certificate by SNI server name.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `*.example.com` under `example.com`: matches exactly one more label.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return Some(k.clone());
        }
        Some(self.default.clone())
    }
}
