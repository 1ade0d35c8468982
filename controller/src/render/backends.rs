//! Backends: a rule's backendRef resolved to a Service (plain HTTP) or a Switchboard Backend,
//! rendered as the proxy route's backend key (`http`, `mcp`, `llm` or `a2a`). Secrets a
//! Backend references become `${VAR}` references (see `secrets.rs`).

use kube::ResourceExt;
use serde_json::Value;
use switchboard_gateway::config::{HttpBackendConfig, Policies, RouteConfig, expose_secrets};

use super::policies::merge_policies;
use super::routes::RuleError;
use super::secrets::EnvCollector;
use super::status::Cond;
use super::{Collected, RenderOptions, Scope, World, attach_key};
use crate::crd::{self, Backend};
use crate::gateway_api::{self as gwapi, BackendRef};

/// A route backend, rendered as the proxy config's backend key and its value.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderedBackend {
    /// `http:` — plain reverse proxy.
    Http(HttpBackendConfig),
    /// Another backend key (`mcp`, `llm`, `a2a`) with its value in the config file's shape.
    Other(&'static str, Value),
}

/// Resolves the backendRef of a rule in an HTTPRoute in `rns`. A reference to another
/// namespace needs a ReferenceGrant there. A Backend's conditions go into `out.resources`
/// and the Policies attached to it are merged into `policies`.
pub(super) fn resolve(
    scope: &Scope,
    rns: &str,
    bref: &BackendRef,
    policies: &mut Policies,
    out: &mut Collected,
) -> Result<RenderedBackend, RuleError> {
    let (world, opts) = (scope.world, scope.opts);
    let group = bref.group.as_deref().unwrap_or("");
    let kind = bref.kind.as_deref().unwrap_or("Service");
    let bns = bref.namespace.clone().unwrap_or_else(|| rns.to_string());
    if bns != rns && !granted(world, rns, &bns, group, kind, &bref.name) {
        return Err(RuleError::Ref(
            "RefNotPermitted",
            format!(
                "no ReferenceGrant in {bns} allows HTTPRoutes from {rns} to {kind} {}",
                bref.name
            ),
        ));
    }
    match (group, kind) {
        ("", "Service") => {
            if !world
                .services
                .iter()
                .any(|s| s.namespace().as_deref() == Some(&bns) && s.name_any() == bref.name)
            {
                return Err(RuleError::Ref(
                    "BackendNotFound",
                    format!("Service {bns}/{} not found", bref.name),
                ));
            }
            // The CRD's validation requires it; a route stored before that rule existed
            // still gets a reason.
            let port = bref.port.ok_or_else(|| {
                RuleError::Unsupported("a Service backendRef needs a port".into())
            })?;
            Ok(RenderedBackend::Http(HttpBackendConfig {
                url: format!(
                    "http://{}.{bns}.svc.{}:{port}",
                    bref.name, opts.cluster_domain
                ),
                preserve_host: true,
                ..Default::default()
            }))
        }
        (crd::GROUP, "Backend") => {
            let b = world
                .backends
                .iter()
                .find(|b| b.namespace().as_deref() == Some(&bns) && b.name_any() == bref.name)
                .ok_or_else(|| {
                    RuleError::Ref(
                        "BackendNotFound",
                        format!("Backend {bns}/{} not found", bref.name),
                    )
                })?;
            let key = ("Backend", bns.clone(), bref.name.clone());
            let rendered = render_backend(world, b, &mut out.env, opts);
            let conds = match &rendered {
                Ok(_) => vec![
                    Cond::ok("Accepted", "Accepted"),
                    Cond::ok("ResolvedRefs", "ResolvedRefs"),
                ],
                Err(RuleError::Unsupported(m)) => {
                    vec![Cond::fail("Accepted", "Invalid", m.clone())]
                }
                Err(RuleError::Ref(r, m)) => vec![
                    Cond::ok("Accepted", "Accepted"),
                    Cond::fail("ResolvedRefs", r, m.clone()),
                ],
            };
            out.resources.insert(key, conds);
            let rendered = rendered?;
            if let Some(p) = scope.policies.for_backend(b, &mut out.resources) {
                merge_policies(policies, p);
            }
            Ok(rendered)
        }
        _ => Err(RuleError::Ref(
            "InvalidKind",
            format!("backendRefs of kind {group}/{kind} are not supported"),
        )),
    }
}

