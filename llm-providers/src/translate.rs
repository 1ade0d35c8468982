//! Translation between API formats: requests, complete responses, streams and errors.
//!
//! OpenAI chat completions is the pivot for Gemini and Bedrock: an Anthropic caller in front of
//! Gemini goes Anthropic → OpenAI → Gemini and back, which keeps the number of translators
//! linear in the number of formats.

pub mod anthropic;
pub mod bedrock;
pub mod errors;
pub mod gemini;
pub mod stream;

/// Anthropic stop reason → OpenAI finish reason.
pub fn anthropic_stop_to_openai(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new all end the turn normally.
        _ => "stop",
    }
}

/// OpenAI finish reason → Anthropic stop reason.
pub fn openai_finish_to_anthropic(reason: &str) -> &'static str {
    match reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Gemini finish reason → OpenAI finish reason (`has_calls`: the candidate made function calls).
pub fn gemini_finish_to_openai(reason: &str, has_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            "content_filter"
        }
        _ if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Bedrock stop reason → OpenAI finish reason.
pub fn bedrock_stop_to_openai(reason: &str) -> &'static str {
    match reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

/// Parses tool-call arguments; invalid or empty JSON becomes an empty object so a provider that
/// requires an object still accepts the turn.
pub(crate) fn parse_arguments(args: &str) -> serde_json::Value {
    match serde_json::from_str::<serde_json::Value>(args) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        _ => serde_json::Value::Object(Default::default()),
    }
}

/// Splits a `data:` URL into (media type, base64 data).
pub(crate) fn split_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((media, data))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The sampling parameters Gemini and Bedrock share in shape (`temperature`, `topP`,
/// `stopSequences`), plus the output cap under the provider's own key.
pub(crate) fn sampling_config(
    req: &crate::format::openai::ChatRequest,
    max_tokens_key: &str,
) -> serde_json::Map<String, serde_json::Value> {
    use serde_json::Value;
    let mut m = serde_json::Map::new();
    if let Some(n) = req.output_cap() {
        m.insert(max_tokens_key.into(), n.into());
    }
    if let Some(t) = req.temperature {
        m.insert("temperature".into(), t.into());
    }
    if let Some(p) = req.top_p {
        m.insert("topP".into(), p.into());
    }
    match &req.stop {
        Some(Value::String(s)) => {
            m.insert(
                "stopSequences".into(),
                Value::Array(vec![Value::String(s.clone())]),
            );
        }
        Some(Value::Array(a)) => {
            m.insert("stopSequences".into(), Value::Array(a.clone()));
        }
        _ => {}
    }
    m
}
