//! Authentication (`policies.authn`) and the credential boundary between clients and
//! upstreams.
//!
//! A request's credential comes from `Authorization: Bearer …` or `x-api-key`. A bearer
//! value shaped like a JWT is verified against the route's JWKS ([`jwt`], keys from
//! [`jwks`]); anything else is looked up by SHA-256 among the configured API keys
//! ([`api_key`]), then, on routes with `virtual_keys: true`, among the keys created at run
//! time ([`virtual_keys`]). Success yields a [`Principal`], from which the policy stage builds the
//! request context the backends receive; failure becomes a 401 (or 403 for a missing scope, 429 for a
//! key over its rate limit) whose `WWW-Authenticate` header follows RFC 6750 and, for MCP,
//! points at the RFC 9728 metadata ([`crate::oauth_metadata`]). Nothing in the response says
//! which check failed beyond the standard error codes.
//!
//! Before any upstream sees the request, [`UpstreamCredentials::apply`] (in `credentials.rs`)
//! removes the client's
//! `Authorization`, `Cookie` and `x-api-key` (unless the route opts in to forwarding them) and
//! sets the route's own upstream credential: a token minted for the gateway never travels
//! further (no token passthrough).

pub mod api_key;
mod credentials;
pub mod jwks;
pub mod jwt;
pub mod virtual_keys;

pub use credentials::{
    CLIENT_CREDENTIAL_HEADERS, UpstreamCredentials, mcp_target_credentials,
    strip_client_credentials,
};

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::config::{AuthnMode, AuthnPolicy};
use crate::error::RequestError;

/// How the principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A verified JWT.
    Jwt,
    /// A configured API key.
    ApiKey,
}

/// The authenticated caller of a request. The pipeline inserts it into the request's
/// extensions (`req.extensions().get::<Principal>()`) after authentication succeeds; it is
/// absent for anonymous requests (no `authn`, or `mode: optional` without a credential).
/// Cloning is cheap (reference counts).
///
/// Backends use `subject` to bind sessions to their owner, `api_key` for per-key accounting,
/// and pass the principal to [`crate::authz::Authorizer::allows`] for tool and model checks.
#[derive(Debug, Clone)]
pub struct Principal {
    /// How it was authenticated.
    pub kind: PrincipalKind,
    /// The JWT's `sub` (or, without one, `iss`-less client id `azp`/`client_id`), or the API
    /// key's name.
    pub subject: Arc<str>,
    /// The verified JWT claims; `Null` for API keys.
    pub claims: Arc<serde_json::Value>,
    /// The API key's name, for API-key principals.
    pub api_key: Option<Arc<str>>,
    /// The team the caller belongs to (an API key's `team`), for per-team limits and spend.
    pub team: Option<Arc<str>>,
    /// OAuth scopes of the token (`scope` split on spaces, or `scp`).
    pub scopes: Arc<[String]>,
    /// Models the API key may use; `None` means no restriction.
    pub allowed_models: Option<Arc<[String]>>,
    /// Tools the API key may use; see [`Principal::may_use_tool`].
    pub allowed_tools: Option<Arc<[String]>>,
    /// Prompts the API key may use; see [`Principal::may_use_tool`].
    pub allowed_prompts: Option<Arc<[String]>>,
    /// Resources (URIs, URI templates) the API key may use; see [`Principal::may_use_tool`].
    pub allowed_resources: Option<Arc<[String]>>,
    /// What the caller's key budget is charged to: the virtual key ([`virtual_keys`]) used,
    /// or a config key with a `budget`.
    pub virtual_key: Option<Arc<virtual_keys::VirtualKey>>,
}