/// Whether a ReferenceGrant in `to_ns` lets HTTPRoutes in `from_ns` refer to `group/kind name`.
fn granted(world: &World, from_ns: &str, to_ns: &str, group: &str, kind: &str, name: &str) -> bool {
    world.grants.iter().any(|g| {
        g.namespace().as_deref() == Some(to_ns)
            && g.spec
                .from
                .iter()
                .any(|f| f.group == gwapi::GROUP && f.kind == "HTTPRoute" && f.namespace == from_ns)
            && g.spec.to.iter().any(|t| {
                t.group == group && t.kind == kind && t.name.as_deref().is_none_or(|n| n == name)
            })
    })
}

/// The URL of a Backend's upstream: a static host, or a Service in the Backend's namespace.
fn upstream_url(
    u: &crd::Upstream,
    ns: &str,
    world: &World,
    opts: &RenderOptions,
) -> Result<String, RuleError> {
    let scheme = if u.tls { "https" } else { "http" };
    let host = match (&u.host, &u.service) {
        (Some(h), None) => h.clone(),
        (None, Some(s)) => {
            if !world
                .services
                .iter()
                .any(|x| x.namespace().as_deref() == Some(ns) && &x.name_any() == s)
            {
                return Err(RuleError::Ref(
                    "BackendNotFound",
                    format!("Service {ns}/{s} not found"),
                ));
            }
            format!("{s}.{ns}.svc.{}", opts.cluster_domain)
        }
        _ => {
            return Err(RuleError::Unsupported(
                "an upstream sets exactly one of host, service".into(),
            ));
        }
    };
    let path = u.path.as_deref().unwrap_or("");
    Ok(format!("{scheme}://{host}:{}{path}", u.port))
}

/// Renders a Backend into the proxy's backend key. `static` becomes `http:`; `mcp`, `llm` and
/// `a2a` are the proxy's own blocks: their Service URLs are resolved, their `${NAME}`
/// references to `secrets` become the fleet's Secret env vars, and [`attach_backend`] puts them
/// on the route.
fn render_backend(
    world: &World,
    b: &Backend,
    env: &mut EnvCollector,
    opts: &RenderOptions,
) -> Result<RenderedBackend, RuleError> {
    let ns = b.namespace().unwrap_or_default();
    let s = &b.spec;
    let kinds = [
        s.static_.is_some(),
        s.mcp.is_some(),
        s.llm.is_some(),
        s.a2a.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(RuleError::Unsupported(
            "a Backend sets exactly one of static, mcp, llm, a2a".into(),
        ));
    }
    if let Some(u) = &s.static_ {
        return Ok(RenderedBackend::Http(HttpBackendConfig {
            url: upstream_url(u, &ns, world, opts)?,
            preserve_host: false,
            ..Default::default()
        }));
    }
    let expose = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| RuleError::Unsupported(format!("the backend does not serialize: {e}")))
    };
    let (key, mut value) = if let Some(m) = &s.mcp {
        let mut v = expose(expose_secrets(|| serde_json::to_value(m)))?;
        if let Some(targets) = v.get_mut("targets").and_then(Value::as_array_mut) {
            for t in targets {
                for at in [
                    "/http/url",
                    "/sse/url",
                    "/openapi/base_url",
                    "/openapi/spec",
                ] {
                    resolve_url(t.pointer_mut(at), &ns, world, opts)?;
                }
            }
        }
        ("mcp", v)
    } else if let Some(l) = &s.llm {
        let mut v = expose(expose_secrets(|| serde_json::to_value(l)))?;
        if let Some(models) = v.get_mut("models").and_then(Value::as_array_mut) {
            for m in models {
                if let Some(providers) = m.get_mut("providers").and_then(Value::as_array_mut) {
                    for p in providers {
                        resolve_url(p.get_mut("base_url"), &ns, world, opts)?;
                    }
                }
            }
        }
        ("llm", v)
    } else {
        let a = s.a2a.as_ref().expect("exactly one kind is set");
        let mut v = expose(serde_json::to_value(a))?;
        resolve_url(v.get_mut("url"), &ns, world, opts)?;
        if let Some(ups) = v.get_mut("upstreams").and_then(Value::as_array_mut) {
            for u in ups {
                resolve_url(Some(u), &ns, world, opts)?;
            }
        }
        ("a2a", v)
    };
    for var in &s.secrets {
        let needle = format!("${{{}}}", var.name);
        if !mentions(&value, &needle) {
            continue;
        }
        let r = &var.secret_key_ref;
        if !world.secrets.contains(&(ns.clone(), r.name.clone())) {
            return Err(RuleError::Ref(
                "RefNotPermitted",
                format!("Secret {ns}/{} not found", r.name),
            ));
        }
        if ns != env.namespace {
            return Err(RuleError::Ref(
                "RefNotPermitted",
                "Backends with Secrets must be in the Gateway's namespace (the proxy reads them as env)".into(),
            ));
        }
        let reference = env.reference(&var.value());
        replace_in_strings(&mut value, &needle, &reference);
    }
    Ok(RenderedBackend::Other(key, value))
}

