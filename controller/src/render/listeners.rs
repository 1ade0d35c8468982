//! Listeners: the Gateway's listeners grouped by port into proxy listeners (one per port; the
//! Gateway listeners' hostnames become route host matches), their TLS certificates, and the
//! conditions of each Gateway listener.

use std::collections::{BTreeMap, BTreeSet};

use switchboard_gateway::config::{ListenerConfig, TlsConfig};

use super::routes::{self, Candidate};
use super::status::{Cond, ListenerOutcome, supported_kinds};
use super::{CONFIG_DIR, Collected, Scope, World};
use crate::gateway_api as gwapi;
use crate::gateway_api::RouteGroupKind;

/// The Gateway's listeners, grouped by port.
pub(super) struct Listeners {
    /// Status of every Gateway listener, in spec order.
    pub(super) outcomes: Vec<ListenerOutcome>,
    /// One proxy listener per port, named for the first Gateway listener on it.
    pub(super) ports: BTreeMap<i32, PortGroup>,
    /// The Gateway listeners that are served, with their port.
    pub(super) served: BTreeMap<String, i32>,
}

/// The proxy listener of one port.
pub(super) struct PortGroup {
    pub(super) name: String,
    pub(super) protocol: String,
    pub(super) tls: Option<TlsConfig>,
    /// The certificate Secret the Deployment mounts for `tls`.
    pub(super) tls_secret: Option<String>,
}

impl Listeners {
    /// Groups the listeners of the Gateway in `scope` by port and decides their conditions.
    pub(super) fn of(scope: &Scope) -> Self {
        let mut outcomes: Vec<ListenerOutcome> = Vec::new();
        let mut ports: BTreeMap<i32, PortGroup> = BTreeMap::new();
        let mut served: BTreeMap<String, i32> = BTreeMap::new();
        for l in &scope.gw.spec.listeners {
            let mut conds = Vec::new();
            let supported = matches!(l.protocol.as_str(), "HTTP" | "HTTPS");
            let mut tls = None;
            let mut resolved = Cond::ok("ResolvedRefs", "ResolvedRefs");
            if !supported {
                conds.push(Cond::fail(
                    "Accepted",
                    "UnsupportedProtocol",
                    format!(
                        "protocol {} is not supported; use HTTP or HTTPS",
                        l.protocol
                    ),
                ));
            } else if l.protocol == "HTTPS" {
                match listener_tls(scope.world, &scope.ns, l) {
                    Ok(t) => tls = Some(t),
                    Err((reason, msg)) => resolved = Cond::fail("ResolvedRefs", reason, msg),
                }
            }
            let group = ports.entry(l.port).or_insert_with(|| PortGroup {
                name: l.name.clone(),
                protocol: l.protocol.clone(),
                tls: None,
                tls_secret: None,
            });
            let conflicted = supported
                && (group.protocol != l.protocol
                    || (l.protocol == "HTTPS" && group.name != l.name));
            if supported
                && !conflicted
                && group.name == l.name
                && let Some((cfg, secret)) = tls.clone()
            {
                group.tls = Some(cfg);
                group.tls_secret = Some(secret);
            }
            let (kinds, unknown) = allowed_kinds(l);
            if !unknown.is_empty() && resolved.status {
                resolved = Cond::fail(
                    "ResolvedRefs",
                    "InvalidRouteKinds",
                    format!(
                        "allowedRoutes.kinds {} are not supported; HTTPRoute and GRPCRoute are",
                        unknown.join(", ")
                    ),
                );
            }
            let usable = supported
                && !conflicted
                && (resolved.status || resolved.reason == "InvalidRouteKinds")
                && !kinds.is_empty();
            if supported {
                conds.push(Cond::ok("Accepted", "Accepted"));
            }
            // Conflicted is the one condition whose True is the bad state.
            conds.push(if conflicted {
                Cond {
                    type_: "Conflicted",
                    status: true,
                    reason: "ProtocolConflict",
                    message: format!(
                        "port {} is already served by listener {} ({}); one proxy listener per port, and at most one HTTPS listener per port",
                        l.port, group.name, group.protocol
                    ),
                }
            } else {
                Cond::fail("Conflicted", "NoConflicts", "")
            });
            conds.push(resolved);
            conds.push(if usable {
                Cond::ok("Programmed", "Programmed")
            } else {
                Cond::fail("Programmed", "Invalid", "the listener is not served")
            });
            if usable {
                served.insert(l.name.clone(), l.port);
            }
            outcomes.push(ListenerOutcome {
                name: l.name.clone(),
                supported_kinds: kinds,
                attached_routes: 0,
                conditions: conds,
            });
        }
        Self {
            outcomes,
            ports,
            served,
        }
    }

