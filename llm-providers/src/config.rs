//! Configuration of an `llm` route backend (`routes[].llm` in the gateway config).
//!
//! Parsed with serde (unknown keys are errors), described with schemars, then checked
//! semantically by [`LlmConfig::validate`], which reports `(key_path, message)` pairs.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

impl LlmConfig {
    /// Semantic checks; each issue is `(key_path, message)` below `path` (e.g.
    /// `listeners[0].routes[1].llm`).
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        for (key, v) in [
            ("max_response_bytes", self.max_response_bytes),
            ("max_event_bytes", self.max_event_bytes),
        ] {
            if v == 0 {
                issues.push((format!("{path}.{key}"), "must be at least 1".into()));
            }
        }
        if self.models.is_empty() {
            issues.push((
                format!("{path}.models"),
                "at least one model is required".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let mp = format!("{path}.models[{i}]");
            if m.name.is_empty() {
                issues.push((format!("{mp}.name"), "must not be empty".into()));
            } else if !seen.insert(m.name.as_str()) {
                issues.push((
                    format!("{mp}.name"),
                    format!("duplicate model name `{}`", m.name),
                ));
            }
            if m.providers.is_empty() {
                issues.push((
                    format!("{mp}.providers"),
                    "at least one provider is required".into(),
                ));
            }
            if m.strategy != Strategy::Failover && m.providers.iter().all(|p| p.weight == 0) {
                issues.push((
                    format!("{mp}.providers"),
                    "at least one provider needs weight > 0".into(),
                ));
            }
            for (j, p) in m.providers.iter().enumerate() {
                issues.extend(p.validate(&format!("{mp}.providers[{j}]")));
            }
        }
        if self.retry.attempts == 0 {
            issues.push((
                format!("{path}.retry.attempts"),
                "must be at least 1".into(),
            ));
        }
        if self.retry.max_backoff < self.retry.backoff {
            issues.push((
                format!("{path}.retry.max_backoff"),
                "must not be below retry.backoff".into(),
            ));
        }
        if self.timeouts.attempt.is_zero() {
            issues.push((
                format!("{path}.timeouts.attempt"),
                "must be greater than zero".into(),
            ));
        }
        if self.timeouts.deadline < self.timeouts.attempt {
            issues.push((
                format!("{path}.timeouts.deadline"),
                "must not be below timeouts.attempt".into(),
            ));
        }
        if self.outlier.max_ejection < self.outlier.base_ejection {
            issues.push((
                format!("{path}.outlier.max_ejection"),
                "must not be below outlier.base_ejection".into(),
            ));
        }
        for (name, price) in &self.prices {
            let values = [
                Some(price.input),
                Some(price.output),
                price.cache_read,
                price.cache_write,
            ];
            if values
                .into_iter()
                .flatten()
                .any(|v| !v.is_finite() || v < 0.0)
            {
                issues.push((
                    format!("{path}.prices.{name}"),
                    "prices must be non-negative numbers".into(),
                ));
            }
        }
        issues
    }
}

impl ProviderConfig {
    /// Semantic checks of one provider entry.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.model.is_empty() {
            issues.push((format!("{path}.model"), "must not be empty".into()));
        }
        if self.api_key.is_some() && self.api_key_env.is_some() {
            issues.push((
                format!("{path}.api_key_env"),
                "set either api_key or api_key_env, not both".into(),
            ));
        }
        if let Some(u) = &self.base_url {
            match url::Url::parse(u) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
                _ => issues.push((format!("{path}.base_url"), "must be an http(s) URL".into())),
            }
        }
        if self.provider == ProviderKind::AzureOpenai && self.base_url.is_none() {
            issues.push((
                format!("{path}.base_url"),
                "azure_openai needs base_url (https://{resource}.openai.azure.com)".into(),
            ));
        }
        let bedrock_only = [
            ("region", self.region.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("session_token", self.session_token.is_some()),
        ];
        if self.provider != ProviderKind::Bedrock {
            for (key, set) in bedrock_only {
                if set {
                    issues.push((
                        format!("{path}.{key}"),
                        "only valid with provider: bedrock".into(),
                    ));
                }
            }
        }
        if self.api_version.is_some() && self.provider != ProviderKind::AzureOpenai {
            issues.push((
                format!("{path}.api_version"),
                "only valid with provider: azure_openai".into(),
            ));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push((
                    format!("{path}.headers.{name}"),
                    "not a valid header name".into(),
                ));
            }
        }
        issues
    }
}

