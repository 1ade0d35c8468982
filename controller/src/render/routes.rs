//! Routes: HTTPRoutes attached to the Gateway's listeners (parentRefs, allowed namespaces,
//! hostname intersection), each rule's matches turned into proxy routes ordered by Gateway
//! API precedence (host specificity, exact path, longest prefix, method, header count, route
//! age), and routes an earlier one covers dropped, as the proxy refuses unreachable routes.

use std::sync::Arc;

use kube::ResourceExt;
use switchboard_gateway::config::{
    HeaderOps, HeadersPolicy, Policies, RouteConfig, RouteMatch, TimeoutsPolicy, covers,
};

use super::backends::{self, RenderedBackend, attach_backend};
use super::listeners::Listeners;
use super::policies::merge_policies;
use super::status::{Cond, RouteOutcome, fail_more};
use super::{Collected, Scope};
use crate::gateway_api::{self as gwapi, BackendRef, HTTPRoute, HTTPRouteRule, ParentRef};

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

/// The rules of every HTTPRoute whose parentRefs name the Gateway, as proxy routes in
/// precedence order, and the status entry of each such parentRef. Counts the routes attached
/// to each listener in `listeners.outcomes`.
pub(super) fn attach(
    scope: &Scope,
    listeners: &mut Listeners,
    out: &mut Collected,
) -> (Vec<Candidate>, Vec<RouteOutcome>) {
    let gw_name = scope.gw.name_any();
    let shared_ports = listeners.shared_ports();
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut route_outcomes = Vec::new();
    let mut routes: Vec<&Arc<HTTPRoute>> = scope.world.routes.iter().collect();
    routes.sort_by_key(|r| route_age_key(r));
    for (age, route) in routes.iter().enumerate() {
        let rns = route.namespace().unwrap_or_default();
        let rname = route.name_any();
        for pref in &route.spec.parent_refs {
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
                let from = l
                    .allowed_routes
                    .as_ref()
                    .and_then(|a| a.namespaces.as_ref())
                    .and_then(|n| n.from.as_deref())
                    .unwrap_or("Same");
                if from == "Same" && rns != scope.ns {
                    reason = "NotAllowedByListeners";
                    continue;
                }
                match intersect_hosts(l.hostname.as_deref(), &route.spec.hostnames) {
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
            for (i, rule) in route.spec.rules.iter().enumerate() {
                let built = match build_rule(scope, route, rule, out) {
                    Ok(b) => b,
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
                                },
                                owner: (rns.clone(), rname.clone()),
                            });
                            let last = candidates.last_mut().expect("just pushed");
                            match attach_backend(last.route.clone(), &built.backend) {
                                Ok(r) => last.route = r,
                                Err(msg) => {
                                    candidates.pop();
                                    let msg = format!("rule {i}: {msg}");
                                    if !resolved.message.contains(&msg) {
                                        resolved = fail_more(
                                            resolved,
                                            "ResolvedRefs",
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
                    .push(format!("HTTPRoute {rns}/{rname}: {}", accepted.message));
            }
            if !resolved.status {
                out.warnings
                    .push(format!("HTTPRoute {rns}/{rname}: {}", resolved.message));
            }
            route_outcomes.push(RouteOutcome {
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

/// Whether a parentRef written in a route in `route_ns` names the Gateway `gw_ns/gw_name`.
pub fn parent_is(pref: &ParentRef, route_ns: &str, gw_ns: &str, gw_name: &str) -> bool {
    pref.group.as_deref().unwrap_or(gwapi::GROUP) == gwapi::GROUP
        && pref.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && pref.namespace.as_deref().unwrap_or(route_ns) == gw_ns
        && pref.name == gw_name
}

/// Gateway API's route age order: creation time, then namespace and name.
fn route_age_key(r: &HTTPRoute) -> (String, String, String) {
    (
        r.metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        r.namespace().unwrap_or_default(),
        r.name_any(),
    )
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
/// condition.
fn match_of(m: &gwapi::HTTPRouteMatch) -> RouteMatch {
    let mut out = RouteMatch::default();
    match m.path.as_ref() {
        Some(p) if p.type_.as_deref() == Some("Exact") => out.path = p.value.clone(),
        Some(p) => {
            let v = p.value.clone().unwrap_or_else(|| "/".into());
            if v != "/" {
                out.path_prefix = Some(v);
            }
        }
        None => {}
    }
    out.method = m.method.clone();
    out.headers = m
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.clone()))
        .collect();
    out
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

/// One rule, rendered but for its matches: the backend and the merged policies.
struct BuiltRule {
    backend: RenderedBackend,
    policies: Option<Policies>,
}

/// Renders one rule but for its matches: its filters and timeout become policies, then the
/// Policies of its Backend and those of its route are merged on top, each over the last
/// (Policy objects win over filters); its one backendRef becomes the backend.
fn build_rule(
    scope: &Scope,
    route: &HTTPRoute,
    rule: &HTTPRouteRule,
    out: &mut Collected,
) -> Result<BuiltRule, RuleError> {
    let rns = route.namespace().unwrap_or_default();
    for m in &rule.matches {
        if !m.query_params.is_empty() {
            return Err(RuleError::Unsupported(
                "queryParams matches are not supported".into(),
            ));
        }
        if m.path.as_ref().and_then(|p| p.type_.as_deref()) == Some("RegularExpression") {
            return Err(RuleError::Unsupported(
                "RegularExpression path matches are not supported".into(),
            ));
        }
        if m.headers
            .iter()
            .any(|h| h.type_.as_deref().unwrap_or("Exact") != "Exact")
        {
            return Err(RuleError::Unsupported(
                "only Exact header matches are supported".into(),
            ));
        }
    }
    let mut policies = Policies::default();
    let mut headers = HeadersPolicy::default();
    let mut has_headers = false;
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
            other => {
                return Err(RuleError::Unsupported(format!(
                    "filter {other} is not supported"
                )));
            }
        }
    }
    if has_headers {
        policies.headers = Some(headers);
    }
    if let Some(t) = rule.timeouts.as_ref().and_then(|t| t.request.as_deref()) {
        let d = humantime::parse_duration(t).map_err(|_| {
            RuleError::Unsupported(format!("timeouts.request `{t}` is not a duration"))
        })?;
        policies.timeouts = Some(TimeoutsPolicy {
            request: Some(d),
            ..Default::default()
        });
    }

    let refs: Vec<&BackendRef> = rule
        .backend_refs
        .iter()
        .filter(|b| b.weight.unwrap_or(1) > 0)
        .collect();
    let Some(bref) = refs.first() else {
        return Err(RuleError::Ref(
            "BackendNotFound",
            "the rule has no backendRefs".into(),
        ));
    };
    if refs.len() > 1 {
        return Err(RuleError::Unsupported(
            "traffic splitting over several backendRefs is not supported yet; use one".into(),
        ));
    }
    let backend = backends::resolve(scope, &rns, bref, &mut policies, out)?;
    if let Some(p) = scope.policies.for_route(route, &mut out.resources) {
        merge_policies(&mut policies, p);
    }
    Ok(BuiltRule {
        backend,
        policies: (policies != Policies::default()).then_some(policies),
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
