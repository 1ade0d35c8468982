//! The policy stage: what a route's policies do to each request, in one named order.
//!
//! A route's policies are the listener's `policies` block merged with the route's (a route's
//! own keys win) by [`merge`], the one place they merge, and compiled once per config
//! generation into [`RoutePolicies`]. Per request, [`RoutePolicies::admit`] runs the request
//! phases in the order of [`Phase::REQUEST`] and yields the one
//! [`switchboard_core::RequestContext`] every backend receives (or a response the stage gave
//! itself: a CORS preflight); [`RoutePolicies::respond`] runs the response phases. Timeouts
//! are the backend's (`connect`, `request`) and the response body's (`idle`).
//!
//! | phase | what it does | refuses with |
//! |---|---|---|
//! | [`Phase::Preflight`] | answers a CORS preflight ([`Cors`]) from the client's own headers | — |
//! | [`Phase::Forwarding`] | hop-by-hop headers out, forwarding headers set ([`crate::forwarding`], supplied by the pipeline) | — |
//! | [`Phase::Authn`] | JWT or API key → [`Principal`] ([`crate::auth`]) | 401, 403 scope, 429 key limit |
//! | [`Phase::Authz`] | route-level CEL rules ([`crate::authz`]) | 403 (401 when anonymous) |
//! | [`Phase::Credentials`] | client credentials out, the upstream credential in | — |
//! | [`Phase::RateLimit`] | the route's request budget (`policies.rate_limit`) | 429 |
//! | [`Phase::RequestHeaders`] | `policies.headers.request` | — |
//!
//! Response phases, in order: `policies.headers.response`, then the CORS response headers.
//!
//! The order is the contract: the preflight comes first because browsers send it without
//! credentials; forwarding preparation comes before anything the gateway sets itself, so a
//! client's `Connection` header can only name its own headers; the rate limit counts only
//! callers that authentication and authorization let through, keyed by their principal.
//!
//! To add a policy: its config in [`crate::config::Policies`], its compiled form in
//! [`RoutePolicies`], a [`Phase`] at its place in [`Phase::REQUEST`] and an arm in
//! [`RoutePolicies::admit`].

mod cors;
mod headers;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{HeaderMap, HeaderValue, Request, Response};
use switchboard_core::RequestContext;

use crate::auth::{Authenticator, Principal, Refusal, UpstreamCredentials};
use crate::authz::{Authorizer, AuthzContext};
use crate::config::{JsonLimits, Policies};
use crate::error::RequestError;
use crate::rate_limit::{LimitCaller, Limiter, TokenBudget};

pub use cors::Cors;
pub use headers::CompiledHeaderOps;

/// Default time to connect to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time for an upstream to send its response head.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The request phases of the policy stage (see the module docs for what each does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A CORS preflight is answered.
    Preflight,
    /// Hop-by-hop headers removed, forwarding headers set (the pipeline's step, run here so
    /// the order stays in one list).
    Forwarding,
    /// The caller is authenticated.
    Authn,
    /// Route-level authorization rules.
    Authz,
    /// The credential boundary: client credentials out, upstream credential in.
    Credentials,
    /// The route's request rate limit.
    RateLimit,
    /// Request header changes.
    RequestHeaders,
}

impl Phase {
    /// The order every request goes through.
    pub const REQUEST: [Phase; 7] = [
        Phase::Preflight,
        Phase::Forwarding,
        Phase::Authn,
        Phase::Authz,
        Phase::Credentials,
        Phase::RateLimit,
        Phase::RequestHeaders,
    ];
}

