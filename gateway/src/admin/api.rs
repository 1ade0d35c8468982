//! The JSON API under `/api` that the UI's pages read (and tests call):
//!
//! - `GET /api/overview`: listeners (bound addresses) and their routes, from the redacted config;
//! - `GET /api/mcp`: each MCP route's targets with health, tools and call counts;
//! - `GET /api/sessions`: the MCP sessions this replica serves (age, idle time, owner) and the
//!   A2A routes' traffic;
//! - `GET /api/llm`: models, their providers' pool state (outlier ejection), token usage and
//!   cost;
//! - `GET /api/config`: what `/config` shows (secrets redacted, last reload error);
//! - `POST /api/playground/mcp` and `POST /api/playground/chat`: the playground.
//!
//! The playground and the MCP page's tool listing do not reach upstreams directly: they send an
//! ordinary request to the gateway's own listener, on the chosen route, so its policies (authn,
//! authz, rate limits, headers) apply as to any client. A credential for the route can be given
//! (`authorization`), which is sent as that request's `Authorization` header and shown nowhere.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::error;
use super::metrics_text::samples;
use super::{AdminState, Ctx, ListenerAddr, redacted_config};

/// How long the MCP page waits for a route's `tools/list`.
const LIST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest MCP answer the admin reads.
const MAX_MCP_REPLY: usize = 4 << 20;
/// The stateless MCP revision the admin's requests speak (no session is created).
const STATELESS: &str = "2026-07-28";

pub(super) fn routes<S: AdminState>() -> Router<Ctx<S>> {
    Router::new()
        .route("/api/overview", get(overview::<S>))
        .route("/api/mcp", get(mcp::<S>))
        .route("/api/sessions", get(sessions::<S>))
        .route("/api/llm", get(llm::<S>))
        .route("/api/config", get(config::<S>))
        .route("/api/playground/mcp", post(playground_mcp::<S>))
        .route("/api/playground/chat", post(playground_chat::<S>))
}

/// A URL as the pages show it: without userinfo and query (either may carry a credential that
/// redaction by key name cannot see); a dropped query shows as `?…`.
fn shown_url(u: &str) -> String {
    let Ok(mut url) = url::Url::parse(u) else {
        return u.to_string();
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let had_query = url.query().is_some();
    url.set_query(None);
    if had_query {
        format!("{url}?…")
    } else {
        url.to_string()
    }
}

/// The kind of a route's backend, from its config.
fn kind(route: &Value) -> &'static str {
    ["mcp", "llm", "a2a", "http", "redirect"]
        .into_iter()
        .find(|k| route.get(*k).is_some_and(|v| !v.is_null()))
        .unwrap_or("none")
}

/// The path a request to `route` is sent to: its prefix or exact path.
fn route_path(route: &Value) -> String {
    let m = route.get("match");
    let p = m
        .and_then(|m| m.get("path_prefix").or_else(|| m.get("path")))
        .and_then(Value::as_str)
        .unwrap_or("/");
    if p.is_empty() {
        "/".into()
    } else {
        p.to_string()
    }
}

fn listeners(cfg: &Value) -> &[Value] {
    cfg.pointer("/config/listeners")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn routes_of(l: &Value) -> &[Value] {
    l.get("routes")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn name(v: &Value) -> &str {
    v.get("name").and_then(Value::as_str).unwrap_or("")
}

fn find_route<'a>(cfg: &'a Value, listener: &str, route: &str) -> Option<&'a Value> {
    listeners(cfg)
        .iter()
        .find(|l| name(l) == listener)
        .and_then(|l| routes_of(l).iter().find(|r| name(r) == route))
}

