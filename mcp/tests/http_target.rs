//! The POSTs to a plain `http://` streamable HTTP target go out on hyper's client, not
//! reqwest's (issue 19): the target must see the same requests either way. A small recording
//! target at `/old/mcp` answers MCP itself and redirects (307) every `tools/call` to `/new/mcp`;
//! the first attempt goes out directly, the redirect sends it again through reqwest, which
//! follows it. So the target sees each call twice at the old place, once from each client, and
//! the two must be alike, header for header, in order.

use crate::harness;

use std::sync::{Arc, Mutex};

use axum::body::Body;
use harness::*;
use serde_json::{Value, json};

/// One POST as the target saw it: path, headers in order, body.
type Seen = (String, Vec<(String, String)>, bytes::Bytes);

/// Bytes of the oversized answer of tool `big` (over the route's cap in the test).
const BIG: usize = 70_000;

fn answer(v: Value, session: bool) -> http::Response<Body> {
    let mut b = http::Response::builder().header("content-type", "application/json");
    if session {
        b = b.header("mcp-session-id", "up-session-1");
    }
    b.body(Body::from(v.to_string())).unwrap()
}

/// The recording target; returns its address and what it saw.
async fn recording_target() -> (std::net::SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |req: http::Request<Body>| {
        let kept = kept.clone();
        async move {
            if req.method() != http::Method::POST {
                return http::Response::builder()
                    .status(405)
                    .body(Body::empty())
                    .unwrap();
            }
            let path = req.uri().path().to_string();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
                .collect();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            kept.lock().unwrap().push((path.clone(), headers, body.clone()));
            let msg: Value = serde_json::from_slice(&body).unwrap();
            let id = msg["id"].clone();
            match msg["method"].as_str().unwrap_or_default() {
                "initialize" => answer(
                    json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}}, "serverInfo": {"name": "rec", "version": "1"}}}),
                    true,
                ),
                "tools/list" => answer(
                    json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                        {"name": "echo", "inputSchema": {"type": "object"}},
                        {"name": "big", "inputSchema": {"type": "object"}}]}}),
                    false,
                ),
                "tools/call" if path == "/old/mcp" => http::Response::builder()
                    .status(307)
                    .header("location", "/new/mcp")
                    .body(Body::empty())
                    .unwrap(),
                "tools/call" if msg["params"]["name"] == "big" => answer(
                    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
                        {"type": "text", "text": "x".repeat(BIG)}]}}),
                    false,
                ),
                "tools/call" => answer(
                    json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
                        {"type": "text", "text": "moved"}]}}),
                    false,
                ),
                _ => http::Response::builder()
                    .status(202)
                    .body(Body::empty())
                    .unwrap(),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, seen)
}

fn reply(body: &str) -> Value {
    messages(body)
        .into_iter()
        .find(|m| m.get("result").is_some() || m.get("error").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {body:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_posts_send_what_reqwest_sends_and_redirects_are_followed() {
    let (up, seen) = recording_target().await;
    let gw = gateway(json!({
        "max_reply_bytes": 65536,
        "targets": [{"name": "rec", "http": {"url": format!("http://{up}/old/mcp"),
            "headers": {"x-team": "ml", "content-type": "application/json"}}}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    seen.lock().unwrap().clear();
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"x": 1}}});
    let (status, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let r = reply(&text);
    assert_eq!(r["id"], 7, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "moved", "{r}");

    let calls: Vec<Seen> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, b)| b.windows(10).any(|w| w == b"tools/call"))
        .cloned()
        .collect();
    let paths: Vec<&str> = calls.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(paths, ["/old/mcp", "/old/mcp", "/new/mcp"]);
    let (direct, via_reqwest) = (&calls[0], &calls[1]);
    assert_eq!(direct.1, via_reqwest.1);
    assert_eq!(direct.2, via_reqwest.2);
    let names: Vec<&str> = direct.1.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "content-type",
            "x-team",
            "accept",
            "mcp-session-id",
            "mcp-protocol-version",
            "host",
            "content-length"
        ]
    );
    let header = |name: &str| -> Vec<&str> {
        direct
            .1
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(header("mcp-session-id"), ["up-session-1"]);
    assert_eq!(header("mcp-protocol-version"), ["2025-06-18"]);
    assert_eq!(header("accept"), ["application/json, text/event-stream"]);
    assert_eq!(header("host"), [up.to_string().as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_json_answer_of_a_plain_http_target_is_refused() {
    let (up, _seen) = recording_target().await;
    let gw = gateway(json!({
        "max_reply_bytes": 65536,
        "targets": [{"name": "rec", "http": {"url": format!("http://{up}/new/mcp")}}]
    }))
    .await;
    let sid = raw_initialize(&gw.url).await;
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": {"name": "big", "arguments": {}}});
    let (status, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let r = reply(&text);
    assert_eq!(r["id"], 8, "{r}");
    assert_eq!(
        r["error"]["message"], "target `rec` sent a reply larger than the gateway accepts",
        "{r}"
    );
    // The session still works after the refusal.
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "echo", "arguments": {}}});
    let (_, _, text) = post(&gw.url, Some(&sid), &call.to_string()).await;
    assert_eq!(reply(&text)["result"]["content"][0]["text"], "moved");
}
