//! Configuration of an `llm` route backend (`routes[].llm` in the gateway config).
//!
//! Parsed with serde (unknown keys are errors), described with schemars (this file: the
//! schema), then checked semantically by [`LlmConfig::validate`] (`validate`), which reports
//! `(key_path, message)` pairs. Credentials are [`Secret`]s (`secret`): redacted wherever
//! they are printed or dumped.

mod secret;
mod validate;

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use secret::{REDACTED, Secret, expose_secrets};

/// The `llm:` block of a route.
///
/// ```yaml
/// llm:
///   models:
///     - name: smart
///       strategy: failover
///       providers:
///         - {provider: openai, model: gpt-4o, api_key: "${OPENAI_API_KEY}"}
///         - {provider: anthropic, model: claude-sonnet-4-5, api_key_env: ANTHROPIC_API_KEY}
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmConfig {
    /// The model names clients may send, each backed by a pool of providers.
    #[schemars(length(min = 1))]
    pub models: Vec<ModelConfig>,
    /// Retry and backoff rules applied to every model of the route.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Per-attempt timeout and overall deadline.
    #[serde(default)]
    pub timeouts: LlmTimeouts,
    /// Outlier ejection of failing providers.
    #[serde(default)]
    pub outlier: OutlierConfig,
    /// Optional price table, keyed by the provider's model name (e.g. `gpt-4o`), used for the
    /// `switchboard_llm_cost_usd` metric. Prices are USD per million tokens.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, ModelPrice>,
    /// Cap on `max_tokens` used when estimating a request's token cost up front for the token
    /// rate limit (default 4096); real usage replaces the estimate when the response ends.
    #[serde(default = "default_estimate_cap")]
    pub max_tokens_estimate: u32,
    /// Largest non-streamed reply read from a provider (default 32 MiB); a larger one is an
    /// upstream failure (502 in the caller's format, the next provider is tried).
    #[serde(
        default = "default_max_response_bytes",
        skip_serializing_if = "is_default_max_response_bytes"
    )]
    pub max_response_bytes: usize,
    /// Largest single event of a provider stream: one SSE line or event, or one Bedrock
    /// event-stream message (default 4 MiB). A larger one ends the stream with an error event.
    #[serde(
        default = "default_max_event_bytes",
        skip_serializing_if = "is_default_max_event_bytes"
    )]
    pub max_event_bytes: usize,
    /// Model routing rules: names clients may send that the gateway resolves, per request, to
    /// one of `models` by CEL conditions on the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_models: Vec<VirtualModelConfig>,
    /// Response caching of chat requests (off without this block).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
}

/// `llm.cache`: answers to identical chat requests served from a cache.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an answer is kept (default `5m`).
    #[serde(default = "default_cache_ttl", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ttl: Duration,
    /// `memory` (this replica; default) or `redis` (the sessions store's Redis, shared by the
    /// fleet; needs `sessions.store: redis`).
    #[serde(default)]
    pub store: CacheStoreKind,
    /// Most answers kept in memory (default 1000).
    #[serde(default = "default_cache_entries")]
    pub max_entries: usize,
    /// Most bytes of answers kept in memory (default 64 MiB).
    #[serde(default = "default_cache_bytes")]
    pub max_bytes: usize,
    /// Largest answer kept (default 1 MiB); larger ones are not cached.
    #[serde(default = "default_cache_entry_bytes")]
    pub max_entry_bytes: usize,
    /// One cache for every caller of the route (default `false`: each API key, else each
    /// authenticated subject, else anonymous callers together, has its own).
    #[serde(default)]
    pub share_across_keys: bool,
}

/// Where `llm.cache` keeps answers.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CacheStoreKind {
    /// In this process.
    #[default]
    Memory,
    /// In the sessions store's Redis.
    Redis,
}

fn default_cache_ttl() -> Duration {
    Duration::from_secs(300)
}

fn default_cache_entries() -> usize {
    1000
}

fn default_cache_bytes() -> usize {
    64 << 20
}

fn default_cache_entry_bytes() -> usize {
    1 << 20
}

/// One virtual model: a name clients send, resolved per request by the first rule whose
/// `when` is true, else `default`.
///
/// ```yaml
/// virtual_models:
///   - name: auto
///     rules:
///       - {when: 'llm.prompt_tokens > 100000', to: long-context}
///       - {when: 'caller.team == "ml"', to: ml-deployment}
///     default: smart
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VirtualModelConfig {
    /// The model name clients send; must not be one of `models`.
    pub name: String,
    /// Tried in order; the first whose `when` is true picks the model.
    #[serde(default)]
    pub rules: Vec<RoutingRule>,
    /// The model (one of `models`) when no rule matches.
    pub default: String,
}

/// One routing rule of a virtual model.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoutingRule {
    /// A CEL expression over `request`, `caller` and `llm`; a rule that errors (e.g. a missing
    /// header) counts as false.
    pub when: String,
    /// The model (one of `models`) it routes to.
    pub to: String,
}