impl Principal {
    /// Whether `model` is within the key's model allow list (always true without one).
    pub fn may_use_model(&self, model: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|l| l.iter().any(|m| m == model))
    }

    /// Whether the key restricts MCP items at all (has a tool, prompt or resource list).
    pub fn restricts_mcp(&self) -> bool {
        self.allowed_tools.is_some()
            || self.allowed_prompts.is_some()
            || self.allowed_resources.is_some()
    }

    /// Whether `tool` is within the key's tool allow list. The three MCP lists restrict as a
    /// group: without any of them everything is allowed; with any of them only what they
    /// name (an absent list then allows nothing of its kind).
    pub fn may_use_tool(&self, tool: &str) -> bool {
        self.may_use(self.allowed_tools.as_deref(), tool)
    }

    /// Whether `prompt` is within the key's prompt allow list (see [`Self::may_use_tool`]).
    pub fn may_use_prompt(&self, prompt: &str) -> bool {
        self.may_use(self.allowed_prompts.as_deref(), prompt)
    }

    /// Whether the resource URI (or URI template) is within the key's resource allow list
    /// (see [`Self::may_use_tool`]).
    pub fn may_use_resource(&self, uri: &str) -> bool {
        self.may_use(self.allowed_resources.as_deref(), uri)
    }

    fn may_use(&self, list: Option<&[String]>, item: &str) -> bool {
        if !self.restricts_mcp() {
            return true;
        }
        list.is_some_and(|l| l.iter().any(|e| allow_entry_matches(e, item)))
    }
}

/// An allow-list entry: the exact name, or with a trailing `*` every name that starts with
/// what precedes it.
fn allow_entry_matches(entry: &str, item: &str) -> bool {
    match entry.strip_suffix('*') {
        Some(prefix) => item.starts_with(prefix),
        None => entry == item,
    }
}

/// A refused authentication, before it becomes a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No credential was presented (RFC 6750: a challenge without an error code).
    Missing,
    /// A credential was presented but is not valid (`error="invalid_token"`).
    Invalid,
    /// The token lacks a required scope (`error="insufficient_scope"`, 403).
    InsufficientScope,
    /// The API key is over its rate limit (429).
    RateLimited {
        /// Seconds until a request would be allowed.
        retry_after: u64,
    },
}

/// The compiled `authn` policy of a route. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<AuthnShared>,
    /// The run-time keys, when `virtual_keys: true` ([`Authenticator::with_virtual_keys`]).
    virtual_keys: Option<virtual_keys::KeyStore>,
}

struct AuthnShared {
    mode: AuthnMode,
    jwt: Option<jwt::JwtVerifier>,
    keys: api_key::ApiKeys,
    metadata: Option<crate::oauth_metadata::ResourceMetadata>,
    required_scopes: Vec<String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("mode", &self.inner.mode)
            .field("jwt", &self.inner.jwt.is_some())
            .field("api_keys", &self.inner.keys.len())
            .finish()
    }
}

static X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

impl Authenticator {
    /// Compiles a validated policy. With a JWKS, starts its background refresh when a tokio
    /// runtime is running; the refresh ends when the last clone is dropped. A relative
    /// `jwks.file` resolves against `base_dir` (the config file's folder).
    pub fn new(p: &AuthnPolicy, base_dir: &Path) -> Self {
        let jwt = p.jwt.as_ref().map(|j| match &j.jwks.file {
            Some(f) if Path::new(f).is_relative() => {
                let mut j = j.clone();
                j.jwks.file = Some(base_dir.join(f).to_string_lossy().into_owned());
                jwt::JwtVerifier::new(&j)
            }
            _ => jwt::JwtVerifier::new(j),
        });
        Authenticator {
            inner: Arc::new(AuthnShared {
                mode: p.mode,
                jwt,
                keys: api_key::ApiKeys::new(&p.api_keys),
                metadata: p
                    .resource_metadata
                    .as_ref()
                    .map(|m| crate::oauth_metadata::ResourceMetadata::new(m, &p.required_scopes)),
                required_scopes: p.required_scopes.clone(),
            }),
            virtual_keys: None,
        }
    }

    /// Also accepts the virtual keys of `store` (a route with `authn.virtual_keys: true`).
    pub fn with_virtual_keys(mut self, store: virtual_keys::KeyStore) -> Self {
        self.virtual_keys = Some(store);
        self
    }

