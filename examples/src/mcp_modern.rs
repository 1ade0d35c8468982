//! A small MCP server that speaks only the stateless 2026-07-28 revision (hand-written JSON-RPC
//! over axum, JSON replies): it refuses `initialize`, answers `server/discover`, asks for client
//! input with multi round-trip requests (`input_required`), and has a tool whose parameters are
//! routed by `Mcp-Param-*` headers (`x-mcp-header`). Every request's routing headers and
//! `_meta` are recorded ([`Seen`]) so tests can check what a client (the gateway) sent.
//!
//! Tools:
//! - `deploy {item}`: round 1 asks `elicitation/create` (confirm), round 2 asks
//!   `sampling/createMessage`, then answers `action=<elicitation action> sampled=<text>`. The
//!   `requestState` carries the round and the action, sealed with a checksum of a server secret
//!   so a forged state is refused.
//! - `locate {region, shard, note}`: `region` and `shard` are `x-mcp-header` parameters
//!   (`Region`, `Shard`); checks the headers against the body (400, -32020 on mismatch) and
//!   answers with the headers it received.
//! - `list_roots`: asks `roots/list`, answers with the root URIs.
//! - `insatiable`: asks for confirmation on every round, forever.
//!
//! Resources: `modern://status` (and any other URI reads back as text). Change events
//! (`subscriptions/listen`, answered as an SSE stream: the acknowledgment, then the events the
//! filter asked for, stamped with the subscription id) come from the [`Hub`], which a test
//! drives: [`Hub::touch`] a resource, [`Hub::add_tool`] a tool.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

/// What one request carried: method, routing headers (lower-case name → value) and `_meta`.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    /// JSON-RPC method.
    pub method: String,
    /// `mcp-method`, `mcp-name` and every `mcp-param-*` header.
    pub headers: Vec<(String, String)>,
    /// The request's `params._meta`.
    pub meta: Value,
    /// The request's `params`.
    pub params: Value,
}

/// Requests the server received, oldest first (cheap clone).
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<SeenRequest>>>);

impl Seen {
    /// A copy of everything recorded so far.
    pub fn all(&self) -> Vec<SeenRequest> {
        self.0.lock().unwrap().clone()
    }

    /// The recorded calls of tool `name`.
    pub fn calls(&self, name: &str) -> Vec<SeenRequest> {
        self.all()
            .into_iter()
            .filter(|r| r.method == "tools/call" && r.params["name"] == name)
            .collect()
    }
}

/// Change events for `subscriptions/listen` streams, and the streams open (cheap clone).
#[derive(Clone)]
pub struct Hub {
    events: tokio::sync::broadcast::Sender<Value>,
    open: Arc<AtomicUsize>,
    tools: Arc<Mutex<Vec<String>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            events: tokio::sync::broadcast::channel(256).0,
            open: Arc::default(),
            tools: Arc::default(),
        }
    }
}

impl Hub {
    /// Resource `uri` changed (`notifications/resources/updated` to the streams that asked).
    pub fn touch(&self, uri: &str) {
        let _ = self.events.send(json!({"jsonrpc": "2.0",
            "method": "notifications/resources/updated", "params": {"uri": uri}}));
    }

    /// Add a tool named `name` (`notifications/tools/list_changed`).
    pub fn add_tool(&self, name: &str) {
        self.tools.lock().unwrap().push(name.to_string());
        let _ = self.events.send(
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed", "params": {}}),
        );
    }

