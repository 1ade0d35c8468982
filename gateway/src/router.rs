//! Route matching. Each config generation compiles its routes once (header names parsed, hosts
//! lowercased, metric handles resolved); a request then walks its listener's routes in order
//! and the first whose every condition holds serves it.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, Request};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

use crate::backend::Backend;
use crate::config::{RouteMatch, prefix_matches};
use crate::metrics::{Metrics, RouteLabels};
use crate::oauth_metadata::ResourceMetadata;
use crate::policy::RoutePolicies;
use switchboard_core::ApiFormat;

/// A compiled route: matcher, resolved policies, backend and metric handles.
pub struct Route {
    /// Route name.
    pub name: Arc<str>,
    /// Conditions a request must meet.
    pub matcher: Matcher,
    /// The listener's and the route's policies, merged.
    pub policies: RoutePolicies,
    /// Where matched requests go.
    pub backend: Backend,
    /// The route's `path_prefix` (empty when it has none), shared with backends.
    pub prefix: Arc<str>,
    /// Request/token limiter from `policies.rate_limit`, kept across reloads while unchanged.
    pub limiter: Option<crate::rate_limit::Limiter>,
    /// The upstream as access logs name it (computed once, not per request).
    pub upstream: Arc<str>,
    /// Labels for per-route metrics.
    pub labels: RouteLabels,
    /// Request duration histogram of this route.
    pub request_duration: Histogram,
    /// Upstream duration histogram of this route.
    pub upstream_duration: Histogram,
    /// Open streams gauge of this route.
    pub open_streams: Gauge,
    /// This route's `requests_total{status="200"}`, looked up by the first such response
    /// (not before: the series appears when it counts) and then reused, so most requests
    /// count without hashing their labels into the family.
    pub ok_requests: std::sync::OnceLock<prometheus_client::metrics::counter::Counter>,
}

impl Route {
    /// Resolves metric handles for a route.
    pub fn new(
        listener: &Arc<str>,
        name: &str,
        matcher: Matcher,
        policies: RoutePolicies,
        backend: Backend,
        metrics: &Metrics,
    ) -> Self {
        let labels = RouteLabels {
            listener: listener.clone(),
            route: name.into(),
        };
        let matcher_prefix: Arc<str> = matcher.prefix().unwrap_or("").into();
        Route {
            name: labels.route.clone(),
            matcher,
            policies,
            request_duration: metrics.request_duration.get_or_create_owned(&labels),
            upstream_duration: metrics.upstream_duration.get_or_create_owned(&labels),
            open_streams: metrics.open_streams.get_or_create_owned(&labels),
            ok_requests: std::sync::OnceLock::new(),
            labels,
            upstream: backend.upstream_label().into(),
            prefix: matcher_prefix,
            limiter: None,
            backend,
        }
    }

    /// The route's RFC 9728 metadata and path prefix, when `authn.resource_metadata` makes it
    /// a protected resource.
    pub fn protected_resource(&self) -> Option<(&ResourceMetadata, Option<&str>)> {
        Some((
            self.policies.authn.as_ref()?.metadata()?,
            self.matcher.prefix(),
        ))
    }

    /// The error format of this route's API for a request to `path`.
    pub fn error_format(&self, path: &str) -> ApiFormat {
        self.backend.error_format(path)
    }
}

/// Path condition.
#[derive(Debug, Clone)]
pub enum PathMatch {
    /// Any path.
    Any,
    /// Segment-aware prefix.
    Prefix(String),
    /// Exact path.
    Exact(String),
}

/// Host condition.
#[derive(Debug, Clone)]
pub enum HostMatch {
    /// Exact host, lowercased.
    Exact(String),
    /// `*.suffix`: the stored value is `.suffix`, lowercased.
    Wildcard(String),
}

/// A compiled `match` block. Regular expressions are compiled once here, at load.
#[derive(Debug, Clone)]
pub struct Matcher {
    path: PathMatch,
    host: Option<HostMatch>,
    method: Option<Method>,
    headers: Vec<(HeaderName, HeaderValue)>,
    path_regex: Option<regex::Regex>,
    headers_regex: Vec<(HeaderName, regex::Regex)>,
    /// Exact (`Ok`) and regex (`Err`) query conditions.
    query: Vec<(String, QueryCond)>,
    /// A condition that failed to compile (validation refuses it first): never matches.
    never: bool,
}

/// A query-parameter condition.
#[derive(Debug, Clone)]
enum QueryCond {
    Exact(String),
    Regex(regex::Regex),
}