    /// A configured API key, else (with `virtual_keys: true`) a virtual key.
    async fn check_key(&self, presented: &[u8], now: SystemTime) -> Result<Principal, Refusal> {
        match self.inner.keys.check(presented, now) {
            Err(Refusal::Invalid) if let Some(vk) = &self.virtual_keys => {
                vk.authenticate(presented).await?.ok_or(Refusal::Invalid)
            }
            other => other,
        }
    }

    /// The route's RFC 9728 metadata, when configured.
    pub fn metadata(&self) -> Option<&crate::oauth_metadata::ResourceMetadata> {
        self.inner.metadata.as_ref()
    }

    /// Authenticates a request from its headers. `Ok(None)` is an anonymous request that
    /// `mode: optional` lets through.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, Refusal> {
        let now = SystemTime::now();
        let bearer = bearer_token(headers);
        let api_key = headers.get(&X_API_KEY).map(|v| v.as_bytes());
        let principal = match (bearer, api_key) {
            (None, None) => {
                return match self.inner.mode {
                    AuthnMode::Optional => Ok(None),
                    AuthnMode::Required => Err(Refusal::Missing),
                };
            }
            (Some(Err(())), _) => return Err(Refusal::Invalid),
            (Some(Ok(token)), _)
                if let Some(verifier) = self.inner.jwt.as_ref()
                    && jwt::looks_like_jwt(token) =>
            {
                verifier.verify(token).await.map_err(|e| {
                    tracing::debug!(reason = %e, "bearer token refused");
                    Refusal::Invalid
                })?
            }
            (Some(Ok(token)), _) => self.check_key(token.as_bytes(), now).await?,
            (None, Some(key)) => self.check_key(key, now).await?,
        };
        if principal.kind == PrincipalKind::Jwt
            && !self
                .inner
                .required_scopes
                .iter()
                .all(|s| principal.scopes.contains(s))
        {
            return Err(Refusal::InsufficientScope);
        }
        Ok(Some(principal))
    }

    /// Turns a refusal into the error response cause, with its `WWW-Authenticate` challenge.
    /// `origin` is `scheme://host` of the request and `prefix` the route's path prefix, used
    /// for the metadata URL when the route's `resource` is not configured.
    pub fn refusal_error(
        &self,
        r: Refusal,
        origin: Option<&str>,
        prefix: Option<&str>,
    ) -> RequestError {
        let mut c = String::from("Bearer realm=\"switchboard\"");
        match r {
            Refusal::Missing => {}
            Refusal::Invalid => c.push_str(", error=\"invalid_token\""),
            Refusal::InsufficientScope => {
                c.push_str(", error=\"insufficient_scope\", scope=\"");
                c.push_str(&self.inner.required_scopes.join(" "));
                c.push('"');
            }
            Refusal::RateLimited { retry_after } => {
                let mut headers = http::HeaderMap::new();
                headers.insert(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(retry_after),
                );
                return crate::error::rate_limited(headers);
            }
        }
        if let Some(m) = &self.inner.metadata
            && let Some(url) = m.metadata_url(origin, prefix)
        {
            c.push_str(", resource_metadata=\"");
            c.push_str(&url);
            c.push('"');
        }
        let challenge = HeaderValue::from_str(&c)
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"switchboard\""));
        match r {
            Refusal::InsufficientScope => crate::error::forbidden(Some(challenge)),
            _ => crate::error::unauthenticated(challenge),
        }
    }
}

/// The bearer token of `Authorization`, if the scheme is `Bearer`. `Err` for a bearer header
/// that is not valid text; `None` without one (other schemes are not ours to judge).
fn bearer_token(headers: &HeaderMap) -> Option<Result<&str, ()>> {
    let v = headers.get(header::AUTHORIZATION)?;
    let Ok(s) = v.to_str() else {
        return Some(Err(()));
    };
    let (scheme, rest) = s.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    if token.is_empty() {
        Some(Err(()))
    } else {
        Some(Ok(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert!(bearer_token(&h).is_none());
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(bearer_token(&h).is_none());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  t0k "),
        );
        assert_eq!(bearer_token(&h), Some(Ok("t0k")));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer_token(&h), Some(Err(())));
    }
}
