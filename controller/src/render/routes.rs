//! Routes: HTTPRoutes and GRPCRoutes (converted to HTTPRoute rules over HTTP/2 upstreams)
//! attached to the Gateway's listeners (parentRefs, allowed namespaces and kinds, hostname
//! intersection), each rule's matches turned into proxy routes ordered by Gateway
//! API precedence (host specificity, exact path, longest prefix, method, header count, route
//! age), and routes an earlier one covers dropped, as the proxy refuses unreachable routes.

use kube::ResourceExt;
use switchboard_gateway::config::{
    HeaderOps, HeadersPolicy, HttpBackendConfig, MirrorConfig, PathModifier, Policies,
    RedirectConfig, RetryConfig, RewriteConfig, RouteConfig, RouteMatch, TimeoutsPolicy,
    WeightedUpstream, compile_regex, covers,
};

use super::backends::{self, RenderedBackend, attach_backend};
use super::listeners::{Listeners, allowed_kinds};
use super::policies::merge_policies;
use super::status::{Cond, RouteOutcome, fail_more};
use super::{Collected, Scope};
use crate::gateway_api::{
    self as gwapi, BackendRef, GRPCRoute, HTTPRoute, HTTPRouteRule, ParentRef,
};

/// A proxy route being built, with its precedence key.
pub(super) struct Candidate {
    key: (u8, usize, u8, usize, u8, usize, String, usize, usize),
    /// The port of the proxy listener it goes on.
    listener_port: i32,
    route: RouteConfig,
    /// The HTTPRoute it comes from, as (namespace, name).
    owner: (String, String),
}

/// Why a rule renders no route: `Unsupported` fails the route's `Accepted` condition, `Ref`
/// its `ResolvedRefs` condition with the given reason.
pub(super) enum RuleError {
    Unsupported(String),
    Ref(&'static str, String),
}

/// A route of either kind as rendering sees it: a GRPCRoute's rules are converted to
/// HTTPRoute rules (method matches become path matches on `/{service}/{method}`) and its
/// backends speak HTTP/2.
struct Source<'a> {
    kind: &'static str,
    ns: String,
    name: String,
    created: String,
    parent_refs: &'a [ParentRef],
    hostnames: &'a [String],
    /// The rules; a GRPCRoute rule that cannot be converted is the reason it is refused.
    rules: Vec<Result<HTTPRouteRule, String>>,
    grpc: bool,
}

impl<'a> Source<'a> {
    fn http(r: &'a HTTPRoute) -> Self {
        Source {
            kind: "HTTPRoute",
            ns: r.namespace().unwrap_or_default(),
            name: r.name_any(),
            created: created(&r.metadata),
            parent_refs: &r.spec.parent_refs,
            hostnames: &r.spec.hostnames,
            rules: r.spec.rules.iter().cloned().map(Ok).collect(),
            grpc: false,
        }
    }

    fn grpc(r: &'a GRPCRoute) -> Self {
        Source {
            kind: "GRPCRoute",
            ns: r.namespace().unwrap_or_default(),
            name: r.name_any(),
            created: created(&r.metadata),
            parent_refs: &r.spec.parent_refs,
            hostnames: &r.spec.hostnames,
            rules: r.spec.rules.iter().map(grpc_rule).collect(),
            grpc: true,
        }
    }

    /// Gateway API's route age order: creation time, then namespace and name.
    fn age_key(&self) -> (String, String, String) {
        (self.created.clone(), self.ns.clone(), self.name.clone())
    }
}

fn created(m: &kube::api::ObjectMeta) -> String {
    m.creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_default()
}

