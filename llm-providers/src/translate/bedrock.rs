//! OpenAI chat completions → Bedrock Converse, and Converse responses back.

use serde_json::{Map, Value, json};

use super::{bedrock_stop_to_openai, parse_arguments, split_data_url};
use crate::format::Extra;
use crate::format::bedrock as b;
use crate::format::openai as o;

/// OpenAI chat request → Bedrock `Converse` body (the model goes in the URL).
pub fn chat_to_converse(req: &o::ChatRequest) -> Value {
    let mut system = Vec::new();
    let mut messages: Vec<Value> = Vec::new();
    let tools_disabled = matches!(&req.tool_choice, Some(Value::String(s)) if s == "none");
    for m in &req.messages {
        let (role, content): (&str, Vec<Value>) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.push(json!({"text": c.text()}));
                }
                continue;
            }
            "assistant" => {
                let mut content = Vec::new();
                if let Some(c) = &m.content {
                    let t = c.text();
                    if !t.is_empty() {
                        content.push(json!({"text": t}));
                    }
                }
                for call in m.tool_calls.iter().flatten() {
                    content.push(json!({"toolUse": {"toolUseId": call.id, "name": call.function.name, "input": parse_arguments(&call.function.arguments)}}));
                }
                ("assistant", content)
            }
            "tool" => {
                let text = m.content.as_ref().map(|c| c.text()).unwrap_or_default();
                (
                    "user",
                    vec![
                        json!({"toolResult": {"toolUseId": m.tool_call_id, "content": [{"text": text}]}}),
                    ],
                )
            }
            _ => ("user", user_content(m.content.as_ref())),
        };
        if content.is_empty() {
            continue;
        }
        match messages.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(c) = last["content"].as_array_mut() {
                    c.extend(content);
                }
            }
            _ => messages.push(json!({"role": role, "content": content})),
        }
    }
    let mut body = Map::new();
    body.insert("messages".into(), Value::Array(messages));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    let inf = super::sampling_config(req, "maxTokens");
    if !inf.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inf));
    }
    if let Some(tools) = req
        .tools
        .as_ref()
        .filter(|t| !t.is_empty() && !tools_disabled)
    {
        let specs: Vec<Value> = tools
            .iter()
            .map(|t| {
                let mut spec = json!({"name": t.function.name, "inputSchema": {"json": t.function.parameters.clone().unwrap_or_else(|| json!({"type": "object"}))}});
                if let (Some(d), Some(o)) = (&t.function.description, spec.as_object_mut()) {
                    o.insert("description".into(), d.clone().into());
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut tc = serde_json::Map::new();
        tc.insert("tools".into(), Value::Array(specs));
        let choice = match &req.tool_choice {
            Some(Value::String(s)) if s == "required" => Some(json!({"any": {}})),
            Some(Value::String(s)) if s == "auto" => Some(json!({"auto": {}})),
            Some(Value::Object(o)) => o
                .get("function")
                .and_then(|f| f.get("name"))
                .map(|n| json!({"tool": {"name": n}})),
            _ => None,
        };
        if let Some(c) = choice {
            tc.insert("toolChoice".into(), c);
        }
        body.insert("toolConfig".into(), Value::Object(tc));
    }
    Value::Object(body)
}

fn user_content(content: Option<&o::Content>) -> Vec<Value> {
    match content {
        None => Vec::new(),
        Some(o::Content::Text(t)) => vec![json!({"text": t})],
        Some(o::Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(json!({"text": p.text.clone().unwrap_or_default()})),
                "image_url" => {
                    let url = p.image_url.as_ref()?.get("url")?.as_str()?;
                    // Bedrock only takes inline bytes; remote image URLs are dropped.
                    let (mime, data) = split_data_url(url)?;
                    let format = mime.strip_prefix("image/").unwrap_or("png");
                    Some(json!({"image": {"format": format, "source": {"bytes": data}}}))
                }
                _ => None,
            })
            .collect(),
    }
}

/// Bedrock `Converse` response → OpenAI chat response.
pub fn converse_to_chat(r: &b::ConverseResponse, model: &str, created: u64) -> o::ChatResponse {
    let mut text = String::new();
    let mut calls = Vec::new();
    for c in r
        .output
        .get("message")
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(t) = c.get("text").and_then(Value::as_str) {
            text.push_str(t);
        }
        if let Some(tu) = c.get("toolUse") {
            calls.push(o::ToolCall {
                id: tu
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                kind: "function".into(),
                function: o::FunctionCall {
                    name: tu
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: tu
                        .get("input")
                        .map_or_else(|| "{}".into(), Value::to_string),
                },
            });
        }
    }
    o::ChatResponse {
        id: format!("bedrock-{created}"),
        object: "chat.completion".into(),
        created,
        model: model.to_string(),
        choices: vec![o::Choice {
            index: 0,
            message: o::ChatMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(o::Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            },
            finish_reason: r
                .stop_reason
                .as_deref()
                .map(|s| bedrock_stop_to_openai(s).to_string()),
            extra: Extra::new(),
        }],
        usage: r.usage.as_ref().map(|u| o::Usage::from_norm(u.normalize())),
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_request_to_bedrock() {
        let req: o::ChatRequest = serde_json::from_value(json!({
            "model": "smart",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
            ],
            "max_tokens": 100, "temperature": 0.5,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}
        }))
        .unwrap();
        insta::assert_json_snapshot!(chat_to_converse(&req));
    }

    #[test]
    fn bedrock_response_to_openai() {
        let r: b::ConverseResponse = serde_json::from_value(json!({
            "output": {"message": {"role": "assistant", "content": [
                {"text": "Calling."}, {"toolUse": {"toolUseId": "tu_1", "name": "get_weather", "input": {"city": "Paris"}}}]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 12, "outputTokens": 4, "totalTokens": 16, "cacheReadInputTokens": 8},
            "metrics": {"latencyMs": 100}
        }))
        .unwrap();
        let out = converse_to_chat(&r, "anthropic.claude-3-haiku", 1);
        assert_eq!(out.usage.as_ref().unwrap().prompt_tokens, 20);
        insta::assert_json_snapshot!(out);
    }
}
