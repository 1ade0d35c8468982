//! An external guardrail service for Switchboard's `webhook` guardrail rules: `POST /check`
//! with `{"route", "direction", "kind", "texts": [...]}` answers `{"action": "allow"}`, or
//! `{"action": "reject", "reason": ...}` when a text contains one of its blocked words
//! (default `forbidden`). A text containing `[slow]` makes it wait 2 s before answering (the
//! gateway's timeout tests). `GET /stats` reports how many checks it answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

/// How long a `[slow]` text delays the verdict: far beyond any webhook timeout, so a test that
/// finishes well before it shows the verdict was not waited for, however loaded the machine.
pub const SLOW: Duration = Duration::from_secs(30);

/// The service's state: its blocked words and a count of checks.
#[derive(Clone, Default)]
pub struct Webhook {
    blocked: Arc<Vec<String>>,
    checks: Arc<AtomicU64>,
}

impl Webhook {
    /// A service rejecting texts that contain any of `blocked`.
    pub fn new(blocked: Vec<String>) -> Self {
        Webhook {
            blocked: Arc::new(blocked),
            checks: Arc::default(),
        }
    }

    /// Checks answered so far.
    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }
}

/// The service's router.
pub fn router(state: Webhook) -> Router {
    Router::new()
        .route("/check", post(check))
        .route("/stats", get(stats))
        .with_state(state)
}

async fn check(State(s): State<Webhook>, Json(body): Json<Value>) -> Json<Value> {
    let texts: Vec<String> = body
        .get("texts")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    if texts.iter().any(|t| t.contains("[slow]")) {
        tokio::time::sleep(SLOW).await;
    }
    s.checks.fetch_add(1, Ordering::Relaxed);
    let hit = s
        .blocked
        .iter()
        .find(|w| texts.iter().any(|t| t.contains(w.as_str())));
    Json(match hit {
        Some(w) => json!({"action": "reject", "reason": format!("contains `{w}`")}),
        None => json!({"action": "allow"}),
    })
}

async fn stats(State(s): State<Webhook>) -> Json<Value> {
    Json(json!({"checks": s.checks()}))
}

/// Serves on an OS-chosen loopback port in a background task.
pub async fn spawn(state: Webhook) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router(state)).await;
    });
    Ok(addr)
}
