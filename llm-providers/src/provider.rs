//! Upstream providers behind one trait: each knows its URLs, authentication and native wire
//! format; the backend decides what to translate. Credentials come only from the config or the
//! environment, never from the client.

pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod gemini;
pub mod openai;

use std::fmt::Debug;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ProviderConfig, ProviderKind};
use crate::translate::stream::UpstreamFormat;
use crate::{Error, Result};

/// What the request asks the provider to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Chat in the provider's native API (OpenAI chat completions, Anthropic messages, Gemini
    /// generateContent, Bedrock Converse).
    Chat,
    /// OpenAI embeddings.
    Embeddings,
    /// OpenAI Responses API (pass-through).
    Responses,
    /// Anthropic's token counting, `POST /v1/messages/count_tokens` (Anthropic only).
    CountTokens,
    /// OpenAI's token counting, `POST /v1/responses/input_tokens` (OpenAI only).
    InputTokens,
}

/// An upstream provider.
pub trait Provider: Send + Sync + Debug {
    /// The API the provider speaks natively.
    fn native(&self) -> UpstreamFormat;

    /// Builds the HTTP request carrying `body` (already in the native format).
    fn request(
        &self,
        client: &reqwest::Client,
        op: Operation,
        body: Bytes,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder>;

    /// Whether `op` is supported.
    fn supports(&self, op: Operation) -> bool {
        op == Operation::Chat
    }

    /// Where `op` (streamed or not) may be sent without reqwest (plain HTTP, no proxy; see
    /// [`DirectTarget`]); `None`: through [`Provider::request`] only.
    fn direct(&self, _op: Operation, _stream: bool) -> Option<&DirectTarget> {
        None
    }
}

/// Where a provider's direct calls go, made once per provider ([`DirectTarget::new`]; the call itself is the backend's `direct`).
#[derive(Debug, Clone)]
pub struct DirectTarget {
    target: switchboard_core::h1pool::H1Target,
    /// The request's headers, `Host` then `Content-Length` last, as hyper-util's client adds
    /// them. `Content-Length` is a place held for each request's length
    /// ([`DirectTarget::headers_for`]).
    headers: HeaderMap,
}

impl DirectTarget {
    /// The target for `POST url` with `headers` (as the provider's reqwest request carries
    /// them, in order), or `None` when reqwest is needed
    /// ([`H1Target::direct`](switchboard_core::h1pool::H1Target::direct): not plain `http://`,
    /// credentials in the URL, or a proxy from the environment applies to it).
    pub fn new(url: &str, mut headers: HeaderMap) -> Option<Self> {
        let target = switchboard_core::h1pool::H1Target::direct(&url.parse().ok()?)?;
        headers
            .entry(http::header::HOST)
            .or_insert_with(|| target.host.clone());
        headers
            .entry(http::header::CONTENT_LENGTH)
            .or_insert(HeaderValue::from_static("0"));
        Some(DirectTarget { target, headers })
    }

    /// Where the request goes: the pool's key and the origin-form URI.
    pub(crate) fn target(&self) -> &switchboard_core::h1pool::H1Target {
        &self.target
    }

    /// The headers of a request whose body is `len` bytes long.
    ///
    /// A clone of a header map has no room to spare: when hyper added `Content-Length` to it,
    /// the map grew (a reallocation) on every request; replacing the value held for it does
    /// not (issue 19).
    pub(crate) fn headers_for(&self, len: usize) -> HeaderMap {
        let mut headers = self.headers.clone();
        if let Some(v) = headers.get_mut(http::header::CONTENT_LENGTH) {
            *v = HeaderValue::from(len);
        }
        headers
    }
}

/// A configured provider with its identity.
#[derive(Debug, Clone)]
pub struct Member {
    /// Name for `x-switchboard-provider` and metrics.
    pub name: Arc<str>,
    /// Provider kind (`openai`, ...).
    pub kind: ProviderKind,
    /// The provider's model id.
    pub model: Arc<str>,
    /// The transport.
    pub provider: Arc<dyn Provider>,
    /// `x-switchboard-provider` and `x-switchboard-model` values, built once (`None` for a
    /// name that is not a valid header value).
    pub(crate) identity: [Option<HeaderValue>; 2],
}

/// Builds the provider for a config entry (reads `api_key_env` and AWS variables now).
pub fn build(cfg: &ProviderConfig) -> Result<Member> {
    let headers = extra_headers(cfg)?;
    let provider: Arc<dyn Provider> = match cfg.provider {
        ProviderKind::Openai => Arc::new(openai::OpenAi::new(cfg, headers)),
        ProviderKind::AzureOpenai => Arc::new(azure::AzureOpenAi::new(cfg, headers)?),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(cfg, headers)),
        ProviderKind::Gemini => Arc::new(gemini::Gemini::new(cfg, headers)),
        ProviderKind::Bedrock => Arc::new(bedrock::Bedrock::new(cfg, headers)),
    };
    let name: Arc<str> = cfg.display_name().into();
    let model: Arc<str> = cfg.model.as_str().into();
    Ok(Member {
        identity: [
            HeaderValue::from_str(&name).ok(),
            HeaderValue::from_str(&model).ok(),
        ],
        name,
        kind: cfg.provider,
        model,
        provider,
    })
}

fn extra_headers(cfg: &ProviderConfig) -> Result<HeaderMap> {
    let mut h = HeaderMap::new();
    for (k, v) in &cfg.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Error::Config(format!("invalid header name {k}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| Error::Config(format!("invalid value for header {k}")))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// The base URL without a trailing slash.
pub(crate) fn base(cfg: &ProviderConfig, default: &str) -> String {
    cfg.base_url
        .as_deref()
        .unwrap_or(default)
        .trim_end_matches('/')
        .to_string()
}

/// A sensitive header value (never logged by reqwest/hyper debug output).
pub(crate) fn secret_header(v: &str) -> Result<HeaderValue> {
    let mut h = HeaderValue::from_str(v)
        .map_err(|_| Error::Config("credential is not a valid header value".into()))?;
    h.set_sensitive(true);
    Ok(h)
}

/// Common request shape: POST JSON with the extra headers.
pub(crate) fn post_json(
    client: &reqwest::Client,
    url: impl reqwest::IntoUrl,
    headers: &HeaderMap,
    body: Bytes,
    stream: bool,
) -> reqwest::RequestBuilder {
    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    client
        .post(url)
        .headers(headers.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, accept)
        .body(body)
}