/// A listener's and a route's `policies` blocks merged: each key the route sets wins, the
/// listener's fills the rest. The one place policies merge.
pub fn merge(listener: Option<&Policies>, route: Option<&Policies>) -> Policies {
    fn pick<T: Clone>(
        l: Option<&Policies>,
        r: Option<&Policies>,
        f: impl Fn(&Policies) -> Option<&T>,
    ) -> Option<T> {
        r.and_then(&f).or_else(|| l.and_then(&f)).cloned()
    }
    Policies {
        cors: pick(listener, route, |p| p.cors.as_ref()),
        headers: pick(listener, route, |p| p.headers.as_ref()),
        timeouts: pick(listener, route, |p| p.timeouts.as_ref()),
        rate_limit: pick(listener, route, |p| p.rate_limit.as_ref()),
        authn: pick(listener, route, |p| p.authn.as_ref()),
        authz: pick(listener, route, |p| p.authz.as_ref()),
        upstream_auth: pick(listener, route, |p| p.upstream_auth.as_ref()),
        forward_client_credentials: pick(listener, route, |p| {
            p.forward_client_credentials.as_ref()
        }),
        guardrails: pick(listener, route, |p| p.guardrails.as_ref()),
    }
}

/// Upstream timeouts of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    pub connect: Duration,
    /// Until the response head.
    pub request: Duration,
    /// Longest pause in a response body.
    pub idle: Option<Duration>,
}

/// Everything policy-related a route applies per request.
#[derive(Debug, Clone)]
pub struct RoutePolicies {
    /// Request header changes.
    pub request_headers: CompiledHeaderOps,
    /// Response header changes.
    pub response_headers: CompiledHeaderOps,
    /// CORS, when configured.
    pub cors: Option<Cors>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Authentication, when `authn` is configured.
    pub authn: Option<Authenticator>,
    /// Authorization rules (empty when `authz` is not configured).
    pub authz: Authorizer,
    /// What the client's credentials become on the way upstream.
    pub upstream_credentials: UpstreamCredentials,
    /// Content rules (`policies.guardrails`), when it has any.
    pub guardrails: Option<Arc<crate::guardrails::Guardrails>>,
    /// Spend and budgets ([`crate::spend`]), set by the gateway on `llm` routes.
    pub spend: Option<crate::spend::Spend>,
}

/// What the policy stage needs of the route and the listener besides the policies.
pub struct RouteFacts<'a> {
    /// The route's name.
    pub name: &'a Arc<str>,
    /// The route's `path_prefix` (empty when it has none), shared into the context.
    pub prefix: &'a Arc<str>,
    /// The route's `path_prefix`, if it has one.
    pub path_prefix: Option<&'a str>,
    /// The route's limiter, when it has `policies.rate_limit`.
    pub limiter: Option<&'a Limiter>,
    /// The client's address (derived through trusted proxies), for `rate_limit.by: client`.
    pub client_ip: std::net::IpAddr,
    /// Whether the backend checks tools, prompts, resources or models itself (MCP, LLM), so
    /// route-level rules about `mcp`/`llm` are left to it.
    pub backend_checks_items: bool,
    /// `http` or `https`, as the client connected (for RFC 9728 challenge URLs).
    pub scheme: &'a str,
    /// The listener's JSON limits (their `max_batch` goes into the context).
    pub json: &'a JsonLimits,
}

/// What the policy stage decided.
pub enum Admission {
    /// The stage answered the request itself (a CORS preflight).
    Answered(Response<Body>),
    /// The request goes on to the backend with this context.
    Admitted(RequestContext),
}

