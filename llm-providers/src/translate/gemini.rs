//! OpenAI chat completions → Gemini generateContent, and Gemini responses back.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::{gemini_finish_to_openai, parse_arguments, split_data_url};
use crate::format::Extra;
use crate::format::gemini as g;
use crate::format::openai as o;

/// OpenAI chat request → Gemini `generateContent` body (the model goes in the URL).
pub fn chat_to_generate(req: &o::ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut contents: Vec<Value> = Vec::new();
    // Gemini's functionResponse carries the function name, OpenAI's tool message only the id.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for m in &req.messages {
        let (role, parts): (&str, Vec<Value>) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.push(json!({"text": c.text()}));
                }
                continue;
            }
            "assistant" => {
                let mut parts = Vec::new();
                if let Some(c) = &m.content {
                    let t = c.text();
                    if !t.is_empty() {
                        parts.push(json!({"text": t}));
                    }
                }
                for call in m.tool_calls.iter().flatten() {
                    call_names.insert(&call.id, &call.function.name);
                    parts.push(json!({"functionCall": {"name": call.function.name, "args": parse_arguments(&call.function.arguments)}}));
                }
                ("model", parts)
            }
            "tool" => {
                let id = m.tool_call_id.as_deref().unwrap_or("");
                let name = call_names.get(id).copied().unwrap_or(id);
                let text = m.content.as_ref().map(|c| c.text()).unwrap_or_default();
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({"content": text}),
                };
                (
                    "user",
                    vec![json!({"functionResponse": {"name": name, "response": response}})],
                )
            }
            _ => ("user", user_parts(m.content.as_ref())),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(p) = last["parts"].as_array_mut() {
                    p.extend(parts);
                }
            }
            _ => contents.push(json!({"role": role, "parts": parts})),
        }
    }
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".into(), json!({"parts": system}));
    }
    let mut config = super::sampling_config(req, "maxOutputTokens");
    if let Some(fmt) = &req.response_format {
        match fmt.get("type").and_then(Value::as_str) {
            Some("json_object") => {
                config.insert("responseMimeType".into(), "application/json".into());
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), "application/json".into());
                if let Some(schema) = fmt.get("json_schema").and_then(|s| s.get("schema")) {
                    config.insert("responseJsonSchema".into(), schema.clone());
                }
            }
            _ => {}
        }
    }
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    if let Some(tools) = req.tools.as_ref().filter(|t| !t.is_empty()) {
        let decls: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut d = serde_json::Map::new();
                d.insert("name".into(), t.function.name.clone().into());
                if let Some(desc) = &t.function.description {
                    d.insert("description".into(), desc.clone().into());
                }
                if let Some(p) = &t.function.parameters {
                    d.insert("parametersJsonSchema".into(), p.clone());
                }
                Value::Object(d)
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
        let mode = match &req.tool_choice {
            Some(Value::String(s)) if s == "required" => Some(json!({"mode": "ANY"})),
            Some(Value::String(s)) if s == "none" => Some(json!({"mode": "NONE"})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"mode": "ANY", "allowedFunctionNames": [n]})),
            _ => None,
        };
        if let Some(mode) = mode {
            body.insert("toolConfig".into(), json!({"functionCallingConfig": mode}));
        }
    }
    Value::Object(body)
}

fn user_parts(content: Option<&o::Content>) -> Vec<Value> {
    match content {
        None => Vec::new(),
        Some(o::Content::Text(t)) => vec![json!({"text": t})],
        Some(o::Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(json!({"text": p.text.clone().unwrap_or_default()})),
                "image_url" => {
                    let url = p.image_url.as_ref()?.get("url")?.as_str()?;
                    Some(match split_data_url(url) {
                        Some((mime, data)) => {
                            json!({"inlineData": {"mimeType": mime, "data": data}})
                        }
                        None => json!({"fileData": {"fileUri": url}}),
                    })
                }
                _ => None,
            })
            .collect(),
    }
}

/// Text and function calls of a candidate's parts (thought parts are skipped).
pub(crate) fn split_parts(parts: &[Value], first_call_index: usize) -> (String, Vec<o::ToolCall>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for p in parts {
        if p.get("thought").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        if let Some(t) = p.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(fc) = p.get("functionCall") {
            let id = fc.get("id").and_then(Value::as_str).map_or_else(
                || format!("call_{}", first_call_index + calls.len()),
                String::from,
            );
            calls.push(o::ToolCall {
                id,
                kind: "function".into(),
                function: o::FunctionCall {
                    name: fc
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: fc.get("args").map_or_else(|| "{}".into(), Value::to_string),
                },
            });
        }
    }
    (text, calls)
}

/// Gemini response → OpenAI chat response.
pub fn generate_to_chat(
    r: &g::GenerateContentResponse,
    model: &str,
    created: u64,
) -> o::ChatResponse {
    let cand = r.candidates.first();
    let parts = cand
        .and_then(|c| c.content.as_ref())
        .map(|c| c.parts.as_slice())
        .unwrap_or(&[]);
    let (text, calls) = split_parts(parts, 0);
    let finish = cand
        .and_then(|c| c.finish_reason.as_deref())
        .map(|f| gemini_finish_to_openai(f, !calls.is_empty()).to_string());
    o::ChatResponse {
        id: r
            .response_id
            .clone()
            .unwrap_or_else(|| format!("gemini-{created}")),
        object: "chat.completion".into(),
        created,
        model: r.model_version.clone().unwrap_or_else(|| model.to_string()),
        choices: vec![o::Choice {
            index: 0,
            message: o::ChatMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(o::Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            },
            finish_reason: finish,
            extra: Extra::new(),
        }],
        usage: r
            .usage_metadata
            .as_ref()
            .map(|u| o::Usage::from_norm(u.normalize())),
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_request_to_gemini() {
        let req: o::ChatRequest = serde_json::from_value(json!({
            "model": "smart",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":18}"}
            ],
            "max_tokens": 100, "stop": ["END"], "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}],
            "tool_choice": "required"
        }))
        .unwrap();
        insta::assert_json_snapshot!(chat_to_generate(&req));
    }

    #[test]
    fn gemini_response_to_openai() {
        let r: g::GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"role": "model", "parts": [
                {"text": "thinking", "thought": true},
                {"text": "Calling."},
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]},
                "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 5, "cachedContentTokenCount": 10, "totalTokenCount": 35},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"
        }))
        .unwrap();
        let out = generate_to_chat(&r, "gemini-2.5-flash", 1);
        assert_eq!(out.choices[0].finish_reason.as_deref(), Some("tool_calls"));
        insta::assert_json_snapshot!(out);
    }
}