/// A GRPCRoute rule as an HTTPRoute rule. gRPC calls are `POST /{service}/{method}`: an
/// `Exact` method match with both names is an exact path, with the service only a path
/// prefix, with the method only a regular expression; a `RegularExpression` one is a path
/// regular expression of the two (a missing one matches any name).
fn grpc_rule(r: &gwapi::GRPCRouteRule) -> Result<HTTPRouteRule, String> {
    let any = "[^/]+";
    let mut matches = Vec::new();
    for m in &r.matches {
        let path = match &m.method {
            None => None,
            Some(mm) => {
                let (svc, meth) = (mm.service.as_deref(), mm.method.as_deref());
                let (type_, value) = match (mm.type_.as_deref().unwrap_or("Exact"), svc, meth) {
                    (_, None, None) => (None, None),
                    ("Exact", Some(s), Some(m)) => (Some("Exact"), Some(format!("/{s}/{m}"))),
                    ("Exact", Some(s), None) => (Some("PathPrefix"), Some(format!("/{s}"))),
                    ("Exact", None, Some(m)) => (
                        Some("RegularExpression"),
                        Some(format!("/{any}/{}", regex_escape(m))),
                    ),
                    ("RegularExpression", s, m) => (
                        Some("RegularExpression"),
                        Some(format!("/{}/{}", s.unwrap_or(any), m.unwrap_or(any))),
                    ),
                    (other, _, _) => {
                        return Err(format!("method match type {other} is not supported"));
                    }
                };
                type_.map(|t| gwapi::PathMatch {
                    type_: Some(t.to_string()),
                    value,
                })
            }
        };
        matches.push(gwapi::HTTPRouteMatch {
            path,
            headers: m.headers.clone(),
            ..Default::default()
        });
    }
    if let Some(f) = r.filters.iter().find(|f| f.type_ == "RequestMirror") {
        return Err(format!("filter {} is not supported on GRPCRoutes", f.type_));
    }
    Ok(HTTPRouteRule {
        name: r.name.clone(),
        matches,
        filters: r.filters.clone(),
        backend_refs: r.backend_refs.clone(),
        timeouts: None,
        retry: None,
    })
}