fn default_estimate_cap() -> u32 {
    4096
}

fn default_max_response_bytes() -> usize {
    32 << 20
}

fn is_default_max_response_bytes(v: &usize) -> bool {
    *v == default_max_response_bytes()
}

fn is_default_max_event_bytes(v: &usize) -> bool {
    *v == default_max_event_bytes()
}

fn default_max_event_bytes() -> usize {
    4 << 20
}

/// One model name as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The model name clients send (`"model": "smart"`).
    pub name: String,
    /// How requests are spread over the providers (default `failover`).
    #[serde(default)]
    pub strategy: Strategy,
    /// The providers that can serve this model.
    pub providers: Vec<ProviderConfig>,
}

/// Load-balancing strategy of a model's provider pool.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Lowest `priority` group first (weighted inside a group); the next group only when the
    /// whole group failed or is ejected.
    #[default]
    Failover,
    /// Random by `weight` across all providers.
    Weighted,
    /// Power of two choices on the EWMA of time to first byte.
    LeastLatency,
}

/// The upstream API a provider speaks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible host (`base_url`): vLLM, Ollama, Groq, Mistral...
    Openai,
    /// Azure OpenAI (deployments API; `model` is the deployment name).
    AzureOpenai,
    /// Anthropic messages API.
    Anthropic,
    /// Google Gemini (generateContent / streamGenerateContent).
    Gemini,
    /// AWS Bedrock Converse / ConverseStream with SigV4.
    Bedrock,
}

impl ProviderKind {
    /// The config spelling of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::AzureOpenai => "azure_openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
            ProviderKind::Bedrock => "bedrock",
        }
    }
}

/// One provider in a model's pool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Which API the provider speaks.
    pub provider: ProviderKind,
    /// Name reported in `x-switchboard-provider` and metrics (default: the `provider` value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The provider's model id (Azure: the deployment name; Bedrock: the model or inference
    /// profile id).
    pub model: String,
    /// API key (a secret: redacted in `/config` and never logged). Bedrock: the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<Secret>,
    /// Environment variable holding the API key, read when the backend is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Base URL. Defaults: openai `https://api.openai.com/v1`, anthropic
    /// `https://api.anthropic.com`, gemini `https://generativelanguage.googleapis.com`,
    /// bedrock `https://bedrock-runtime.{region}.amazonaws.com`; azure_openai requires it
    /// (`https://{resource}.openai.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Relative weight inside its priority group / the weighted pool (default 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Failover group; lower is tried first (default 0).
    #[serde(default)]
    pub priority: u32,
    /// azure_openai: the `api-version` query parameter (default `2024-10-21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// bedrock: AWS region (default from `AWS_REGION`, else `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// bedrock: access key id (default from `AWS_ACCESS_KEY_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// bedrock: session token for temporary credentials (default from `AWS_SESSION_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    /// Extra headers sent to this provider on every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    1
}

impl ProviderConfig {
    /// The name reported for this provider.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.provider.as_str())
    }

    /// The API key from `api_key`, else from the `api_key_env` variable.
    pub fn resolve_api_key(&self) -> Option<Secret> {
        if let Some(k) = &self.api_key {
            return Some(k.clone());
        }
        let var = self.api_key_env.as_deref()?;
        std::env::var(var).ok().map(Secret::new)
    }
}

/// Retry rules. A request is retried on connect errors, timeouts, 429, 5xx and 529, never once a
/// byte has reached the client.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per provider before failing over to the next one (default 2).
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1))]
    pub attempts: u32,
    /// Base of the jittered exponential backoff (default `100ms`).
    #[serde(default = "default_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub backoff: Duration,
    /// Cap of the exponential backoff (default `2s`).
    #[serde(default = "default_max_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_backoff: Duration,
    /// When the provider asks to wait longer than this (`retry-after-ms`, `retry-after`, or a
    /// retry delay in the error body), fail over instead of waiting (default `5s`).
    #[serde(default = "default_max_retry_wait", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_retry_wait: Duration,
}

fn default_attempts() -> u32 {
    2
}
fn default_backoff() -> Duration {
    Duration::from_millis(100)
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(2)
}
fn default_max_retry_wait() -> Duration {
    Duration::from_secs(5)
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            max_retry_wait: default_max_retry_wait(),
        }
    }
}

/// Timeouts of the LLM backend.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LlmTimeouts {
    /// Per attempt: time until the provider's response headers and first body bytes of a
    /// stream, or the whole body of a non-streaming response (default `120s`). A provider that
    /// hangs is abandoned and the next one tried.
    #[serde(default = "default_attempt_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub attempt: Duration,
    /// Overall: time until a response starts reaching the client, across all retries and
    /// failovers (default `300s`). A stream that has started is not cut by it.
    #[serde(default = "default_deadline", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub deadline: Duration,
}

