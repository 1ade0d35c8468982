//! Anthropic messages wire types, including the SSE stream events.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, Usage as NormUsage};

/// `POST /v1/messages` request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MessagesRequest {
    /// Model name.
    pub model: String,
    /// Conversation (user/assistant).
    pub messages: Vec<Message>,
    /// System prompt: a string or text blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<Value>,
    /// Output cap (required by the API).
    pub max_tokens: u64,
    /// Stop sequences.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    /// Stream as SSE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `{type: auto|any|tool|none, name?, disable_parallel_tool_use?}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// `{user_id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Everything else (`top_k`, `thinking`...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// One message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// `user` or `assistant`.
    pub role: String,
    /// A string or content blocks.
    pub content: MessageContent,
}

/// Message content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum MessageContent {
    /// Plain text.
    Text(String),
    /// Content blocks.
    Blocks(Vec<Block>),
}

impl MessageContent {
    /// The content as blocks.
    pub fn into_blocks(self) -> Vec<Block> {
        match self {
            MessageContent::Text(t) => vec![Block::text(t)],
            MessageContent::Blocks(b) => b,
        }
    }
}

/// A content block, modelled loosely so every block type (text, image, tool_use, tool_result,
/// thinking, document, ...) round-trips.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Block {
    /// Block type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text` blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `tool_use` id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `tool_use` name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `tool_use` input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// `tool_result` target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_use_id: Option<String>,
    /// `tool_result` content (string or blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    /// `tool_result` error flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// `image` / `document` source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Value>,
    /// Everything else (`cache_control`, `thinking`, `signature`...).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Block {
    /// A text block.
    pub fn text(t: impl Into<String>) -> Self {
        Block {
            kind: "text".into(),
            text: Some(t.into()),
            ..Default::default()
        }
    }
}

/// A tool definition.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Tool {
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the input (absent for server tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Everything else (`type` of server tools, `cache_control`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Non-streaming response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MessagesResponse {
    /// Message id.
    pub id: String,
    /// `message`.
    #[serde(rename = "type", default = "message_kind")]
    pub kind: String,
    /// `assistant`.
    #[serde(default = "assistant_role")]
    pub role: String,
    /// Model.
    #[serde(default)]
    pub model: String,
    /// Content blocks.
    #[serde(default)]
    pub content: Vec<Block>,
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn`, `refusal`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The stop sequence that matched.
    #[serde(default)]
    pub stop_sequence: Option<String>,
    /// Usage.
    #[serde(default)]
    pub usage: Usage,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

fn message_kind() -> String {
    "message".into()
}
fn assistant_role() -> String {
    "assistant".into()
}

/// Anthropic usage: `input_tokens` excludes cache reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Usage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Input tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Everything else (`server_tool_use`, `service_tier`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl Usage {
    /// Normalised usage (input includes the cache parts).
    pub fn normalize(&self) -> NormUsage {
        let cache_read = self.cache_read_input_tokens.unwrap_or(0);
        let cache_write = self.cache_creation_input_tokens.unwrap_or(0);
        NormUsage {
            input: self.input_tokens + cache_read + cache_write,
            output: self.output_tokens,
            cache_read,
            cache_write,
        }
    }

    /// Anthropic usage from normalised usage.
    pub fn from_norm(u: NormUsage) -> Self {
        Usage {
            input_tokens: u.uncached_input(),
            output_tokens: u.output,
            cache_creation_input_tokens: Some(u.cache_write),
            cache_read_input_tokens: Some(u.cache_read),
            extra: Extra::new(),
        }
    }
}

/// One SSE event of a streamed message (the SSE `event:` name equals `type`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// First event: the message shell with input usage.
    MessageStart {
        /// The message so far.
        message: MessagesResponse,
    },
    /// A content block opens.
    ContentBlockStart {
        /// Block index.
        index: u32,
        /// The block shell.
        content_block: Block,
    },
    /// A fragment of a block.
    ContentBlockDelta {
        /// Block index.
        index: u32,
        /// The fragment.
        delta: BlockDelta,
    },
    /// A block closes.
    ContentBlockStop {
        /// Block index.
        index: u32,
    },
    /// Stop reason and cumulative usage.
    MessageDelta {
        /// `{stop_reason, stop_sequence}`.
        delta: MessageDeltaBody,
        /// Cumulative usage (`output_tokens`; newer APIs also input and cache counts).
        #[serde(default)]
        usage: DeltaUsage,
    },
    /// Last event.
    MessageStop,
    /// Keep-alive.
    Ping,
    /// Mid-stream error.
    Error {
        /// The error.
        error: ErrorBody,
    },
}

impl StreamEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            StreamEvent::MessageStart { .. } => "message_start",
            StreamEvent::ContentBlockStart { .. } => "content_block_start",
            StreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            StreamEvent::ContentBlockStop { .. } => "content_block_stop",
            StreamEvent::MessageDelta { .. } => "message_delta",
            StreamEvent::MessageStop => "message_stop",
            StreamEvent::Ping => "ping",
            StreamEvent::Error { .. } => "error",
        }
    }
}

/// A block fragment: `text_delta`, `input_json_delta`, `thinking_delta`, `signature_delta`...
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BlockDelta {
    /// Fragment type.
    #[serde(rename = "type")]
    pub kind: String,
    /// `text_delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// `input_json_delta`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_json: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `message_delta.delta`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MessageDeltaBody {
    /// Stop reason.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Matched stop sequence.
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `message_delta.usage` (counts are cumulative).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct DeltaUsage {
    /// Output tokens so far.
    #[serde(default)]
    pub output_tokens: u64,
    /// Uncached input tokens (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Cache writes (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Cache reads (newer API versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
}

/// Anthropic error envelope `{"type": "error", "error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorEnvelope {
    /// `error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The error.
    pub error: ErrorBody,
}

/// Anthropic error body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ErrorBody {
    /// `invalid_request_error`, `rate_limit_error`, `overloaded_error`, `api_error`...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Message.
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_normalizes_cache() {
        let u = Usage {
            input_tokens: 10,
            output_tokens: 3,
            cache_read_input_tokens: Some(100),
            cache_creation_input_tokens: Some(5),
            ..Default::default()
        };
        let n = u.normalize();
        assert_eq!((n.input, n.cache_read, n.cache_write), (115, 100, 5));
        assert_eq!(Usage::from_norm(n).input_tokens, 10);
    }

    #[test]
    fn events_parse() {
        let e: StreamEvent = serde_json::from_str(r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#).unwrap();
        assert!(matches!(e, StreamEvent::ContentBlockDelta { index: 1, .. }));
        let e: StreamEvent = serde_json::from_str(
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        )
        .unwrap();
        assert_eq!(e.name(), "error");
    }
}
