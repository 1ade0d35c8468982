//! JWKS key sets from a file or a URL, kept fresh without restarts: re-read in the background
//! every `refresh_interval`, and on demand when a token names an unknown `kid` (at most once
//! per `min_refresh_interval`, so a flood of made-up `kid`s cannot turn into a flood of
//! fetches). A failed refresh keeps the previous keys.
//!
//! Only asymmetric keys are accepted (RSA, EC, OKP): a JWKS is public, so an `oct` key in it
//! could be used by anyone to forge tokens. Each key's algorithms come from its `alg` member or,
//! without one, from its type and curve; a token whose header names another algorithm is
//! refused (no RSA/HMAC confusion, no `alg: none`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::JwtConfig;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One usable verification key.
pub struct Key {
    /// The `kid`, if the JWK has one.
    pub kid: Option<String>,
    /// Algorithms this key may verify.
    pub algorithms: Vec<Algorithm>,
    /// The key.
    pub key: DecodingKey,
}

/// A parsed key set.
#[derive(Default)]
pub struct KeySet {
    /// The usable keys, in document order.
    pub keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, skipping keys that cannot be used (symmetric, unsupported
    /// curve, encryption-only), so one odd key does not take the others down.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
        let keys = set.keys.iter().filter_map(key_from_jwk).collect();
        Ok(KeySet { keys })
    }

    /// Keys that may verify a token with this `kid` and `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            k.algorithms.contains(&alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }

    /// Whether a key with this `kid` exists (for any algorithm).
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn key_from_jwk(jwk: &Jwk) -> Option<Key> {
    if matches!(
        jwk.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    ) {
        return None;
    }
    let family: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return None,
        },
        // Symmetric keys in a public document are forgeable by anyone who reads it.
        AlgorithmParameters::OctetKey(_) => return None,
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        Some(ka) => {
            let alg: Algorithm = ka.to_string().parse().ok()?;
            if !family.contains(&alg) {
                return None;
            }
            vec![alg]
        }
        None => family,
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        key,
    })
}

/// Where a JWKS comes from.
#[derive(Debug, Clone)]
pub enum JwksLocation {
    /// A local file.
    File(PathBuf),
    /// An HTTP(S) URL.
    Url(String),
}

/// A refreshed key set. Cheap to clone; the background refresh ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Jwks {
    shared: Arc<Shared>,
}

struct Shared {
    location: JwksLocation,
    keys: ArcSwap<KeySet>,
    /// When the last fetch started (on-demand refreshes are rate-limited against it).
    last_fetch: Mutex<Option<Instant>>,
    min_refresh: Duration,
    /// Counts completed loads (successful or not); 0 until the first one finishes.
    loads: watch::Sender<u64>,
    stop: CancellationToken,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

#[allow(
    clippy::expect_used,
    reason = "a client with a timeout and redirect policy only fails without a TLS backend, which is compiled in"
)]
fn http_client() -> &'static reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        crate::install_crypto_provider();
        reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("a reqwest client with defaults builds")
    })
}

impl Jwks {
    /// Creates the key set and, inside a tokio runtime, starts its background refresh (the
    /// first load happens immediately).
    pub fn new(cfg: &JwtConfig) -> Self {
        let location = match (&cfg.jwks.file, &cfg.jwks.url) {
            (Some(f), _) => JwksLocation::File(PathBuf::from(f)),
            (None, Some(u)) => JwksLocation::Url(u.clone()),
            (None, None) => JwksLocation::File(PathBuf::new()),
        };
        let shared = Arc::new(Shared {
            location,
            keys: ArcSwap::from_pointee(KeySet::default()),
            last_fetch: Mutex::new(None),
            min_refresh: cfg.min_refresh_interval,
            loads: watch::channel(0).0,
            stop: CancellationToken::new(),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(refresh_loop(
                Arc::downgrade(&shared),
                shared.stop.clone(),
                cfg.refresh_interval,
            ));
        }
        Jwks { shared }
    }

    /// The current keys, waiting (up to `wait`) for the first load if it has not finished.
    pub async fn current(&self, wait: Duration) -> Arc<KeySet> {
        let mut rx = self.shared.loads.subscribe();
        if *rx.borrow() == 0 {
            let _ = tokio::time::timeout(wait, rx.wait_for(|n| *n > 0)).await;
        }
        self.shared.keys.load_full()
    }

    /// Re-reads the keys now unless a fetch started within `min_refresh_interval`; returns
    /// whether it fetched.
    pub async fn refresh_on_demand(&self) -> bool {
        {
            let mut last = self
                .shared
                .last_fetch
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.shared.min_refresh) {
                return false;
            }
            *last = Some(Instant::now());
        }
        self.shared.load().await;
        true
    }

    /// Replaces the keys directly (tests, and callers that load keys themselves).
    pub fn set(&self, keys: KeySet) {
        self.shared.keys.store(Arc::new(keys));
        self.shared.loads.send_modify(|n| *n += 1);
    }
}

impl Shared {
    async fn load(&self) {
        match self.fetch().await {
            Ok(bytes) => match KeySet::parse(&bytes) {
                Ok(set) => {
                    tracing::debug!(keys = set.keys.len(), "JWKS loaded");
                    self.keys.store(Arc::new(set));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys")
                }
            },
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed; keeping the previous keys"),
        }
        self.loads.send_modify(|n| *n += 1);
    }

    async fn fetch(&self) -> Result<Vec<u8>, String> {
        match &self.location {
            JwksLocation::File(p) => {
                let bytes = tokio::fs::read(p)
                    .await
                    .map_err(|e| format!("cannot read {}: {e}", p.display()))?;
                if bytes.len() > MAX_JWKS_BYTES {
                    return Err(format!("{} is larger than 1 MiB", p.display()));
                }
                Ok(bytes)
            }
            JwksLocation::Url(u) => {
                let mut resp = http_client()
                    .get(u)
                    .send()
                    .await
                    .map_err(|e| format!("GET {u}: {e}"))?;
                if !resp.status().is_success() {
                    return Err(format!("GET {u}: status {}", resp.status()));
                }
                let mut body = Vec::new();
                while let Some(chunk) = resp.chunk().await.map_err(|e| format!("GET {u}: {e}"))? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        return Err(format!("GET {u}: JWKS larger than 1 MiB"));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(body)
            }
        }
    }
}

async fn refresh_loop(shared: Weak<Shared>, stop: CancellationToken, every: Duration) {
    loop {
        {
            let Some(s) = shared.upgrade() else { return };
            *s.last_fetch.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
            tokio::select! {
                _ = s.load() => {}
                _ = stop.cancelled() => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_symmetric_and_mismatched_keys() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed-as-rs", "alg": "RS256", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.keys[0].kid.as_deref(), Some("ed"));
        assert_eq!(set.keys[0].algorithms, vec![Algorithm::EdDSA]);
        assert_eq!(set.candidates(Some("ed"), Algorithm::EdDSA).count(), 1);
        assert_eq!(set.candidates(Some("ed"), Algorithm::HS256).count(), 0);
        assert_eq!(set.candidates(Some("hmac"), Algorithm::HS256).count(), 0);
        assert!(KeySet::parse(b"{}").is_err());
    }
}