impl Matcher {
    /// Compiles a validated `match` block.
    pub fn compile(m: &RouteMatch) -> Self {
        let path = match (&m.path_prefix, &m.path) {
            (Some(p), _) if p != "/" => PathMatch::Prefix(p.clone()),
            (_, Some(x)) => PathMatch::Exact(x.clone()),
            _ => PathMatch::Any,
        };
        let host = m.host.as_ref().map(|h| {
            // Request hosts arrive canonical (`head`): lowercase, no trailing dot.
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            match h.strip_prefix('*') {
                Some(suffix) => HostMatch::Wildcard(suffix.to_string()),
                None => HostMatch::Exact(h),
            }
        });
        let method = m
            .method
            .as_ref()
            .and_then(|x| Method::from_bytes(x.to_ascii_uppercase().as_bytes()).ok());
        let headers: Vec<(HeaderName, HeaderValue)> = m
            .headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        let mut never = false;
        let mut re = |src: &String| {
            let r = crate::config::compile_regex(src).ok();
            never |= r.is_none();
            r
        };
        let path_regex = m.path_regex.as_ref().and_then(&mut re);
        let headers_regex = m
            .headers_regex
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()).ok()?,
                    re(v)?,
                ))
            })
            .collect();
        let mut query: Vec<(String, QueryCond)> = m
            .query
            .iter()
            .map(|(k, v)| (k.clone(), QueryCond::Exact(v.clone())))
            .collect();
        query.extend(
            m.query_regex
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), QueryCond::Regex(re(v)?)))),
        );
        never |= headers.len() != m.headers.len();
        Matcher {
            path,
            host,
            method,
            headers,
            path_regex,
            headers_regex,
            query,
            never,
        }
    }

    /// The path prefix this matcher requires, if any (backends use it to strip or rewrite).
    pub fn prefix(&self) -> Option<&str> {
        match &self.path {
            PathMatch::Prefix(p) => Some(p),
            _ => None,
        }
    }

    /// Whether `req` meets every condition.
    pub fn matches<B>(&self, req: &Request<B>) -> bool {
        let path = req.uri().path();
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => prefix_matches(p, path),
            PathMatch::Exact(x) => x == path,
        };
        if !path_ok {
            return false;
        }
        if let Some(m) = &self.method
            && m != req.method()
        {
            return false;
        }
        if let Some(h) = &self.host {
            let Some(host) = request_host(req) else {
                return false;
            };
            let ok = match h {
                HostMatch::Exact(x) => host.eq_ignore_ascii_case(x),
                HostMatch::Wildcard(suffix) => {
                    host.len() > suffix.len()
                        && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                }
            };
            if !ok {
                return false;
            }
        }
        if self.never {
            return false;
        }
        if !self
            .headers
            .iter()
            .all(|(k, v)| req.headers().get_all(k).iter().any(|x| x == v))
        {
            return false;
        }
        if let Some(r) = &self.path_regex
            && !r.is_match(path)
        {
            return false;
        }
        if !self.headers_regex.iter().all(|(k, r)| {
            req.headers()
                .get_all(k)
                .iter()
                .any(|x| x.to_str().is_ok_and(|x| r.is_match(x)))
        }) {
            return false;
        }
        if self.query.is_empty() {
            return true;
        }
        let q = req.uri().query().unwrap_or("");
        self.query.iter().all(|(name, cond)| {
            // The first occurrence of the name counts (Gateway API); decoding allocates only
            // for escaped names or values.
            let Some((_, v)) = url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name)
            else {
                return false;
            };
            match cond {
                QueryCond::Exact(x) => v == x.as_str(),
                QueryCond::Regex(r) => r.is_match(&v),
            }
        })
    }
}

/// The request's host without port: `:authority` (HTTP/2) or the `Host` header.
pub fn request_host<B>(req: &Request<B>) -> Option<&str> {
    let raw = match req.uri().authority() {
        Some(a) => a.as_str(),
        None => req.headers().get(http::header::HOST)?.to_str().ok()?,
    };
    Some(switchboard_core::http::host_without_port(raw))
}

/// Finds the first route that matches.
pub fn find<'a, B>(routes: &'a [Route], req: &Request<B>) -> Option<&'a Route> {
    routes.iter().find(|r| r.matcher.matches(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(yaml: &str) -> Matcher {
        Matcher::compile(&yaml_serde::from_str(yaml).unwrap())
    }

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn prefix_is_segment_aware() {
        let x = m("{path_prefix: /mcp}");
        assert!(x.matches(&req("GET", "/mcp", &[])));
        assert!(x.matches(&req("GET", "/mcp/sse?x=1", &[])));
        assert!(!x.matches(&req("GET", "/mcpx", &[])));
    }

    #[test]
    fn host_method_headers() {
        let x = m("{host: '*.example.com', method: post, headers: {x-team: ml}}");
        let ok = req(
            "POST",
            "/",
            &[("host", "a.Example.com:8080"), ("x-team", "ml")],
        );
        assert!(x.matches(&ok));
        assert!(!x.matches(&req(
            "GET",
            "/",
            &[("host", "a.example.com"), ("x-team", "ml")]
        )));
        assert!(!x.matches(&req(
            "POST",
            "/",
            &[("host", "example.com"), ("x-team", "ml")]
        )));
        assert!(!x.matches(&req("POST", "/", &[("host", "a.example.com")])));
        assert!(m("{host: '[::1]'}").matches(&req("GET", "/", &[("host", "[::1]:80")])));
    }

    #[test]
    fn regex_and_query_conditions() {
        let x = m(
            r"{path_regex: '/v[0-9]+/items/[a-z]+', headers_regex: {x-ver: '2\..*'}, query: {tier: gold}, query_regex: {id: '[0-9]{2}'}}",
        );
        let h = [("x-ver", "2.1")];
        assert!(x.matches(&req("GET", "/v1/items/abc?tier=gold&id=42", &h)));
        assert!(x.matches(&req("GET", "/v1/items/abc?id=42&tier=g%6Fld", &h)));
        // Anchored: a longer path, a longer id, no header, a wrong tier.
        assert!(!x.matches(&req("GET", "/v1/items/abc/d?tier=gold&id=42", &h)));
        assert!(!x.matches(&req("GET", "/v1/items/abc?tier=gold&id=421", &h)));
        assert!(!x.matches(&req("GET", "/v1/items/abc?tier=gold&id=42", &[])));
        assert!(!x.matches(&req("GET", "/v1/items/abc?tier=silver&id=42", &h)));
        assert!(!x.matches(&req("GET", "/v1/items/abc?id=42", &h)));
        // The first occurrence counts.
        assert!(!x.matches(&req("GET", "/v1/items/abc?tier=x&tier=gold&id=42", &h)));
    }

    #[test]
    fn exact_path() {
        let x = m("{path: /v1/models}");
        assert!(x.matches(&req("GET", "/v1/models?a=b", &[])));
        assert!(!x.matches(&req("GET", "/v1/models/x", &[])));
    }
}
