//! The admin listener: `/healthz` (the process is up), `/readyz` (config loaded, listeners
//! bound, not shutting down), `/metrics` (Prometheus text), `/config` (the serving config
//! with secrets redacted, plus the last refused reload), `POST /drain`, the web UI at `/ui`
//! and the JSON API under `/api` that backs it.
//!
//! Files: `auth` (the `admin.token` check and the 403 rule, in front of everything but the
//! three probe endpoints), `ui` (the pages: plain HTML, CSS and JS embedded in the binary),
//! `api` (what the pages read, and the playground, which forwards through the gateway's own
//! routes), `metrics_text` (counters read back from the Prometheus text), `keys` (virtual
//! keys, team budgets and spend: `/api/keys`, `/api/teams`, `/api/spend`).

mod api;
mod auth;
mod keys;
mod metrics_text;
mod tool_pins;
mod ui;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// What the admin endpoints read from, and do to, the running gateway
/// ([`crate::gateway::Gateway`] implements it; the admin listener knows nothing else of it).
pub trait AdminState: Clone + Send + Sync + 'static {
    /// Config loaded, listeners bound, not shutting down (and, with
    /// `sessions.redis.required_for_ready`, the shared store up).
    fn is_ready(&self) -> bool;
    /// The shared store's state for `/readyz` to show: `Some(true)` up, `Some(false)` its
    /// circuit breaker is open, `None` without a shared store.
    fn store_up(&self) -> Option<bool> {
        None
    }
    /// Readiness off, session streams told to reconnect (`POST /drain`).
    fn drain(&self);
    /// The metrics in OpenMetrics text.
    fn metrics_text(&self) -> String;
    /// The serving config and the last refused reload, unredacted.
    fn config_view(&self) -> ConfigView;
    /// `admin.token` of the serving config (read per request, so a reload changes it).
    fn admin_token(&self) -> Option<String>;
    /// The live state the UI shows beyond the config.
    fn snapshot(&self) -> impl std::future::Future<Output = Snapshot> + Send;
    /// The pinned MCP tool definitions (`/api/tool-pins`), when the gateway keeps them.
    fn tool_pins(&self) -> Option<crate::guardrails::pins::ToolPins> {
        None
    }
    /// Spend totals and budgets, with the virtual keys they belong to (`/api/keys`,
    /// `/api/teams`, `/api/spend`), when the gateway keeps them.
    fn spend(&self) -> Option<crate::spend::Spend> {
        None
    }
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

/// The live state of the gateway that the UI shows (none of it secret).
pub struct Snapshot {
    /// This replica's id (the owner of the sessions it lists).
    pub replica: String,
    /// Whether the sessions store is shared by a fleet (Redis).
    pub shared_store: bool,
    /// Where each listener is bound (port 0 resolved).
    pub listeners: Vec<ListenerAddr>,
    /// The MCP backends of the serving generation.
    pub mcp: Vec<BackendState>,
    /// The LLM backends of the serving generation.
    pub llm: Vec<BackendState>,
    /// The sessions this replica serves.
    pub sessions: Value,
    /// The A2A tasks this replica has seen recently (route, state, agent replica, age).
    pub a2a_tasks: Value,
}

/// A listener's bound address.
pub struct ListenerAddr {
    /// Listener name.
    pub name: String,
    /// The address bound.
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
}

/// The live state of one route's backend.
pub struct BackendState {
    /// Listener name.
    pub listener: String,
    /// Route name.
    pub route: String,
    /// What the backend reports (health, pools, sessions), as JSON.
    pub state: Value,
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

/// What every admin handler gets: the gateway, and facts about this admin listener.
#[derive(Clone)]
struct Ctx<S> {
    gw: S,
    /// Bound to a loopback address only (then no token is needed).
    loopback: bool,
    /// Sends the playground's requests (and the MCP page's `tools/list`) through the
    /// gateway's own listeners.
    client: reqwest::Client,
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
    let loopback = local_addr.ip().is_loopback();
    if !loopback && gw.admin_token().is_none() {
        tracing::warn!(
            addr = %local_addr,
            "the admin listener is bound beyond loopback and admin.token is not set: /ui, /api, \
             /config and /drain answer 403 (/healthz, /readyz and /metrics stay open)"
        );
    }
    let client = reqwest::Client::builder()
        // The gateway's own listeners, reached on their bound address: a TLS listener's
        // certificate names the public host, not that address.
        .tls_danger_accept_invalid_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::Backend {
            route: "admin".into(),
            message: format!("HTTP client: {e}"),
        })?;
    let ctx = Ctx {
        gw,
        loopback,
        client,
    };
    // The guard sees every request, unknown paths included; it lets the probes and the
    // sign-in through itself.
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/config", get(config::<S>))
        .route("/drain", post(drain::<S>))
        .merge(auth::routes::<S>())
        .merge(ui::routes::<S>())
        .merge(api::routes::<S>())
        .merge(tool_pins::routes::<S>())
        .merge(keys::routes::<S>())
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::guard::<S>,
        ))
        .with_state(ctx);
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await;
    });
    tracing::info!(addr = %local_addr, ui = %format!("http://{local_addr}/ui"), "admin listening");
    Ok(AdminHandle {
        bind: bind.to_string(),
        local_addr,
        stop,
    })
}

