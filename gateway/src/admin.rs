//! The admin listener: `/healthz` (the process is up), `/readyz` (config loaded, listeners
//! bound, not shutting down), `/metrics` (Prometheus text), `/config` (the serving config
//! with secrets redacted, plus the last refused reload) and `POST /drain`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::gateway::Gateway;

/// A running admin listener.
pub struct AdminHandle {
    /// The bind address as configured.
    pub bind: String,
    /// The address actually bound.
    pub local_addr: SocketAddr,
    stop: CancellationToken,
}

impl AdminHandle {
    /// Stops the admin listener.
    pub fn close(&self) {
        self.stop.cancel();
    }
}

/// Binds the admin listener and serves it until closed.
pub async fn serve(bind: &str, addr: SocketAddr, gw: Gateway) -> Result<AdminHandle> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind {
            what: "admin".into(),
            addr: bind.to_string(),
            source,
        })?;
    let local_addr = listener.local_addr()?;
    let stop = CancellationToken::new();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/config", get(config))
        .route("/drain", axum::routing::post(drain))
        .with_state(gw);
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await;
    });
    tracing::info!(addr = %local_addr, "admin listening");
    Ok(AdminHandle {
        bind: bind.to_string(),
        local_addr,
        stop,
    })
}

async fn readyz(State(gw): State<Gateway>) -> Response {
    if gw.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `POST /drain`: see [`Gateway::drain`]. Used before taking a replica away (a Kubernetes
/// preStop hook) so session clients move with their events intact.
async fn drain(State(gw): State<Gateway>) -> Response {
    gw.drain();
    (StatusCode::ACCEPTED, "draining\n").into_response()
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics().encode(),
    )
        .into_response()
}

async fn config(State(gw): State<Gateway>) -> Response {
    let generation = gw.current();
    let mut effective = serde_json::to_value(&generation.config).unwrap_or(Value::Null);
    redact(&mut effective);
    let body = json!({
        "version": generation.version,
        "loaded_at": humantime::format_rfc3339_seconds(generation.loaded_at).to_string(),
        "source": gw.config_path().map(|p| p.display().to_string()),
        "config": effective,
        "last_reload_error": gw.last_failure().map(|f| serde_json::to_value(&*f).unwrap_or(Value::Null)),
    });
    axum::Json(body).into_response()
}

/// Key names whose values are secrets wherever they appear in the config.
const SECRET_KEYS: &[&str] = &[
    "api_key",
    "api_keys",
    "keys",
    "password",
    "secret",
    "client_secret",
    "token",
    "authorization",
    "cookie",
    "x-api-key",
    "sha256",
    "key",
    // `upstream_auth.value`: the credential the gateway sends upstream.
    "value",
];

/// Replaces secret values (by key name, recursively) with `"<redacted>"`.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                let lower = k.to_ascii_lowercase();
                let secret = SECRET_KEYS.contains(&lower.as_str())
                    || lower.ends_with("_key")
                    || lower.ends_with("_secret")
                    || lower.ends_with("_token")
                    || lower.ends_with("password");
                // A TLS key is a file path, not a secret.
                if secret
                    && !(lower == "key"
                        && child
                            .as_str()
                            .is_some_and(|s| s.ends_with(".pem") || s.ends_with(".key")))
                {
                    redact_all(child);
                } else {
                    redact(child);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn redact_all(v: &mut Value) {
    match v {
        Value::Object(map) => map.values_mut().for_each(redact_all),
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        Value::Null => {}
        other => *other = Value::String("<redacted>".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_by_key_name() {
        let mut v = json!({
            "providers": [{"api_key": "sk-live", "model": "m"}],
            "sessions": {"keys": ["k1", "k2"]},
            "tls": {"cert": "a.pem", "key": "a.key"},
            "headers": {"authorization": "Bearer x", "x-team": "ml"},
            "client_secret": "s"
        });
        redact(&mut v);
        let s = v.to_string();
        for secret in ["sk-live", "k1", "k2", "Bearer x", "\"s\""] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
        assert_eq!(v["tls"]["key"], "a.key");
        assert_eq!(v["headers"]["x-team"], "ml");
    }
}