/// Escapes the regular expression metacharacters of a gRPC name.
fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The rules of every HTTPRoute and GRPCRoute whose parentRefs name the Gateway, as proxy
/// routes in precedence order, and the status entry of each such parentRef. Counts the routes
/// attached to each listener in `listeners.outcomes`.
pub(super) fn attach(
    scope: &Scope,
    listeners: &mut Listeners,
    out: &mut Collected,
) -> (Vec<Candidate>, Vec<RouteOutcome>) {
    let gw_name = scope.gw.name_any();
    let shared_ports = listeners.shared_ports();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut route_outcomes = Vec::new();
    let mut routes: Vec<Source> = scope.world.routes.iter().map(|r| Source::http(r)).collect();
    routes.extend(scope.world.grpc_routes.iter().map(|r| Source::grpc(r)));
    routes.sort_by_key(|r| r.age_key());
    for (age, route) in routes.iter().enumerate() {
        let rns = route.ns.clone();
        let rname = route.name.clone();
        let kind = route.kind;
        for pref in route.parent_refs {
            if !parent_is(pref, &rns, &scope.ns, &gw_name) {
                continue;
            }
            let mut conds = Vec::new();
            // Listeners the route attaches to, with the hostnames it gets on each.
            let mut attach: Vec<(String, i32, Vec<Option<String>>)> = Vec::new();
            let mut reason = "NoMatchingParent";
            for l in &scope.gw.spec.listeners {
                if pref.section_name.as_ref().is_some_and(|s| s != &l.name)
                    || pref.port.is_some_and(|p| p != l.port)
                {
                    continue;
                }
                let Some(&port) = listeners.served.get(&l.name) else {
                    continue;
                };
                if !namespace_allowed(scope, l, &rns) {
                    reason = "NotAllowedByListeners";
                    continue;
                }
                if !allowed_kinds(l).0.iter().any(|k| k.kind == kind) {
                    reason = "NotAllowedByListeners";
                    continue;
                }
                match intersect_hosts(l.hostname.as_deref(), route.hostnames) {
                    Some(hosts) => attach.push((l.name.clone(), port, hosts)),
                    None => reason = "NoMatchingListenerHostname",
                }
            }
            if attach.is_empty() {
                conds.push(Cond::fail(
                    "Accepted",
                    reason,
                    "no listener of the Gateway accepts this route",
                ));
                conds.push(Cond::ok("ResolvedRefs", "ResolvedRefs"));
                route_outcomes.push(RouteOutcome {
                    kind,
                    namespace: rns.clone(),
                    name: rname.clone(),
                    parent_ref: pref.clone(),
                    conditions: conds,
                });
                continue;
            }
            for (lname, _, _) in &attach {
                if let Some(o) = listeners.outcomes.iter_mut().find(|o| &o.name == lname) {
                    o.attached_routes += 1;
                }
            }
            let mut accepted = Cond::ok("Accepted", "Accepted");
            let mut resolved = Cond::ok("ResolvedRefs", "ResolvedRefs");
            for (i, rule) in route.rules.iter().enumerate() {
                let rule = match rule {
                    Ok(r) => r,
                    Err(msg) => {
                        accepted = fail_more(
                            accepted,
                            "Accepted",
                            "UnsupportedValue",
                            format!("rule {i}: {msg}"),
                        );
                        continue;
                    }
                };
                let built = match build_rule(scope, route, rule, out) {
                    Ok(b) => {
                        for (reason, msg) in &b.dropped_refs {
                            resolved = fail_more(
                                resolved,
                                "ResolvedRefs",
                                reason,
                                format!("rule {i}: {msg}"),
                            );
                        }
                        b
                    }
                    Err(RuleError::Unsupported(msg)) => {
                        accepted = fail_more(
                            accepted,
                            "Accepted",
                            "UnsupportedValue",
                            format!("rule {i}: {msg}"),
                        );
                        continue;
                    }
                    Err(RuleError::Ref(reason, msg)) => {
                        resolved =
                            fail_more(resolved, "ResolvedRefs", reason, format!("rule {i}: {msg}"));
                        continue;
                    }
                };
                let matches = if rule.matches.is_empty() {
                    vec![Default::default()]
                } else {
                    rule.matches.clone()
                };
                for (lname, port, hosts) in &attach {
                    for (j, m) in matches.iter().enumerate() {
                        for (k, host) in hosts.iter().enumerate() {
                            let mut matcher = match_of(m);
                            matcher.host = host.clone();
                            let mut name = format!("{rns}.{rname}.{i}.{j}");
                            if hosts.len() > 1 {
                                name.push_str(&format!(".{k}"));
                            }
                            if shared_ports.contains(port) {
                                name.push_str(&format!(".{lname}"));
                            }
                            let key = precedence(&matcher, m, age, i, j);
                            candidates.push(Candidate {
                                key,
                                listener_port: *port,
                                route: RouteConfig {
                                    name,
                                    matcher,
                                    policies: built.policies.clone(),
                                    mcp: None,
                                    llm: None,
                                    a2a: None,
                                    http: None,
                                    redirect: built.redirect.clone(),
                                },
                                owner: (rns.clone(), rname.clone()),
                            });
                            let Some(backend) = &built.backend else {
                                continue;
                            };
                            let last = candidates.last_mut().expect("just pushed");
                            match attach_backend(last.route.clone(), backend) {
                                Ok(r) => last.route = r,
                                Err(msg) => {
                                    candidates.pop();
                                    let msg = format!("rule {i}: {msg}");
                                    if !accepted.message.contains(&msg) {
                                        accepted = fail_more(
                                            accepted,
                                            "Accepted",
                                            "UnsupportedValue",
                                            msg,
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
            if !accepted.status {
                out.warnings
                    .push(format!("{kind} {rns}/{rname}: {}", accepted.message));
            }
            if !resolved.status {
                out.warnings
                    .push(format!("{kind} {rns}/{rname}: {}", resolved.message));
            }
            route_outcomes.push(RouteOutcome {
                kind,
                namespace: rns.clone(),
                name: rname.clone(),
                parent_ref: pref.clone(),
                conditions: vec![accepted, resolved],
            });
        }
    }
    candidates.sort_by(|a, b| a.key.cmp(&b.key));
    (candidates, route_outcomes)
}

/// The routes of the proxy listener on `port`, from `candidates` in precedence order; a route
/// an earlier one covers never matches, so it is dropped with a warning.
pub(super) fn reachable(
    candidates: &[Candidate],
    port: i32,
    warnings: &mut Vec<String>,
) -> Vec<RouteConfig> {
    let mut routes: Vec<RouteConfig> = Vec::new();
    for c in candidates.iter().filter(|c| c.listener_port == port) {
        if let Some(earlier) = routes.iter().find(|r| covers(&r.matcher, &c.route.matcher)) {
            warnings.push(format!(
                "HTTPRoute {}/{}: a rule is shadowed by {} and never matches",
                c.owner.0, c.owner.1, earlier.name
            ));
            continue;
        }
        routes.push(c.route.clone());
    }
    routes
}

/// Whether listener `l` takes routes from namespace `rns` (`allowedRoutes.namespaces`):
/// `Same` (the default) the Gateway's, `All` any, `Selector` those whose labels match (none
/// when namespace labels cannot be read, or the selector is missing or malformed).
fn namespace_allowed(scope: &Scope, l: &gwapi::Listener, rns: &str) -> bool {
    let n = l
        .allowed_routes
        .as_ref()
        .and_then(|a| a.namespaces.as_ref());
    match n.and_then(|n| n.from.as_deref()).unwrap_or("Same") {
        "All" => true,
        "Selector" => {
            let Some(sel) = n.and_then(|n| n.selector.as_ref()) else {
                return false;
            };
            let Some(labels) = scope
                .world
                .namespace_labels
                .as_ref()
                .and_then(|all| all.get(rns))
            else {
                return false;
            };
            selector_matches(sel, labels)
        }
        _ => rns == scope.ns,
    }
}

/// Whether `labels` satisfy a label selector (`matchLabels` and every `matchExpressions`
/// requirement; an unknown operator matches nothing).
fn selector_matches(
    sel: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    labels: &std::collections::BTreeMap<String, String>,
) -> bool {
    let by_labels = sel
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = sel.match_expressions.iter().flatten().all(|r| {
        let values = r.values.as_deref().unwrap_or_default();
        let value = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Whether a parentRef written in a route in `route_ns` names the Gateway `gw_ns/gw_name`.
pub fn parent_is(pref: &ParentRef, route_ns: &str, gw_ns: &str, gw_name: &str) -> bool {
    pref.group.as_deref().unwrap_or(gwapi::GROUP) == gwapi::GROUP
        && pref.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && pref.namespace.as_deref().unwrap_or(route_ns) == gw_ns
        && pref.name == gw_name
}

/// The hostnames a route gets on a listener: `None` inside means "any host". Returns `None`
/// when the route and the listener share no hostname.
pub fn intersect_hosts(listener: Option<&str>, route: &[String]) -> Option<Vec<Option<String>>> {
    match (listener, route.is_empty()) {
        (None, true) => Some(vec![None]),
        (Some(l), true) => Some(vec![Some(l.to_string())]),
        (None, false) => Some(route.iter().cloned().map(Some).collect()),
        (Some(l), false) => {
            let mut out = Vec::new();
            for h in route {
                if host_within(h, l) {
                    out.push(Some(h.clone()));
                } else if host_within(l, h) {
                    out.push(Some(l.to_string()));
                }
            }
            out.dedup();
            (!out.is_empty()).then_some(out)
        }
    }
}

/// Whether every host `a` names is also named by `b`.
fn host_within(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    match b.strip_prefix("*.") {
        Some(suffix) => {
            let a = a.strip_prefix("*.").unwrap_or(a);
            a.len() > suffix.len()
                && a.to_ascii_lowercase()
                    .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
        }
        None => false,
    }
}

/// The proxy match of a Gateway API match, host left to the caller; a `/` prefix is no path
/// condition. Regular expressions and query parameters map to their proxy keys (the rule's
/// types were checked by [`check_matches`]).
fn match_of(m: &gwapi::HTTPRouteMatch) -> RouteMatch {
    let mut out = RouteMatch::default();
    match m.path.as_ref() {
        Some(p) if p.type_.as_deref() == Some("Exact") => out.path = p.value.clone(),
        Some(p) if p.type_.as_deref() == Some("RegularExpression") => {
            out.path_regex = p.value.clone()
        }
        Some(p) => {
            let v = p.value.clone().unwrap_or_else(|| "/".into());
            if v != "/" {
                out.path_prefix = Some(v);
            }
        }
        None => {}
    }
    out.method = m.method.clone();
    for h in &m.headers {
        let name = h.name.to_ascii_lowercase();
        if h.type_.as_deref() == Some("RegularExpression") {
            out.headers_regex.insert(name, h.value.clone());
        } else {
            out.headers.insert(name, h.value.clone());
        }
    }
    for q in &m.query_params {
        if q.type_.as_deref() == Some("RegularExpression") {
            out.query_regex.insert(q.name.clone(), q.value.clone());
        } else {
            out.query.insert(q.name.clone(), q.value.clone());
        }
    }
    out
}

/// Refuses match types the proxy lacks, and regular expressions it cannot compile.
fn check_matches(matches: &[gwapi::HTTPRouteMatch]) -> Result<(), RuleError> {
    let known = |t: Option<&str>, what: &str, allowed: &[&str]| match t {
        Some(t) if !allowed.contains(&t) => Err(RuleError::Unsupported(format!(
            "{what} match type {t} is not supported"
        ))),
        _ => Ok(()),
    };
    let regex = |t: Option<&str>, v: &str| {
        if t == Some("RegularExpression") {
            compile_regex(v)
                .map(|_| ())
                .map_err(|e| RuleError::Unsupported(format!("regular expression `{v}`: {e}")))
        } else {
            Ok(())
        }
    };
    for m in matches {
        if let Some(p) = &m.path {
            known(
                p.type_.as_deref(),
                "path",
                &["PathPrefix", "Exact", "RegularExpression"],
            )?;
            regex(p.type_.as_deref(), p.value.as_deref().unwrap_or(""))?;
        }
        for h in m.headers.iter().chain(&m.query_params) {
            known(
                h.type_.as_deref(),
                "header/query",
                &["Exact", "RegularExpression"],
            )?;
            regex(h.type_.as_deref(), &h.value)?;
        }
    }
    Ok(())
}

/// Gateway API precedence as a sort key (smaller first).
fn precedence(
    m: &RouteMatch,
    src: &gwapi::HTTPRouteMatch,
    age: usize,
    rule: usize,
    idx: usize,
) -> (u8, usize, u8, usize, u8, usize, String, usize, usize) {
    let (host_rank, host_len) = match &m.host {
        Some(h) if h.starts_with("*.") => (1, usize::MAX - h.len()),
        Some(h) => (0, usize::MAX - h.len()),
        None => (2, 0),
    };
    let (path_rank, path_len) = match (&m.path, &m.path_prefix) {
        (Some(p), _) => (0, usize::MAX - p.len()),
        (None, Some(p)) => (1, usize::MAX - p.len()),
        (None, None) => (1, usize::MAX - 1),
    };
    let method_rank = if m.method.is_some() { 0 } else { 1 };
    let headers = usize::MAX - src.headers.len();
    (
        host_rank,
        host_len,
        path_rank,
        path_len,
        method_rank,
        headers,
        format!("{age:08}"),
        rule,
        idx,
    )
}

/// One rule, rendered but for its matches: the backend (or the redirect) and the merged
/// policies.
struct BuiltRule {
    backend: Option<RenderedBackend>,
    redirect: Option<RedirectConfig>,
    policies: Option<Policies>,
    /// References left out while the rule is still served (a `RequestMirror` whose backend
    /// does not resolve is dropped, as the Gateway API says), as (reason, message).
    dropped_refs: Vec<(&'static str, String)>,
}

/// The proxy's path modifier of a Gateway API one.
fn path_modifier(pm: &gwapi::PathModifier) -> Result<PathModifier, RuleError> {
    match pm.type_.as_str() {
        "ReplaceFullPath" => Ok(PathModifier {
            full: Some(pm.replace_full_path.clone().unwrap_or_else(|| "/".into())),
            prefix: None,
        }),
        "ReplacePrefixMatch" => Ok(PathModifier {
            full: None,
            prefix: Some(
                pm.replace_prefix_match
                    .clone()
                    .unwrap_or_else(|| "/".into()),
            ),
        }),
        other => Err(RuleError::Unsupported(format!(
            "path modifier {other} is not supported"
        ))),
    }
}

/// `ReplacePrefixMatch` needs every match of the rule to be a `PathPrefix` one.
fn check_prefix_modifier(pm: &PathModifier, rule: &HTTPRouteRule) -> Result<(), RuleError> {
    if pm.prefix.is_some()
        && rule.matches.iter().any(|m| {
            m.path
                .as_ref()
                .is_some_and(|p| p.type_.as_deref().unwrap_or("PathPrefix") != "PathPrefix")
        })
    {
        return Err(RuleError::Unsupported(
            "ReplacePrefixMatch needs PathPrefix matches".into(),
        ));
    }
    Ok(())
}

/// Parses a Gateway API duration (`10s`, `1m30s`, `500ms`).
fn duration(what: &str, t: &str) -> Result<std::time::Duration, RuleError> {
    humantime::parse_duration(t)
        .map_err(|_| RuleError::Unsupported(format!("{what} `{t}` is not a duration")))
}

/// Renders one rule but for its matches: its filters and timeout become policies, then the
/// Policies of its Backends and those of its route are merged on top, each over the last
/// (Policy objects win over filters); its backendRefs become the backend (weighted
/// `upstreams` when several), or its `RequestRedirect` the redirect.
fn build_rule(
    scope: &Scope,
    route: &Source,
    rule: &HTTPRouteRule,
    out: &mut Collected,
) -> Result<BuiltRule, RuleError> {
    let rns = route.ns.clone();
    check_matches(&rule.matches)?;
    if rule.backend_refs.iter().any(|b| !b.filters.is_empty()) {
        return Err(RuleError::Unsupported(
            "filters on a backendRef are not supported (put them on the rule)".into(),
        ));
    }
    let mut policies = Policies::default();
    let mut headers = HeadersPolicy::default();
    let mut has_headers = false;
    let mut rewrite: Option<RewriteConfig> = None;
    let mut redirect: Option<RedirectConfig> = None;
    let mut mirror: Option<MirrorConfig> = None;
    let mut dropped_refs = Vec::new();
    for f in &rule.filters {
        match f.type_.as_str() {
            "RequestHeaderModifier" => {
                if let Some(m) = &f.request_header_modifier {
                    header_mod(&mut headers.request, m);
                    has_headers = true;
                }
            }
            "ResponseHeaderModifier" => {
                if let Some(m) = &f.response_header_modifier {
                    header_mod(&mut headers.response, m);
                    has_headers = true;
                }
            }
            "URLRewrite" => {
                let Some(u) = &f.url_rewrite else { continue };
                let path = u.path.as_ref().map(path_modifier).transpose()?;
                if let Some(pm) = &path {
                    check_prefix_modifier(pm, rule)?;
                }
                rewrite = Some(RewriteConfig {
                    path,
                    host: u.hostname.clone(),
                });
            }
            "RequestRedirect" => {
                let Some(r) = &f.request_redirect else {
                    continue;
                };
                let path = r.path.as_ref().map(path_modifier).transpose()?;
                if let Some(pm) = &path {
                    check_prefix_modifier(pm, rule)?;
                }
                let status = r.status_code.unwrap_or(302);
                if !matches!(status, 301 | 302 | 303 | 307 | 308) {
                    return Err(RuleError::Unsupported(format!(
                        "redirect status {status} is not supported"
                    )));
                }
                let port = match r.port {
                    None => None,
                    Some(p) => Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        RuleError::Unsupported(format!("redirect port {p} is not a port"))
                    })?),
                };
                if let Some(s) = &r.scheme
                    && !matches!(s.as_str(), "http" | "https")
                {
                    return Err(RuleError::Unsupported(format!(
                        "redirect scheme {s} is not supported"
                    )));
                }
                redirect = Some(RedirectConfig {
                    scheme: r.scheme.clone(),
                    host: r.hostname.clone(),
                    port,
                    path,
                    status: status as u16,
                });
            }
            "RequestMirror" => {
                let Some(m) = &f.request_mirror else { continue };
                if mirror.is_some() {
                    return Err(RuleError::Unsupported(
                        "more than one RequestMirror filter per rule is not supported".into(),
                    ));
                }
                let mut ignored = Policies::default();
                let url = match backends::resolve(scope, &rns, &m.backend_ref, &mut ignored, out) {
                    Ok(RenderedBackend::Http(h)) if !h.url.is_empty() => h.url,
                    // Gateway API: an unresolved mirror backendRef is not configured, and
                    // ResolvedRefs says why; the rule itself is still served.
                    Err(RuleError::Ref(reason, msg)) => {
                        dropped_refs.push((reason, format!("RequestMirror: {msg}")));
                        continue;
                    }
                    Err(e) => return Err(e),
                    Ok(_) => {
                        return Err(RuleError::Unsupported(
                            "a RequestMirror backendRef must be a Service or a static Backend"
                                .into(),
                        ));
                    }
                };
                let percent = match (&m.percent, &m.fraction) {
                    (Some(p), _) => *p,
                    (None, Some(f)) => {
                        let d = f.denominator.unwrap_or(100).max(1);
                        ((i64::from(f.numerator) * 100) / i64::from(d)) as i32
                    }
                    (None, None) => 100,
                };
                mirror = Some(MirrorConfig {
                    url,
                    percent: percent.clamp(0, 100) as u8,
                });
            }
            other => {
                return Err(RuleError::Unsupported(format!(
                    "filter {other} is not supported"
                )));
            }
        }
    }
    if redirect.is_some() && rewrite.is_some() {
        return Err(RuleError::Unsupported(
            "RequestRedirect and URLRewrite cannot be used together".into(),
        ));
    }
    if has_headers {
        policies.headers = Some(headers);
    }
    let timeouts = rule.timeouts.as_ref();
    // The proxy has one whole-request timeout; `backendRequest` stands in when `request` is
    // not given.
    if let Some(t) = timeouts.and_then(|t| t.request.as_deref().or(t.backend_request.as_deref())) {
        let d = duration("timeouts.request", t)?;
        // Gateway API: a zero duration disables the timeout.
        if !d.is_zero() {
            policies.timeouts = Some(TimeoutsPolicy {
                request: Some(d),
                ..Default::default()
            });
        }
    }
    let retries = match &rule.retry {
        Some(r) if r.attempts.unwrap_or(1) > 0 => {
            let attempts = r.attempts.unwrap_or(1);
            if attempts > 10 {
                return Err(RuleError::Unsupported(format!(
                    "retry.attempts {attempts} is more than 10"
                )));
            }
            let mut cfg: RetryConfig = serde_json::from_value(serde_json::json!({
                "attempts": attempts,
            }))
            .map_err(|e| RuleError::Unsupported(e.to_string()))?;
            if !r.codes.is_empty() {
                cfg.on = r
                    .codes
                    .iter()
                    .map(|c| {
                        u16::try_from(*c)
                            .ok()
                            .filter(|c| (400..=599).contains(c))
                            .ok_or_else(|| {
                                RuleError::Unsupported(format!("retry code {c} is not 400-599"))
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(b) = &r.backoff {
                cfg.backoff = duration("retry.backoff", b)?.min(std::time::Duration::from_secs(10));
            }
            Some(cfg)
        }
        _ => None,
    };

    if let Some(redirect) = redirect {
        if let Some(p) =
            scope
                .policies
                .for_route(&route.ns, route.kind, &route.name, &mut out.resources)
        {
            merge_policies(&mut policies, p);
        }
        return Ok(BuiltRule {
            backend: None,
            redirect: Some(redirect),
            policies: (policies != Policies::default()).then_some(policies),
            dropped_refs,
        });
    }

    if rule.backend_refs.is_empty() {
        return Err(RuleError::Ref(
            "BackendNotFound",
            "the rule has no backendRefs".into(),
        ));
    }
    let all_zero = rule.backend_refs.iter().all(|b| b.weight == Some(0));
    let refs: Vec<&BackendRef> = rule
        .backend_refs
        .iter()
        .filter(|b| all_zero || b.weight.unwrap_or(1) > 0)
        .collect();
    let mut backend = if refs.len() == 1 && !all_zero {
        backends::resolve(scope, &rns, refs[0], &mut policies, out)?
    } else {
        // A weighted split: every backendRef must be plain HTTP.
        let mut split: Option<HttpBackendConfig> = None;
        for bref in &refs {
            let weight = u32::try_from(bref.weight.unwrap_or(1)).unwrap_or(0);
            match backends::resolve(scope, &rns, bref, &mut policies, out)? {
                RenderedBackend::Http(h) if h.upstreams.is_empty() => {
                    let s = split.get_or_insert_with(|| HttpBackendConfig {
                        preserve_host: h.preserve_host,
                        ..Default::default()
                    });
                    s.upstreams.push(WeightedUpstream { url: h.url, weight });
                }
                _ => {
                    return Err(RuleError::Unsupported(
                        "a weighted split over several backendRefs needs Services or static Backends"
                            .into(),
                    ));
                }
            }
        }
        // Only reachable with negative weights, which the CRD's schema refuses.
        RenderedBackend::Http(split.ok_or_else(|| {
            RuleError::Unsupported("backendRef weights must not be negative".into())
        })?)
    };
    if route.grpc {
        let RenderedBackend::Http(h) = &mut backend else {
            return Err(RuleError::Unsupported(
                "GRPCRoute backendRefs must be Services or static Backends".into(),
            ));
        };
        h.http2 = true;
    }
    if rewrite.is_some() || mirror.is_some() || retries.is_some() {
        let RenderedBackend::Http(h) = &mut backend else {
            return Err(RuleError::Unsupported(
                "URLRewrite, RequestMirror and retry apply to Services and static Backends only"
                    .into(),
            ));
        };
        if let Some(rw) = rewrite {
            if rw.host.is_some() {
                h.preserve_host = false;
            }
            h.rewrite = Some(rw);
        }
        h.mirror = mirror;
        h.retries = retries;
    }
    if let Some(p) =
        scope
            .policies
            .for_route(&route.ns, route.kind, &route.name, &mut out.resources)
    {
        merge_policies(&mut policies, p);
    }
    Ok(BuiltRule {
        backend: Some(backend),
        redirect: None,
        policies: (policies != Policies::default()).then_some(policies),
        dropped_refs,
    })
}

/// Adds a Gateway API header filter to the proxy's header operations (names lowercased).
fn header_mod(ops: &mut HeaderOps, m: &gwapi::HeaderModifier) {
    for h in &m.set {
        ops.set.insert(h.name.to_ascii_lowercase(), h.value.clone());
    }
    for h in &m.add {
        ops.add.insert(h.name.to_ascii_lowercase(), h.value.clone());
    }
    ops.remove
        .extend(m.remove.iter().map(|h| h.to_ascii_lowercase()));
}
