//! OpenAI and every OpenAI-compatible host (vLLM, Ollama, Groq, Mistral, ...).

use bytes::Bytes;
use http::HeaderMap;

use super::{DirectTarget, Operation, Provider, base, post_json, secret_header};
use crate::config::{ProviderConfig, Secret};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// OpenAI-compatible provider.
#[derive(Debug)]
pub struct OpenAi {
    base: String,
    key: Option<Secret>,
    headers: HeaderMap,
    /// The URL of each operation and the `Authorization` value, made once here instead of
    /// parsed and formatted for every request (`None` when they do not parse: then each
    /// request does, and fails as it did).
    urls: Option<[reqwest::Url; 4]>,
    authorization: Option<http::HeaderValue>,
    /// Chat over plain HTTP without reqwest, non-streaming and streaming (they differ in
    /// `accept`); `None`: not plain HTTP, a proxy applies, or the key is not a valid header
    /// value.
    direct_chat: Option<[DirectTarget; 2]>,
}

impl OpenAi {
    /// From config (`base_url` defaults to `https://api.openai.com/v1`).
    pub fn new(cfg: &ProviderConfig, headers: HeaderMap) -> Self {
        let base = base(cfg, "https://api.openai.com/v1");
        let key = cfg.resolve_api_key();
        let url = |op| reqwest::Url::parse(&format!("{base}{}", path(op))).ok();
        let urls = match (
            url(Operation::Chat),
            url(Operation::Embeddings),
            url(Operation::Responses),
            url(Operation::InputTokens),
        ) {
            (Some(c), Some(e), Some(r), Some(i)) => Some([c, e, r, i]),
            _ => None,
        };
        let authorization = key
            .as_ref()
            .and_then(|k| secret_header(&format!("Bearer {}", k.expose())).ok());
        // The headers of `request`'s reqwest request for a chat, in its order: the configured
        // ones, then (appended) content type, accept and authorization.
        let target = |accept: &'static str| {
            let mut h = headers.clone();
            h.append(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            h.append(http::header::ACCEPT, http::HeaderValue::from_static(accept));
            if let Some(v) = &authorization {
                h.append(http::header::AUTHORIZATION, v.clone());
            }
            DirectTarget::new(&format!("{base}{}", path(Operation::Chat)), h)
        };
        let direct_chat = match (&key, &authorization) {
            (Some(_), None) => None,
            _ => target("application/json")
                .zip(target("text/event-stream"))
                .map(|(a, b)| [a, b]),
        };
        OpenAi {
            base,
            key,
            headers,
            urls,
            authorization,
            direct_chat,
        }
    }
}

/// The path of an operation OpenAI has; `CountTokens` is Anthropic's alone.
fn path(op: Operation) -> &'static str {
    match op {
        Operation::Chat => "/chat/completions",
        Operation::Embeddings => "/embeddings",
        Operation::Responses => "/responses",
        Operation::InputTokens | Operation::CountTokens => "/responses/input_tokens",
    }
}

impl Provider for OpenAi {
    fn native(&self) -> UpstreamFormat {
        UpstreamFormat::OpenAi
    }

    fn supports(&self, op: Operation) -> bool {
        op != Operation::CountTokens
    }

    fn direct(&self, op: Operation, stream: bool) -> Option<&DirectTarget> {
        let [chat, stream_chat] = self
            .direct_chat
            .as_ref()
            .filter(|_| op == Operation::Chat)?;
        Some(if stream { stream_chat } else { chat })
    }

    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder> {
        if op == Operation::CountTokens {
            return Err(Error::BadRequest(
                "this model does not support this endpoint".into(),
            ));
        }
        let mut rb = match &self.urls {
            Some(urls) => {
                let url = match op {
                    Operation::Chat => &urls[0],
                    Operation::Embeddings => &urls[1],
                    Operation::Responses => &urls[2],
                    Operation::InputTokens | Operation::CountTokens => &urls[3],
                };
                post_json(client, url.clone(), &self.headers, body, stream)
            }
            None => post_json(
                client,
                format!("{}{}", self.base, path(op)).as_str(),
                &self.headers,
                body,
                stream,
            ),
        };
        match (&self.authorization, &self.key) {
            (Some(v), _) => rb = rb.header(http::header::AUTHORIZATION, v.clone()),
            (None, Some(k)) => {
                rb = rb.header(
                    http::header::AUTHORIZATION,
                    secret_header(&format!("Bearer {}", k.expose()))?,
                );
            }
            (None, None) => {}
        }
        Ok(rb)
    }
}
