//! Settings that are valid but can have no effect: a policy that the route's backend kind
//! never applies (a credential for an `mcp` route whose targets are all stdio, client
//! credentials forwarded to LLM providers, ...), and what a backend leaves out (operations of
//! an `openapi` target's document that cannot be tools). `switchboard validate` prints them and
//! still exits 0; `switchboard run` logs them. Each warning names the key and why.

use super::*;

type Issues = Vec<(String, String)>;

/// One policy key that some backend kinds ignore.
struct Check {
    /// The key under `policies`.
    key: &'static str,
    /// Whether a `policies` block sets it (to something that would act).
    set: fn(&Policies) -> bool,
    /// Why it does nothing on this route, or `None` when it acts there.
    idle: fn(&RouteConfig) -> Option<String>,
}

const CHECKS: &[Check] = &[
    Check {
        key: "upstream_auth",
        set: |p| p.upstream_auth.is_some(),
        idle: |r| {
            if r.llm.is_some() {
                return Some(
                    "llm providers are sent their own `api_key`, never this credential".into(),
                );
            }
            let m = r.mcp.as_ref()?;
            let reaches = |t: &switchboard_mcp::config::TargetConfig| {
                t.stdio.is_none() && t.upstream_auth.is_none()
            };
            if m.targets.iter().any(reaches) {
                None
            } else if m.targets.iter().all(|t| t.stdio.is_some()) {
                Some("the targets of this mcp route are all stdio; only http, sse and openapi targets are sent a credential".into())
            } else {
                Some(
                    "every http, sse and openapi target of this mcp route sets its own `upstream_auth`"
                        .into(),
                )
            }
        },
    },
    Check {
        key: "forward_client_credentials",
        set: |p| p.forward_client_credentials == Some(true),
        idle: |r| {
            if r.mcp.is_some() {
                Some("mcp targets are never sent the client's credentials (the MCP spec forbids token passthrough); use `upstream_auth`".into())
            } else if r.llm.is_some() {
                Some("llm providers are never sent the client's credentials".into())
            } else {
                None
            }
        },
    },
    Check {
        key: "headers.request",
        set: |p| {
            p.headers.as_ref().is_some_and(|h| {
                !(h.request.add.is_empty()
                    && h.request.set.is_empty()
                    && h.request.remove.is_empty())
            })
        },
        idle: |r| {
            r.mcp.as_ref().map(|_| {
                "mcp targets are never sent the client's request headers; set `targets[].http.headers` (or `sse.headers`, `openapi.headers`) for headers a target should get".into()
            })
        },
    },
    Check {
        key: "timeouts.connect",
        set: |p| p.timeouts.as_ref().is_some_and(|t| t.connect.is_some()),
        idle: timeouts_idle,
    },
    Check {
        key: "timeouts.request",
        set: |p| p.timeouts.as_ref().is_some_and(|t| t.request.is_some()),
        idle: timeouts_idle,
    },
    Check {
        key: "rate_limit.tokens",
        set: |p| p.rate_limit.as_ref().is_some_and(|l| l.tokens.is_some()),
        idle: |r| (r.llm.is_none()).then(|| "only llm routes count tokens".to_string()),
    },
    Check {
        key: "authn.virtual_keys",
        set: |p| p.authn.as_ref().is_some_and(|a| a.virtual_keys),
        idle: |r| {
            r.llm
                .as_ref()
                .filter(|l| l.prices.is_empty())
                .map(|_| {
                    "keys are accepted, but this llm route has no `llm.prices`: every request costs 0, so key and team budgets never run out".to_string()
                })
        },
    },
];

fn timeouts_idle(r: &RouteConfig) -> Option<String> {
    if r.mcp.is_some() {
        Some("mcp routes time each target out by `targets[].timeout`".into())
    } else if r.llm.is_some() {
        Some("llm routes use `llm.timeouts`".into())
    } else {
        None
    }
}

/// Every setting of `config` that can have no effect, and what `mcp` backends leave out, as
/// `(key path, message)`. Relative `openapi.spec` files are read from `base_dir`.
pub(super) fn warnings(config: &Config, base_dir: &std::path::Path) -> Issues {
    let mut out = Issues::new();
    if config.admin.token.is_none()
        && super::validate::parse_bind(&config.admin.bind).is_some_and(|a| !a.ip().is_loopback())
    {
        out.push((
            "admin.bind".into(),
            "the admin listener is bound beyond loopback and `admin.token` is not set: /ui, /api, \
             /config and /drain answer 403 (/healthz, /readyz and /metrics stay open)"
                .into(),
        ));
    }
    let no_admin_api = config.admin.token.is_none()
        && super::validate::parse_bind(&config.admin.bind).is_some_and(|a| !a.ip().is_loopback());
    for (i, l) in config.listeners.iter().enumerate() {
        let lp = format!("listeners[{i}]");
        let vk = |p: &Option<Policies>| {
            p.as_ref()
                .and_then(|p| p.authn.as_ref())
                .is_some_and(|a| a.virtual_keys)
        };
        let first = if vk(&l.policies) {
            Some(format!("{lp}.policies.authn.virtual_keys"))
        } else {
            l.routes
                .iter()
                .position(|r| vk(&r.policies))
                .map(|j| format!("{lp}.routes[{j}].policies.authn.virtual_keys"))
        };
        if no_admin_api && let Some(path) = first {
            out.push((
                path,
                "no virtual key can be created: the admin API (`/api/keys`) answers 403 while \
                 `admin.bind` is beyond loopback without `admin.token`"
                    .into(),
            ));
        }
        for (j, r) in l.routes.iter().enumerate() {
            if let Some(m) = &r.mcp {
                out.extend(m.warnings(&format!("{lp}.routes[{j}].mcp"), base_dir));
            }
        }
        for c in CHECKS {
            let mut inheriting = 0;
            let mut first_idle: Option<String> = None;
            let mut all_idle = true;
            for (j, r) in l.routes.iter().enumerate() {
                let own = r.policies.as_ref().is_some_and(|p| (c.set)(p));
                let sets_key = r.policies.as_ref().is_some_and(|p| sets(p, c.key));
                let why = (c.idle)(r);
                if own {
                    if let Some(why) = &why {
                        out.push((
                            format!("{lp}.routes[{j}].policies.{}", c.key),
                            format!("has no effect: {why}"),
                        ));
                    }
                } else if !sets_key {
                    inheriting += 1;
                    match why {
                        Some(why) => {
                            first_idle.get_or_insert(format!("routes[{j}] (`{}`): {why}", r.name));
                        }
                        None => all_idle = false,
                    }
                }
            }
            if l.policies.as_ref().is_some_and(|p| (c.set)(p)) && inheriting > 0 && all_idle {
                out.push((
                    format!("{lp}.policies.{}", c.key),
                    format!(
                        "has no effect on any route that inherits it: {}",
                        first_idle.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    out
}

/// Whether a route's own block sets the key at all (then the listener's does not reach it:
/// a route's own keys win).
fn sets(p: &Policies, key: &str) -> bool {
    match key {
        "upstream_auth" => p.upstream_auth.is_some(),
        "forward_client_credentials" => p.forward_client_credentials.is_some(),
        "headers.request" => p.headers.is_some(),
        "timeouts.connect" | "timeouts.request" => p.timeouts.is_some(),
        "rate_limit.tokens" => p.rate_limit.is_some(),
        "authn.virtual_keys" => p.authn.is_some(),
        _ => false,
    }
}
