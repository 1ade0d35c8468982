//! Backends: a rule's backendRef resolved to a Service (plain HTTP) or a Switchboard Backend,
//! rendered as the proxy route's backend key (`http`, `mcp`, `llm` or `a2a`). Secrets a
//! Backend references become `${VAR}` references (see `secrets.rs`).

use kube::ResourceExt;
use serde_json::{Value, json};
use switchboard_gateway::config::{HttpBackendConfig, Policies, RouteConfig};

use super::policies::merge_policies;
use super::routes::RuleError;
use super::secrets::EnvCollector;
use super::status::Cond;
use super::{Collected, RenderOptions, Scope, World, attach_key};
use crate::crd::{self, Backend, SecretValue};
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
            let port = bref.port.ok_or_else(|| {
                RuleError::Ref(
                    "UnsupportedValue",
                    "a Service backendRef needs a port".into(),
                )
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
/// `a2a` become values shaped like the config file's keys of the same names (DESIGN.md), which
/// [`attach_backend`] puts on the route.
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
    let mut secret = |v: &SecretValue| -> Result<String, RuleError> {
        if !world
            .secrets
            .contains(&(ns.clone(), v.secret_key_ref.name.clone()))
        {
            return Err(RuleError::Ref(
                "RefNotPermitted",
                format!("Secret {ns}/{} not found", v.secret_key_ref.name),
            ));
        }
        if ns != env.namespace {
            return Err(RuleError::Ref(
                "RefNotPermitted",
                "Backends with Secrets must be in the Gateway's namespace (the proxy reads them as env)".into(),
            ));
        }
        Ok(env.reference(v))
    };
    if let Some(u) = &s.static_ {
        return Ok(RenderedBackend::Http(HttpBackendConfig {
            url: upstream_url(u, &ns, world, opts)?,
            preserve_host: false,
            ..Default::default()
        }));
    }
    if let Some(m) = &s.mcp {
        let mut targets = Vec::new();
        for t in &m.targets {
            let mut v = json!({"name": t.name});
            match (&t.http, &t.sse) {
                (Some(u), None) => v["http"] = json!({"url": upstream_url(u, &ns, world, opts)?}),
                (None, Some(u)) => v["sse"] = json!({"url": upstream_url(u, &ns, world, opts)?}),
                _ => {
                    return Err(RuleError::Unsupported(format!(
                        "mcp target {} sets exactly one of http, sse",
                        t.name
                    )));
                }
            }
            if let Some(tok) = &t.auth_token {
                let transport = if t.http.is_some() { "http" } else { "sse" };
                v[transport]["headers"] =
                    json!({"authorization": format!("Bearer {}", secret(tok)?)});
            }
            targets.push(v);
        }
        let mut v = json!({"targets": targets});
        if let Some(p) = &m.prefix {
            v["prefix"] = json!(p);
        }
        return Ok(RenderedBackend::Other("mcp", v));
    }
    if let Some(l) = &s.llm {
        let mut models = Vec::new();
        for m in &l.models {
            let mut providers = Vec::new();
            for p in &m.providers {
                let mut v = json!({"provider": p.provider, "model": p.model});
                if let Some(u) = &p.base_url {
                    v["base_url"] = json!(u);
                }
                if let Some(k) = &p.api_key {
                    v["api_key"] = json!(secret(k)?);
                }
                if let Some(w) = p.weight {
                    v["weight"] = json!(w);
                }
                providers.push(v);
            }
            let mut v = json!({"name": m.name, "providers": providers});
            if let Some(st) = &m.strategy {
                v["strategy"] = json!(st);
            }
            models.push(v);
        }
        return Ok(RenderedBackend::Other("llm", json!({"models": models})));
    }
    let a = s.a2a.as_ref().expect("exactly one kind is set");
    Ok(RenderedBackend::Other(
        "a2a",
        json!({"url": upstream_url(&a.upstream, &ns, world, opts)?}),
    ))
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
