//! Wire types of the APIs Switchboard speaks and calls. Every top-level object keeps fields it
//! does not model in a flattened `extra` map, so a pass-through request loses nothing.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;

/// Token usage normalised across APIs. `input` counts all prompt tokens, cached ones included
/// (OpenAI's `prompt_tokens` semantics); `cache_read` and `cache_write` are the parts of it
/// served from or written to a prompt cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// All prompt tokens, cache reads and writes included.
    pub input: u64,
    /// Generated tokens.
    pub output: u64,
    /// Prompt tokens read from the cache.
    pub cache_read: u64,
    /// Prompt tokens written to the cache.
    pub cache_write: u64,
}

impl Usage {
    /// Prompt tokens that were neither read from nor written to a cache.
    pub fn uncached_input(&self) -> u64 {
        self.input
            .saturating_sub(self.cache_read + self.cache_write)
    }

    /// Input plus output.
    pub fn total(&self) -> u64 {
        self.input + self.output
    }
}

/// A field's raw value when the field is there, `null` included (an `Option` would read
/// `null` as absent): for borrowed parses that must tell `"x": null` from no `x`.
#[derive(Default)]
pub(crate) struct Present<'a>(pub(crate) Option<&'a serde_json::value::RawValue>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Present<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a serde_json::value::RawValue>::deserialize(d).map(|raw| Present(Some(raw)))
    }
}

/// A JSON object of fields a type does not model.
pub type Extra = serde_json::Map<String, serde_json::Value>;

/// The API format a caller speaks; errors and streams are produced in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// OpenAI (`/chat/completions`, `/embeddings`, `/models`, `/responses`).
    OpenAi,
    /// Anthropic (`/messages`).
    Anthropic,
}

impl From<ApiFormat> for switchboard_core::ApiFormat {
    /// The error shape of the API: errors on an `llm` route are written in the caller's API.
    fn from(f: ApiFormat) -> Self {
        match f {
            ApiFormat::OpenAi => switchboard_core::ApiFormat::OpenAi,
            ApiFormat::Anthropic => switchboard_core::ApiFormat::Anthropic,
        }
    }
}
