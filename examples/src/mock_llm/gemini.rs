//! The Gemini `generateContent` / `streamGenerateContent` wire format.

use super::*;

pub(super) async fn gemini(
    State(state): State<MockState>,
    Path(action): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, verb)) = action.split_once(':') else {
        return json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}),
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return json_resp(
            StatusCode::BAD_REQUEST,
            &json!({"error": {"code": 400, "message": "invalid JSON", "status": "INVALID_ARGUMENT"}}),
        );
    };
    let mode = match preflight(Api::Gemini, state.begin(&headers, model)).await {
        Ok(m) => m,
        Err(r) => return r,
    };
    if !headers.contains_key("x-goog-api-key") {
        return json_resp(
            StatusCode::FORBIDDEN,
            &json!({"error": {"code": 403, "message": "API key missing", "status": "PERMISSION_DENIED"}}),
        );
    }
    let contents = req["contents"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    let answered_tool = contents
        .last()
        .and_then(|c| c["parts"].as_array())
        .is_some_and(|p| p.iter().any(|p| p.get("functionResponse").is_some()));
    let last_user = contents
        .iter()
        .rev()
        .find(|c| {
            c["role"] == "user"
                && c["parts"]
                    .as_array()
                    .is_some_and(|p| p.iter().any(|p| p.get("text").is_some()))
        })
        .map(|c| text_of(&c["parts"]))
        .unwrap_or_default();
    let tool = req["tools"][0]["functionDeclarations"][0]["name"]
        .as_str()
        .filter(|_| !answered_tool);
    let r = reply(&last_user, tool);
    let usage = json!({"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS, "cachedContentTokenCount": CACHED_TOKENS, "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS});
    let resp = |parts: Value, finish: Option<&str>, usage: Option<&Value>| {
        let mut cand = json!({"content": {"role": "model", "parts": parts}, "index": 0});
        if let Some(f) = finish {
            cand["finishReason"] = json!(f);
        }
        let mut v = json!({"candidates": [cand], "modelVersion": model, "responseId": "mock-resp"});
        if let Some(u) = usage {
            v["usageMetadata"] = u.clone();
        }
        v
    };
    let final_parts = match &r.tool {
        Some(name) => {
            json!([{"functionCall": {"name": name, "args": serde_json::from_str::<Value>(TOOL_ARGS).unwrap()}}])
        }
        None => json!([{"text": r.text}]),
    };
    match verb {
        "generateContent" => {
            if mode == Mode::Slow {
                tokio::time::sleep(SLOW).await;
            }
            json_resp(
                StatusCode::OK,
                &resp(final_parts, Some("STOP"), Some(&usage)),
            )
        }
        "streamGenerateContent" => {
            let mut parts = Vec::new();
            if r.tool.is_none() {
                let ws = r.pieces();
                let n = ws.len();
                for (i, w) in ws.into_iter().enumerate() {
                    let last = i + 1 == n;
                    parts.push(Bytes::from(format!(
                        "data: {}\r\n\r\n",
                        resp(
                            json!([{"text": w}]),
                            last.then_some("STOP"),
                            last.then_some(&usage)
                        )
                    )));
                }
            } else {
                parts.push(Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    resp(json!([{"text": ""}]), None, None)
                )));
                parts.push(Bytes::from(format!(
                    "data: {}\r\n\r\n",
                    resp(final_parts, Some("STOP"), Some(&usage))
                )));
            }
            let err = Bytes::from(format!(
                "data: {}\r\n\r\n",
                json!({"error": {"code": 503, "message": "mock failure mid-stream", "status": "UNAVAILABLE"}})
            ));
            sse_resp(scripted_body(parts, mode, Some(err), &state))
        }
        _ => json_resp(
            StatusCode::NOT_FOUND,
            &json!({"error": {"code": 404, "message": "unknown method", "status": "NOT_FOUND"}}),
        ),
    }
}
