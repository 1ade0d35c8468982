//! A small real HTTP upstream for the quickstart, the gateway's tests and benchmarks.
//!
//! | path | what it does |
//! |---|---|
//! | `GET /` | a greeting |
//! | `ANY /echo/...` | JSON of the method, path, query, headers and body size it received |
//! | `POST /stream` | echoes the request body back chunk by chunk as it arrives |
//! | `GET /bytes?n=N` | streams `N` bytes |
//! | `GET /sse?count=N&interval_ms=M&hold=ID` | `N` SSE events; with `hold`, waits after the first event until `POST /release/ID` |
//! | `POST /release/ID` | releases a held SSE stream |
//! | `GET /slow?ms=N` | answers after `N` ms |
//! | `GET /ws` | WebSocket echo |
//! | `GET /fixed` | a fixed 1 KiB body (benchmarks) |

use axum::serve::ListenerExt;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use futures::StreamExt;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::Notify;

/// Shared state: held SSE streams waiting for release.
#[derive(Clone, Default)]
pub struct UpstreamState {
    holds: Arc<Mutex<HashMap<String, Arc<Notify>>>>,
}

impl UpstreamState {
    fn hold(&self, id: &str) -> Arc<Notify> {
        self.holds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }
}

/// The upstream's router.
pub fn router() -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { "Hello from the Switchboard example upstream!\n" }),
        )
        .route("/fixed", get(fixed))
        .route("/echo", any(echo))
        .route("/echo/{*rest}", any(echo))
        .route("/stream", post(stream_echo))
        .route("/bytes", get(bytes))
        .route("/sse", get(sse))
        .route("/release/{id}", post(release))
        .route("/slow", get(slow))
        .route("/ws", get(ws))
        .with_state(UpstreamState::default())
}

/// Binds `addr` and serves until the process ends; returns the bound address.
pub async fn spawn(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), router()).await;
    });
    Ok(local)
}

static FIXED: [u8; 1024] = [b'x'; 1024];

async fn fixed() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], &FIXED[..]).into_response()
}

async fn echo(method: Method, headers: HeaderMap, req: Request) -> Response {
    let uri = req.uri().clone();
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                serde_json::Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query(),
        "headers": headers,
        "body_bytes": body.len(),
    }))
    .into_response()
}

async fn stream_echo(req: Request) -> Response {
    let stream = req.into_body().into_data_stream();
    Response::new(Body::from_stream(stream))
}

#[derive(Deserialize)]
struct BytesQuery {
    n: usize,
}

async fn bytes(Query(q): Query<BytesQuery>) -> Response {
    const CHUNK: usize = 64 * 1024;
    let chunk = Bytes::from(vec![b'a'; CHUNK]);
    let mut left = q.n;
    let stream = futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(CHUNK);
        left -= n;
        Some(Ok::<_, Infallible>(chunk.slice(..n)))
    }));
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Deserialize)]
struct SseQuery {
    #[serde(default = "default_count")]
    count: usize,
    #[serde(default)]
    interval_ms: u64,
    hold: Option<String>,
}

fn default_count() -> usize {
    3
}

async fn sse(State(state): State<UpstreamState>, Query(q): Query<SseQuery>) -> Response {
    let hold = q.hold.as_deref().map(|id| state.hold(id));
    let stream = futures::stream::unfold(0usize, move |i| {
        let hold = hold.clone();
        async move {
            if i >= q.count {
                return None;
            }
            if i == 1
                && let Some(h) = &hold
            {
                h.notified().await;
            }
            if i > 0 && q.interval_ms > 0 {
                tokio::time::sleep(Duration::from_millis(q.interval_ms)).await;
            }
            let event = format!("id: {i}\nevent: tick\ndata: {{\"n\":{i}}}\n\n");
            Some((Ok::<_, Infallible>(Bytes::from(event)), i + 1))
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn release(State(state): State<UpstreamState>, Path(id): Path<String>) -> StatusCode {
    state.hold(&id).notify_one();
    StatusCode::NO_CONTENT
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

async fn slow(Query(q): Query<SlowQuery>) -> &'static str {
    tokio::time::sleep(Duration::from_millis(q.ms)).await;
    "slow\n"
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(ws_echo)
}

async fn ws_echo(mut socket: WebSocket) {
    while let Some(Ok(msg)) = socket.next().await {
        let reply = match msg {
            Message::Text(t) => Message::Text(t),
            Message::Binary(b) => Message::Binary(b),
            Message::Close(_) => break,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            break;
        }
    }
}
