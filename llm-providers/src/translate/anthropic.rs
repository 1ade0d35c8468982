//! OpenAI chat completions ⇄ Anthropic messages (requests and complete responses).

use serde_json::{Value, json};

use super::{
    anthropic_stop_to_openai, openai_finish_to_anthropic, parse_arguments, split_data_url,
};
use crate::format::Extra;
use crate::format::anthropic as a;
use crate::format::openai as o;

/// Output cap used when an OpenAI request has none (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

/// OpenAI chat request → Anthropic messages request for provider model `model`.
pub fn chat_to_messages(req: &o::ChatRequest, model: &str) -> a::MessagesRequest {
    let mut system: Vec<String> = Vec::new();
    let mut messages: Vec<a::Message> = Vec::new();
    for m in &req.messages {
        let (role, blocks) = match m.role.as_str() {
            "system" | "developer" => {
                if let Some(c) = &m.content {
                    system.push(c.text());
                }
                continue;
            }
            "assistant" => {
                let mut blocks = Vec::new();
                if let Some(c) = &m.content {
                    let t = c.text();
                    if !t.is_empty() {
                        blocks.push(a::Block::text(t));
                    }
                }
                for call in m.tool_calls.iter().flatten() {
                    blocks.push(a::Block {
                        kind: "tool_use".into(),
                        id: Some(call.id.clone()),
                        name: Some(call.function.name.clone()),
                        input: Some(parse_arguments(&call.function.arguments)),
                        ..Default::default()
                    });
                }
                ("assistant", blocks)
            }
            "tool" => {
                let text = m.content.as_ref().map(|c| c.text()).unwrap_or_default();
                let block = a::Block {
                    kind: "tool_result".into(),
                    tool_use_id: m.tool_call_id.clone(),
                    content: Some(Value::String(text)),
                    ..Default::default()
                };
                ("user", vec![block])
            }
            _ => ("user", user_blocks(m.content.as_ref())),
        };
        if blocks.is_empty() {
            continue;
        }
        // Anthropic wants alternating turns; consecutive same-role messages (e.g. several tool
        // results) merge into one turn.
        match messages.last_mut() {
            Some(last) if last.role == role => {
                if let a::MessageContent::Blocks(b) = &mut last.content {
                    b.extend(blocks);
                }
            }
            _ => messages.push(a::Message {
                role: role.into(),
                content: a::MessageContent::Blocks(blocks),
            }),
        }
    }
    if let Some(hint) = json_mode_hint(req.response_format.as_ref()) {
        system.push(hint);
    }
    let tools: Option<Vec<a::Tool>> = req.tools.as_ref().map(|tools| {
        tools
            .iter()
            .map(|t| a::Tool {
                name: t.function.name.clone(),
                description: t.function.description.clone(),
                input_schema: Some(
                    t.function
                        .parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object"})),
                ),
                extra: Extra::new(),
            })
            .collect()
    });
    let mut tool_choice = req.tool_choice.as_ref().and_then(|c| match c {
        Value::String(s) => match s.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            _ => None,
        },
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .map(|n| json!({"type": "tool", "name": n})),
        _ => None,
    });
    if req.parallel_tool_calls == Some(false) && tools.is_some() {
        let tc = tool_choice.get_or_insert_with(|| json!({"type": "auto"}));
        if tc["type"] != "none" {
            tc["disable_parallel_tool_use"] = Value::Bool(true);
        }
    }
    let stop_sequences = req.stop.as_ref().and_then(|s| match s {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    });
    a::MessagesRequest {
        model: model.to_string(),
        messages,
        system: (!system.is_empty()).then(|| Value::String(system.join("\n\n"))),
        max_tokens: req.output_cap().unwrap_or(DEFAULT_MAX_TOKENS),
        stop_sequences,
        stream: req.stream,
        temperature: req.temperature.map(|t| t.min(1.0)),
        top_p: req.top_p,
        tools,
        tool_choice,
        metadata: req.user.as_ref().map(|u| json!({"user_id": u})),
        extra: Extra::new(),
    }
}

