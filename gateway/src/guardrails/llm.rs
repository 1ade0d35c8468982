//! Guardrails on an `llm` route: the text of OpenAI chat and Anthropic messages requests
//! (`messages[].content`, string or text parts, and Anthropic's `system`), the text of complete
//! answers (`choices[].message.content`, `content[].text`), and streamed answers ([`super::stream`]).
//! Other endpoints (embeddings, responses, models) pass through unchecked. Webhook rules see
//! the prompt's texts (after masking).

use axum::body::Body;
use http::{Request, Response, header};
use http_body_util::BodyExt;
use serde_json::Value;
use switchboard_core::ApiFormat;
use switchboard_llm::LlmBackend;

use super::{Guardrails, Rejected, Site};
use crate::config::Direction;
use crate::error::RequestError;

/// Largest complete answer the guardrails read back to check (the backend bounds provider
/// replies itself; this only caps the re-read).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Whether the path is one whose text the guardrails understand, and its format.
fn chat_format(path: &str) -> Option<ApiFormat> {
    if path.ends_with("/chat/completions") {
        Some(ApiFormat::OpenAi)
    } else if path.ends_with("/messages") {
        Some(ApiFormat::Anthropic)
    } else {
        None
    }
}

/// Serves one request on an `llm` route through the route's guardrails.
pub async fn serve(
    g: &std::sync::Arc<Guardrails>,
    backend: &LlmBackend,
    req: Request<Body>,
    ctx: &switchboard_core::RequestContext,
) -> Result<Response<Body>, RequestError> {
    let Some(format) = chat_format(req.uri().path()) else {
        return backend.handle(req, ctx).await;
    };
    let at = Site::of(ctx);
    let req = if g.applies(Direction::Request) && req.method() == http::Method::POST {
        check_request(g, at, req).await?
    } else {
        req
    };
    let resp = backend.handle(req, ctx).await?;
    if !g.applies(Direction::Response) || !resp.status().is_success() {
        return Ok(resp);
    }
    if switchboard_core::http::is_event_stream(resp.headers()) {
        return Ok(super::stream::wrap(g, at, format, resp));
    }
    check_answer(g, at, resp).await
}

async fn check_request(
    g: &Guardrails,
    at: Site<'_>,
    req: Request<Body>,
) -> Result<Request<Body>, RequestError> {
    let (mut parts, body) = req.into_parts();
    // The body was read and bounded by the gateway already: this only takes it back.
    let bytes = body
        .collect()
        .await
        .map_err(|_| crate::error::bad_request("the request body could not be read"))?
        .to_bytes();
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        // Not JSON: the backend refuses it in its own words.
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    };
    let changed = prompt_texts(g, at, &mut v).map_err(|r| r.error())?;
    if g.has_webhooks(Direction::Request) {
        let texts = collect_prompt(&v);
        g.check_webhooks(at, Direction::Request, "llm.prompt", &texts)
            .await
            .map_err(|r| r.error())?;
    }
    if !changed {
        return Ok(Request::from_parts(parts, Body::from(bytes)));
    }
    let out = serde_json::to_vec(&v).map_err(|_| crate::error::bad_request("invalid JSON"))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Request::from_parts(parts, Body::from(out)))
}

/// The rules on one text value: a string, or an array of parts whose `text` is checked.
fn content(g: &Guardrails, at: Site<'_>, dir: Direction, v: &mut Value) -> Result<bool, Rejected> {
    match v {
        Value::String(s) => match g.apply(at, dir, s)? {
            Some(m) => {
                *s = m;
                Ok(true)
            }
            None => Ok(false),
        },
        Value::Array(parts) => {
            let mut changed = false;
            for p in parts {
                if let Some(t) = p.get_mut("text") {
                    changed |= content(g, at, dir, t)?;
                }
            }
            Ok(changed)
        }
        _ => Ok(false),
    }
}

/// The request's prompt text: `messages[].content` and `system`.
fn prompt_texts(g: &Guardrails, at: Site<'_>, v: &mut Value) -> Result<bool, Rejected> {
    let dir = Direction::Request;
    let mut changed = false;
    if let Some(s) = v.get_mut("system") {
        changed |= content(g, at, dir, s)?;
    }
    if let Some(Value::Array(msgs)) = v.get_mut("messages") {
        for m in msgs {
            if let Some(c) = m.get_mut("content") {
                changed |= content(g, at, dir, c)?;
            }
        }
    }
    Ok(changed)
}

/// The prompt's texts (after masking), for webhooks.
fn collect_prompt(v: &Value) -> Vec<String> {
    fn push(out: &mut Vec<String>, c: &Value) {
        match c {
            Value::String(s) => out.push(s.clone()),
            Value::Array(parts) => out.extend(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .map(String::from),
            ),
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Some(s) = v.get("system") {
        push(&mut out, s);
    }
    if let Some(Value::Array(msgs)) = v.get("messages") {
        for m in msgs {
            if let Some(c) = m.get("content") {
                push(&mut out, c);
            }
        }
    }
    out
}

/// The answer's text: `choices[].message.content` (OpenAI), `content[]` (Anthropic).
fn answer_texts(g: &Guardrails, at: Site<'_>, v: &mut Value) -> Result<bool, Rejected> {
    let dir = Direction::Response;
    let mut changed = false;
    if let Some(Value::Array(choices)) = v.get_mut("choices") {
        for c in choices {
            if let Some(c) = c.get_mut("message").and_then(|m| m.get_mut("content")) {
                changed |= content(g, at, dir, c)?;
            }
        }
    }
    if let Some(c @ Value::Array(_)) = v.get_mut("content") {
        changed |= content(g, at, dir, c)?;
    }
    Ok(changed)
}

async fn check_answer(
    g: &Guardrails,
    at: Site<'_>,
    resp: Response<Body>,
) -> Result<Response<Body>, RequestError> {
    let (mut parts, body) = resp.into_parts();
    let bytes = http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
        .map_err(|_| crate::error::upstream("the answer could not be read"))?
        .to_bytes();
    let Ok(mut v) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    };
    if !answer_texts(g, at, &mut v).map_err(|r| r.error())? {
        return Ok(Response::from_parts(parts, Body::from(bytes)));
    }
    let out = serde_json::to_vec(&v)
        .map_err(|_| crate::error::upstream("the answer could not be read"))?;
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, Body::from(out)))
}
