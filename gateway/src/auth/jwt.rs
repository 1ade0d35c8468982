//! JWT verification: header algorithm must be one the selected JWKS key allows (so `none` and
//! HMAC never pass), then signature, `iss`, `aud` (one of the gateway's own audiences), `exp`
//! (required) and `nbf` with bounded clock skew.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Validation, decode, decode_header};

use super::jwks::Jwks;
use super::{Principal, PrincipalKind};
use crate::config::JwtConfig;

/// Longest JWT accepted; real tokens are a few KiB.
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most keys one token is checked against.
const MAX_CANDIDATES: usize = 4;
/// How long a request waits for the first JWKS load after a (re)start.
const FIRST_LOAD_WAIT: Duration = Duration::from_secs(5);

/// Whether a bearer value has the shape of a compact JWS (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// Why a token was refused (logged at debug level, never sent to the client).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    /// The token is too long.
    #[error("token too long")]
    TooLong,
    /// The header does not parse or names an unknown algorithm (including `none`).
    #[error("bad header: {0}")]
    Header(jsonwebtoken::errors::Error),
    /// No key of the JWKS matches the `kid` and `alg`.
    #[error("no matching key")]
    NoKey,
    /// Signature or claims are not valid.
    #[error("invalid: {0}")]
    Invalid(jsonwebtoken::errors::Error),
}

/// Verifies tokens of one `jwt` config.
pub struct JwtVerifier {
    jwks: Jwks,
    validation: Validation,
}

impl JwtVerifier {
    /// Builds the verifier and starts its JWKS.
    pub fn new(cfg: &JwtConfig) -> Self {
        Self::with_jwks(cfg, Jwks::new(cfg))
    }

    /// Builds the verifier around an existing key set.
    pub fn with_jwks(cfg: &JwtConfig, jwks: Jwks) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::RS256);
        validation.set_issuer(&[&cfg.issuer]);
        validation.set_audience(&cfg.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.leeway = cfg.clock_skew.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        JwtVerifier { jwks, validation }
    }

    /// The key set (for tests and diagnostics).
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    /// Verifies `token` and returns its principal.
    pub async fn verify(&self, token: &str) -> Result<Principal, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::TooLong);
        }
        let header = decode_header(token).map_err(JwtError::Header)?;
        let kid = header.kid.as_deref();
        let mut keys = self.jwks.current(FIRST_LOAD_WAIT).await;
        if keys.candidates(kid, header.alg).next().is_none()
            && kid.is_some_and(|k| !keys.has_kid(k))
            && self.jwks.refresh_on_demand().await
        {
            // An unknown kid usually means the issuer rotated keys.
            keys = self.jwks.current(Duration::ZERO).await;
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let mut last = JwtError::NoKey;
        // Without a `kid` every key of the algorithm is a candidate; a bound keeps a token
        // without one from costing a signature check per key of a large set.
        for key in keys.candidates(kid, header.alg).take(MAX_CANDIDATES) {
            match decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => return Ok(principal(data.claims)),
                Err(e) => last = JwtError::Invalid(e),
            }
        }
        Err(last)
    }
}

fn principal(claims: serde_json::Value) -> Principal {
    let str_claim = |k: &str| claims.get(k).and_then(|v| v.as_str());
    let subject: Arc<str> = str_claim("sub")
        .or_else(|| str_claim("client_id"))
        .or_else(|| str_claim("azp"))
        .unwrap_or("")
        .into();
    let scopes: Vec<String> = match (claims.get("scope"), claims.get("scp")) {
        (Some(serde_json::Value::String(s)), _) => {
            s.split_whitespace().map(str::to_string).collect()
        }
        (_, Some(serde_json::Value::Array(a))) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        (_, Some(serde_json::Value::String(s))) => {
            s.split_whitespace().map(str::to_string).collect()
        }
        _ => Vec::new(),
    };
    Principal {
        kind: PrincipalKind::Jwt,
        subject,
        claims: Arc::new(claims),
        api_key: None,
        team: None,
        scopes: scopes.into(),
        allowed_models: None,
        allowed_tools: None,
        allowed_prompts: None,
        allowed_resources: None,
        virtual_key: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_from_scope_or_scp() {
        let p = principal(serde_json::json!({"sub": "a", "scope": "read  write"}));
        assert_eq!(&*p.scopes, &["read".to_string(), "write".to_string()]);
        let p = principal(serde_json::json!({"client_id": "c", "scp": ["x"]}));
        assert_eq!(&*p.subject, "c");
        assert_eq!(&*p.scopes, &["x".to_string()]);
    }

    #[test]
    fn jwt_shape() {
        assert!(looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt("sk-abc"));
        assert!(!looks_like_jwt("a.b.c.d"));
    }
}
