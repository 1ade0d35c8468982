//! A small A2A agent for the quickstart (JSON-RPC binding, hand-written over axum): the agent
//! card at `/.well-known/agent-card.json` (A2A 0.3 `url` and 1.0 `supportedInterfaces`), and
//! JSON-RPC at `/` answering `message/send` (0.3) and `SendMessage` (1.0) with a message that
//! echoes the user's text, and `message/stream` (0.3) and `SendStreamingMessage` (1.0) with a
//! task that goes `working`, gets an artifact with the echo, and completes (an SSE stream).

use std::net::SocketAddr;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};

/// The agent card, pointing at `base` (the agent's own URL).
pub fn card(base: &str) -> Value {
    json!({
        "protocolVersion": "0.3.0",
        "name": "echo",
        "description": "Echoes the text of each message (the Switchboard quickstart's example agent)",
        "url": format!("{base}/"),
        "preferredTransport": "JSONRPC",
        "supportedInterfaces": [
            {"url": format!("{base}/"), "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
            {"url": format!("{base}/"), "protocolBinding": "JSONRPC", "protocolVersion": "0.3"}
        ],
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": {"streaming": true},
        "defaultInputModes": ["text/plain"],
        "defaultOutputModes": ["text/plain"],
        "skills": [{"id": "echo", "name": "Echo", "description": "Answers `echo: <text>`", "tags": ["echo"]}]
    })
}

/// The agent's routes; `base` is the URL its card names.
pub fn router(base: String) -> axum::Router {
    axum::Router::new()
        .route("/.well-known/agent-card.json", get(agent_card))
        .route("/", post(rpc))
        .with_state(base)
}

/// Serve the agent on `addr` until the process ends; returns once bound, with the bound address.
pub async fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = router(format!("http://{local}"));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), app).await;
    });
    Ok((local, task))
}

async fn agent_card(State(base): State<String>) -> Json<Value> {
    Json(card(&base))
}

/// The text parts of the request's message, joined.
fn user_text(params: &Value) -> String {
    let parts = params["message"]["parts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    parts
        .iter()
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

fn id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

fn error(rpc_id: Value, code: i64, message: &str) -> Response {
    Json(json!({"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}))
        .into_response()
}

async fn rpc(body: axum::body::Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return error(Value::Null, -32700, "parse error");
    };
    let rpc_id = req.get("id").cloned().unwrap_or(Value::Null);
    let params = req.get("params").cloned().unwrap_or(Value::Null);
    let text = format!("echo: {}", user_text(&params));
    let context = params["message"]["contextId"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(id);
    match req["method"].as_str() {
        Some("message/send") => Json(json!({"jsonrpc": "2.0", "id": rpc_id, "result": {
            "kind": "message", "role": "agent", "messageId": id(), "contextId": context,
            "parts": [{"kind": "text", "text": text}]
        }}))
        .into_response(),
        Some("SendMessage") => Json(
            json!({"jsonrpc": "2.0", "id": rpc_id, "result": {"message": {
                "role": "ROLE_AGENT", "messageId": id(), "contextId": context,
                "parts": [{"text": text}]
            }}}),
        )
        .into_response(),
        Some("SendStreamingMessage") => {
            let task = id();
            let events = [
                json!({"task": {"id": task, "contextId": context,
                                "status": {"state": "TASK_STATE_WORKING"}}}),
                json!({"artifactUpdate": {"taskId": task, "contextId": context,
                       "artifact": {"artifactId": id(), "parts": [{"text": text}]},
                       "lastChunk": true}}),
                json!({"statusUpdate": {"taskId": task, "contextId": context,
                       "status": {"state": "TASK_STATE_COMPLETED"}}}),
            ];
            sse(rpc_id, events)
        }
        Some("message/stream") => {
            let task = id();
            let events = [
                json!({"kind": "task", "id": task, "contextId": context,
                       "status": {"state": "working"}}),
                json!({"kind": "artifact-update", "taskId": task, "contextId": context,
                       "artifact": {"artifactId": id(), "parts": [{"kind": "text", "text": text}]},
                       "lastChunk": true}),
                json!({"kind": "status-update", "taskId": task, "contextId": context,
                       "status": {"state": "completed"}, "final": true}),
            ];
            sse(rpc_id, events)
        }
        Some(_) => error(rpc_id, -32601, "method not found"),
        None => error(rpc_id, -32600, "invalid request"),
    }
}

/// `events` as an SSE stream of JSON-RPC responses to `rpc_id`.
fn sse(rpc_id: Value, events: [Value; 3]) -> Response {
    let frames = events.into_iter().map(move |result| {
        let frame = json!({"jsonrpc": "2.0", "id": rpc_id.clone(), "result": result});
        Ok::<_, std::convert::Infallible>(Event::default().data(frame.to_string()))
    });
    Sse::new(futures::stream::iter(frames)).into_response()
}
