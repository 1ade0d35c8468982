//! The OpenAI and Azure OpenAI wire formats: chat completions (streamed or not), embeddings,
//! `/models` and the Responses API.

use super::*;

pub(super) fn openai_reply(req: &Value) -> Reply {
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let last = msgs.last();
    let answered_tool = last.is_some_and(|m| m["role"] == "tool");
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["function"]["name"]
        .as_str()
        .filter(|_| !answered_tool && req["tool_choice"] != "none");
    reply(&last_user, tool)
}

pub(super) fn openai_usage() -> Value {
    json!({"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
           "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
           "completion_tokens_details": {"reasoning_tokens": 0}})
}

pub(super) async fn openai_chat(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai_chat_inner(state, headers, body, None).await
}

pub(super) async fn azure_chat(
    State(state): State<MockState>,
    Path(dep): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    openai_chat_inner(state, headers, body, Some(dep)).await
}

pub(super) async fn openai_chat_inner(
    state: MockState,
    headers: HeaderMap,
    body: Bytes,
    deployment: Option<String>,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}),
        );
    };
    let model = deployment.unwrap_or_else(|| req["model"].as_str().unwrap_or("mock").to_string());
    let mode = match preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("authorization") && !headers.contains_key("api-key") {
        return json_resp(
            StatusCode::UNAUTHORIZED,
            &json!({"error": {"message": "missing API key", "type": "invalid_request_error", "code": "invalid_api_key"}}),
        );
    }
    let r = openai_reply(&req);
    let id = "chatcmpl-mock";
    let created = 1_700_000_000u64;
    if req["stream"] != true {
        if mode == Mode::Slow {
            tokio::time::sleep(SLOW).await;
        }
        let message = match &r.tool {
            Some(name) => {
                json!({"role": "assistant", "content": null, "refusal": null, "tool_calls": [
                {"id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": TOOL_ARGS}}]})
            }
            None => json!({"role": "assistant", "content": r.text, "refusal": null}),
        };
        let finish = if r.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        };
        return json_resp(
            StatusCode::OK,
            &json!({"id": id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
                    "usage": openai_usage(), "system_fingerprint": "fp_mock"}),
        );
    }
    let chunk = |delta: Value, finish: Value| {
        data(
            &json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]}),
        )
    };
    let mut parts = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    match &r.tool {
        Some(name) => {
            parts.push(chunk(
                json!({"tool_calls": [{"index": 0, "id": "call_mock_1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            ));
            for frag in TOOL_ARG_FRAGMENTS {
                parts.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}),
                    Value::Null,
                ));
            }
            parts.push(chunk(json!({}), json!("tool_calls")));
        }
        None => {
            for w in r.pieces() {
                parts.push(chunk(json!({"content": w}), Value::Null));
            }
            parts.push(chunk(json!({}), json!("stop")));
        }
    }
    if req["stream_options"]["include_usage"] == true {
        parts.push(data(&json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [], "usage": openai_usage()})));
    }
    parts.push(Bytes::from_static(b"data: [DONE]\n\n"));
    let err = data(
        &json!({"error": {"message": "mock failure mid-stream", "type": "server_error", "param": null, "code": null}}),
    );
    sse_resp(scripted_body(parts, mode, Some(err), &state))
}

pub(super) fn embedding(input: &str, dims: usize) -> Vec<f32> {
    // FNV-1a seeded values: deterministic and cheap.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in input.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            h = (h ^ i as u64).wrapping_mul(0x0100_0000_01b3);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub(super) async fn embeddings(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings_inner(state, headers, body).await
}

pub(super) async fn azure_embeddings(
    State(state): State<MockState>,
    Path(_dep): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    embeddings_inner(state, headers, body).await
}

pub(super) async fn embeddings_inner(
    state: MockState,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"message": "invalid JSON", "type": "invalid_request_error"}}),
        );
    };
    let model = req["model"].as_str().unwrap_or("mock-embed").to_string();
    if let Err(r) = preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        return r;
    }
    let inputs: Vec<String> = match &req["input"] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), String::from))
            .collect(),
        _ => Vec::new(),
    };
    let dims = req["dimensions"].as_u64().unwrap_or(8) as usize;
    let base64 = req["encoding_format"] == "base64";
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = embedding(s, dims);
            let emb = if base64 {
                let mut b = BytesMut::with_capacity(v.len() * 4);
                for x in &v {
                    b.put_f32_le(*x);
                }
                json!(base64::engine::general_purpose::STANDARD.encode(&b))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": emb})
        })
        .collect();
    let tokens: u64 = inputs
        .iter()
        .map(|s| s.split_whitespace().count().max(1) as u64)
        .sum();
    json_resp(
        StatusCode::OK,
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

pub(super) async fn models(State(_state): State<MockState>) -> Response {
    let data: Vec<Value> = ["mock-gpt", "mock-claude", "mock-embed"]
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000u64, "owned_by": "mock"}))
        .collect();
    json_resp(StatusCode::OK, &json!({"object": "list", "data": data}))
}

pub(super) async fn responses(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("mock").to_string();
    if let Err(r) = preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        return r;
    }
    let input = match &req["input"] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let r = reply(&input, None);
    let done = json!({"id": "resp_mock", "object": "response", "created_at": 1_700_000_000u64, "status": "completed", "model": model,
            "output": [{"type": "message", "id": "msg_mock", "status": "completed", "role": "assistant",
                        "content": [{"type": "output_text", "text": r.text, "annotations": []}]}],
            "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": OUTPUT_TOKENS, "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
                      "input_tokens_details": {"cached_tokens": CACHED_TOKENS}, "output_tokens_details": {"reasoning_tokens": 0}}});
    if req["stream"] != true {
        return json_resp(StatusCode::OK, &done);
    }
    let mut started = done.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    started["usage"] = Value::Null;
    let mut parts = vec![event(
        "response.created",
        &json!({"type": "response.created", "sequence_number": 0, "response": started}),
    )];
    for (i, w) in r.pieces().into_iter().enumerate() {
        parts.push(event(
            "response.output_text.delta",
            &json!({"type": "response.output_text.delta", "sequence_number": i + 1, "item_id": "msg_mock", "output_index": 0, "content_index": 0, "delta": w}),
        ));
    }
    let n = parts.len();
    parts.push(event(
        "response.completed",
        &json!({"type": "response.completed", "sequence_number": n, "response": done}),
    ));
    sse_resp(scripted_body(parts, Mode::Ok, None, &state))
}

/// `POST /v1/responses/input_tokens`, as OpenAI answers it: bearer credential and `model`
/// required, `{"object": "response.input_tokens", "input_tokens": N}` back, N counted over
/// `instructions`, `input` and `tools` the way [`super::mock_token_count`] counts.
pub(super) async fn responses_input_tokens(
    State(state): State<MockState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = req["model"].as_str().unwrap_or("").to_string();
    if let Err(r) = preflight(Api::OpenAi, state.begin(&headers, &model)).await {
        return r;
    }
    if model.is_empty() {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"type": "invalid_request_error", "message": "model is required", "param": "model", "code": null}}),
        );
    }
    let counted =
        json!({"system": req["instructions"], "messages": req["input"], "tools": req["tools"]});
    json_resp(
        StatusCode::OK,
        &json!({"object": "response.input_tokens", "input_tokens": super::mock_token_count(&counted)}),
    )
}