    /// `subscriptions/listen` streams open right now.
    pub fn listening(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

/// Counts an open listen stream until dropped (with the stream).
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A `subscriptions/listen` stream: the acknowledgment, then what the filter asked for.
fn listen(hub: &Hub, id: Value, params: &Value) -> Response {
    let n = &params["notifications"];
    let uris: HashSet<String> = n["resourceSubscriptions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut honored = serde_json::Map::new();
    let mut kinds = HashSet::new();
    for (key, method) in [
        ("toolsListChanged", "notifications/tools/list_changed"),
        ("promptsListChanged", "notifications/prompts/list_changed"),
        (
            "resourcesListChanged",
            "notifications/resources/list_changed",
        ),
    ] {
        if n[key] == json!(true) {
            honored.insert(key.into(), json!(true));
            kinds.insert(method);
        }
    }
    if !uris.is_empty() {
        honored.insert("resourceSubscriptions".into(), json!(uris));
    }
    let meta = json!({"io.modelcontextprotocol/subscriptionId": id});
    let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": honored, "_meta": meta}});
    let rx = hub.events.subscribe();
    hub.open.fetch_add(1, Ordering::SeqCst);
    let open = Open(hub.open.clone());
    let events = futures::stream::unfold((rx, open), move |(mut rx, open)| {
        let (kinds, uris, meta) = (kinds.clone(), uris.clone(), meta.clone());
        async move {
            loop {
                let mut ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return None,
                };
                let method = ev["method"].as_str().unwrap_or_default();
                let wanted = kinds.contains(method)
                    || (method == "notifications/resources/updated"
                        && uris.contains(ev["params"]["uri"].as_str().unwrap_or_default()));
                if wanted {
                    ev["params"]["_meta"] = meta.clone();
                    return Some((ev, (rx, open)));
                }
            }
        }
    });
    let frames = futures::StreamExt::map(
        futures::StreamExt::chain(futures::stream::once(async move { ack }), events),
        |m| Ok::<_, std::convert::Infallible>(format!("event: message\ndata: {m}\n\n")),
    );
    (
        [(http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(frames),
    )
        .into_response()
}

const VERSION: &str = "2026-07-28";
const SECRET: &str = "mcp-modern-fixture";

fn tools() -> Value {
    json!([
        {"name": "deploy", "description": "Confirms with the user, asks the model for a summary, then deploys",
         "inputSchema": {"type": "object", "properties": {"item": {"type": "string"}}, "required": ["item"]}},
        {"name": "locate", "description": "Routed by region and shard headers",
         "inputSchema": {"type": "object", "properties": {
             "region": {"type": "string", "x-mcp-header": "Region"},
             "shard": {"type": "integer", "x-mcp-header": "Shard"},
             "note": {"type": "string"}}, "required": ["region"]}},
        {"name": "list_roots", "description": "Asks the client for its roots",
         "inputSchema": {"type": "object", "properties": {}}},
        {"name": "insatiable", "description": "Asks for confirmation forever",
         "inputSchema": {"type": "object", "properties": {}}},
    ])
}

/// A state the server can recognize as its own: `payload.checksum`.
fn seal(payload: &str) -> String {
    let sum: u32 = format!("{SECRET}{payload}")
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
    format!(
        "{}.{sum:08x}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload)
    )
}

fn unseal(state: &str) -> Option<String> {
    let (b64, _) = state.split_once('.')?;
    let payload = String::from_utf8(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(b64)
            .ok()?,
    )
    .ok()?;
    (seal(&payload) == state).then_some(payload)
}

fn text(t: String) -> Value {
    json!({"resultType": "complete", "content": [{"type": "text", "text": t}]})
}

fn input_required(requests: Value, state: &str) -> Value {
    json!({"resultType": "input_required", "inputRequests": requests, "requestState": seal(state)})
}

fn confirm(item: &str) -> Value {
    json!({"method": "elicitation/create", "params": {"mode": "form", "message": format!("Deploy {item}?"),
        "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}})
}

fn decode_header(v: &str) -> String {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default(),
        None => v.to_string(),
    }
}

type Reply = Result<Value, (StatusCode, i64, String)>;

fn call_tool(params: &Value, headers: &HeaderMap) -> Reply {
    let args = &params["arguments"];
    let responses = &params["inputResponses"];
    let state = match params.get("requestState").and_then(Value::as_str) {
        Some(s) => {
            Some(unseal(s).ok_or((StatusCode::OK, -32602, "invalid requestState".to_string()))?)
        }
        None => None,
    };
    let name = params["name"].as_str().unwrap_or_default();
    Ok(match (name, state.as_deref()) {
        ("deploy", None) => {
            let item = args["item"].as_str().unwrap_or_default();
            input_required(json!({"confirm": confirm(item)}), "round1")
        }
        ("deploy", Some("round1")) => {
            let action = responses["confirm"]["action"].as_str().unwrap_or("missing");
            let item = args["item"].as_str().unwrap_or_default();
            input_required(
                json!({"summary": {"method": "sampling/createMessage", "params": {
                    "messages": [{"role": "user", "content": {"type": "text", "text": format!("summarize {item}")}}],
                    "maxTokens": 20}}}),
                &format!("round2:{action}"),
            )
        }
        ("deploy", Some(s)) if s.starts_with("round2:") => {
            let action = &s["round2:".len()..];
            let sampled = responses["summary"]["content"]["text"]
                .as_str()
                .unwrap_or("missing");
            text(format!("action={action} sampled={sampled}"))
        }
        ("locate", _) => {
            for (header, key) in [("mcp-param-region", "region"), ("mcp-param-shard", "shard")] {
                let h = headers
                    .get(header)
                    .and_then(|v| v.to_str().ok())
                    .map(decode_header);
                let body = match &args[key] {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                if h != body {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        -32020,
                        format!("{header} does not match the body"),
                    ));
                }
            }
            let mut seen: Vec<String> = headers
                .iter()
                .filter(|(k, _)| k.as_str().starts_with("mcp-"))
                .filter(|(k, _)| k.as_str() != "mcp-protocol-version")
                .map(|(k, v)| format!("{k}={}", v.to_str().unwrap_or("?")))
                .collect();
            seen.sort();
            text(seen.join(";"))
        }
        ("list_roots", None) => input_required(
            json!({"roots": {"method": "roots/list", "params": {}}}),
            "roots",
        ),
        ("list_roots", Some(_)) => {
            let uris: Vec<&str> = responses["roots"]["roots"]
                .as_array()
                .map(|a| a.iter().filter_map(|r| r["uri"].as_str()).collect())
                .unwrap_or_default();
            text(format!("roots={}", uris.join(",")))
        }
        ("insatiable", s) => {
            let n: u32 = s.and_then(|s| s.parse().ok()).unwrap_or(0);
            input_required(json!({"again": confirm("more")}), &(n + 1).to_string())
        }
        _ => return Err((StatusCode::OK, -32602, format!("Unknown tool: {name}"))),
    })
}

async fn handle(
    State((seen, hub)): State<(Seen, Hub)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let reply = |status: StatusCode, v: Value| {
        (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error"}}),
        );
    };
    let id = msg["id"].clone();
    let method = msg["method"].as_str().unwrap_or_default().to_string();
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    let recorded: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| {
            let k = k.as_str();
            k == "mcp-method" || k == "mcp-name" || k.starts_with("mcp-param-")
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    seen.0.lock().unwrap().push(SeenRequest {
        method: method.clone(),
        headers: recorded,
        meta: params.get("_meta").cloned().unwrap_or(Value::Null),
        params: params.clone(),
    });
    if id.is_null() {
        return StatusCode::ACCEPTED.into_response();
    }
    let error = |status, code: i64, m: String| {
        reply(
            status,
            json!({"jsonrpc": "2.0", "id": id.clone(), "error": {"code": code, "message": m}}),
        )
    };
    if method == "initialize" {
        return error(
            StatusCode::BAD_REQUEST,
            -32022,
            format!("unsupported protocol version; supported: [\"{VERSION}\"]"),
        );
    }
    if params.pointer("/_meta/io.modelcontextprotocol~1protocolVersion") != Some(&json!(VERSION)) {
        return error(
            StatusCode::BAD_REQUEST,
            -32600,
            "missing _meta protocol version".into(),
        );
    }
    if headers.get("mcp-method").and_then(|v| v.to_str().ok()) != Some(method.as_str()) {
        return error(
            StatusCode::BAD_REQUEST,
            -32020,
            "Mcp-Method header mismatch".into(),
        );
    }
    if method == "subscriptions/listen" {
        return listen(&hub, id, &params);
    }
    let result = match method.as_str() {
        "server/discover" => Ok(json!({
            "resultType": "complete",
            "supportedVersions": [VERSION],
            "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true}},
            "serverInfo": {"name": "switchboard-mcp-modern", "version": env!("CARGO_PKG_VERSION")},
        })),
        "tools/list" => {
            let mut all = tools();
            if let Some(a) = all.as_array_mut() {
                for name in hub.tools.lock().unwrap().iter() {
                    a.push(json!({"name": name, "inputSchema": {"type": "object"}}));
                }
            }
            Ok(json!({"resultType": "complete", "tools": all}))
        }
        "resources/list" => Ok(json!({"resultType": "complete", "resources": [
            {"uri": "modern://status", "name": "status", "mimeType": "text/plain"}]})),
        "resources/read" => {
            let uri = params["uri"].as_str().unwrap_or_default();
            Ok(json!({"resultType": "complete", "contents": [
                {"uri": uri, "mimeType": "text/plain", "text": format!("contents of {uri}")}]}))
        }
        "tools/call" => call_tool(&params, &headers),
        "ping" => Ok(json!({})),
        other => Err((StatusCode::OK, -32601, format!("Method not found: {other}"))),
    };
    match result {
        Ok(r) => reply(
            StatusCode::OK,
            json!({"jsonrpc": "2.0", "id": id, "result": r}),
        ),
        Err((status, code, m)) => error(status, code, m),
    }
}

/// The server as an axum router at `/mcp`, recording into `seen`.
pub fn router(seen: Seen) -> axum::Router {
    router_with_hub(seen, Hub::default())
}

/// The server as an axum router at `/mcp`, recording into `seen`, its change events from `hub`.
pub fn router_with_hub(seen: Seen, hub: Hub) -> axum::Router {
    axum::Router::new()
        .route("/mcp", axum::routing::post(handle))
        .with_state((seen, hub))
}

/// Like [`serve`], with the [`Hub`] that drives its change events.
pub async fn serve_hub(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>, Seen, Hub)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let (seen, hub) = (Seen::default(), Hub::default());
    let app = router_with_hub(seen.clone(), hub.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), app).await;
    });
    Ok((local, task, seen, hub))
}

/// Serve on `addr`; returns once bound, with the bound address, the task and the record.
pub async fn serve(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>, Seen)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let seen = Seen::default();
    let app = router(seen.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), app).await;
    });
    Ok((local, task, seen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_sealed() {
        let s = seal("round1");
        assert_eq!(unseal(&s).as_deref(), Some("round1"));
        assert_eq!(unseal(&s.replace('.', ".0")), None);
        assert_eq!(unseal("cm91bmQy.00000000"), None);
    }
}
