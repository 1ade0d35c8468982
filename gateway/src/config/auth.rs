//! `policies.authn`, `policies.authz` and `policies.upstream_auth`: who may call a route and
//! what credential the gateway sends upstream. [`crate::auth`] and [`crate::authz`] compile
//! these into their runtime types.

use std::time::Duration;

use http::{HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `policies.authn` — who may call the route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthnPolicy {
    /// `required` (default): requests without a valid credential get 401. `optional`:
    /// anonymous requests pass (without a principal); an invalid credential still gets 401.
    #[serde(default)]
    pub mode: AuthnMode,
    /// Accept JWT bearer tokens signed by keys of this JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// Accept these API keys (stored as SHA-256 hashes), from `Authorization: Bearer` or
    /// `x-api-key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Serve RFC 9728 protected resource metadata for this route and point 401 challenges at
    /// it (what MCP clients use to discover the authorization server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metadata: Option<ResourceMetadataConfig>,
    /// OAuth scopes a JWT must carry (in `scope`, space-separated, or `scp`); a token without
    /// them gets 403 `insufficient_scope` naming the scopes, so the client can step up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_scopes: Vec<String>,
    /// Also accept the virtual keys managed at run time through the admin API (`/api/keys`),
    /// kept in the sessions store ([`crate::auth::virtual_keys`]). Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub virtual_keys: bool,
}

/// `policies.authn.mode`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthnMode {
    /// A valid credential is required.
    #[default]
    Required,
    /// Anonymous requests pass; presented credentials must still be valid.
    Optional,
}

/// `policies.authn.jwt`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Accepted `aud` values: the gateway's own identifiers (for MCP, the resource URL). A
    /// token for any other audience is refused, so tokens for other services cannot be
    /// replayed here.
    pub audiences: Vec<String>,
    /// Where the signing keys come from.
    pub jwks: JwksConfig,
    /// Tolerance for `exp` and `nbf` against the local clock. Default 60s.
    #[serde(default = "default_clock_skew", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub clock_skew: Duration,
    /// How often keys are re-read in the background. Default 5m. An unknown `kid` also
    /// triggers a re-read, at most once per `min_refresh_interval`.
    #[serde(default = "default_refresh", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub refresh_interval: Duration,
    /// Least time between two key re-reads caused by unknown `kid`s. Default 10s.
    #[serde(default = "default_min_refresh", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub min_refresh_interval: Duration,
}

fn default_clock_skew() -> Duration {
    Duration::from_secs(60)
}
fn default_refresh() -> Duration {
    Duration::from_secs(300)
}
fn default_min_refresh() -> Duration {
    Duration::from_secs(10)
}

/// `policies.authn.jwt.jwks` — exactly one of `file` or `url`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// A JWKS JSON file (relative paths resolve against the working directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// An `https://` (or `http://` for local development) URL serving the JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `policies.authn.api_keys[]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Name of the key: the principal's subject, in logs, metrics and `api_key.name`.
    pub name: String,
    /// The team the key belongs to: `rate_limit.by: team`, per-team spend and budgets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Lowercase hex SHA-256 of the key (`printf %s "$KEY" | sha256sum`). The key itself is
    /// never stored.
    pub sha256: String,
    /// RFC 3339 time after which the key is refused, e.g. `2027-01-01T00:00:00Z`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Models this key may use (LLM routes); absent means any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// Tools this key may list and call (MCP routes, exposed names). A key with any of
    /// `tools`, `prompts`, `resources` may use on MCP routes only what those lists name (an
    /// absent one of the three then means none); with none of them, any. An entry ending in
    /// `*` matches every name starting with what precedes the `*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Prompts this key may list, get and complete (MCP routes, exposed names); see `tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    /// Resources this key may list, read, subscribe to and complete (MCP routes, exposed URIs
    /// and URI templates); see `tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// The key's own request rate limit; over it, requests get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<KeyRateLimit>,
    /// The key's spend budget on `llm` routes (counted by key name, shared by the fleet
    /// through the sessions store); over it, requests get 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

/// A spend budget: `usd` per `period` (`api_keys[].budget`, and virtual keys' and teams'
/// budgets set through the admin API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The most the key (or team) may spend per period, in USD.
    pub usd: f64,
    /// `day` (UTC), `month` (UTC calendar month) or `total` (never resets).
    pub period: Period,
    /// Fraction of the budget (0 < f <= 1, default 0.8) at which
    /// `switchboard_budget_soft_limit_reached` turns 1, for alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soft_limit: Option<f64>,
}

impl Budget {
    /// Checks the values; the message names the field.
    pub fn check(&self) -> Result<(), String> {
        if !(self.usd.is_finite() && self.usd > 0.0) {
            return Err("`budget.usd` must be a positive number".into());
        }
        if let Some(s) = self.soft_limit
            && !(s > 0.0 && s <= 1.0)
        {
            return Err("`budget.soft_limit` must be a fraction in (0, 1]".into());
        }
        Ok(())
    }

