//! OpenAI and every OpenAI-compatible host (vLLM, Ollama, Groq, Mistral, ...).

use bytes::Bytes;
use http::HeaderMap;

use super::{Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// OpenAI-compatible provider.
#[derive(Debug)]
pub struct OpenAi {
    base: String,
    key: Option<Secret>,
    headers: HeaderMap,
}

impl OpenAi {
    /// From config (`base_url` defaults to `https://api.openai.com/v1`).
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Self {
        OpenAi {
            base: base(cfg, "https://api.openai.com/v1"),
            key: cfg.resolve_api_key(),
            headers,
        }
    }
}

impl Provider for OpenAi {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::OpenAi
    }

    fn supports(&self, op: Operation) -> bool {
        op != Operation::CountTokens
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        let path = match op {
            Operation::Chat => "/chat/completions",
            Operation::Embeddings => "/embeddings",
            Operation::Responses => "/responses",
            Operation::InputTokens => "/responses/input_tokens",
            Operation::CountTokens => {
                return Err(Error::BadRequest(
                    "this model does not support this endpoint".into(),
                ));
            }
        };
        let mut rb = post_json(
            client,
            &format!("{}{path}", self.base),
            &self.headers,
            body,
            stream,
        );
        if let Some(k) = &self.key {
            rb = rb.header(
                http::header::AUTHORIZATION,
                secret_header(&format!("Bearer {}", k.expose()))?,
            );
        }
        Ok(rb)
    }
}
