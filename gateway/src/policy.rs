//! Policies resolved for one route: the listener's block merged with the route's (a route's
//! own keys win), compiled into header operations, CORS rules and timeouts that the request
//! path applies without re-parsing.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};

use crate::config::{CorsPolicy, HeaderOps, Policies};

/// Default time to connect to an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default time for an upstream to send its response head.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Compiled header operations.
#[derive(Debug, Clone, Default)]
pub struct CompiledHeaderOps {
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
}

impl CompiledHeaderOps {
    fn compile(ops: &HeaderOps) -> Self {
        let pair = |(k, v): (&String, &String)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        };
        CompiledHeaderOps {
            remove: ops
                .remove
                .iter()
                .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .collect(),
            set: ops.set.iter().filter_map(pair).collect(),
            add: ops.add.iter().filter_map(pair).collect(),
        }
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Applies remove, then set, then add.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for n in &self.remove {
            headers.remove(n);
        }
        for (n, v) in &self.set {
            headers.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            headers.append(n.clone(), v.clone());
        }
    }
}

/// Compiled CORS rules.
#[derive(Debug, Clone)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<HeaderValue>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    allow_credentials: bool,
    max_age: Option<HeaderValue>,
}

impl Cors {
    fn compile(c: &CorsPolicy) -> Self {
        let join = |v: &[String]| HeaderValue::from_str(&v.join(", ")).ok();
        Cors {
            any_origin: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect(),
            allow_methods: if c.allow_methods.is_empty() {
                HeaderValue::from_static("GET, POST, PUT, PATCH, DELETE, OPTIONS")
            } else {
                join(&c.allow_methods).unwrap_or(HeaderValue::from_static("GET"))
            },
            allow_headers: (!c.allow_headers.is_empty())
                .then(|| join(&c.allow_headers))
                .flatten(),
            expose_headers: (!c.expose_headers.is_empty())
                .then(|| join(&c.expose_headers))
                .flatten(),
            allow_credentials: c.allow_credentials,
            max_age: c.max_age.map(|d| HeaderValue::from(d.as_secs())),
        }
    }

    fn allowed_origin<'a>(&self, origin: &'a HeaderValue) -> Option<&'a HeaderValue> {
        (self.any_origin || self.origins.iter().any(|o| o == origin)).then_some(origin)
    }

    /// Answers a CORS preflight (`OPTIONS` with `Access-Control-Request-Method`), or `None`
    /// when the request is not one.
    pub fn preflight<B, R: Default>(&self, req: &Request<B>) -> Option<Response<R>> {
        if req.method() != Method::OPTIONS
            || !req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
        {
            return None;
        }
        let origin = req.headers().get(header::ORIGIN)?;
        let mut resp = Response::new(R::default());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        if let Some(o) = self.allowed_origin(origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            );
            let requested = req.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS);
            if let Some(v) = self.allow_headers.as_ref().or(requested) {
                h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
            }
            if self.allow_credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            if let Some(v) = &self.max_age {
                h.insert(header::ACCESS_CONTROL_MAX_AGE, v.clone());
            }
        }
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        Some(resp)
    }

    /// Adds CORS headers to an actual response for a request from `origin`.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(origin) = origin.and_then(|o| self.allowed_origin(o)) else {
            return;
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if self.allow_credentials {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if let Some(v) = &self.expose_headers {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v.clone());
        }
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
    pub authn: Option<crate::auth::Authenticator>,
    /// Authorization rules (empty when `authz` is not configured).
    pub authz: crate::authz::Authorizer,
    /// What the client's credentials become on the way upstream.
    pub upstream_credentials: crate::auth::UpstreamCredentials,
}

impl RoutePolicies {
    /// Merges listener-level and route-level blocks (route keys win) and compiles them.
    /// Relative file paths in them (`jwks.file`, `upstream_auth.file`) resolve against
    /// `base_dir`, the config file's folder.
    pub fn resolve(
        listener: Option<&Policies>,
        route: Option<&Policies>,
        base_dir: &std::path::Path,
    ) -> Self {
        fn pick<'a, T>(
            l: Option<&'a Policies>,
            r: Option<&'a Policies>,
            f: impl Fn(&'a Policies) -> Option<&'a T>,
        ) -> Option<&'a T> {
            r.and_then(&f).or_else(|| l.and_then(&f))
        }
        let headers = pick(listener, route, |p| p.headers.as_ref());
        let cors = pick(listener, route, |p| p.cors.as_ref());
        let t = pick(listener, route, |p| p.timeouts.as_ref());
        let authn = pick(listener, route, |p| p.authn.as_ref());
        let authz = pick(listener, route, |p| p.authz.as_ref());
        let upstream_auth = pick(listener, route, |p| p.upstream_auth.as_ref());
        let forward = pick(listener, route, |p| p.forward_client_credentials.as_ref());
        RoutePolicies {
            request_headers: headers
                .map(|h| CompiledHeaderOps::compile(&h.request))
                .unwrap_or_default(),
            response_headers: headers
                .map(|h| CompiledHeaderOps::compile(&h.response))
                .unwrap_or_default(),
            cors: cors.map(Cors::compile),
            timeouts: Timeouts {
                connect: t.and_then(|t| t.connect).unwrap_or(DEFAULT_CONNECT_TIMEOUT),
                request: t.and_then(|t| t.request).unwrap_or(DEFAULT_REQUEST_TIMEOUT),
                idle: t.and_then(|t| t.idle),
            },
            authn: authn.map(|a| crate::auth::Authenticator::new(a, base_dir)),
            authz: authz.map(crate::authz::Authorizer::new).unwrap_or_default(),
            upstream_credentials: crate::auth::UpstreamCredentials::new(
                forward.copied().unwrap_or(false),
                upstream_auth,
                &|name| std::env::var(name).ok(),
                base_dir,
            ),
        }
    }
}