    /// The soft-limit fraction (default 0.8).
    pub fn soft_fraction(&self) -> f64 {
        self.soft_limit.unwrap_or(0.8)
    }
}

/// A budget period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A UTC day.
    Day,
    /// A UTC calendar month.
    Month,
    /// For ever.
    Total,
}

/// `policies.authn.api_keys[].rate_limit` — a token bucket of `requests` per `per`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRateLimit {
    /// Requests allowed per window (also the burst).
    #[schemars(range(min = 1))]
    pub requests: u32,
    /// The window, e.g. `1m`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub per: Duration,
}

/// `policies.upstream_auth` — the credential the gateway sends upstream. Exactly one of
/// `value`, `env` or `file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuth {
    /// Header to set. Default `authorization`.
    #[serde(default = "default_upstream_header")]
    pub header: String,
    /// Text put before the secret, e.g. `"Bearer "`. Default empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The secret itself (prefer `${VAR}` expansion or `env`/`file`). Redacted in `/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Environment variable holding the secret, read when the config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the secret (surrounding whitespace trimmed); re-read when it changes, so a
    /// rotated credential needs no reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl From<&switchboard_mcp::config::UpstreamAuthSpec> for UpstreamAuth {
    /// An MCP target's own `upstream_auth` (the same shape).
    fn from(s: &switchboard_mcp::config::UpstreamAuthSpec) -> Self {
        UpstreamAuth {
            header: s.header.clone(),
            prefix: s.prefix.clone(),
            value: s.value.clone(),
            env: s.env.clone(),
            file: s.file.clone(),
        }
    }
}

fn default_upstream_header() -> String {
    "authorization".into()
}

impl AuthnPolicy {
    /// Semantic checks, as `(key path, message)` pairs.
    pub fn validate(&self, p: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.jwt.is_none() && self.api_keys.is_empty() && !self.virtual_keys {
            out.push((
                p.to_string(),
                "configure `jwt`, `api_keys` or `virtual_keys: true`: nothing could authenticate"
                    .into(),
            ));
        }
        if let Some(j) = &self.jwt {
            let jp = format!("{p}.jwt");
            if j.issuer.is_empty() {
                out.push((format!("{jp}.issuer"), "must not be empty".into()));
            }
            if j.audiences.is_empty() || j.audiences.iter().any(String::is_empty) {
                out.push((
                    format!("{jp}.audiences"),
                    "list the gateway's own audience(s); tokens for other audiences are refused"
                        .into(),
                ));
            }
            match (&j.jwks.file, &j.jwks.url) {
                (Some(_), Some(_)) | (None, None) => out.push((
                    format!("{jp}.jwks"),
                    "set exactly one of `file` or `url`".into(),
                )),
                (None, Some(u)) => match url::Url::parse(u) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
                    _ => out.push((
                        format!("{jp}.jwks.url"),
                        format!("`{u}` is not an http(s) URL"),
                    )),
                },
                (Some(f), None) if f.is_empty() => {
                    out.push((format!("{jp}.jwks.file"), "must not be empty".into()))
                }
                _ => {}
            }
            if j.refresh_interval < Duration::from_secs(1) {
                out.push((
                    format!("{jp}.refresh_interval"),
                    "must be at least 1s".into(),
                ));
            }
            if j.clock_skew > Duration::from_secs(600) {
                out.push((
                    format!("{jp}.clock_skew"),
                    "must be at most 10m (a larger skew keeps expired tokens alive)".into(),
                ));
            }
            if let Some(rm) = &self.resource_metadata
                && let Some(r) = &rm.resource
                && !j.audiences.contains(r)
            {
                out.push((
                    format!("{jp}.audiences"),
                    format!("must include the resource `{r}`: MCP clients request tokens for it"),
                ));
            }
        }
        let mut names = std::collections::HashMap::new();
        let mut hashes = std::collections::HashMap::new();
        for (i, k) in self.api_keys.iter().enumerate() {
            let kp = format!("{p}.api_keys[{i}]");
            if let Some(b) = &k.budget
                && let Err(m) = b.check()
            {
                out.push((format!("{kp}.budget"), m));
            }
            if k.name.is_empty() {
                out.push((format!("{kp}.name"), "must not be empty".into()));
            } else if let Some(first) = names.insert(k.name.as_str(), i) {
                out.push((
                    format!("{kp}.name"),
                    format!("duplicate key name `{}` (also api_keys[{first}])", k.name),
                ));
            }
            if parse_sha256(&k.sha256).is_none() {
                out.push((
                    format!("{kp}.sha256"),
                    "must be the 64 hex digits of the key's SHA-256 (printf %s \"$KEY\" | sha256sum)"
                        .into(),
                ));
            } else if let Some(first) = hashes.insert(k.sha256.to_ascii_lowercase(), i) {
                out.push((
                    format!("{kp}.sha256"),
                    format!("the same key is also api_keys[{first}]"),
                ));
            }
            if let Some(e) = &k.expires
                && humantime::parse_rfc3339_weak(e).is_err()
            {
                out.push((
                    format!("{kp}.expires"),
                    format!("`{e}` is not an RFC 3339 time like 2027-01-01T00:00:00Z"),
                ));
            }
            if let Some(r) = &k.rate_limit {
                if r.requests == 0 {
                    out.push((
                        format!("{kp}.rate_limit.requests"),
                        "must be at least 1".into(),
                    ));
                }
                if r.per.is_zero() {
                    out.push((
                        format!("{kp}.rate_limit.per"),
                        "must be more than 0s".into(),
                    ));
                }
            }
        }
        if let Some(rm) = &self.resource_metadata {
            out.extend(rm.validate(&format!("{p}.resource_metadata")));
        }
        for (i, s) in self.required_scopes.iter().enumerate() {
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
                out.push((
                    format!("{p}.required_scopes[{i}]"),
                    "a scope is a non-empty token without spaces or quotes".into(),
                ));
            }
        }
        out
    }
}