async fn overview<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let cfg = redacted_config(&ctx.gw);
    let snap = ctx.gw.snapshot().await;
    let out: Vec<Value> = listeners(&cfg)
        .iter()
        .map(|l| {
            let bound = snap.listeners.iter().find(|a| a.name == name(l));
            json!({
                "name": name(l),
                "bind": l.get("bind"),
                "address": bound.map(|a| a.addr.to_string()),
                "tls": bound.is_some_and(|a| a.tls),
                "routes": routes_of(l).iter().map(|r| json!({
                    "name": name(r),
                    "kind": kind(r),
                    "path": route_path(r),
                    "match": r.get("match"),
                    "policies": r.get("policies").and_then(Value::as_object)
                        .map(|p| p.keys().cloned().collect::<Vec<_>>()).unwrap_or_default(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    axum::Json(json!({
        "replica": snap.replica,
        "ready": ctx.gw.is_ready(),
        "version": cfg.get("version"),
        "loaded_at": cfg.get("loaded_at"),
        "listeners": out,
    }))
    .into_response()
}

/// Where the admin reaches a listener: its bound address, the loopback one when it is bound
/// to every interface.
fn reach(a: &ListenerAddr) -> String {
    let ip = match a.addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if a.tls { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, a.addr.port()))
}

/// A request through the gateway's own listener `listener`, to `path`.
async fn send<S: AdminState>(
    ctx: &Ctx<S>,
    listener: &str,
    path: &str,
    body: &Value,
    accept: &str,
    authorization: Option<&str>,
    timeout: Option<Duration>,
) -> Result<reqwest::Response, String> {
    let snap = ctx.gw.snapshot().await;
    let a = snap
        .listeners
        .iter()
        .find(|a| a.name == listener)
        .ok_or_else(|| format!("listener `{listener}` is not serving"))?;
    let mut req = ctx
        .client
        .post(format!("{}{path}", reach(a)))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, accept)
        .body(body.to_string());
    if let Some(auth) = authorization.filter(|s| !s.is_empty()) {
        req = req.header(header::AUTHORIZATION, auth);
    }
    if let Some(t) = timeout {
        req = req.timeout(t);
    }
    req.send()
        .await
        .map_err(|e| format!("the gateway's listener `{listener}` did not answer: {e}"))
}

/// One stateless MCP request (no session) through `path` on `listener`; the JSON-RPC answer.
async fn mcp_request<S: AdminState>(
    ctx: &Ctx<S>,
    listener: &str,
    path: &str,
    method: &str,
    params: Value,
    authorization: Option<&str>,
) -> Result<(u16, Value), String> {
    let mut params = match params {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    params.insert(
        "_meta".into(),
        json!({
            "io.modelcontextprotocol/protocolVersion": STATELESS,
            "io.modelcontextprotocol/clientCapabilities": {},
        }),
    );
    let msg = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp = send(
        ctx,
        listener,
        path,
        &msg,
        "application/json, text/event-stream",
        authorization,
        Some(LIST_TIMEOUT),
    )
    .await?;
    let status = resp.status().as_u16();
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let mut body = Vec::new();
    let mut stream = resp;
    while let Some(chunk) = stream.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_MCP_REPLY {
            return Err("the MCP answer is too large to show".into());
        }
        body.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&body);
    let reply = if sse {
        // The answer is the event that carries our request's id.
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| json!({"body": text}))
    };
    Ok((status, reply))
}

/// Sums of `mcp_requests_total` for `tools/call`, by target and result.
fn tool_calls(metrics: &str) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for s in samples(metrics, "mcp_requests_total") {
        if s.label("method") == "tools/call" {
            *out.entry(s.label("target").to_string())
                .or_default()
                .entry(s.label("result").to_string())
                .or_default() += s.value as u64;
        }
    }
    out
}

async fn mcp<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let cfg = redacted_config(&ctx.gw);
    let snap = ctx.gw.snapshot().await;
    let calls = tool_calls(&ctx.gw.metrics_text());
    let mut routes = Vec::new();
    for b in &snap.mcp {
        let Some(route) = find_route(&cfg, &b.listener, &b.route) else {
            continue;
        };
        let path = route_path(route);
        let targets = route
            .pointer("/mcp/targets")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let prefixed = targets.len() > 1
            || route.pointer("/mcp/prefix").and_then(Value::as_str) == Some("always");
        let listed = mcp_request(&ctx, &b.listener, &path, "tools/list", json!({}), None).await;
        let (tools, tools_error): (Vec<Value>, Option<String>) = match listed {
            Ok((_, reply)) => match reply.pointer("/result/tools").and_then(Value::as_array) {
                Some(t) => (t.clone(), None),
                None => (
                    Vec::new(),
                    Some(
                        reply
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .unwrap_or("tools/list gave no tools")
                            .to_string(),
                    ),
                ),
            },
            Err(e) => (Vec::new(), Some(e)),
        };
        let pids = b.state.get("stdio_pids");
        let targets: Vec<Value> = targets
            .iter()
            .map(|t| {
                let tname = name(t);
                let tkind = ["stdio", "http", "sse", "openapi"]
                    .into_iter()
                    .find(|k| t.get(*k).is_some_and(|v| !v.is_null()))
                    .unwrap_or("unknown");
                let endpoint = match tkind {
                    "stdio" => t.pointer("/stdio/command"),
                    "openapi" => t.pointer("/openapi/spec"),
                    k => t.pointer(&format!("/{k}/url")),
                }
                .and_then(Value::as_str)
                .map(|e| {
                    if tkind == "stdio" {
                        e.to_string()
                    } else {
                        shown_url(e)
                    }
                });
                let own: Vec<&str> = tools
                    .iter()
                    .filter_map(|tool| tool.get("name").and_then(Value::as_str))
                    .filter(|n| {
                        !prefixed
                            || n.strip_prefix(tname)
                                .is_some_and(|rest| rest.starts_with("__"))
                    })
                    .collect();
                let pid = pids.and_then(|p| p.get(tname)).cloned();
                let health = if tools_error.is_some() && own.is_empty() {
                    "unknown"
                } else if !own.is_empty() || pid.is_some() {
                    "up"
                } else {
                    "down"
                };
                json!({
                    "name": tname,
                    "kind": tkind,
                    "endpoint": endpoint,
                    "pid": pid,
                    "health": health,
                    "tools": own,
                    "calls": calls.get(tname).cloned().unwrap_or_default(),
                })
            })
            .collect();
        routes.push(json!({
            "listener": b.listener,
            "route": b.route,
            "path": path,
            "sessions": b.state.get("sessions"),
            "targets": targets,
            "tools": tools.iter().map(|t| json!({
                "name": t.get("name"),
                "description": t.get("description"),
                "inputSchema": t.get("inputSchema"),
            })).collect::<Vec<_>>(),
            "tools_error": tools_error,
        }));
    }
    axum::Json(json!({"routes": routes})).into_response()
}

async fn sessions<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let snap = ctx.gw.snapshot().await;
    let cfg = redacted_config(&ctx.gw);
    let metrics = ctx.gw.metrics_text();
    let mut a2a: BTreeMap<String, Value> = BTreeMap::new();
    for l in listeners(&cfg) {
        for r in routes_of(l).iter().filter(|r| kind(r) == "a2a") {
            a2a.insert(
                name(r).to_string(),
                json!({"listener": name(l), "route": name(r), "path": route_path(r),
                       "requests": {}, "task_states": {}}),
            );
        }
    }
    for (family, key, label) in [
        ("a2a_requests_total", "requests", "outcome"),
        ("a2a_task_states_total", "task_states", "state"),
    ] {
        for s in samples(&metrics, family) {
            if let Some(Value::Object(m)) =
                a2a.get_mut(s.label("route")).and_then(|r| r.get_mut(key))
            {
                let n = m.get(s.label(label)).and_then(Value::as_f64).unwrap_or(0.0);
                m.insert(s.label(label).to_string(), json!(n + s.value));
            }
        }
    }
    let mcp_count = snap.sessions.as_array().map_or(0, Vec::len);
    let mut a2a_tasks = snap.a2a_tasks;
    if let Some(tasks) = a2a_tasks.as_array_mut() {
        for t in tasks {
            if let Some(r) = t.get("replica").and_then(Value::as_str).map(shown_url) {
                t["replica"] = Value::String(r);
            }
        }
    }
    axum::Json(json!({
        "replica": snap.replica,
        "shared_store": snap.shared_store,
        "scope": "this replica",
        "note": "The sessions store has no listing (Redis keeps sessions by id only): this page \
                 shows the sessions this replica serves. With a shared store, open each \
                 replica's admin UI for the rest of the fleet.",
        "mcp": {"count": mcp_count, "sessions": snap.sessions,
                "by_route": snap.mcp.iter().map(|b| json!({
                    "listener": b.listener, "route": b.route, "sessions": b.state.get("sessions"),
                })).collect::<Vec<_>>()},
        "a2a": a2a.into_values().collect::<Vec<_>>(),
        "a2a_tasks": a2a_tasks,
    }))
    .into_response()
}

async fn llm<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    let snap = ctx.gw.snapshot().await;
    let cfg = redacted_config(&ctx.gw);
    let metrics = ctx.gw.metrics_text();
    // Tokens by (provider, requested model) and type; the count of the input histogram is the
    // number of requests that reported usage.
    let mut usage: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for s in samples(&metrics, "gen_ai_client_token_usage_sum") {
        *usage
            .entry((
                s.label("gen_ai_provider_name").to_string(),
                s.label("gen_ai_request_model").to_string(),
            ))
            .or_default()
            .entry(s.label("gen_ai_token_type").to_string())
            .or_default() += s.value;
    }
    for s in samples(&metrics, "gen_ai_client_token_usage_count") {
        if s.label("gen_ai_token_type") == "input" {
            *usage
                .entry((
                    s.label("gen_ai_provider_name").to_string(),
                    s.label("gen_ai_request_model").to_string(),
                ))
                .or_default()
                .entry("requests".into())
                .or_default() += s.value;
        }
    }
    let cost: Vec<Value> = samples(&metrics, "llm_cost_usd_total")
        .into_iter()
        .map(|s| {
            json!({"provider": s.label("gen_ai_provider_name"),
                   "model": s.label("gen_ai_response_model"), "usd": s.value})
        })
        .collect();
    let routes: Vec<Value> = snap
        .llm
        .iter()
        .map(|b| {
            json!({
                "listener": b.listener,
                "route": b.route,
                "path": find_route(&cfg, &b.listener, &b.route).map(route_path),
                "models": b.state,
            })
        })
        .collect();
    axum::Json(json!({
        "routes": routes,
        "usage": usage.into_iter().map(|((provider, model), t)| json!({
            "provider": provider, "model": model, "tokens": t,
        })).collect::<Vec<_>>(),
        "cost": cost,
        "prices": cfg.pointer("/config/listeners").map(|_| {
            listeners(&cfg).iter().flat_map(routes_of)
                .filter_map(|r| r.pointer("/llm/prices")).cloned().collect::<Vec<_>>()
        }),
    }))
    .into_response()
}