fn default_attempt_timeout() -> Duration {
    Duration::from_secs(120)
}
fn default_deadline() -> Duration {
    Duration::from_secs(300)
}

impl Default for LlmTimeouts {
    fn default() -> Self {
        Self {
            attempt: default_attempt_timeout(),
            deadline: default_deadline(),
        }
    }
}

/// Outlier ejection: after `consecutive_failures` failures in a row a provider is ejected for
/// `base_ejection * 2^(times ejected before)` (capped at `max_ejection`); when that expires one
/// probe request is let through (half-open) and decides.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutlierConfig {
    /// Consecutive failures that eject a provider (default 3; 0 disables ejection).
    #[serde(default = "default_consecutive")]
    pub consecutive_failures: u32,
    /// First ejection period (default `30s`).
    #[serde(default = "default_base_ejection", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub base_ejection: Duration,
    /// Longest ejection period (default `5m`).
    #[serde(default = "default_max_ejection", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_ejection: Duration,
}

fn default_consecutive() -> u32 {
    3
}
fn default_base_ejection() -> Duration {
    Duration::from_secs(30)
}
fn default_max_ejection() -> Duration {
    Duration::from_secs(300)
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: default_consecutive(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
        }
    }
}

/// Price of a model in USD per million tokens.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Uncached input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
    /// Cache-read input tokens (default: the `input` price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    /// Cache-write input tokens (default: the `input` price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn parse(yaml_json: serde_json::Value) -> LlmConfig {
        serde_json::from_value(yaml_json).unwrap()
    }

    pub(super) fn base() -> serde_json::Value {
        serde_json::json!({"models": [{"name": "smart", "providers": [
            {"provider": "openai", "model": "gpt-4o", "api_key": "sk-secret"}]}]})
    }

    #[test]
    fn defaults_and_valid() {
        let c = parse(base());
        assert_eq!(c.models[0].strategy, Strategy::Failover);
        assert_eq!(c.models[0].providers[0].weight, 1);
        assert_eq!(c.retry.attempts, 2);
        assert_eq!(c.timeouts.attempt, Duration::from_secs(120));
        assert!(c.validate("llm").is_empty());
    }

    #[test]
    fn cache_defaults_are_the_documented_ones() {
        let mut v = base();
        v["cache"] = serde_json::json!({});
        let c = parse(v).cache.expect("cache set");
        assert_eq!(c.ttl, Duration::from_secs(300));
        assert_eq!(c.store, CacheStoreKind::Memory);
        assert_eq!(c.max_entries, 1000);
        assert_eq!(c.max_bytes, 67_108_864);
        assert_eq!(c.max_entry_bytes, 1_048_576);
        assert!(!c.share_across_keys);
    }

    #[test]
    fn unknown_keys_rejected() {
        let mut v = base();
        v["models"][0]["providers"][0]["api_kye"] = "x".into();
        assert!(serde_json::from_value::<LlmConfig>(v).is_err());
        let mut v = base();
        v["retires"] = serde_json::json!({});
        assert!(serde_json::from_value::<LlmConfig>(v).is_err());
    }

    #[test]
    fn reply_caps_default_and_must_be_positive() {
        let c = parse(base());
        assert_eq!(c.max_response_bytes, 32 << 20);
        assert_eq!(c.max_event_bytes, 4 << 20);
        let mut v = base();
        v["max_response_bytes"] = 0.into();
        v["max_event_bytes"] = 0.into();
        let issues = parse(v).validate("llm");
        assert!(issues.contains(&("llm.max_response_bytes".into(), "must be at least 1".into())));
        assert!(issues.contains(&("llm.max_event_bytes".into(), "must be at least 1".into())));
    }

    #[test]
    fn durations_are_strings() {
        let mut v = base();
        v["timeouts"] = serde_json::json!({"attempt": "250ms", "deadline": "30s"});
        let c = parse(v);
        assert_eq!(c.timeouts.attempt, Duration::from_millis(250));
        assert_eq!(c.timeouts.deadline, Duration::from_secs(30));
    }

    #[test]
    fn api_key_env_is_resolved() {
        let mut v = base();
        v["models"][0]["providers"][0]
            .as_object_mut()
            .unwrap()
            .remove("api_key");
        v["models"][0]["providers"][0]["api_key_env"] = "SWITCHBOARD_TEST_KEY_THAT_IS_UNSET".into();
        let c = parse(v);
        assert!(c.models[0].providers[0].resolve_api_key().is_none());
        assert_eq!(c.models[0].providers[0].resolve_api_key(), None);
    }

    #[test]
    fn schema_generates() {
        let schema = schemars::schema_for!(LlmConfig);
        let s = serde_json::to_string(&schema).unwrap();
        assert!(s.contains("least_latency") && s.contains("api_key_env"));
    }
}
