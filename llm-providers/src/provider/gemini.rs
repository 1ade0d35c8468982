//! Google Gemini native API (generateContent / streamGenerateContent over SSE).

use bytes::Bytes;
use http::HeaderMap;

use super::{Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// Gemini provider.
#[derive(Debug)]
pub struct Gemini {
    base: String,
    model: String,
    key: Option<Secret>,
    headers: HeaderMap,
}

impl Gemini {
    /// From config (`base_url` defaults to `https://generativelanguage.googleapis.com`).
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Self {
        let model = cfg.model.strip_prefix("models/").unwrap_or(&cfg.model);
        Gemini {
            base: base(cfg, "https://generativelanguage.googleapis.com"),
            model: url::form_urlencoded::byte_serialize(model.as_bytes()).collect(),
            key: cfg.resolve_api_key(),
            headers,
        }
    }
}

impl Provider for Gemini {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::Gemini
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        if op != Operation::Chat {
            return Err(Error::BadRequest(
                "this model does not support this endpoint".into(),
            ));
        }
        let url = if stream {
            format!(
                "{}/v1beta/models/{}:streamGenerateContent?alt=sse",
                self.base, self.model
            )
        } else {
            format!("{}/v1beta/models/{}:generateContent", self.base, self.model)
        };
        let mut rb = post_json(client, &url, &self.headers, body, stream);
        if let Some(k) = &self.key {
            rb = rb.header("x-goog-api-key", secret_header(k.expose())?);
        }
        Ok(rb)
    }
}
