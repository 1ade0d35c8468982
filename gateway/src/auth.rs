//! Authentication (`policies.authn`) and the credential boundary between clients and
//! upstreams.
//!
//! A request's credential comes from `Authorization: Bearer …` or `x-api-key`. A bearer
//! value shaped like a JWT is verified against the route's JWKS ([`jwt`], keys from
//! [`jwks`]); anything else is looked up by SHA-256 among the configured API keys
//! ([`api_key`]). Success yields a [`Principal`], which the pipeline stores in the request's
//! extensions for the backends; failure becomes a 401 (or 403 for a missing scope, 429 for a
//! key over its rate limit) whose `WWW-Authenticate` header follows RFC 6750 and, for MCP,
//! points at the RFC 9728 metadata ([`crate::oauth_metadata`]). Nothing in the response says
//! which check failed beyond the standard error codes.
//!
//! Before any upstream sees the request, [`UpstreamCredentials::apply`] removes the client's
//! `Authorization`, `Cookie` and `x-api-key` (unless the route opts in to forwarding them) and
//! sets the route's own upstream credential: a token minted for the gateway never travels
//! further (no token passthrough).

pub mod api_key;
pub mod jwks;
pub mod jwt;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::config::{AuthnMode, AuthnPolicy, UpstreamAuth};
use crate::error::ProxyError;

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
            (Some(Ok(token)), _) => self.inner.keys.check(token.as_bytes(), now)?,
            (None, Some(key)) => self.inner.keys.check(key, now)?,
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
    ) -> ProxyError {
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
                return ProxyError::RateLimited { headers };
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
            Refusal::InsufficientScope => ProxyError::Forbidden {
                challenge: Some(challenge),
            },
            _ => ProxyError::Unauthenticated { challenge },
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

/// Client credential headers that never reach an upstream unless a route opts in.
pub static CLIENT_CREDENTIAL_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("x-api-key"),
    header::PROXY_AUTHORIZATION,
];

/// Removes the client's credentials (`Authorization`, `Cookie`, `x-api-key`,
/// `Proxy-Authorization`) from headers bound upstream. Backends that build their own upstream
/// requests from client headers call this (the pipeline already does it for every route
/// without `forward_client_credentials`).
pub fn strip_client_credentials(headers: &mut HeaderMap) {
    for h in &CLIENT_CREDENTIAL_HEADERS {
        headers.remove(h);
    }
}

/// A route's upstream credential handling: strip the client's, add the configured one. The
/// default strips and adds nothing.
#[derive(Clone, Default)]
pub struct UpstreamCredentials {
    forward_client: bool,
    header: Option<(HeaderName, Arc<CredentialSource>)>,
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("UpstreamCredentials")
            .field("forward_client", &self.forward_client)
            .field("header", &self.header.as_ref().map(|(h, _)| h))
            .finish()
    }
}

enum CredentialSource {
    Static(Option<HeaderValue>),
    File {
        path: PathBuf,
        prefix: String,
        cached: Mutex<FileCache>,
    },
}

struct FileCache {
    checked: Option<std::time::Instant>,
    /// Modification time and length when last read.
    stamp: Option<(Option<SystemTime>, u64)>,
    value: Option<HeaderValue>,
}

/// How often a credential file's modification time is checked.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl CredentialSource {
    fn current(&self) -> Option<HeaderValue> {
        match self {
            CredentialSource::Static(v) => v.clone(),
            CredentialSource::File {
                path,
                prefix,
                cached,
            } => {
                let mut c = cached.lock().unwrap_or_else(|p| p.into_inner());
                let due = c.checked.is_none_or(|t| t.elapsed() >= FILE_CHECK_INTERVAL);
                if due {
                    c.checked = Some(std::time::Instant::now());
                    // A stat at most once a second; the read only when the file changed.
                    let stamp = std::fs::metadata(path)
                        .ok()
                        .map(|m| (m.modified().ok(), m.len()));
                    if stamp.is_none() || stamp != c.stamp {
                        c.stamp = stamp;
                        c.value = read_secret_file(path, prefix);
                    }
                }
                c.value.clone()
            }
        }
    }
}

fn read_secret_file(path: &Path, prefix: &str) -> Option<HeaderValue> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let v = HeaderValue::from_str(&format!("{prefix}{}", s.trim()));
            if v.is_err() {
                tracing::warn!(file = %path.display(), "upstream credential file is not a valid header value");
            }
            v.ok().map(|mut v| {
                v.set_sensitive(true);
                v
            })
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read upstream credential file");
            None
        }
    }
}