async fn config<S: AdminState>(State(ctx): State<Ctx<S>>) -> Response {
    axum::Json(redacted_config(&ctx.gw)).into_response()
}

/// A playground request: which route, and optionally the credential the route wants.
#[derive(Deserialize)]
struct Target {
    listener: String,
    route: String,
    #[serde(default)]
    authorization: Option<String>,
}

#[derive(Deserialize)]
struct McpCall {
    #[serde(flatten)]
    target: Target,
    /// `tools/list` or `tools/call`.
    method: String,
    #[serde(default)]
    params: Value,
}

async fn playground_mcp<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    axum::Json(call): axum::Json<McpCall>,
) -> Response {
    if !matches!(call.method.as_str(), "tools/list" | "tools/call") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the playground sends tools/list and tools/call",
        );
    }
    let cfg = redacted_config(&ctx.gw);
    let Some(route) =
        find_route(&cfg, &call.target.listener, &call.target.route).filter(|r| kind(r) == "mcp")
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such MCP route");
    };
    match mcp_request(
        &ctx,
        &call.target.listener,
        &route_path(route),
        &call.method,
        call.params,
        call.target.authorization.as_deref(),
    )
    .await
    {
        Ok((status, reply)) => {
            axum::Json(json!({"status": status, "reply": reply})).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, "upstream", &e),
    }
}

