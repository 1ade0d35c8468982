//! Anthropic messages API.

use bytes::Bytes;
use http::HeaderMap;

use super::{Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// The `anthropic-version` header sent upstream.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Anthropic provider.
#[derive(Debug)]
pub struct Anthropic {
    base: String,
    key: Option<Secret>,
    headers: HeaderMap,
}

impl Anthropic {
    /// From config (`base_url` defaults to `https://api.anthropic.com`).
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Self {
        Anthropic {
            base: base(cfg, "https://api.anthropic.com"),
            key: cfg.resolve_api_key(),
            headers,
        }
    }
}

impl Provider for Anthropic {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::Anthropic
    }

    fn supports(&self, op: Operation) -> bool {
        matches!(op, Operation::Chat | Operation::CountTokens)
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        let path = match op {
            Operation::Chat => "/v1/messages",
            Operation::CountTokens => "/v1/messages/count_tokens",
            _ => {
                return Err(Error::BadRequest(
                    "this model does not support this endpoint".into(),
                ));
            }
        };
        let mut rb = post_json(
            client,
            format!("{}{path}", self.base),
            &self.headers,
            body,
            stream,
        )
        .header("anthropic-version", ANTHROPIC_VERSION);
        if let Some(k) = &self.key {
            rb = rb.header("x-api-key", secret_header(k.expose())?);
        }
        Ok(rb)
    }
}
