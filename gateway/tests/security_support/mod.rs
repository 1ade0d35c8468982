//! Shared by the security tests: signing keys minted per test (Ed25519 and P-256 via rcgen),
//! tokens, and a JWKS server whose key set a test can rotate and whose fetches it can count.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// Issuer used by the tests' configs.
pub const ISSUER: &str = "https://idp.test";
/// The gateway's audience in the tests' configs.
pub const AUDIENCE: &str = "switchboard-test";

/// A private key that signs tokens, and its public JWK.
pub struct SigningKey {
    /// The `kid`.
    pub kid: String,
    /// Algorithm.
    pub alg: Algorithm,
    enc: EncodingKey,
    /// The public JWK.
    pub jwk: Value,
}

impl SigningKey {
    /// A fresh Ed25519 key.
    pub fn ed25519(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let enc = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(kp.public_key_raw());
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            enc,
            jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "use": "sig"}),
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let enc = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
        let raw = kp.public_key_raw();
        assert_eq!(raw.len(), 65, "uncompressed P-256 point");
        SigningKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            enc,
            jwk: json!({
                "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": kid,
                "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
            }),
        }
    }

    /// Signs `claims` with this key and its `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs `claims` with this key but names `kid` in the header.
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut h = Header::new(self.alg);
        h.kid = Some(kid.into());
        jsonwebtoken::encode(&h, claims, &self.enc).unwrap()
    }
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Valid claims for `sub`, expiring in an hour.
pub fn claims(sub: &str) -> Value {
    json!({"iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now(), "exp": now() + 3600})
}

/// An unsigned token (`alg: none`) with `claims`.
pub fn unsigned(kid: &str, claims: &Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{h}.{c}.")
}

/// An HS256 token whose HMAC secret is `secret` (for algorithm-confusion attempts).
pub fn hs256(kid: &str, secret: &[u8], claims: &Value) -> String {
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some(kid.into());
    jsonwebtoken::encode(&h, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// A JWKS server on a free port.
#[derive(Clone)]
pub struct JwksServer {
    /// Its address.
    pub addr: SocketAddr,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl JwksServer {
    /// Serves `keys` at `/jwks.json`.
    pub async fn start(keys: &[&SigningKey]) -> Self {
        let state = JwksServer {
            addr: "127.0.0.1:0".parse().unwrap(),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect())),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer { addr, ..state }
    }

    /// The JWKS URL.
    pub fn url(&self) -> String {
        format!("http://{}/jwks.json", self.addr)
    }

    /// Replaces the served keys (a rotation at the identity provider).
    pub fn rotate(&self, keys: &[&SigningKey]) {
        *self.keys.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// How many times the JWKS was fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn serve_jwks(State(s): State<JwksServer>) -> axum::Json<Value> {
    s.fetches.fetch_add(1, Ordering::SeqCst);
    let keys = s.keys.lock().unwrap().clone();
    axum::Json(json!({ "keys": keys }))
}