/// Whether any string in `v` contains `needle`.
fn mentions(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| mentions(x, needle)),
        Value::Object(o) => o.values().any(|x| mentions(x, needle)),
        _ => false,
    }
}

/// Replaces `needle` by `with` in every string of `v`.
fn replace_in_strings(v: &mut Value, needle: &str, with: &str) {
    match v {
        Value::String(s) if s.contains(needle) => *s = s.replace(needle, with),
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| replace_in_strings(x, needle, with)),
        Value::Object(o) => o
            .values_mut()
            .for_each(|x| replace_in_strings(x, needle, with)),
        _ => {}
    }
}

/// The Service a URL names: its host when that is a single DNS label other than `localhost`
/// (`http://search-mcp:3001/mcp`), with the byte range of the host in the URL.
pub fn service_host(url: &str) -> Option<(&str, std::ops::Range<usize>)> {
    let (scheme, rest) = url.split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let start = scheme.len() + 3;
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // Userinfo never names a Service; leave such URLs to the proxy's checks.
    if authority.contains('@') || authority.starts_with('[') {
        return None;
    }
    let host_len = authority.find(':').unwrap_or(authority.len());
    let host = &authority[..host_len];
    let label = !host.is_empty()
        && !host.eq_ignore_ascii_case("localhost")
        && host
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !host.chars().all(|c| c.is_ascii_digit());
    label.then_some((host, start..start + host_len))
}

/// Rewrites a URL whose host names a Service in `ns` to the Service's cluster DNS name, and
/// refuses one whose Service does not exist. Other values are left alone.
fn resolve_url(
    v: Option<&mut Value>,
    ns: &str,
    world: &World,
    opts: &RenderOptions,
) -> Result<(), RuleError> {
    let Some(v) = v else {
        return Ok(());
    };
    let Some(url) = v.as_str() else {
        return Ok(());
    };
    let Some((svc, range)) = service_host(url) else {
        return Ok(());
    };
    if !world
        .services
        .iter()
        .any(|x| x.namespace().as_deref() == Some(ns) && x.name_any() == svc)
    {
        return Err(RuleError::Ref(
            "BackendNotFound",
            format!("Service {ns}/{svc} not found"),
        ));
    }
    let mut out = url.to_string();
    out.replace_range(range, &format!("{svc}.{ns}.svc.{}", opts.cluster_domain));
    *v = Value::String(out);
    Ok(())
}

/// Puts a rendered backend on a route. `http` is typed; other kinds go through the route's
/// serde form, so the proxy's own config types check them: a value they refuse fails with a
/// message instead of producing a config the proxy would refuse.
pub fn attach_backend(
    mut route: RouteConfig,
    backend: &RenderedBackend,
) -> Result<RouteConfig, String> {
    match backend {
        RenderedBackend::Http(h) => {
            route.http = Some(h.clone());
            Ok(route)
        }
        RenderedBackend::Other(key, value) => attach_key(&route, key, value.clone()),
    }
}