impl UpstreamCredentials {
    /// Compiles the route's settings. `env` resolves `upstream_auth.env`; `base_dir` resolves
    /// a relative `upstream_auth.file`.
    pub fn new(
        forward_client: bool,
        auth: Option<&UpstreamAuth>,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Self {
        let header = auth.and_then(|a| {
            let name = HeaderName::from_bytes(a.header.as_bytes()).ok()?;
            let sensitive = |s: String| {
                HeaderValue::from_str(&format!("{}{s}", a.prefix))
                    .ok()
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
            };
            let src = if let Some(v) = &a.value {
                CredentialSource::Static(sensitive(v.clone()))
            } else if let Some(var) = &a.env {
                let v = env(var);
                if v.is_none() {
                    tracing::warn!(env = %var, "upstream credential variable is not set");
                }
                CredentialSource::Static(v.and_then(sensitive))
            } else {
                let f = a.file.as_deref()?;
                CredentialSource::File {
                    path: base_dir.join(f),
                    prefix: a.prefix.clone(),
                    cached: Mutex::new(FileCache {
                        checked: None,
                        stamp: None,
                        value: None,
                    }),
                }
            };
            Some((name, Arc::new(src)))
        });
        UpstreamCredentials {
            forward_client,
            header,
        }
    }

    /// Whether the client's credentials are forwarded (the risky opt-in).
    pub fn forwards_client_credentials(&self) -> bool {
        self.forward_client
    }

    /// The configured upstream credential header and its current value, for backends that
    /// build their own upstream requests.
    pub fn upstream_header(&self) -> Option<(HeaderName, HeaderValue)> {
        let (name, src) = self.header.as_ref()?;
        Some((name.clone(), src.current()?))
    }

    /// Prepares headers bound upstream: strips the client's credentials (unless forwarding is
    /// on) and sets the configured credential.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.forward_client {
            strip_client_credentials(headers);
        }
        if let Some((name, value)) = self.upstream_header() {
            headers.insert(name, value);
        }
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

    #[test]
    fn strips_client_credentials_unless_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer c"));
        h.insert(header::COOKIE, HeaderValue::from_static("s=1"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        h.insert("x-other", HeaderValue::from_static("o"));
        let mut fwd = h.clone();
        let env = |_: &str| Some("upstream-secret".to_string());
        let auth = UpstreamAuth {
            header: "x-upstream-key".into(),
            prefix: String::new(),
            value: None,
            env: Some("K".into()),
            file: None,
        };
        UpstreamCredentials::new(false, Some(&auth), &env, Path::new(".")).apply(&mut h);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert!(h.get(header::COOKIE).is_none());
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h["x-other"], "o");
        assert_eq!(h["x-upstream-key"], "upstream-secret");
        assert!(h["x-upstream-key"].is_sensitive());
        UpstreamCredentials::new(true, None, &env, Path::new(".")).apply(&mut fwd);
        assert_eq!(fwd[header::AUTHORIZATION], "Bearer c");
    }

    #[test]
    fn credential_file_is_reread_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cred");
        std::fs::write(&f, "one\n").unwrap();
        let auth = UpstreamAuth {
            header: "authorization".into(),
            prefix: "Bearer ".into(),
            value: None,
            env: None,
            file: Some("cred".into()),
        };
        let c = UpstreamCredentials::new(false, Some(&auth), &|_| None, dir.path());
        assert_eq!(c.upstream_header().unwrap().1, "Bearer one");
        std::fs::write(&f, "two-longer\n").unwrap();
        // Force the next check regardless of the once-a-second throttle.
        if let Some((_, src)) = &c.header
            && let CredentialSource::File { cached, .. } = &**src
        {
            cached.lock().unwrap().checked = None;
        }
        assert_eq!(c.upstream_header().unwrap().1, "Bearer two-longer");
    }

    #[test]
    fn validation_messages_never_echo_secrets() {
        let auth = UpstreamAuth {
            header: "authorization".into(),
            prefix: String::new(),
            value: Some("sekrit\n".into()),
            env: None,
            file: None,
        };
        let issues = auth.validate("p");
        assert_eq!(issues.len(), 1);
        assert!(!format!("{issues:?}").contains("sekrit"));
    }
}