fn json_mode_hint(format: Option<&Value>) -> Option<String> {
    let f = format?;
    match f.get("type")?.as_str()? {
        "json_object" => Some("Respond with a single JSON object and nothing else.".into()),
        "json_schema" => Some(format!(
            "Respond with a single JSON object matching this JSON schema and nothing else: {}",
            f.get("json_schema")
                .and_then(|s| s.get("schema"))
                .unwrap_or(&Value::Null)
        )),
        _ => None,
    }
}

fn user_blocks(content: Option<&o::Content>) -> Vec<a::Block> {
    match content {
        None => Vec::new(),
        Some(o::Content::Text(t)) => vec![a::Block::text(t.clone())],
        Some(o::Content::Parts(parts)) => parts
            .iter()
            .filter_map(|p| match p.kind.as_str() {
                "text" => Some(a::Block::text(p.text.clone().unwrap_or_default())),
                "image_url" => {
                    let url = p.image_url.as_ref()?.get("url")?.as_str()?;
                    let source = match split_data_url(url) {
                        Some((media, data)) => {
                            json!({"type": "base64", "media_type": media, "data": data})
                        }
                        None => json!({"type": "url", "url": url}),
                    };
                    Some(a::Block {
                        kind: "image".into(),
                        source: Some(source),
                        ..Default::default()
                    })
                }
                _ => None,
            })
            .collect(),
    }
}

