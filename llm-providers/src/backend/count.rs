//! Token counting: Anthropic's `POST …/messages/count_tokens` and OpenAI's
//! `POST …/responses/input_tokens`. A model with a provider that counts (Anthropic for the
//! first, OpenAI for the second) has the request forwarded through its pool like any other
//! pass-through, the model rewritten; otherwise the gateway answers with its own estimate
//! ([`estimate_tokens`]) in the same shape. `x-switchboard-token-count` says which
//! (`provider` or `estimated`).

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;
use switchboard_core::RequestContext;

use super::{LlmBackend, check_access, json_response};
use crate::Error;
use crate::provider::Operation;

/// Tokens counted for one image (Anthropic's cost of a ~1.15 megapixel image, its upper bound
/// before resizing).
pub const IMAGE_TOKENS: u64 = 1600;

/// The gateway's token estimate for a counting request's body: the UTF-8 bytes of every string
/// in it except `model`, divided by four and rounded up, plus [`IMAGE_TOKENS`] per image block
/// (`image`, `input_image`, `image_url`; their data is not counted as text).
pub fn estimate_tokens(body: &serde_json::Map<String, Value>) -> u64 {
    fn walk(v: &Value, bytes: &mut u64, images: &mut u64) {
        match v {
            Value::String(s) => *bytes += s.len() as u64,
            Value::Array(a) => a.iter().for_each(|v| walk(v, bytes, images)),
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str);
                if matches!(kind, Some("image" | "input_image" | "image_url")) {
                    *images += 1;
                    return;
                }
                o.values().for_each(|v| walk(v, bytes, images));
            }
            _ => {}
        }
    }
    let (mut bytes, mut images) = (0, 0);
    for (k, v) in body {
        if k != "model" {
            walk(v, &mut bytes, &mut images);
        }
    }
    bytes.div_ceil(4) + images * IMAGE_TOKENS
}

impl LlmBackend {
    /// `op` is [`Operation::CountTokens`] or [`Operation::InputTokens`]; `routed` is the model
    /// a virtual model name resolved to.
    pub(super) async fn count_tokens(
        &self,
        op: Operation,
        body: Bytes,
        routed: Option<std::sync::Arc<str>>,
        beta: Option<HeaderValue>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<http::Response<Body>> {
        let mut v: serde_json::Map<String, Value> =
            serde_json::from_slice(&body).map_err(|e| Error::invalid_body(&e))?;
        drop(body);
        if let Some(to) = routed {
            v.insert("model".into(), Value::String(to.to_string()));
        }
        let name = v
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::BadRequest("`model` is required".into()))?;
        check_access(ctx, name)?;
        let model = self.model(name)?;
        if model.members.iter().any(|m| m.provider.supports(op)) {
            let mut resp = self.passthrough_json(op, v, beta, ctx).await?;
            resp.headers_mut()
                .insert(COUNT_HEADER, HeaderValue::from_static("provider"));
            return Ok(resp);
        }
        let n = estimate_tokens(&v);
        let answer = if op == Operation::InputTokens {
            serde_json::json!({"object": "response.input_tokens", "input_tokens": n})
        } else {
            serde_json::json!({"input_tokens": n})
        };
        let mut resp = json_response(StatusCode::OK, Bytes::from(answer.to_string()), None);
        resp.headers_mut()
            .insert(COUNT_HEADER, HeaderValue::from_static("estimated"));
        Ok(resp)
    }
}

/// Says whether a count is the provider's or the gateway's estimate.
const COUNT_HEADER: &str = "x-switchboard-token-count";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_counts_text_bytes_and_images() {
        let body = serde_json::json!({
            "model": "a-very-long-model-name-that-is-not-counted",
            "system": "12345678",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "abcd"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
            ]}]
        });
        let Value::Object(body) = body else {
            unreachable!()
        };
        // "12345678" + "user" + "text" + "abcd" = 20 bytes → 5 tokens, plus one image.
        assert_eq!(estimate_tokens(&body), 5 + IMAGE_TOKENS);
    }
}