impl RoutePolicies {
    /// Compiles merged policies ([`merge`]). Relative file paths in them (`jwks.file`,
    /// `upstream_auth.file`) resolve against `base_dir`, the config file's folder.
    pub fn compile(p: &Policies, base_dir: &std::path::Path) -> Self {
        let headers = p.headers.as_ref();
        let t = p.timeouts.as_ref();
        RoutePolicies {
            request_headers: headers
                .map(|h| CompiledHeaderOps::compile(&h.request))
                .unwrap_or_default(),
            response_headers: headers
                .map(|h| CompiledHeaderOps::compile(&h.response))
                .unwrap_or_default(),
            cors: p.cors.as_ref().map(Cors::compile),
            timeouts: Timeouts {
                connect: t.and_then(|t| t.connect).unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                request: t.and_then(|t| t.request).unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                idle: t.and_then(|t| t.idle),
            },
            authn: p.authn.as_ref().map(|a| Authenticator::new(a, base_dir)),
            authz: p.authz.as_ref().map(Authorizer::new).unwrap_or_default(),
            upstream_credentials: UpstreamCredentials::new(
                p.forward_client_credentials.unwrap_or(false),
                p.upstream_auth.as_ref(),
                &|name| std::env::var(name).ok(),
                base_dir,
            ),
            guardrails: p
                .guardrails
                .as_ref()
                .and_then(crate::guardrails::Guardrails::compile),
            spend: None,
        }
    }

    /// Runs the request phases ([`Phase::REQUEST`]) on `req`. `forward` is the pipeline's
    /// forwarding preparation, run at [`Phase::Forwarding`].
    pub async fn admit<B>(
        &self,
        route: RouteFacts<'_>,
        req: &mut Request<B>,
        forward: impl FnOnce(&mut Request<B>),
    ) -> Result<Admission, RequestError> {
        let mut forward = Some(forward);
        let mut principal: Option<Principal> = None;
        let mut limit_key: Option<Arc<str>> = None;
        for phase in Phase::REQUEST {
            match phase {
                Phase::Preflight => {
                    if let Some(cors) = &self.cors
                        && let Some(resp) = cors.preflight::<_, Body>(req)
                    {
                        return Ok(Admission::Answered(resp));
                    }
                }
                Phase::Forwarding => {
                    if let Some(f) = forward.take() {
                        f(req);
                    }
                }
                Phase::Authn => principal = self.authenticate(&route, req).await?,
                Phase::Authz => self.authorize(&route, req, principal.as_ref())?,
                Phase::Credentials => self.upstream_credentials.apply(req.headers_mut()),
                Phase::RateLimit => {
                    limit_key = route
                        .limiter
                        .map(|l| l.key(route.name, &limit_caller(&route, principal.as_ref(), req)));
                    rate_limit(&route, limit_key.as_deref()).await?;
                }
                Phase::RequestHeaders => self.request_headers.apply(req.headers_mut()),
            }
        }
        let access = self
            .authz
            .access(principal.as_ref(), req.method().as_str(), req.uri().path());
        if let Some(p) = &principal {
            // For a backend that hands the request on with its caller (the MCP hop to
            // another replica).
            req.extensions_mut().insert(p.clone());
        }
        Ok(Admission::Admitted(RequestContext {
            route: route.name.clone(),
            prefix: route.prefix.clone(),
            principal: principal.as_ref().map(|p| p.subject.clone()),
            api_key: principal.as_ref().and_then(|p| p.api_key.clone()),
            access,
            tokens: token_budget(&route, limit_key),
            spend: self
                .spend
                .as_ref()
                .and_then(|s| s.meter(principal.as_ref())),
            max_batch: Some(route.json.max_batch),
            trace: None,
            team: principal.as_ref().and_then(|p| p.team.clone()),
        }))
    }

    /// Runs the response phases on a response to a request from `origin`: response header
    /// changes, then the CORS headers.
    pub fn respond(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        self.response_headers.apply(headers);
        if let Some(cors) = &self.cors {
            cors.decorate(origin, headers);
        }
    }

    /// [`Phase::Authn`]: the principal, `None` without `authn` or for an anonymous caller
    /// under `mode: optional`.
    async fn authenticate<B>(
        &self,
        route: &RouteFacts<'_>,
        req: &Request<B>,
    ) -> Result<Option<Principal>, RequestError> {
        let Some(authn) = &self.authn else {
            return Ok(None);
        };
        match authn.authenticate(req.headers()).await {
            Ok(p) => Ok(p),
            Err(refusal) => Err(self.challenge(route, req, refusal)),
        }
    }

