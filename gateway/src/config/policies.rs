//! `policies`: the block a listener or a route carries, and the policies without runtime
//! state of their own (CORS, header changes, timeouts). The security policies are in
//! [`super::auth`]; the rate limit's limiter is [`crate::rate_limit`].

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AuthnPolicy, AuthzPolicy, UpstreamAuth};

/// `policies` — on a listener (for all its routes) or a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// Cross-origin resource sharing: answers preflights and adds the CORS response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Request and response header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeadersPolicy>,
    /// Upstream timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsPolicy>,
    /// Request and (on `llm` routes) token limits per interval, per route or per caller (`by`).
    /// Local to each replica, or shared through Redis when `sessions.store` is `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Authentication: JWT bearer tokens and API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn: Option<AuthnPolicy>,
    /// Authorization: CEL rules; any rule that is true allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<AuthzPolicy>,
    /// A credential the gateway sends upstream instead of the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<UpstreamAuth>,
    /// Forward the client's `Authorization`, `Cookie` and `x-api-key` headers upstream.
    /// Default false: they are removed. Turning this on hands the client's credential to the
    /// upstream (token passthrough): the upstream can replay it against anything else that
    /// accepts it, and a token minted for the gateway's audience reaches a service it was not
    /// meant for. Only enable it for an upstream that is itself the token's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_client_credentials: Option<bool>,
    /// Content rules on `llm` and `mcp` traffic (PII and secret detectors, regexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<super::GuardrailsPolicy>,
}

/// `policies.cors`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Allowed origins (`https://app.example`), or `*` for any.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Allowed methods for preflights (default: GET, POST, PUT, PATCH, DELETE, OPTIONS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers for preflights (default: echo the requested ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
}

/// `policies.headers`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersPolicy {
    /// Changes to the request before it goes upstream.
    #[serde(default)]
    pub request: HeaderOps,
    /// Changes to the response before it goes to the client.
    #[serde(default)]
    pub response: HeaderOps,
}

/// Header changes, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    /// Headers to append (existing values are kept).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to set (existing values are replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `policies.timeouts`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsPolicy {
    /// Time to open a TCP (and TLS) connection to the upstream. Default 5s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub connect: Option<Duration>,
    /// Time from sending the request until the upstream's response headers arrive. Default 60s.
    /// Streaming bodies are not cut by it (see `idle`).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub request: Option<Duration>,
    /// Longest pause in the response body stream before it is ended. Default: none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub idle: Option<Duration>,
}

/// `policies.rate_limit`: `{requests: 100, tokens: 200000, per: 1m, by: subject}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicy {
    /// Requests allowed per window (no request limit when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub requests: Option<u64>,
    /// LLM tokens (input + output) allowed per window (no token limit when absent; only
    /// enforced on `llm` routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub tokens: Option<u64>,
    /// Window length, e.g. `1m`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub per: Duration,
    /// Whose budget a request counts against (default `route`).
    #[serde(default)]
    pub by: LimitBy,
    /// With the limits in Redis (`sessions.store: redis`): what happens while Redis cannot be
    /// asked. `true` (default): requests pass unmetered (the route stays up, the limit is not
    /// enforced meanwhile). `false`: requests are refused with 503 and `Retry-After`.
    #[serde(default = "default_fail_open", skip_serializing_if = "is_true")]
    pub fail_open: bool,
}

fn default_fail_open() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What a rate limit is keyed by. In YAML a string: `route`, `subject`, `api_key`, `client`,
/// `jwt.sub`, `team` or `header:NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LimitBy {
    /// One budget for the whole route.
    #[default]
    Route,
    /// One budget per authenticated subject (unauthenticated callers share one).
    Subject,
    /// One budget per API key name (callers without a key share one).
    ApiKey,
    /// One budget per client address: the peer (or the PROXY protocol source), or the
    /// address trusted proxies forwarded (`listeners[].trusted_proxies`).
    Client,
    /// One budget per JWT `sub` (callers without a verified JWT share one).
    JwtSub,
    /// One budget per team (`authn.api_keys[].team`; callers without a team share one).
    Team,
    /// One budget per value of a request header, lower-case name (callers without the header
    /// share one).
    Header(String),
}

impl LimitBy {
    /// The YAML spelling.
    pub fn as_str(&self) -> std::borrow::Cow<'_, str> {
        match self {
            LimitBy::Route => "route".into(),
            LimitBy::Subject => "subject".into(),
            LimitBy::ApiKey => "api_key".into(),
            LimitBy::Client => "client".into(),
            LimitBy::JwtSub => "jwt.sub".into(),
            LimitBy::Team => "team".into(),
            LimitBy::Header(name) => format!("header:{name}").into(),
        }
    }
}

impl std::str::FromStr for LimitBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "route" => LimitBy::Route,
            "subject" => LimitBy::Subject,
            "api_key" => LimitBy::ApiKey,
            "client" => LimitBy::Client,
            "jwt.sub" => LimitBy::JwtSub,
            "team" => LimitBy::Team,
            _ => match s.strip_prefix("header:") {
                Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                    LimitBy::Header(name.to_ascii_lowercase())
                }
                Some(name) => return Err(format!("`{name}` is not a valid header name")),
                None => {
                    return Err(format!(
                        "unknown `{s}`: expected route, subject, api_key, client, jwt.sub, \
                         team or header:NAME"
                    ));
                }
            },
        })
    }
}

impl Serialize for LimitBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for LimitBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for LimitBy {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "LimitBy".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "What a rate limit is keyed by: route, subject, api_key, client, jwt.sub, team or header:NAME.",
            "type": "string",
            "pattern": "^(route|subject|api_key|client|jwt\\.sub|team|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$"
        })
    }
}

impl RateLimitPolicy {
    /// Semantic checks as `(key_path, message)` pairs.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.requests.is_none() && self.tokens.is_none() {
            issues.push((path.to_string(), "set requests, tokens or both".into()));
        }
        if self.requests == Some(0) {
            issues.push((format!("{path}.requests"), "must be at least 1".into()));
        }
        if self.tokens == Some(0) {
            issues.push((format!("{path}.tokens"), "must be at least 1".into()));
        }
        if self.per < Duration::from_secs(1) {
            issues.push((format!("{path}.per"), "must be at least 1s".into()));
        }
        issues
    }
}