async fn readyz<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let store = match ctx.gw.store_up() {
        Some(true) => "store: up\n",
        Some(false) => "store: down\n",
        None => "",
    };
    if ctx.gw.is_ready() {
        (StatusCode::OK, format!("ready\n{store}")).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready\n{store}"),
        )
            .into_response()
    }
}

/// `POST /drain`: see [`crate::gateway::Gateway::drain`]. Used before taking a replica away (a Kubernetes
/// preStop hook) so session clients move with their events intact.
async fn drain<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    ctx.gw.drain();
    (StatusCode::ACCEPTED, "draining\n").into_response()
}

async fn metrics<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        ctx.gw.metrics_text(),
    )
        .into_response()
}

async fn config<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    axum::Json(redacted_config(&ctx.gw)).into_response()
}

/// What `/config` and `/api/config` answer: the serving config with secrets redacted.
fn redacted_config<S: AdminState>(gw: &S) -> Value {
    let view = gw.config_view();
    let mut effective = view.config;
    redact(&mut effective);
    json!({
        "version": view.version,
        "loaded_at": humantime::format_rfc3339_seconds(view.loaded_at).to_string(),
        "source": view.source,
        "config": effective,
        "last_reload_error": view.last_reload_error,
    })
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
                // A TLS key is a file path, not a secret.
                if secret_name(&lower)
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
        Value::String(s) => {
            if let Some(clean) = redact_url(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// Whether a key (lowercase) names a secret.
fn secret_name(lower: &str) -> bool {
    SECRET_KEYS.contains(&lower)
        || lower.ends_with("_key")
        || lower.ends_with("_secret")
        || lower.ends_with("_token")
        || lower.ends_with("password")
}

/// A URL's password (`redis://:pw@host`) and the values of query parameters named like
/// secrets (`?api_key=...`), redacted; `None` when `s` is not such a URL.
fn redact_url(s: &str) -> Option<String> {
    if !s.contains("://") {
        return None;
    }
    let mut url = url::Url::parse(s).ok()?;
    let mut changed = false;
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
        changed = true;
    }
    if url
        .query_pairs()
        .any(|(k, _)| secret_name(&k.to_ascii_lowercase()))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = secret_name(&k.to_ascii_lowercase());
                (
                    k.into_owned(),
                    if secret {
                        "redacted".into()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    changed.then(|| url.to_string())
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
            "client_secret": "s",
            "sessions_redis": {"url": "rediss://sb:hunter2@db:6380/0", "password": "pw2",
                "cluster": ["redis://:hunter3@10.0.0.1:7000"]}
        });
        redact(&mut v);
        let s = v.to_string();
        for secret in [
            "sk-live", "k1", "k2", "Bearer x", "\"s\"", "hunter2", "pw2", "hunter3",
        ] {
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
        assert_eq!(v["sessions_redis"]["url"], "rediss://sb:redacted@db:6380/0");
    }

    #[test]
    fn redacts_url_passwords_and_secret_query_values() {
        let mut v = json!({
            "redis": {"url": "redis://:hunter2@10.0.0.1:6379/0"},
            "upstream": "https://h/mcp?api_key=k-123&region=eu",
            "plain": "http://127.0.0.1:3000/x?page=2",
        });
        redact(&mut v);
        let s = v.to_string();
        assert!(!s.contains("hunter2") && !s.contains("k-123"), "{s}");
        assert_eq!(v["redis"]["url"], "redis://:redacted@10.0.0.1:6379/0");
        assert_eq!(v["upstream"], "https://h/mcp?api_key=redacted&region=eu");
        assert_eq!(v["plain"], "http://127.0.0.1:3000/x?page=2");
    }
}
