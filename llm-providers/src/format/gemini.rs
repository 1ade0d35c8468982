//! Google Gemini `generateContent` wire types (the subset the translation reads; requests are
//! built as JSON in [`crate::translate`]).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Extra, Usage as NormUsage};

/// A `generateContent` response, also each event of `streamGenerateContent?alt=sse`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// Candidates (the translation reads the first).
    #[serde(default)]
    pub candidates: Vec<Candidate>,
    /// Usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// Model version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// Response id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// One candidate.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Content.
    #[serde(default)]
    pub content: Option<GContent>,
    /// `STOP`, `MAX_TOKENS`, `SAFETY`, `RECITATION`, ...
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// Content with parts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GContent {
    /// `user` or `model`.
    #[serde(default)]
    pub role: Option<String>,
    /// Parts: `{text}`, `{functionCall: {name, args}}`, ...
    #[serde(default)]
    pub parts: Vec<Value>,
}

/// Usage: `promptTokenCount` includes cached content.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens incl. cached.
    #[serde(default)]
    pub prompt_token_count: u64,
    /// Output tokens.
    #[serde(default)]
    pub candidates_token_count: u64,
    /// Cached prompt tokens.
    #[serde(default)]
    pub cached_content_token_count: u64,
    /// Thinking tokens (billed as output).
    #[serde(default)]
    pub thoughts_token_count: u64,
    /// Everything else.
    #[serde(flatten)]
    pub extra: Extra,
}

impl UsageMetadata {
    /// Normalised usage.
    pub fn normalize(&self) -> NormUsage {
        NormUsage {
            input: self.prompt_token_count,
            output: self.candidates_token_count + self.thoughts_token_count,
            cache_read: self.cached_content_token_count,
            cache_write: 0,
        }
    }
}