/// Anthropic messages request → OpenAI chat request for provider model `model`. Streams always
/// ask for usage so the gateway can account for it.
pub fn messages_to_chat(req: &a::MessagesRequest, model: &str) -> o::ChatRequest {
    let mut messages = Vec::new();
    if let Some(system) = &req.system {
        let text = match system {
            Value::String(s) => s.clone(),
            Value::Array(blocks) => blocks
                .iter()
                .filter_map(|b| b.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n\n"),
            _ => String::new(),
        };
        if !text.is_empty() {
            messages.push(o::ChatMessage {
                role: "system".into(),
                content: Some(o::Content::Text(text)),
                ..Default::default()
            });
        }
    }
    for m in &req.messages {
        let blocks = m.content.clone().into_blocks();
        if m.role == "assistant" {
            let text: String = blocks
                .iter()
                .filter(|b| b.kind == "text")
                .filter_map(|b| b.text.as_deref())
                .collect();
            let calls: Vec<o::ToolCall> = blocks
                .iter()
                .filter(|b| b.kind == "tool_use")
                .map(|b| o::ToolCall {
                    id: b.id.clone().unwrap_or_default(),
                    kind: "function".into(),
                    function: o::FunctionCall {
                        name: b.name.clone().unwrap_or_default(),
                        arguments: b
                            .input
                            .as_ref()
                            .map_or_else(|| "{}".into(), Value::to_string),
                    },
                })
                .collect();
            messages.push(o::ChatMessage {
                role: "assistant".into(),
                content: (!text.is_empty() || calls.is_empty()).then_some(o::Content::Text(text)),
                tool_calls: (!calls.is_empty()).then_some(calls),
                ..Default::default()
            });
            continue;
        }
        let mut parts = Vec::new();
        for b in blocks {
            match b.kind.as_str() {
                // Tool results become `tool` messages, which OpenAI wants right after the
                // assistant turn, so they go before any user text of the same turn.
                "tool_result" => messages.push(o::ChatMessage {
                    role: "tool".into(),
                    tool_call_id: b.tool_use_id.clone(),
                    content: Some(o::Content::Text(tool_result_text(
                        b.content.as_ref(),
                        b.is_error,
                    ))),
                    ..Default::default()
                }),
                "text" => parts.push(o::ContentPart {
                    kind: "text".into(),
                    text: b.text,
                    ..Default::default()
                }),
                "image" => {
                    let Some(src) = &b.source else { continue };
                    let url = match src.get("type").and_then(Value::as_str) {
                        Some("base64") => format!(
                            "data:{};base64,{}",
                            src.get("media_type")
                                .and_then(Value::as_str)
                                .unwrap_or("image/png"),
                            src.get("data").and_then(Value::as_str).unwrap_or("")
                        ),
                        _ => src
                            .get("url")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .to_string(),
                    };
                    parts.push(o::ContentPart {
                        kind: "image_url".into(),
                        image_url: Some(json!({"url": url})),
                        ..Default::default()
                    });
                }
                _ => {}
            }
        }
        if parts.is_empty() {
            continue;
        }
        let content = if parts.iter().all(|p| p.kind == "text") {
            o::Content::Text(parts.into_iter().filter_map(|p| p.text).collect())
        } else {
            o::Content::Parts(parts)
        };
        messages.push(o::ChatMessage {
            role: "user".into(),
            content: Some(content),
            ..Default::default()
        });
    }
    let tools: Option<Vec<o::Tool>> = req.tools.as_ref().map(|tools| {
        tools
            .iter()
            .filter(|t| t.input_schema.is_some())
            .map(|t| o::Tool {
                kind: "function".into(),
                function: o::FunctionDef {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                    extra: Extra::new(),
                },
            })
            .collect()
    });
    let (tool_choice, parallel) = match &req.tool_choice {
        Some(tc) => {
            let choice = match tc.get("type").and_then(Value::as_str) {
                Some("any") => Some(json!("required")),
                Some("none") => Some(json!("none")),
                Some("tool") => tc
                    .get("name")
                    .map(|n| json!({"type": "function", "function": {"name": n}})),
                Some("auto") => Some(json!("auto")),
                _ => None,
            };
            let parallel = tc
                .get("disable_parallel_tool_use")
                .and_then(Value::as_bool)
                .map(|d| !d);
            (choice, parallel)
        }
        None => (None, None),
    };
    let streaming = req.stream == Some(true);
    o::ChatRequest {
        model: model.to_string(),
        messages,
        stream: req.stream,
        stream_options: streaming.then(|| o::StreamOptions {
            include_usage: Some(true),
            extra: Extra::new(),
        }),
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        stop: req.stop_sequences.as_ref().map(|s| json!(s)),
        tools: tools.filter(|t| !t.is_empty()),
        tool_choice,
        parallel_tool_calls: parallel,
        response_format: None,
        user: req
            .metadata
            .as_ref()
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .map(String::from),
        extra: Extra::new(),
    }
}

fn tool_result_text(content: Option<&Value>, is_error: Option<bool>) -> String {
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    if is_error == Some(true) {
        format!("Error: {text}")
    } else {
        text
    }
}

/// Anthropic response → OpenAI chat response.
pub fn messages_response_to_chat(r: &a::MessagesResponse, created: u64) -> o::ChatResponse {
    let text: String = r
        .content
        .iter()
        .filter(|b| b.kind == "text")
        .filter_map(|b| b.text.as_deref())
        .collect();
    let calls: Vec<o::ToolCall> = r
        .content
        .iter()
        .filter(|b| b.kind == "tool_use")
        .map(|b| o::ToolCall {
            id: b.id.clone().unwrap_or_default(),
            kind: "function".into(),
            function: o::FunctionCall {
                name: b.name.clone().unwrap_or_default(),
                arguments: b
                    .input
                    .as_ref()
                    .map_or_else(|| "{}".into(), Value::to_string),
            },
        })
        .collect();
    let finish = r
        .stop_reason
        .as_deref()
        .map(|s| anthropic_stop_to_openai(s).to_string());
    o::ChatResponse {
        id: r.id.clone(),
        object: "chat.completion".into(),
        created,
        model: r.model.clone(),
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
        usage: Some(o::Usage::from_norm(r.usage.normalize())),
        extra: Extra::new(),
    }
}

/// OpenAI chat response → Anthropic response (first choice).
pub fn chat_response_to_messages(r: &o::ChatResponse) -> a::MessagesResponse {
    let mut content = Vec::new();
    let mut stop = None;
    if let Some(choice) = r.choices.first() {
        let m = &choice.message;
        if let Some(refusal) = m.refusal.as_deref().filter(|s| !s.is_empty()) {
            content.push(a::Block::text(refusal));
            stop = Some("refusal".to_string());
        }
        if let Some(c) = &m.content {
            let t = c.text();
            if !t.is_empty() {
                content.push(a::Block::text(t));
            }
        }
        for call in m.tool_calls.iter().flatten() {
            content.push(a::Block {
                kind: "tool_use".into(),
                id: Some(call.id.clone()),
                name: Some(call.function.name.clone()),
                input: Some(parse_arguments(&call.function.arguments)),
                ..Default::default()
            });
        }
        if stop.is_none() {
            stop = choice
                .finish_reason
                .as_deref()
                .map(|f| openai_finish_to_anthropic(f).to_string());
        }
    }
    a::MessagesResponse {
        id: r.id.clone(),
        kind: "message".into(),
        role: "assistant".into(),
        model: r.model.clone(),
        content,
        stop_reason: stop,
        stop_sequence: None,
        usage: a::Usage::from_norm(
            r.usage
                .as_ref()
                .map(o::Usage::normalize)
                .unwrap_or_default(),
        ),
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_req() -> o::ChatRequest {
        serde_json::from_value(json!({
            "model": "smart",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": [
                    {"type": "text", "text": "Weather in Paris?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon"},
                {"role": "user", "content": "thanks"}
            ],
            "max_completion_tokens": 300,
            "stop": "END",
            "temperature": 0.2,
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "user": "u-1",
            "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .unwrap()
    }

    #[test]
    fn openai_request_to_anthropic() {
        insta::assert_json_snapshot!(chat_to_messages(&chat_req(), "claude-sonnet-4-5"));
    }

    #[test]
    fn anthropic_request_to_openai() {
        let req: a::MessagesRequest = serde_json::from_value(json!({
            "model": "smart",
            "system": [{"type": "text", "text": "Be brief."}],
            "max_tokens": 512,
            "messages": [
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Checking."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "18C"}]},
                    {"type": "text", "text": "And tomorrow?"}]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true},
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "stream": true
        }))
        .unwrap();
        insta::assert_json_snapshot!(messages_to_chat(&req, "gpt-4o"));
    }

    #[test]
    fn anthropic_response_to_openai() {
        let r: a::MessagesResponse = serde_json::from_value(json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
            "content": [{"type": "text", "text": "Let me check."},
                        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}
        }))
        .unwrap();
        let out = messages_response_to_chat(&r, 1_700_000_000);
        // Anthropic input_tokens excludes the cache; OpenAI prompt_tokens includes it.
        assert_eq!(out.usage.as_ref().unwrap().prompt_tokens, 115);
        insta::assert_json_snapshot!(out);
    }

    #[test]
    fn openai_response_to_anthropic() {
        let r: o::ChatResponse = serde_json::from_value(json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": "Hello"}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57, "prompt_tokens_details": {"cached_tokens": 40}}
        }))
        .unwrap();
        let out = chat_response_to_messages(&r);
        assert_eq!(out.usage.input_tokens, 10);
        assert_eq!(out.usage.cache_read_input_tokens, Some(40));
        insta::assert_json_snapshot!(out);
    }

    #[test]
    fn stop_reasons() {
        use crate::translate::*;
        assert_eq!(anthropic_stop_to_openai("end_turn"), "stop");
        assert_eq!(anthropic_stop_to_openai("stop_sequence"), "stop");
        assert_eq!(anthropic_stop_to_openai("max_tokens"), "length");
        assert_eq!(anthropic_stop_to_openai("tool_use"), "tool_calls");
        assert_eq!(anthropic_stop_to_openai("refusal"), "content_filter");
        assert_eq!(openai_finish_to_anthropic("stop"), "end_turn");
        assert_eq!(openai_finish_to_anthropic("length"), "max_tokens");
        assert_eq!(openai_finish_to_anthropic("tool_calls"), "tool_use");
        assert_eq!(openai_finish_to_anthropic("content_filter"), "refusal");
    }
}
