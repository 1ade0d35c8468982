//! A hostile MCP target (Streamable HTTP at `/mcp`) for the gateway's "upstreams are
//! untrusted" tests: it initializes normally, then answers badly.
//!
//! `tools/call` by tool name:
//! - `array`: the JSON array `[1,2]` instead of a response;
//! - `not_json`: a body that is not JSON;
//! - `wrong_types`: a response whose `result` is an array;
//! - `endless_line`: an SSE stream whose first line never ends;
//! - `endless_event`: an SSE event whose `data:` lines never end;
//! - `flood`: an SSE stream of 2000 `roots/list` requests, then the result;
//! - `echo`: a proper result (to show the gateway still answers).
//!
//! `tools/list` is an endless JSON body (a `tools` array that never closes, streamed without
//! `Content-Length`) when the target URL has `?list=huge`, else the six tools above. A reader
//! that buffers would grow without bound; the streams stop when the reader goes away.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The tools of the fixture.
pub const TOOLS: &[&str] = &[
    "array",
    "not_json",
    "wrong_types",
    "endless_line",
    "endless_event",
    "flood",
    "echo",
];

fn json_response(v: &Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

fn endless(first: Bytes, repeat: &'static [u8], content_type: &'static str) -> Response {
    let head = futures::stream::iter([Ok::<_, Infallible>(first)]);
    let tail = futures::stream::repeat_with(move || Ok(Bytes::from_static(repeat)));
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(futures::StreamExt::chain(head, tail)))
        .unwrap_or_default()
}

async fn handle(Query(q): Query<HashMap<String, String>>, body: Bytes) -> Response {
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return (http::StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    if id.is_null() {
        return http::StatusCode::ACCEPTED.into_response();
    }
    match method {
        "initialize" => {
            let version = msg
                .pointer("/params/protocolVersion")
                .cloned()
                .unwrap_or(json!("2025-06-18"));
            let mut r = json_response(&json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "hostile", "version": "0"},
            }}));
            r.headers_mut().insert(
                "mcp-session-id",
                http::HeaderValue::from_static("hostile-session"),
            );
            r
        }
        "tools/list" if q.get("list").map(String::as_str) == Some("huge") => {
            // `{"jsonrpc":"2.0","id":N,"result":{"tools":[` then tools forever.
            let head = format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":["#);
            endless(
                Bytes::from(head),
                br#"{"name":"padding","description":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","inputSchema":{"type":"object"}},"#,
                "application/json",
            )
        }
        "tools/list" => {
            let tools: Vec<Value> = TOOLS
                .iter()
                .map(|n| json!({"name": n, "inputSchema": {"type": "object"}}))
                .collect();
            json_response(&json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}}))
        }
        "tools/call" => match msg.pointer("/params/name").and_then(Value::as_str) {
            Some("array") => json_response(&json!([1, 2])),
            Some("not_json") => {
                ([("content-type", "application/json")], "<html>oops</html>").into_response()
            }
            Some("wrong_types") => {
                json_response(&json!({"jsonrpc": "2.0", "id": id, "result": [1, 2]}))
            }
            Some("endless_line") => endless(
                Bytes::from_static(b"data: "),
                b"xxxxxxxxxxxxxxxx",
                "text/event-stream",
            ),
            Some("endless_event") => endless(
                Bytes::from_static(b"event: message\n"),
                b"data: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
                "text/event-stream",
            ),
            Some("flood") => {
                let mut body = String::new();
                for i in 0..2000 {
                    let req = json!({"jsonrpc": "2.0", "id": format!("flood-{i}"), "method": "roots/list"});
                    body.push_str(&format!("event: message\ndata: {req}\n\n"));
                }
                let done = json!({"jsonrpc": "2.0", "id": id, "result": {
                    "content": [{"type": "text", "text": "flooded"}]}});
                body.push_str(&format!("event: message\ndata: {done}\n\n"));
                ([("content-type", "text/event-stream")], body).into_response()
            }
            _ => json_response(&json!({"jsonrpc": "2.0", "id": id, "result": {
                "content": [{"type": "text", "text": "echo"}]}})),
        },
        _ => json_response(&json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": "Method not found"}})),
    }
}

/// Serve the hostile target on `addr` (port 0 for a free one); returns the bound address and
/// the server task.
pub async fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new().route(
        "/mcp",
        post(handle).delete(|| async { http::StatusCode::OK }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, task))
}