    /// [`Phase::Authz`]: the rules that need only the request and the principal.
    fn authorize<B>(
        &self,
        route: &RouteFacts<'_>,
        req: &Request<B>,
        principal: Option<&Principal>,
    ) -> Result<(), RequestError> {
        if !self.authz.has_rules() {
            return Ok(());
        }
        let cx = AuthzContext {
            principal,
            method: req.method().as_str(),
            path: req.uri().path(),
            headers: Some(req.headers()),
            ..Default::default()
        };
        if self.authz.allows_route(&cx, route.backend_checks_items) {
            return Ok(());
        }
        Err(match principal {
            // Anonymous under `mode: optional`: authenticating might help.
            None if self.authn.is_some() => self.challenge(route, req, Refusal::Missing),
            _ => crate::error::forbidden(None),
        })
    }

    /// The error for a refused authentication, its challenge pointing at the route's RFC
    /// 9728 metadata.
    fn challenge<B>(&self, route: &RouteFacts<'_>, req: &Request<B>, r: Refusal) -> RequestError {
        let origin = crate::oauth_metadata::request_origin(req, route.scheme);
        match &self.authn {
            Some(authn) => authn.refusal_error(r, origin.as_deref(), route.path_prefix),
            None => crate::error::forbidden(None),
        }
    }
}

/// What the route's limit may be keyed by, of this request's caller
/// (`policies.rate_limit.by`).
fn limit_caller<'a, B>(
    route: &RouteFacts<'_>,
    principal: Option<&'a Principal>,
    req: &'a Request<B>,
) -> LimitCaller<'a> {
    let jwt = principal.filter(|p| p.kind == crate::auth::PrincipalKind::Jwt);
    LimitCaller {
        subject: principal.map(|p| p.subject.as_ref()),
        api_key: principal.and_then(|p| p.api_key.as_deref()),
        jwt_sub: jwt.map(|p| p.subject.as_ref()),
        team: principal.and_then(|p| p.team.as_deref()),
        client: Some(route.client_ip),
        headers: Some(req.headers()),
    }
}

/// The caller's token budget on this route (`policies.rate_limit.tokens`), for the backends
/// that count tokens (`llm`) to reserve and settle through; `key` is the caller's budget key.
fn token_budget(
    route: &RouteFacts<'_>,
    key: Option<Arc<str>>,
) -> Option<Arc<dyn switchboard_core::TokenMeter>> {
    let limiter = route.limiter.filter(|l| l.policy().tokens.is_some())?;
    Some(Arc::new(TokenBudget::new(limiter.clone(), key?)))
}

/// [`Phase::RateLimit`]: one request off the caller's budget (`key`) on this route.
async fn rate_limit(route: &RouteFacts<'_>, key: Option<&str>) -> Result<(), RequestError> {
    let (Some(limiter), Some(key)) = (route.limiter, key) else {
        return Ok(());
    };
    let d = limiter.check_request(key).await;
    if d.allowed { Ok(()) } else { Err(d.error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_keys_win_and_the_listener_fills_the_rest() {
        let listener: Policies = serde_json::from_value(serde_json::json!({
            "cors": {"allow_origins": ["https://l.example"]},
            "timeouts": {"connect": "1s"},
            "forward_client_credentials": true,
        }))
        .unwrap();
        let route: Policies = serde_json::from_value(serde_json::json!({
            "timeouts": {"request": "9s"},
            "authz": {"rules": ["true"]},
        }))
        .unwrap();
        let m = merge(Some(&listener), Some(&route));
        assert_eq!(m.cors, listener.cors);
        // A key is replaced whole, not merged field by field.
        assert_eq!(m.timeouts, route.timeouts);
        assert_eq!(m.authz, route.authz);
        assert_eq!(m.forward_client_credentials, Some(true));
        assert_eq!(merge(None, None), Policies::default());
    }
}