impl UpstreamAuth {
    /// Semantic checks, as `(key path, message)` pairs.
    pub fn validate(&self, p: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if HeaderName::from_bytes(self.header.as_bytes()).is_err() {
            out.push((
                format!("{p}.header"),
                format!("`{}` is not a header name", self.header),
            ));
        }
        let set = [&self.value, &self.env, &self.file]
            .iter()
            .filter(|v| v.is_some())
            .count();
        if set != 1 {
            out.push((
                p.to_string(),
                "set exactly one of `value`, `env` or `file`".into(),
            ));
        }
        if let Some(v) = &self.value
            && HeaderValue::from_str(&format!("{}{v}", self.prefix)).is_err()
        {
            // The message must not echo the secret.
            out.push((format!("{p}.value"), "not a valid header value".into()));
        }
        out
    }
}

/// `policies.authn.resource_metadata`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceMetadataConfig {
    /// The resource identifier: the absolute URL clients use for this route, e.g.
    /// `https://gw.example/mcp`. Default: derived from each request's scheme, `Host` and the
    /// route's `path_prefix` (set it explicitly behind a proxy that changes either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Issuer URLs of the authorization servers that mint tokens for this resource.
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request. Default: the route's `required_scopes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Human-readable name of the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
}

impl ResourceMetadataConfig {
    /// Semantic checks, as `(key path, message)` pairs.
    pub fn validate(&self, p: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(r) = &self.resource {
            match url::Url::parse(r) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host_str().is_some()
                        && u.fragment().is_none()
                        && u.query().is_none() => {}
                _ => out.push((
                    format!("{p}.resource"),
                    format!("`{r}` is not an absolute http(s) URL without query or fragment"),
                )),
            }
        }
        if self.authorization_servers.is_empty() {
            out.push((
                format!("{p}.authorization_servers"),
                "list at least one authorization server (its issuer URL)".into(),
            ));
        }
        for (i, a) in self.authorization_servers.iter().enumerate() {
            if !url::Url::parse(a).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                out.push((
                    format!("{p}.authorization_servers[{i}]"),
                    format!("`{a}` is not an http(s) URL"),
                ));
            }
        }
        out
    }
}

/// `policies.authz`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthzPolicy {
    /// CEL expressions; a request is allowed when any is true. An empty list allows all.
    /// Example: `jwt.sub == "alice"`, `mcp.tool.name.startsWith("search__")`,
    /// `api_key.name == "ci" && llm.model == "small"`.
    #[serde(default)]
    pub rules: Vec<String>,
}

impl AuthzPolicy {
    /// Compiles every rule, reporting each that does not compile or uses an unknown variable.
    pub fn validate(&self, p: &str) -> Vec<(String, String)> {
        self.rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| {
                crate::cel::compile_rule(r)
                    .err()
                    .map(|m| (format!("{p}.rules[{i}]"), m))
            })
            .collect()
    }
}

/// Parses 64 hex digits (an `api_keys[].sha256`) into a digest.
pub fn parse_sha256(hex_digest: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digest.trim(), &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_alerts_at_80_percent_unless_told_otherwise() {
        let b: Budget = serde_json::from_value(serde_json::json!({"usd": 2.0, "period": "day"}))
            .expect("a budget");
        assert_eq!(b.soft_fraction(), 0.8);
        let b: Budget = serde_json::from_value(
            serde_json::json!({"usd": 2.0, "period": "total", "soft_limit": 0.5}),
        )
        .expect("a budget");
        assert_eq!(b.soft_fraction(), 0.5);
    }
}
