//! Azure OpenAI (deployments API; the configured `model` is the deployment name).

use bytes::Bytes;
use http::HeaderMap;

use super::{Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// Default `api-version`.
pub const DEFAULT_API_VERSION: &str = "2024-10-21";

/// Azure OpenAI provider.
#[derive(Debug)]
pub struct AzureOpenAi {
    base: String,
    deployment: String,
    api_version: String,
    key: Option<Secret>,
    headers: HeaderMap,
}

impl AzureOpenAi {
    /// From config (`base_url` is required: `https://{resource}.openai.azure.com`).
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Result<Self> {
        if cfg.base_url.is_none() {
            return Err(Error::Config("azure_openai needs base_url".into()));
        }
        Ok(AzureOpenAi {
            base: base(cfg, ""),
            deployment: url::form_urlencoded::byte_serialize(cfg.model.as_bytes()).collect(),
            api_version: cfg
                .api_version
                .clone()
                .unwrap_or_else(|| DEFAULT_API_VERSION.into()),
            key: cfg.resolve_api_key(),
            headers,
        })
    }
}

impl Provider for AzureOpenAi {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::OpenAi
    }

    fn supports(&self, op: Operation) -> bool {
        matches!(
            op,
            Operation::Chat | Operation::Embeddings | Operation::Responses
        )
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        let url = match op {
            Operation::Chat => format!(
                "{}/openai/deployments/{}/chat/completions?api-version={}",
                self.base, self.deployment, self.api_version
            ),
            Operation::Embeddings => {
                format!(
                    "{}/openai/deployments/{}/embeddings?api-version={}",
                    self.base, self.deployment, self.api_version
                )
            }
            // The Responses API lives on the v1 surface and takes the deployment as `model`.
            Operation::Responses => format!("{}/openai/v1/responses", self.base),
            Operation::CountTokens | Operation::InputTokens => {
                return Err(crate::Error::BadRequest(
                    "this model does not support this endpoint".into(),
                ));
            }
        };
        let mut rb = post_json(client, &url, &self.headers, body, stream);
        if let Some(k) = &self.key {
            rb = rb.header("api-key", secret_header(k.expose())?);
        }
        Ok(rb)
    }
}
