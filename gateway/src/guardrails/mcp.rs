//! Guardrails on an `mcp` route: the `arguments` of `tools/call` and `prompts/get` requests
//! (every string value in them) before they reach a target, and the `result` of every JSON-RPC
//! response to the client (tool results, resource contents, prompt messages, tool
//! descriptions in `tools/list`), in a JSON body or in the events of an SSE stream (other
//! event fields such as `id:` are kept, so resumption still works).
//!
//! Webhook rules see the strings of the arguments (after masking).
//!
//! A `reject` match in a request answers it with a JSON-RPC error for its id (the target never
//! sees it); in a response it replaces that response with a JSON-RPC error for the same id.

use std::sync::Arc;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::pins::ToolPins;
use super::{Guardrails, OwnedSite, Rejected, Site, walk_strings};
use crate::config::{Direction, ToolChanges};
use crate::error::RequestError;
use switchboard_core::Cause;

/// Largest JSON body or SSE event the guardrails read to check.
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The request with the rules applied to its tool and prompt arguments, or the JSON-RPC
/// error answer when a `reject` rule matched.
pub async fn check_request(
    g: &Guardrails,
    at: Site<'_>,
    req: Request<Body>,
    pins: Option<&ToolPins>,
) -> Result<Request<Body>, Response<Body>> {
    let blocking = pins.filter(|_| g.tool_changes == Some(ToolChanges::Block));
    if !(g.applies(Direction::Request) || blocking.is_some()) || req.method() != http::Method::POST
    {
        return Ok(req);
    }
    let (mut parts, body) = req.into_parts();
    // Already read and bounded by the gateway: this only takes it back.
    let Ok(collected) = body.collect().await else {
        return Err(crate::error::render(
            crate::error::bad_request("the request body could not be read"),
            switchboard_core::ApiFormat::JsonRpc,
        ));
    };
    let bytes = collected.to_bytes();
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    };
    let mut changed = false;
    for msg in messages(&mut v) {
        let method = msg
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !matches!(method, "tools/call" | "prompts/get") {
            continue;
        }
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        if method == "tools/call"
            && let Some(p) = blocking
            && let Some(name) = msg
                .get("params")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
            && p.blocked(at.route, name)
        {
            let e = RequestError::new(
                Cause::Forbidden,
                format!(
                    "tool `{name}` changed its definition since it was pinned; it is blocked until an administrator approves the change"
                ),
            );
            return Err(json_response(
                &json!({"jsonrpc": "2.0", "id": id, "error": e.jsonrpc_object()}),
            ));
        }
        let Some(args) = msg.get_mut("params").and_then(|p| p.get_mut("arguments")) else {
            continue;
        };
        match walk_strings(g, at, Direction::Request, args) {
            Ok(c) => changed |= c,
            Err(r) => return Err(json_response(&error_answer(&r, id))),
        }
        if g.has_webhooks(Direction::Request) {
            let mut texts = Vec::new();
            collect_strings(args, &mut texts);
            if let Err(r) = g
                .check_webhooks(at, Direction::Request, "mcp.arguments", &texts)
                .await
            {
                return Err(json_response(&error_answer(&r, id)));
            }
        }
    }
    if !changed {
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    let out = serde_json::to_vec(&v).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(out)))
}

/// The response with the rules applied to the results it carries.
pub fn wrap(
    g: &Arc<Guardrails>,
    at: Site<'_>,
    resp: Response<Body>,
    pins: Option<&ToolPins>,
) -> Response<Body> {
    let pins = pins.filter(|_| g.tool_changes.is_some()).cloned();
    if !(g.applies(Direction::Response) || pins.is_some()) || resp.status() != StatusCode::OK {
        return resp;
    }
    if switchboard_core::http::is_event_stream(resp.headers()) {
        return wrap_stream(g.clone(), OwnedSite::new(at), resp, pins);
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let g = g.clone();
    let at = OwnedSite::new(at);
    let fut = async move {
        let bytes = http_body_util::Limited::new(body, MAX_MESSAGE_BYTES)
            .collect()
            .await
            .map_err(axum::Error::new)?
            .to_bytes();
        Ok::<Bytes, axum::Error>(check_message_bytes(&g, at.site(), bytes, pins.as_ref()).await)
    };
    Response::from_parts(parts, Body::from_stream(futures::stream::once(fut)))
}

/// One JSON-RPC message (or batch) with the rules applied to its results.
async fn check_message_bytes(
    g: &Guardrails,
    at: Site<'_>,
    bytes: Bytes,
    pins: Option<&ToolPins>,
) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return bytes;
    };
    let mut changed = false;
    for msg in messages(&mut v) {
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(result) = msg.get_mut("result") else {
            continue;
        };
        if let (Some(p), Some(policy)) = (pins, g.tool_changes)
            && let Some(Value::Array(tools)) = result.get_mut("tools")
        {
            let before = tools.len();
            p.observe(at, policy, tools).await;
            changed |= tools.len() != before;
        }
        if !g.applies(Direction::Response) {
            continue;
        }
        match walk_strings(g, at, Direction::Response, result) {
            Ok(c) => changed |= c,
            Err(r) => {
                *msg = error_answer(&r, id);
                changed = true;
            }
        }
    }
    if !changed {
        return bytes;
    }
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