thread_local! {
    static EXPOSE: Cell<bool> = const { Cell::new(false) };
}

/// A secret string (API key, token). `Debug` and `Display` print `<redacted>`, and so does
/// `Serialize` (which is what the gateway's `/config` dump uses), unless serialization runs
/// inside [`expose_secrets`] (for a renderer that must write the real value, e.g. the
/// controller writing a ConfigMap).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(std::sync::Arc<str>);

/// What a redacted secret serializes and prints as.
pub const REDACTED: &str = "<redacted>";

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into().into())
    }

    /// The secret value, for building the upstream request only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Runs `f` with secrets serializing to their real values on this thread.
pub fn expose_secrets<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            EXPOSE.with(|e| e.set(self.0));
        }
    }
    let _reset = Reset(EXPOSE.with(|e| e.replace(true)));
    f()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if EXPOSE.with(|e| e.get()) {
            s.serialize_str(&self.0)
        } else {
            s.serialize_str(REDACTED)
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        String::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_json: serde_json::Value) -> LlmConfig {
        serde_json::from_value(yaml_json).unwrap()
    }

    fn base() -> serde_json::Value {
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
    fn secrets_are_redacted_by_default() {
        let c = parse(base());
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("sk-secret"), "{dbg}");
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            !json.contains("sk-secret") && json.contains(REDACTED),
            "{json}"
        );
        let exposed = expose_secrets(|| serde_json::to_string(&c).unwrap());
        assert!(exposed.contains("sk-secret"));
        // The scope ends with the closure.
        assert!(!serde_json::to_string(&c).unwrap().contains("sk-secret"));
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

    fn issues(v: serde_json::Value) -> Vec<(String, String)> {
        parse(v).validate("llm")
    }

    #[test]
    fn rule_no_models() {
        let i = issues(serde_json::json!({"models": []}));
        assert_eq!(i[0].0, "llm.models");
    }

    #[test]
    fn rule_duplicate_model() {
        let mut v = base();
        let m = v["models"][0].clone();
        v["models"].as_array_mut().unwrap().push(m);
        assert_eq!(issues(v)[0].0, "llm.models[1].name");
    }

    #[test]
    fn rule_empty_providers() {
        let mut v = base();
        v["models"][0]["providers"] = serde_json::json!([]);
        assert_eq!(issues(v)[0].0, "llm.models[0].providers");
    }

    #[test]
    fn rule_both_key_sources() {
        let mut v = base();
        v["models"][0]["providers"][0]["api_key_env"] = "K".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].api_key_env");
    }

    #[test]
    fn rule_bad_base_url() {
        let mut v = base();
        v["models"][0]["providers"][0]["base_url"] = "ftp://x".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].base_url");
    }

    #[test]
    fn rule_azure_needs_base_url() {
        let mut v = base();
        v["models"][0]["providers"][0]["provider"] = "azure_openai".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].base_url");
    }

    #[test]
    fn rule_bedrock_only_keys() {
        let mut v = base();
        v["models"][0]["providers"][0]["region"] = "eu-west-1".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].region");
    }

    #[test]
    fn rule_zero_weights() {
        let mut v = base();
        v["models"][0]["strategy"] = "weighted".into();
        v["models"][0]["providers"][0]["weight"] = 0.into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers");
    }

    #[test]
    fn rule_retry_and_timeouts() {
        let mut v = base();
        v["retry"] = serde_json::json!({"attempts": 0, "backoff": "1s", "max_backoff": "10ms"});
        v["timeouts"] = serde_json::json!({"attempt": "10s", "deadline": "1s"});
        let keys: Vec<String> = issues(v).into_iter().map(|i| i.0).collect();
        assert_eq!(
            keys,
            [
                "llm.retry.attempts",
                "llm.retry.max_backoff",
                "llm.timeouts.deadline"
            ]
        );
    }

    #[test]
    fn rule_negative_price() {
        let mut v = base();
        v["prices"] = serde_json::json!({"gpt-4o": {"input": -1.0, "output": 1.0}});
        assert_eq!(issues(v)[0].0, "llm.prices.gpt-4o");
    }

    #[test]
    fn schema_generates() {
        let schema = schemars::schema_for!(LlmConfig);
        let s = serde_json::to_string(&schema).unwrap();
        assert!(s.contains("least_latency") && s.contains("api_key_env"));
    }
}
