//! The Anthropic Messages wire format, streamed or not.

use super::*;

pub(super) fn anthropic_usage(output: u64) -> Value {
    json!({"input_tokens": INPUT_TOKENS - CACHED_TOKENS, "cache_creation_input_tokens": 0, "cache_read_input_tokens": CACHED_TOKENS, "output_tokens": output})
}

pub(super) async fn anthropic_messages(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "invalid JSON"}}),
        );
    };
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    let mode = match preflight(Api::Anthropic, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("x-api-key") {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            &json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}}),
        );
    }
    if req["max_tokens"].as_u64().is_none() {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: Field required"}}),
        );
    }
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = msgs
        .last()
        .and_then(|m| m["content"].as_array())
        .is_some_and(|blocks| blocks.iter().any(|b| b["type"] == "tool_result"));
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| {
            m["role"] == "user"
                && !m["content"]
                    .as_array()
                    .is_some_and(|b| b.iter().all(|b| b["type"] == "tool_result"))
        })
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["name"]
        .as_str()
        .filter(|_| !answered_tool && req["tool_choice"]["type"] != "none");
    let r = reply(&last_user, tool);
    let id = "msg_mock";
    let stop = if r.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    if req["stream"] != true {
        if mode == Mode::Slow {
            tokio::time::sleep(SLOW).await;
        }
        let content = match &r.tool {
            Some(name) => {
                json!([{"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}])
            }
            None => json!([{"type": "text", "text": r.text}]),
        };
        return json_resp(
            StatusCode::OK,
            &json!({"id": id, "type": "message", "role": "assistant", "model": model, "content": content,
                    "stop_reason": stop, "stop_sequence": null, "usage": anthropic_usage(OUTPUT_TOKENS)}),
        );
    }
    let mut parts = vec![
        event(
            "message_start",
            &json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null, "usage": anthropic_usage(1)}}),
        ),
        event("ping", &json!({"type": "ping"})),
    ];
    match &r.tool {
        Some(name) => {
            parts.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_mock_1", "name": name, "input": {}}})));
            for frag in TOOL_ARG_FRAGMENTS {
                parts.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": frag}}),
                ));
            }
        }
        None => {
            parts.push(event("content_block_start", &json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
            for w in r.pieces() {
                parts.push(event("content_block_delta", &json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
            }
        }
    }
    parts.push(event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": 0}),
    ));
    parts.push(event(
        "message_delta",
        &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
        "usage": {"output_tokens": OUTPUT_TOKENS}}),
    ));
    parts.push(event("message_stop", &json!({"type": "message_stop"})));
    let err = event(
        "error",
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    sse_resp(scripted_body(parts, mode, Some(err), &state))
}

/// The fields Anthropic's `POST /v1/messages/count_tokens` accepts; any other is a 400, as there.
const COUNT_TOKENS_FIELDS: [&str; 7] = [
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "mcp_servers",
];

/// The mock's token count for a `count_tokens` body: the UTF-8 bytes of every string in
/// `system`, `messages` and `tools`, divided by three and rounded up, plus 7. Deliberately not
/// the gateway's estimator, so a test can tell a forwarded count from an estimated one.
pub fn mock_token_count(req: &Value) -> u64 {
    fn bytes(v: &Value) -> u64 {
        match v {
            Value::String(s) => s.len() as u64,
            Value::Array(a) => a.iter().map(bytes).sum(),
            Value::Object(o) => o.values().map(bytes).sum(),
            _ => 0,
        }
    }
    let total: u64 = ["system", "messages", "tools"]
        .iter()
        .map(|k| req.get(*k).map_or(0, bytes))
        .sum();
    total.div_ceil(3) + 7
}

/// `POST /v1/messages/count_tokens`, as Anthropic answers it: `x-api-key` and
/// `anthropic-version` required, `model` and `messages` required, unknown fields refused,
/// `{"input_tokens": N}` back.
pub(super) async fn anthropic_count_tokens(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let invalid = |m: String| {
        json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"type": "invalid_request_error", "message": m}}),
        )
    };
    let Ok(Value::Object(req)) = serde_json::from_slice::<Value>(&body) else {
        return invalid("invalid JSON".into());
    };
    let model = req.get("model").and_then(Value::as_str).unwrap_or("");
    state.count_tokens_seen(&req);
    if let Err(r) = preflight(Api::Anthropic, state.begin(&headers, model)).await {
        return r;
    }
    if !headers.contains_key("x-api-key") {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            &json!({"type": "error", "error": {"type": "authentication_error", "message": "x-api-key header is required"}}),
        );
    }
    if !headers.contains_key("anthropic-version") {
        return invalid("anthropic-version: header is required".into());
    }
    if model.is_empty() {
        return invalid("model: Field required".into());
    }
    if !req.get("messages").is_some_and(Value::is_array) {
        return invalid("messages: Field required".into());
    }
    if let Some(extra) = req
        .keys()
        .find(|k| !COUNT_TOKENS_FIELDS.contains(&k.as_str()))
    {
        return invalid(format!("{extra}: Extra inputs are not permitted"));
    }
    json_resp(
        StatusCode::OK,
        &json!({"input_tokens": mock_token_count(&Value::Object(req))}),
    )
}