fn collect_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(m) => m.values().for_each(|i| collect_strings(i, out)),
        _ => {}
    }
}

/// The messages of a body: the object, or the members of a batch.
fn messages(v: &mut Value) -> Vec<&mut Value> {
    match v {
        Value::Array(items) => items.iter_mut().collect(),
        Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

fn error_answer(r: &Rejected, id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": r.error().jsonrpc_object()})
}

fn json_response(v: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(serde_json::to_vec(v).unwrap_or_default()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// The end of the first complete SSE event in `buf` and the length of its terminator.
fn event_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf.get(i) == Some(&b'\n') {
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) => return Some((i + 1, 1)),
                (Some(b'\r'), Some(b'\n')) => return Some((i + 1, 2)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// One SSE event with the rules applied to the JSON-RPC message in its data; every other
/// field (`id:`, `event:`, `retry:`, comments) is kept as it was.
async fn check_event(g: &Guardrails, at: Site<'_>, raw: &[u8], pins: Option<&ToolPins>) -> Bytes {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Bytes::copy_from_slice(raw);
    };
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let data: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    if data.is_empty() {
        return Bytes::copy_from_slice(raw);
    }
    let joined = data.join("\n");
    let checked = check_message_bytes(g, at, Bytes::from(joined.clone()), pins).await;
    if checked == joined.as_bytes() {
        return Bytes::copy_from_slice(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut data_written = false;
    for l in &lines {
        if l.starts_with("data:") {
            if !data_written {
                out.push_str("data: ");
                out.push_str(&String::from_utf8_lossy(&checked));
                out.push('\n');
                data_written = true;
            }
        } else if !l.is_empty() {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push('\n');
    Bytes::from(out)
}

fn wrap_stream(
    g: Arc<Guardrails>,
    at: OwnedSite,
    resp: Response<Body>,
    pins: Option<ToolPins>,
) -> Response<Body> {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let frames = body.into_data_stream();
    let out = futures::stream::unfold(
        (frames, BytesMut::new(), false),
        move |(mut frames, mut buf, ended)| {
            let g = g.clone();
            let at = at.clone();
            let pins = pins.clone();
            async move {
                if ended {
                    return None;
                }
                loop {
                    let mut out = BytesMut::new();
                    while let Some((end, term)) = event_end(&buf) {
                        let ev = buf.split_to(end + term);
                        out.extend_from_slice(
                            &check_event(&g, at.site(), &ev, pins.as_ref()).await,
                        );
                    }
                    if !out.is_empty() {
                        return Some((Ok(out.freeze()), (frames, buf, false)));
                    }
                    if buf.len() > MAX_MESSAGE_BYTES {
                        // An event too large to check is not passed on unchecked.
                        return Some((
                            Err(axum::Error::new("SSE event too large for the guardrails")),
                            (frames, buf, true),
                        ));
                    }
                    match frames.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                        Some(Err(e)) => return Some((Err(e), (frames, buf, true))),
                        None => {
                            // A last event without its blank line.
                            if buf.is_empty() {
                                return None;
                            }
                            let rest = check_event(&g, at.site(), &buf, pins.as_ref()).await;
                            return Some((Ok(rest), (frames, BytesMut::new(), true)));
                        }
                    }
                }
            }
        },
    );
    Response::from_parts(parts, Body::from_stream(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Detector, GuardrailAction, GuardrailRule, GuardrailsPolicy};

    const R: Site<'static> = Site {
        route: "r",
        trace: None,
    };

    #[tokio::test]
    async fn an_sse_event_keeps_its_id_and_event_fields_when_its_result_is_masked() {
        let g = Guardrails::compile(&GuardrailsPolicy {
            rules: vec![GuardrailRule {
                name: None,
                detector: Some(Detector::Email),
                regex: None,
                webhook: None,
                action: Some(GuardrailAction::Mask),
                applies_to: vec![Direction::Response],
                replacement: None,
            }],
            max_match_bytes: None,
            tool_changes: None,
        })
        .unwrap();
        let raw = b"id: 42/7\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"text\":\"a@b.example\"}}\n\n";
        let out = check_event(&g, R, raw, None).await;
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "id: 42/7\nevent: message\ndata: {\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{\"text\":\"[EMAIL]\"}}\n\n"
        );
        // An event without a match passes byte for byte.
        let raw = b"id: 1\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n";
        assert_eq!(&check_event(&g, R, raw, None).await[..], &raw[..]);
    }
}
