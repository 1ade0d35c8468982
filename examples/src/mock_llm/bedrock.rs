//! The Bedrock Converse wire format, with AWS event-stream framing for streams.

use super::*;

/// Encodes one AWS event-stream message with string headers.
pub fn eventstream_frame(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        h.put_u8(name.len() as u8);
        h.put_slice(name.as_bytes());
        h.put_u8(7);
        h.put_u16(value.len() as u16);
        h.put_slice(value.as_bytes());
    }
    let total = 12 + h.len() + payload.len() + 4;
    let mut m = BytesMut::with_capacity(total);
    m.put_u32(total as u32);
    m.put_u32(h.len() as u32);
    let crc = crc32fast::hash(&m[..8]);
    m.put_u32(crc);
    m.put_slice(&h);
    m.put_slice(payload);
    let crc = crc32fast::hash(&m);
    m.put_u32(crc);
    m.freeze()
}

pub(super) fn bedrock_event(kind: &str, v: &Value) -> Bytes {
    eventstream_frame(
        &[
            (":event-type", kind),
            (":content-type", "application/json"),
            (":message-type", "event"),
        ],
        v.to_string().as_bytes(),
    )
}

pub(super) async fn bedrock(
    State(state): State<MockState>,
    Path((model, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(StatusCode::BAD_REQUEST, &json!({"message": "invalid JSON"}));
    };
    let mode = match preflight(Api::Bedrock, state.begin(&headers, &model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(auth.starts_with("AWS4-HMAC-SHA256 Credential=") && headers.contains_key("x-amz-date")
        || auth.starts_with("Bearer "))
    {
        return json_resp(
            StatusCode::FORBIDDEN,
            &json!({"message": "Missing Authentication Token"}),
        );
    }
    let msgs = req["messages"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = msgs
        .last()
        .and_then(|m| m["content"].as_array())
        .is_some_and(|c| c.iter().any(|b| b.get("toolResult").is_some()));
    let last_user = msgs
        .iter()
        .rev()
        .find(|m| {
            m["role"] == "user"
                && m["content"]
                    .as_array()
                    .is_some_and(|c| c.iter().any(|b| b.get("text").is_some()))
        })
        .map(|m| text_of(&m["content"]))
        .unwrap_or_default();
    let tool = req["toolConfig"]["tools"][0]["toolSpec"]["name"]
        .as_str()
        .filter(|_| !answered_tool);
    let r = reply(&last_user, tool);
    let stop = if r.tool.is_some() {
        "tool_use"
    } else {
        "end_turn"
    };
    let usage = json!({"inputTokens": INPUT_TOKENS - CACHED_TOKENS, "outputTokens": OUTPUT_TOKENS, "totalTokens": INPUT_TOKENS + OUTPUT_TOKENS, "cacheReadInputTokens": CACHED_TOKENS, "cacheWriteInputTokens": 0});
    match action.as_str() {
        "converse" => {
            if mode == Mode::Slow {
                tokio::time::sleep(SLOW).await;
            }
            let content = match &r.tool {
                Some(name) => {
                    json!([{"toolUse": {"toolUseId": "tooluse_mock_1", "name": name, "input": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}}])
                }
                None => json!([{"text": r.text}]),
            };
            json_resp(
                StatusCode::OK,
                &json!({"output": {"message": {"role": "assistant", "content": content}}, "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 1}}),
            )
        }
        "converse-stream" => {
            let mut parts = vec![bedrock_event("messageStart", &json!({"role": "assistant"}))];
            match &r.tool {
                Some(name) => {
                    parts.push(bedrock_event("contentBlockStart", &json!({"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "tooluse_mock_1", "name": name}}})));
                    for frag in TOOL_ARG_FRAGMENTS {
                        parts.push(bedrock_event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"toolUse": {"input": frag}}}),
                        ));
                    }
                }
                None => {
                    for w in r.pieces() {
                        parts.push(bedrock_event(
                            "contentBlockDelta",
                            &json!({"contentBlockIndex": 0, "delta": {"text": w}}),
                        ));
                    }
                }
            }
            parts.push(bedrock_event(
                "contentBlockStop",
                &json!({"contentBlockIndex": 0}),
            ));
            parts.push(bedrock_event("messageStop", &json!({"stopReason": stop})));
            parts.push(bedrock_event(
                "metadata",
                &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
            ));
            let err = eventstream_frame(
                &[
                    (":exception-type", "modelStreamErrorException"),
                    (":content-type", "application/json"),
                    (":message-type", "exception"),
                ],
                json!({"message": "mock failure mid-stream"})
                    .to_string()
                    .as_bytes(),
            );
            let mut resp = Response::new(scripted_body(parts, mode, Some(err), &state));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/vnd.amazon.eventstream"),
            );
            resp
        }
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"message": "unknown operation"}),
        ),
    }
}