    /// Whether some Gateway listener is not served.
    pub(super) fn any_invalid(&self) -> bool {
        self.outcomes.iter().any(|l| {
            l.conditions
                .iter()
                .any(|c| c.type_ == "Programmed" && !c.status)
        })
    }

    /// Ports served by more than one Gateway listener: route names there carry the listener.
    pub(super) fn shared_ports(&self) -> BTreeSet<i32> {
        self.served
            .values()
            .filter(|p| self.served.values().filter(|q| q == p).count() > 1)
            .copied()
            .collect()
    }

    /// The proxy listeners: one per served port, with the routes on it (`candidates` in
    /// precedence order) and the Policies attached to the Gateway or to the listener.
    pub(super) fn proxy_listeners(
        &self,
        scope: &Scope,
        candidates: &[Candidate],
        out: &mut Collected,
    ) -> Vec<ListenerConfig> {
        let mut listeners = Vec::new();
        for (port, group) in &self.ports {
            if !self.served.values().any(|p| p == port) {
                continue;
            }
            let routes = routes::reachable(candidates, *port, &mut out.warnings);
            listeners.push(ListenerConfig {
                name: group.name.clone(),
                bind: format!("{}:{port}", scope.opts.listener_host),
                tls: group.tls.clone(),
                proxy_protocol: scope.proxy_protocol,
                limits: Default::default(),
                trusted_proxies: scope.trusted_proxies.clone(),
                paths: Default::default(),
                policies: scope.policies.listener_policies(
                    scope.gw,
                    &group.name,
                    &mut out.resources,
                ),
                routes,
            });
        }
        listeners
    }

    /// The certificate Secrets of the proxy listeners.
    pub(super) fn tls_secrets(&self) -> Vec<String> {
        self.ports
            .values()
            .filter_map(|g| g.tls_secret.clone())
            .collect()
    }
}

/// The route kinds a listener accepts (those of `allowedRoutes.kinds` this controller
/// supports, or all it supports when none are listed), and the listed ones it does not
/// support, as `group/kind`.
pub(super) fn allowed_kinds(l: &gwapi::Listener) -> (Vec<RouteGroupKind>, Vec<String>) {
    let listed = l
        .allowed_routes
        .as_ref()
        .map(|a| a.kinds.as_slice())
        .unwrap_or_default();
    if listed.is_empty() {
        return (supported_kinds(), Vec::new());
    }
    let (mut kinds, mut unknown) = (Vec::new(), Vec::new());
    for k in listed {
        let group = k.group.as_deref().unwrap_or(gwapi::GROUP);
        if supported_kinds()
            .iter()
            .any(|s| s.group == group && s.kind == k.kind)
        {
            kinds.push(RouteGroupKind {
                group: group.to_string(),
                kind: k.kind.clone(),
            });
        } else {
            unknown.push(format!("{group}/{}", k.kind));
        }
    }
    (kinds, unknown)
}

fn listener_tls(
    world: &World,
    ns: &str,
    l: &gwapi::Listener,
) -> Result<(TlsConfig, String), (&'static str, String)> {
    let tls = l.tls.as_ref().ok_or((
        "InvalidCertificateRef",
        "HTTPS listener without tls".to_string(),
    ))?;
    if tls.mode.as_deref().unwrap_or("Terminate") != "Terminate" {
        return Err((
            "UnsupportedValue",
            "only tls.mode Terminate is supported".into(),
        ));
    }
    let cert = tls
        .certificate_refs
        .first()
        .ok_or(("InvalidCertificateRef", "no certificateRefs".to_string()))?;
    if cert.namespace.as_deref().is_some_and(|n| n != ns) {
        return Err((
            "RefNotPermitted",
            "certificates must be in the Gateway's namespace (the proxy mounts them)".into(),
        ));
    }
    if !world.secrets.contains(&(ns.to_string(), cert.name.clone())) {
        return Err((
            "InvalidCertificateRef",
            format!("Secret {ns}/{} not found", cert.name),
        ));
    }
    let dir = format!("{CONFIG_DIR}/tls/{}", cert.name);
    Ok((
        TlsConfig {
            cert: format!("{dir}/tls.crt"),
            key: format!("{dir}/tls.key"),
            sni: Vec::new(),
        },
        cert.name.clone(),
    ))
}