#[derive(Deserialize)]
struct Chat {
    #[serde(flatten)]
    target: Target,
    model: String,
    messages: Value,
}

/// Sends a streamed chat completion through the chosen LLM route and passes the SSE stream
/// back as it arrives.
async fn playground_chat<S: AdminState>(
    State(ctx): State<Ctx<S>>,
    axum::Json(chat): axum::Json<Chat>,
) -> Response {
    let cfg = redacted_config(&ctx.gw);
    let Some(route) =
        find_route(&cfg, &chat.target.listener, &chat.target.route).filter(|r| kind(r) == "llm")
    else {
        return error(StatusCode::NOT_FOUND, "not_found", "no such LLM route");
    };
    let path = format!(
        "{}/chat/completions",
        route_path(route).trim_end_matches('/')
    );
    let body = json!({
        "model": chat.model,
        "messages": chat.messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let resp = match send(
        &ctx,
        &chat.target.listener,
        &path,
        &body,
        "text/event-stream",
        chat.target.authorization.as_deref(),
        None,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_GATEWAY, "upstream", &e),
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let provider = resp
        .headers()
        .get("x-switchboard-provider")
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let mut r = Response::new(Body::from_stream(resp.bytes_stream()));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, content_type);
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(p) = provider {
        r.headers_mut().insert("x-switchboard-provider", p);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_userinfo_and_query() {
        assert_eq!(
            shown_url("http://user:pw@h:1/mcp?key=s3cret&x=1"),
            "http://h:1/mcp?…"
        );
        assert_eq!(shown_url("http://h/mcp"), "http://h/mcp");
    }

    #[test]
    fn route_paths_and_kinds() {
        let r = json!({"name": "m", "match": {"path_prefix": "/v1"}, "llm": {}});
        assert_eq!(route_path(&r), "/v1");
        assert_eq!(kind(&r), "llm");
        assert_eq!(route_path(&json!({"match": {}})), "/");
    }
}
