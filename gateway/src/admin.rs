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

/// What the admin endpoints read from, and do to, the running gateway
/// ([`crate::gateway::Gateway`] implements it; the admin listener knows nothing else of it).
pub trait AdminState: Clone + Send + Sync + 'static {
    /// Config loaded, listeners bound, not shutting down.
    fn is_ready(&self) -> bool;
    /// Readiness off, session streams told to reconnect (`POST /drain`).
    fn drain(&self);
    /// The metrics in OpenMetrics text.
    fn metrics_text(&self) -> String;
    /// The serving config and the last refused reload, unredacted.
    fn config_view(&self) -> ConfigView;
}

/// What `/config` shows, before redaction.
pub struct ConfigView {
    /// The serving config.
    pub config: Value,
    /// Its version (1 at start, +1 per reload).
    pub version: u64,
    /// When it was loaded.
    pub loaded_at: std::time::SystemTime,
    /// The config file, when there is one.
    pub source: Option<String>,
    /// The last refused reload, if any.
    pub last_reload_error: Option<Value>,
}

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
pub async fn serve<S: AdminState>(bind: &str, addr: SocketAddr, gw: S) -> Result<AdminHandle> {
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
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/config", get(config::<S>))
        .route("/drain", axum::routing::post(drain::<S>))
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

async fn readyz<S: AdminState>(State(gw): State<S>) -> Response {
    if gw.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// `POST /drain`: see [`crate::gateway::Gateway::drain`]. Used before taking a replica away (a Kubernetes
/// preStop hook) so session clients move with their events intact.
async fn drain<S: AdminState>(State(gw): State<S>) -> Response {
    gw.drain();
    (StatusCode::ACCEPTED, "draining\n").into_response()
}

async fn metrics<S: AdminState>(State(gw): State<S>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        gw.metrics_text(),
    )
        .into_response()
}

async fn config<S: AdminState>(State(gw): State<S>) -> Response {
    let view = gw.config_view();
    let mut effective = view.config;
    redact(&mut effective);
    let body = json!({
        "version": view.version,
        "loaded_at": humantime::format_rfc3339_seconds(view.loaded_at).to_string(),
        "source": view.source,
        "config": effective,
        "last_reload_error": view.last_reload_error,
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
                    // `tracing.otlp.headers`: every value is a collector credential.
                    if lower == "otlp"
                        && let Some(h) = child.get_mut("headers")
                    {
                        redact_all(h);
                    }
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
        let mut t = json!({"tracing": {"otlp": {"endpoint": "http://c:4317", "headers": {"x-honeycomb-team": "hc-secret"}}}});
        redact(&mut t);
        assert_eq!(
            t["tracing"]["otlp"]["headers"]["x-honeycomb-team"],
            "<redacted>"
        );
        assert_eq!(t["tracing"]["otlp"]["endpoint"], "http://c:4317");
        assert_eq!(v["headers"]["x-team"], "ml");
    }
}
