//! AWS Bedrock Converse wire types (the subset the translation reads; requests are built as
//! JSON in [`crate::translate`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, Usage as NormUsage};

/// `Converse` response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConverseResponse {
    /// `{message: {role, content: [...]}}`.
    #[serde(default)]
    pub output: Value,
    /// `end_turn`, `tool_use`, `max_tokens`, `stop_sequence`, `guardrail_intervened`,
    /// `content_filtered`.
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// Usage.
    #[serde(default)]
    pub usage: Option<BedrockUsage>,
    /// Everything else (`metrics`).
    #[serde(flatten)]
    pub extra: Extra,
}

/// Bedrock usage: `inputTokens` excludes cache reads and writes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BedrockUsage {
    /// Uncached input tokens.
    #[serde(default)]
    pub input_tokens: u64,
    /// Output tokens.
    #[serde(default)]
    pub output_tokens: u64,
    /// Cache reads.
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    /// Cache writes.
    #[serde(default)]
    pub cache_write_input_tokens: u64,
    /// Everything else (`totalTokens`).
    #[serde(flatten)]
    pub extra: Extra,
}

impl BedrockUsage {
    /// Normalised usage.
    pub fn normalize(&self) -> NormUsage {
        NormUsage {
            input: self.input_tokens + self.cache_read_input_tokens + self.cache_write_input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_write: self.cache_write_input_tokens,
        }
    }
}
