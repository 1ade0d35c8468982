//! Token counting: Anthropic's `POST …/messages/count_tokens` and OpenAI's
//! `POST …/responses/input_tokens`. A model with a provider that counts (Anthropic for the
//! first, OpenAI for the second) has the request forwarded through its pool like any other
//! pass-through, the model rewritten; otherwise the gateway answers with its own estimate
//! ([`crate::estimate`]) in the same shape. `x-switchboard-token-count` says which
//! (`provider` or `estimated`).

use axum::body::Body;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use serde_json::Value;
use switchboard_core::RequestContext;

use super::{LlmBackend, check_access, json_response};
use crate::Error;
use crate::estimate::estimate_tokens;
use crate::provider::Operation;

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
            let mut resp = self.passthrough_json(op, v, beta, None, ctx).await?;
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
