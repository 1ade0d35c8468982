//! Rendering: pure functions from a snapshot of the cluster ([`World`]) and one Gateway to the
//! proxy [`Config`] (the same type the proxy reads from a file), the child objects that run the
//! proxy fleet, and the status the reconciler writes back. Nothing here talks to the API
//! server, so every rule is covered by golden tests.
//!
//! Gateway listeners that share a port become one proxy listener (their hostnames become route
//! host matches). HTTPRoute rules become proxy routes ordered by Gateway API precedence (host
//! specificity, exact path, longest prefix, method, header count, route age), and a rule that
//! an earlier one fully covers is dropped, as the proxy refuses unreachable routes. Secrets
//! referenced by Backends become `${VAR}` references in the config and `secretKeyRef`
//! environment variables in the Deployment, so the ConfigMap never holds a secret.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar as K8sEnvVar, EnvVarSource,
    HTTPGetAction, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SecretKeySelector,
    SecretVolumeSource, Service, ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_gateway::config::{
    Config, HeaderOps, HeadersPolicy, HttpBackendConfig, ListenerConfig, Policies, RouteConfig,
    RouteMatch, TimeoutsPolicy, TlsConfig,
};

use crate::crd::{self, Backend, Condition, GatewayParameters, IstioMode, Policy, SecretValue};
use crate::gateway_api::{
    self as gwapi, BackendRef, Gateway, GatewayClass, HTTPRoute, HTTPRouteRule, ListenerStatus,
    ParentRef, ReferenceGrant, RouteGroupKind, RouteParentStatus,
};

/// The `controllerName` of GatewayClasses this controller serves.
pub const CONTROLLER_NAME: &str = "switchboard.dev/gateway-controller";
/// Field manager for server-side apply.
pub const FIELD_MANAGER: &str = "switchboard-controller";
/// Label put on every child object, naming its Gateway (used to find children to prune).
pub const GATEWAY_LABEL: &str = "switchboard.dev/gateway";
/// Pod template annotation holding the SHA-256 of the rendered config.
pub const CHECKSUM_ANNOTATION: &str = "switchboard.dev/config-checksum";
/// Key of the config file in the ConfigMap.
pub const CONFIG_KEY: &str = "config.yaml";
/// Where the ConfigMap is mounted in the proxy container.
pub const CONFIG_DIR: &str = "/etc/switchboard";

/// Default of [`RenderOptions::config_map_limit`]: well under the API server's 1 MiB object
/// limit, leaving room for metadata.
pub const DEFAULT_CONFIG_MAP_LIMIT: usize = 900 * 1024;
/// ConfigMap annotation: `full` when it holds the whole config, `bootstrap` when the config
/// is too large and only the push stream serves it.
pub const CONFIG_MODE_ANNOTATION: &str = "switchboard.dev/config-mode";

/// Rendering settings that come from the controller's command line, not from the cluster.
#[derive(Debug, Clone)]
pub struct RenderOptions {
    /// Default proxy image when GatewayParameters do not name one.
    pub image: String,
    /// Base URL of the controller's config push server as proxies reach it, e.g.
    /// `http://switchboard-controller.switchboard-system.svc:9977`; `None` disables push.
    pub push_url: Option<String>,
    /// Bind address of the proxy's admin listener.
    pub admin_bind: String,
    /// Host part of proxy listener binds.
    pub listener_host: String,
    /// Cluster DNS domain for Service URLs.
    pub cluster_domain: String,
    /// Largest config kept in the ConfigMap. A larger one is served by the push stream only;
    /// the ConfigMap then holds a bootstrap config (the listeners, no routes) that proxies
    /// start from until their first push (the API server refuses objects over 1 MiB).
    pub config_map_limit: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            image: format!(
                "ghcr.io/switchboard-dev/switchboard:{}",
                env!("CARGO_PKG_VERSION")
            ),
            push_url: Some("http://switchboard-controller.switchboard-system.svc:9977".to_string()),
            admin_bind: "0.0.0.0:15000".into(),
            listener_host: "0.0.0.0".into(),
            cluster_domain: "cluster.local".into(),
            config_map_limit: DEFAULT_CONFIG_MAP_LIMIT,
        }
    }
}

/// A snapshot of everything rendering reads (the reconciler fills it from its caches).
#[derive(Debug, Clone, Default)]
pub struct World {
    /// GatewayClasses.
    pub classes: Vec<Arc<GatewayClass>>,
    /// Gateways.
    pub gateways: Vec<Arc<Gateway>>,
    /// HTTPRoutes.
    pub routes: Vec<Arc<HTTPRoute>>,
    /// ReferenceGrants.
    pub grants: Vec<Arc<ReferenceGrant>>,
    /// Switchboard Backends.
    pub backends: Vec<Arc<Backend>>,
    /// Switchboard Policies.
    pub policies: Vec<Arc<Policy>>,
    /// Switchboard GatewayParameters.
    pub parameters: Vec<Arc<GatewayParameters>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// Secrets that exist, as (namespace, name); their data is never read.
    pub secrets: BTreeSet<(String, String)>,
}

/// The child objects of one Gateway.
#[derive(Debug, Clone, PartialEq)]
pub struct Children {
    /// The rendered config.
    pub config_map: ConfigMap,
    /// The proxy fleet.
    pub deployment: Deployment,
    /// The proxy Service.
    pub service: Service,
    /// The proxies' identity (checked by TokenReview on config push).
    pub service_account: ServiceAccount,
}

/// A condition before the reconciler stamps its transition time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Cond {
    /// Type.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `True` or `False`.
    pub status: bool,
    /// Reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

impl Cond {
    fn ok(type_: &'static str, reason: &'static str) -> Self {
        Self {
            type_,
            status: true,
            reason,
            message: String::new(),
        }
    }
    fn fail(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status: false,
            reason,
            message: message.into(),
        }
    }
    /// A failed condition.
    pub fn failed(type_: &'static str, reason: &'static str, message: impl Into<String>) -> Self {
        Self::fail(type_, reason, message)
    }
    fn with(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// As a status condition, keeping the transition time of an unchanged `previous` one.
    pub fn stamp(&self, generation: Option<i64>, previous: &[Condition], now: &str) -> Condition {
        let status = if self.status { "True" } else { "False" };
        let time = previous
            .iter()
            .find(|c| c.type_ == self.type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: self.type_.into(),
            status: status.into(),
            reason: self.reason.into(),
            message: self.message.clone(),
            last_transition_time: time,
            observed_generation: generation,
        }
    }
}

/// Status of one Gateway listener.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ListenerOutcome {
    /// Listener name.
    pub name: String,
    /// Routes attached.
    pub attached_routes: i32,
    /// Conditions.
    pub conditions: Vec<Cond>,
}

/// One `status.parents[]` entry this Gateway owns on an HTTPRoute.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteOutcome {
    /// Route namespace.
    pub namespace: String,
    /// Route name.
    pub name: String,
    /// The parentRef as written in the route.
    pub parent_ref: ParentRef,
    /// Accepted and ResolvedRefs.
    pub conditions: Vec<Cond>,
}

/// Conditions for a Switchboard resource used by this Gateway.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceOutcome {
    /// `Backend` or `Policy`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Accepted and ResolvedRefs.
    pub conditions: Vec<Cond>,
}

/// Everything rendered for one Gateway.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The proxy configuration.
    pub config: Config,
    /// `config` as YAML (what the ConfigMap holds and push serves).
    pub config_yaml: String,
    /// Hex SHA-256 of `config_yaml`.
    pub checksum: String,
    /// The child objects.
    pub children: Children,
    /// Gateway conditions (`Accepted`; `Programmed` is the reconciler's once it has applied).
    pub gateway_conditions: Vec<Cond>,
    /// Listener status.
    pub listeners: Vec<ListenerOutcome>,
    /// HTTPRoute parent status entries for this Gateway.
    pub routes: Vec<RouteOutcome>,
    /// Backend and Policy conditions.
    pub resources: Vec<ResourceOutcome>,
    /// Problems worth an Event on the Gateway.
    pub warnings: Vec<String>,
    /// Set when the config is over [`RenderOptions::config_map_limit`] and push is disabled:
    /// the Gateway cannot be programmed.
    pub too_large: Option<String>,
}

/// The GatewayClass of `gw` when this controller serves it.
pub fn our_class<'a>(world: &'a World, gw: &Gateway) -> Option<&'a Arc<GatewayClass>> {
    world
        .classes
        .iter()
        .find(|c| c.name_any() == gw.spec.gateway_class_name)
        .filter(|c| c.spec.controller_name == CONTROLLER_NAME)
}

/// Proxy-side route being built, with its precedence key.
struct Candidate {
    key: (u8, usize, u8, usize, u8, usize, String, usize, usize),
    listener_port: i32,
    route: RouteConfig,
    owner: (String, String),
}

/// Renders one Gateway. Errors only for objects missing identity (name, namespace, uid);
/// everything a user can get wrong becomes a condition instead.
pub fn render(world: &World, gw: &Gateway, opts: &RenderOptions) -> crate::Result<Rendered> {
    let ns = gw
        .namespace()
        .ok_or(crate::Error::MissingField("metadata.namespace"))?;
    let gw_name = gw.name_any();
    let mut warnings = Vec::new();
    let mut gateway_conditions = Vec::new();
    let mut env = EnvCollector::new(&ns);

    // Parameters: class defaults, then the Gateway's own reference.
    let class = our_class(world, gw);
    let mut params_error = None;
    let mut params = crd::GatewayParametersSpec::default();
    if let Some(r) = class.and_then(|c| c.spec.parameters_ref.as_ref()) {
        match find_params(
            world,
            &r.group,
            &r.kind,
            r.namespace.as_deref().unwrap_or(&ns),
            &r.name,
        ) {
            Ok(p) => params = p,
            Err(e) => params_error = Some(e),
        }
    }
    if let Some(r) = gw
        .spec
        .infrastructure
        .as_ref()
        .and_then(|i| i.parameters_ref.as_ref())
    {
        match find_params(world, &r.group, &r.kind, &ns, &r.name) {
            Ok(p) => params = merge_params(params, p),
            Err(e) => params_error = Some(e),
        }
    }
    match &params_error {
        Some(e) => {
            gateway_conditions.push(Cond::fail("Accepted", "InvalidParameters", e.clone()));
            warnings.push(e.clone());
        }
        None => gateway_conditions.push(Cond::ok("Accepted", "Accepted")),
    }

    // Listeners, grouped by port.
    let mut listener_outcomes: Vec<ListenerOutcome> = Vec::new();
    let mut ports: BTreeMap<i32, PortGroup> = BTreeMap::new();
    let mut listener_port: BTreeMap<String, i32> = BTreeMap::new();
    for l in &gw.spec.listeners {
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
            match listener_tls(world, &ns, l) {
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
            && (group.protocol != l.protocol || (l.protocol == "HTTPS" && group.name != l.name));
        if supported
            && !conflicted
            && group.name == l.name
            && let Some((cfg, secret)) = tls.clone()
        {
            group.tls = Some(cfg);
            group.tls_secret = Some(secret);
        }
        let usable = supported && !conflicted && resolved.status;
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
            listener_port.insert(l.name.clone(), l.port);
        }
        listener_outcomes.push(ListenerOutcome {
            name: l.name.clone(),
            attached_routes: 0,
            conditions: conds,
        });
    }
    if listener_outcomes.iter().any(|l| {
        l.conditions
            .iter()
            .any(|c| c.type_ == "Programmed" && !c.status)
    }) && params_error.is_none()
    {
        gateway_conditions[0] = Cond::ok("Accepted", "ListenersNotValid")
            .with("some listeners are not valid; see status.listeners");
    }

    // Ports served by more than one Gateway listener: route names there carry the listener.
    let shared_ports: BTreeSet<i32> = listener_port
        .values()
        .filter(|p| listener_port.values().filter(|q| q == p).count() > 1)
        .copied()
        .collect();

    // Policies by target.
    let pol = PolicyIndex::new(world, &ns);
    let mut resources: BTreeMap<(&'static str, String, String), Vec<Cond>> = BTreeMap::new();
    for p in world
        .policies
        .iter()
        .filter(|p| pol.targets_gateway(p, &gw_name))
    {
        resources.insert(
            ("Policy", p.namespace().unwrap_or_default(), p.name_any()),
            vec![Cond::ok("Accepted", "Accepted")],
        );
    }

    // Routes.
    let mut candidates: Vec<Candidate> = Vec::new();
    let mut route_outcomes = Vec::new();
    let mut routes: Vec<&Arc<HTTPRoute>> = world.routes.iter().collect();
    routes.sort_by_key(|r| route_age_key(r));
    for (age, route) in routes.iter().enumerate() {
        let rns = route.namespace().unwrap_or_default();
        let rname = route.name_any();
        for pref in &route.spec.parent_refs {
            if !parent_is(pref, &rns, &ns, &gw_name) {
                continue;
            }
            let mut conds = Vec::new();
            // Listeners the route attaches to, with the hostnames it gets on each.
            let mut attach: Vec<(String, i32, Vec<Option<String>>)> = Vec::new();
            let mut reason = "NoMatchingParent";
            for l in &gw.spec.listeners {
                if pref.section_name.as_ref().is_some_and(|s| s != &l.name)
                    || pref.port.is_some_and(|p| p != l.port)
                {
                    continue;
                }
                let Some(&port) = listener_port.get(&l.name) else {
                    continue;
                };
                let from = l
                    .allowed_routes
                    .as_ref()
                    .and_then(|a| a.namespaces.as_ref())
                    .and_then(|n| n.from.as_deref())
                    .unwrap_or("Same");
                if from == "Same" && rns != ns {
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
                if let Some(o) = listener_outcomes.iter_mut().find(|o| &o.name == lname) {
                    o.attached_routes += 1;
                }
            }
            let mut accepted = Cond::ok("Accepted", "Accepted");
            let mut resolved = Cond::ok("ResolvedRefs", "ResolvedRefs");
            for (i, rule) in route.spec.rules.iter().enumerate() {
                let built =
                    match build_rule(world, route, rule, &pol, &mut env, &mut resources, opts) {
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
                            resolved = fail_more(
                                resolved,
                                "ResolvedRefs",
                                reason,
                                format!("rule {i}: {msg}"),
                            );
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
                warnings.push(format!("HTTPRoute {rns}/{rname}: {}", accepted.message));
            }
            if !resolved.status {
                warnings.push(format!("HTTPRoute {rns}/{rname}: {}", resolved.message));
            }
            route_outcomes.push(RouteOutcome {
                namespace: rns.clone(),
                name: rname.clone(),
                parent_ref: pref.clone(),
                conditions: vec![accepted, resolved],
            });
        }
    }

    // Assemble listeners; drop routes an earlier one covers (the proxy refuses them).
    candidates.sort_by(|a, b| a.key.cmp(&b.key));
    let mut listeners = Vec::new();
    for (port, group) in &ports {
        if !listener_port.values().any(|p| p == port) {
            continue;
        }
        let mut routes: Vec<RouteConfig> = Vec::new();
        for c in candidates.iter().filter(|c| c.listener_port == *port) {
            if let Some(earlier) = routes.iter().find(|r| covers(&r.matcher, &c.route.matcher)) {
                warnings.push(format!(
                    "HTTPRoute {}/{}: a rule is shadowed by {} and never matches",
                    c.owner.0, c.owner.1, earlier.name
                ));
                continue;
            }
            routes.push(c.route.clone());
        }
        listeners.push(ListenerConfig {
            name: group.name.clone(),
            bind: format!("{}:{port}", opts.listener_host),
            tls: group.tls.clone(),
            limits: Default::default(),
            trusted_proxies: Default::default(),
            paths: Default::default(),
            policies: pol.listener_policies(gw, &group.name, &mut resources),
            routes,
        });
    }

    let mut config = Config {
        listeners,
        ..Default::default()
    };
    config.admin.bind = opts.admin_bind.clone();
    if let Some(store) = &params.session_store {
        let keys: Vec<String> = store.keys.iter().map(|k| env.reference(k)).collect();
        let mut sessions = json!({"store": store.store});
        if let Some(url) = &store.redis_url {
            sessions["redis"] = json!({"url": url});
        }
        if !keys.is_empty() {
            sessions["keys"] = json!(keys);
        }
        match attach_key(&config, "sessions", sessions) {
            Ok(c) => config = c,
            Err(msg) => {
                gateway_conditions[0] = Cond::fail("Accepted", "InvalidParameters", msg.clone());
                warnings.push(msg);
            }
        }
    }

    // The ConfigMap must hold the real config (secrets are `${VAR}` references by now), not
    // the redacted view that serializing a config gives by default.
    let config_yaml =
        switchboard_gateway::config::expose_secrets(|| yaml_serde::to_string(&config))?;
    let checksum = hex::encode(Sha256::digest(config_yaml.as_bytes()));
    // Configs of any size: past the limit the ConfigMap holds a bootstrap (listeners without
    // routes) and the push stream serves the whole config.
    let mut too_large = None;
    let mut boot_yaml = None;
    if config_yaml.len() > opts.config_map_limit {
        if opts.push_url.is_some() {
            let mut boot = config.clone();
            for l in &mut boot.listeners {
                l.routes.clear();
            }
            boot_yaml = Some(switchboard_gateway::config::expose_secrets(|| {
                yaml_serde::to_string(&boot)
            })?);
        } else {
            too_large = Some(format!(
                "the rendered config is {} bytes, over the ConfigMap limit of {} bytes, and config push is disabled",
                config_yaml.len(),
                opts.config_map_limit
            ));
        }
    }
    let tls_secrets: Vec<String> = ports
        .values()
        .filter_map(|g| g.tls_secret.clone())
        .collect();
    let children = children(
        gw,
        &ns,
        &params,
        &config,
        boot_yaml.as_deref().unwrap_or(&config_yaml),
        boot_yaml.is_some(),
        &checksum,
        &env,
        &tls_secrets,
        opts,
    )?;

    let resources = resources
        .into_iter()
        .map(|((kind, namespace, name), mut conditions)| {
            if !conditions.iter().any(|c| c.type_ == "ResolvedRefs") {
                conditions.push(Cond::ok("ResolvedRefs", "ResolvedRefs"));
            }
            ResourceOutcome {
                kind,
                namespace,
                name,
                conditions,
            }
        })
        .collect();
    Ok(Rendered {
        config,
        config_yaml,
        checksum,
        children,
        gateway_conditions,
        listeners: listener_outcomes,
        routes: route_outcomes,
        resources,
        warnings,
        too_large,
    })
}

/// Adds a failure to a condition: the first failure's reason stays, messages accumulate.
fn fail_more(c: Cond, type_: &'static str, reason: &'static str, msg: String) -> Cond {
    if c.status {
        Cond::fail(type_, reason, msg)
    } else {
        let message = format!("{}; {msg}", c.message);
        Cond { message, ..c }
    }
}

struct PortGroup {
    name: String,
    protocol: String,
    tls: Option<TlsConfig>,
    tls_secret: Option<String>,
}

fn find_params(
    world: &World,
    group: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Result<crd::GatewayParametersSpec, String> {
    if group != crd::GROUP || kind != "GatewayParameters" {
        return Err(format!(
            "parametersRef must point at a {}/GatewayParameters, not {group}/{kind}",
            crd::GROUP
        ));
    }
    world
        .parameters
        .iter()
        .find(|p| p.namespace().as_deref() == Some(ns) && p.name_any() == name)
        .map(|p| p.spec.clone())
        .ok_or_else(|| format!("GatewayParameters {ns}/{name} not found"))
}

/// The Gateway's parameters override the class's, field by field.
fn merge_params(
    base: crd::GatewayParametersSpec,
    over: crd::GatewayParametersSpec,
) -> crd::GatewayParametersSpec {
    crd::GatewayParametersSpec {
        image: over.image.or(base.image),
        replicas: over.replicas.or(base.replicas),
        resources: over.resources.or(base.resources),
        service_type: over.service_type.or(base.service_type),
        env: if over.env.is_empty() {
            base.env
        } else {
            over.env
        },
        session_store: over.session_store.or(base.session_store),
        istio: over.istio.or(base.istio),
    }
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
        },
        cert.name.clone(),
    ))
}

/// Whether a parentRef written in a route in `route_ns` names the Gateway `gw_ns/gw_name`.
pub fn parent_is(pref: &ParentRef, route_ns: &str, gw_ns: &str, gw_name: &str) -> bool {
    pref.group.as_deref().unwrap_or(gwapi::GROUP) == gwapi::GROUP
        && pref.kind.as_deref().unwrap_or("Gateway") == "Gateway"
        && pref.namespace.as_deref().unwrap_or(route_ns) == gw_ns
        && pref.name == gw_name
}

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

/// Whether every request `b` matches is also matched by `a` (the proxy's own rule, so the
/// rendered config never holds a route it would refuse as unreachable).
pub fn covers(a: &RouteMatch, b: &RouteMatch) -> bool {
    let path_covers = match (&a.path_prefix, &a.path, &b.path_prefix, &b.path) {
        (None, None, ..) => true,
        (Some(pa), None, Some(pb), _) => switchboard_gateway::config::prefix_matches(pa, pb),
        (Some(pa), None, None, Some(xb)) => switchboard_gateway::config::prefix_matches(pa, xb),
        (None, Some(xa), None, Some(xb)) => xa == xb,
        _ => false,
    };
    let host_covers = match (&a.host, &b.host) {
        (None, _) => true,
        (Some(ha), Some(hb)) => ha.eq_ignore_ascii_case(hb),
        (Some(_), None) => false,
    };
    let method_covers = match (&a.method, &b.method) {
        (None, _) => true,
        (Some(ma), Some(mb)) => ma.eq_ignore_ascii_case(mb),
        (Some(_), None) => false,
    };
    let headers_cover = a.headers.iter().all(|(k, v)| {
        b.headers
            .iter()
            .any(|(kb, vb)| kb.eq_ignore_ascii_case(k) && vb == v)
    });
    path_covers && host_covers && method_covers && headers_cover
}

/// A route backend, rendered as the proxy config's backend key and its value.
#[derive(Debug, Clone, PartialEq)]
pub enum RenderedBackend {
    /// `http:` — plain reverse proxy.
    Http(HttpBackendConfig),
    /// Another backend key (`mcp`, `llm`, `a2a`) with its value in the config file's shape.
    Other(&'static str, Value),
}

struct BuiltRule {
    backend: RenderedBackend,
    policies: Option<Policies>,
}

enum RuleError {
    Unsupported(String),
    Ref(&'static str, String),
}

fn build_rule(
    world: &World,
    route: &HTTPRoute,
    rule: &HTTPRouteRule,
    pol: &PolicyIndex,
    env: &mut EnvCollector,
    resources: &mut BTreeMap<(&'static str, String, String), Vec<Cond>>,
    opts: &RenderOptions,
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
    let group = bref.group.as_deref().unwrap_or("");
    let kind = bref.kind.as_deref().unwrap_or("Service");
    let bns = bref.namespace.clone().unwrap_or_else(|| rns.clone());
    if bns != rns && !granted(world, &rns, &bns, group, kind, &bref.name) {
        return Err(RuleError::Ref(
            "RefNotPermitted",
            format!(
                "no ReferenceGrant in {bns} allows HTTPRoutes from {rns} to {kind} {}",
                bref.name
            ),
        ));
    }
    let backend = match (group, kind) {
        ("", "Service") => {
            let svc = world
                .services
                .iter()
                .find(|s| s.namespace().as_deref() == Some(&bns) && s.name_any() == bref.name)
                .ok_or_else(|| {
                    RuleError::Ref(
                        "BackendNotFound",
                        format!("Service {bns}/{} not found", bref.name),
                    )
                })?;
            let port = bref.port.ok_or_else(|| {
                RuleError::Ref(
                    "UnsupportedValue",
                    "a Service backendRef needs a port".into(),
                )
            })?;
            let _ = svc;
            RenderedBackend::Http(HttpBackendConfig {
                url: format!(
                    "http://{}.{bns}.svc.{}:{port}",
                    bref.name, opts.cluster_domain
                ),
                preserve_host: true,
                upgrades: None,
            })
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
            let rendered = render_backend(world, b, env, opts);
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
            resources.insert(key, conds);
            let rendered = rendered?;
            if let Some(p) = pol.for_backend(b, resources) {
                merge_policies(&mut policies, p);
            }
            rendered
        }
        _ => {
            return Err(RuleError::Ref(
                "InvalidKind",
                format!("backendRefs of kind {group}/{kind} are not supported"),
            ));
        }
    };
    if let Some(p) = pol.for_route(route, resources) {
        merge_policies(&mut policies, p);
    }
    Ok(BuiltRule {
        backend,
        policies: (policies != Policies::default()).then_some(policies),
    })
}

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

/// `over`'s keys replace `base`'s (Policy objects win over HTTPRoute filters).
fn merge_policies(base: &mut Policies, over: Policies) {
    let mut b = switchboard_gateway::config::expose_secrets(|| serde_json::to_value(&*base))
        .expect("policies serialize");
    if let (Some(bo), Value::Object(oo)) = (
        b.as_object_mut(),
        switchboard_gateway::config::expose_secrets(|| serde_json::to_value(over))
            .expect("policies serialize"),
    ) {
        for (k, v) in oo {
            bo.insert(k, v);
        }
    }
    *base = serde_json::from_value(b).expect("merging two valid policy blocks stays valid");
}

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
/// [`attach_backend`] puts on the route once the proxy's config types have them.
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
            upgrades: None,
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
/// serde form, so they work as soon as `RouteConfig` has the key, and until then fail with a
/// clear message instead of producing a config the proxy would refuse.
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

/// Sets `key` on any config struct through its serde form; fails when the type has no such key.
pub fn attach_key<T: serde::Serialize + serde::de::DeserializeOwned>(
    target: &T,
    key: &str,
    value: Value,
) -> Result<T, String> {
    let mut v = switchboard_gateway::config::expose_secrets(|| serde_json::to_value(target))
        .map_err(|e| e.to_string())?;
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
    serde_json::from_value(v).map_err(|e| {
        format!("`{key}` cannot be rendered: this proxy version does not support it ({e})")
    })
}

/// Policies indexed by target kind, all in one namespace (policies attach within their own).
struct PolicyIndex<'a> {
    policies: Vec<&'a Arc<Policy>>,
}

impl<'a> PolicyIndex<'a> {
    fn new(world: &'a World, _gw_ns: &str) -> Self {
        let mut policies: Vec<&Arc<Policy>> = world.policies.iter().collect();
        policies.sort_by_key(|p| (p.namespace(), p.name_any()));
        Self { policies }
    }

    fn targets(p: &Policy, group: &str, kind: &str, name: &str) -> bool {
        p.spec
            .target_refs
            .iter()
            .any(|t| t.group == group && t.kind == kind && t.name == name)
    }

    fn targets_gateway(&self, p: &Policy, gw: &str) -> bool {
        Self::targets(p, gwapi::GROUP, "Gateway", gw)
    }

    fn collect(
        &self,
        ns: &str,
        group: &str,
        kind: &str,
        name: &str,
        section: Option<&str>,
        resources: &mut BTreeMap<(&'static str, String, String), Vec<Cond>>,
    ) -> Option<Policies> {
        let mut out: Option<Policies> = None;
        for p in self
            .policies
            .iter()
            .filter(|p| p.namespace().as_deref() == Some(ns))
        {
            let hit = p.spec.target_refs.iter().any(|t| {
                t.group == group
                    && t.kind == kind
                    && t.name == name
                    && t.section_name.as_deref() == section
            });
            if !hit {
                continue;
            }
            let (pol, problems) = policy_to_config(&p.spec);
            let conds = match problems.is_empty() {
                true => vec![Cond::ok("Accepted", "Accepted")],
                false => vec![Cond::fail("Accepted", "Invalid", problems.join("; "))],
            };
            resources.insert(("Policy", ns.to_string(), p.name_any()), conds);
            match &mut out {
                Some(o) => merge_policies(o, pol),
                None => out = Some(pol),
            }
        }
        out
    }

    fn for_route(
        &self,
        r: &HTTPRoute,
        resources: &mut BTreeMap<(&'static str, String, String), Vec<Cond>>,
    ) -> Option<Policies> {
        self.collect(
            &r.namespace().unwrap_or_default(),
            gwapi::GROUP,
            "HTTPRoute",
            &r.name_any(),
            None,
            resources,
        )
    }

    fn for_backend(
        &self,
        b: &Backend,
        resources: &mut BTreeMap<(&'static str, String, String), Vec<Cond>>,
    ) -> Option<Policies> {
        self.collect(
            &b.namespace().unwrap_or_default(),
            crd::GROUP,
            "Backend",
            &b.name_any(),
            None,
            resources,
        )
    }

    fn listener_policies(
        &self,
        gw: &Gateway,
        listener: &str,
        resources: &mut BTreeMap<(&'static str, String, String), Vec<Cond>>,
    ) -> Option<Policies> {
        let ns = gw.namespace().unwrap_or_default();
        let name = gw.name_any();
        let mut all = self.collect(&ns, gwapi::GROUP, "Gateway", &name, None, resources);
        if let Some(section) = self.collect(
            &ns,
            gwapi::GROUP,
            "Gateway",
            &name,
            Some(listener),
            resources,
        ) {
            match &mut all {
                Some(a) => merge_policies(a, section),
                None => all = Some(section),
            }
        }
        all
    }
}

/// Maps a Policy spec onto the proxy's `policies` block. Keys the proxy version does not know
/// yet are reported, not silently dropped.
pub fn policy_to_config(p: &crd::PolicySpec) -> (Policies, Vec<String>) {
    let mut out = Policies::default();
    let mut problems = Vec::new();
    if let Some(h) = &p.headers {
        let ops = |o: &crd::HeaderOps| HeaderOps {
            add: o.add.clone(),
            set: o.set.clone(),
            remove: o.remove.clone(),
        };
        out.headers = Some(HeadersPolicy {
            request: ops(&h.request),
            response: ops(&h.response),
        });
    }
    let mut extra = Vec::new();
    if let Some(a) = &p.authn {
        let mut v = json!({});
        if let Some(m) = &a.mode {
            v["mode"] = json!(m);
        }
        if let Some(j) = &a.jwt {
            v["jwt"] =
                json!({"issuer": j.issuer, "audiences": j.audiences, "jwks": {"url": j.jwks_url}});
        }
        if !a.api_keys.is_empty() {
            v["api_keys"] = json!(
                a.api_keys
                    .iter()
                    .map(|k| json!({"name": k.name, "sha256": k.sha256}))
                    .collect::<Vec<_>>()
            );
        }
        extra.push(("authn", v));
    }
    if let Some(a) = &p.authz {
        extra.push(("authz", json!({"rules": a.rules})));
    }
    if let Some(r) = &p.rate_limit {
        let mut v = json!({"per": r.per});
        if let Some(n) = r.requests {
            v["requests"] = json!(n);
        }
        if let Some(n) = r.tokens {
            v["tokens"] = json!(n);
        }
        if let Some(b) = &r.by {
            v["by"] = json!(b);
        }
        extra.push(("rate_limit", v));
    }
    for (key, value) in extra {
        match attach_key(&out, key, value) {
            Ok(p) => out = p,
            Err(e) => problems.push(e),
        }
    }
    (out, problems)
}

/// Secrets the config refers to as `${VAR}`, turned into Deployment env vars.
#[derive(Debug, Clone)]
struct EnvCollector {
    namespace: String,
    vars: BTreeMap<String, (String, String)>,
}

impl EnvCollector {
    fn new(ns: &str) -> Self {
        Self {
            namespace: ns.to_string(),
            vars: BTreeMap::new(),
        }
    }

    /// `${VAR}` for a Secret key, registering the env var that provides it.
    fn reference(&mut self, v: &SecretValue) -> String {
        let r = &v.secret_key_ref;
        let name: String = format!("SB_SECRET_{}_{}", r.name, r.key)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        self.vars
            .insert(name.clone(), (r.name.clone(), r.key.clone()));
        format!("${{{name}}}")
    }
}

fn labels(gw: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), "switchboard-proxy".into()),
        ("app.kubernetes.io/instance".into(), gw.into()),
        (
            "app.kubernetes.io/managed-by".into(),
            "switchboard-controller".into(),
        ),
        ("gateway.networking.k8s.io/gateway-name".into(), gw.into()),
        (GATEWAY_LABEL.into(), gw.into()),
    ])
}

#[allow(clippy::too_many_arguments)]
fn children(
    gw: &Gateway,
    ns: &str,
    params: &crd::GatewayParametersSpec,
    config: &Config,
    config_yaml: &str,
    bootstrap: bool,
    checksum: &str,
    env: &EnvCollector,
    tls_secrets: &[String],
    opts: &RenderOptions,
) -> crate::Result<Children> {
    let name = gw.name_any();
    let owner: OwnerReference = gw
        .controller_owner_ref(&())
        .ok_or(crate::Error::MissingField("metadata.uid"))?;
    let infra = gw.spec.infrastructure.clone().unwrap_or_default();
    let mut all_labels = infra.labels.clone();
    all_labels.extend(labels(&name));
    let meta = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(ns.to_string()),
        labels: Some(all_labels.clone()),
        annotations: (!infra.annotations.is_empty()).then(|| infra.annotations.clone()),
        owner_references: Some(vec![owner]),
        ..Default::default()
    };
    let selector = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "switchboard-proxy".to_string(),
        ),
        ("app.kubernetes.io/instance".to_string(), name.clone()),
    ]);

    let mut cm_meta = meta.clone();
    cm_meta
        .annotations
        .get_or_insert_with(Default::default)
        .insert(
            CONFIG_MODE_ANNOTATION.into(),
            if bootstrap { "bootstrap" } else { "full" }.into(),
        );
    let config_map = ConfigMap {
        metadata: cm_meta,
        data: Some(BTreeMap::from([(
            CONFIG_KEY.to_string(),
            config_yaml.to_string(),
        )])),
        ..Default::default()
    };
    let service_account = ServiceAccount {
        metadata: meta.clone(),
        ..Default::default()
    };

    let mut ports: Vec<(String, i32)> = Vec::new();
    for l in &config.listeners {
        if let Some(port) = l.bind.rsplit(':').next().and_then(|p| p.parse().ok()) {
            ports.push((l.name.clone(), port));
        }
    }
    let service = Service {
        metadata: meta.clone(),
        spec: Some(ServiceSpec {
            type_: Some(
                params
                    .service_type
                    .clone()
                    .unwrap_or_else(|| "LoadBalancer".into()),
            ),
            selector: Some(selector.clone()),
            ports: Some(
                ports
                    .iter()
                    .map(|(n, p)| ServicePort {
                        name: Some(port_name(n)),
                        port: *p,
                        target_port: Some(IntOrString::Int(*p)),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };

    let mut env_vars: Vec<K8sEnvVar> = env
        .vars
        .iter()
        .map(|(var, (secret, key))| K8sEnvVar {
            name: var.clone(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: secret.clone(),
                    key: key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    for e in &params.env {
        env_vars.push(K8sEnvVar {
            name: e.name.clone(),
            value: e.value.clone(),
            value_from: e.secret_key_ref.as_ref().map(|r| EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: Some(false),
                }),
                ..Default::default()
            }),
        });
    }

    let mut args = vec![
        "run".to_string(),
        "--config".to_string(),
        format!("{CONFIG_DIR}/{CONFIG_KEY}"),
    ];
    if let Some(push) = &opts.push_url {
        args.push("--control-plane".into());
        args.push(format!(
            "{}/v1/config/{ns}/{name}",
            push.trim_end_matches('/')
        ));
    }
    let admin_port: i32 = opts
        .admin_bind
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(15000);
    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: name.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }];
    let mut mounts = vec![VolumeMount {
        name: "config".into(),
        mount_path: CONFIG_DIR.into(),
        read_only: Some(true),
        ..Default::default()
    }];
    for s in tls_secrets {
        let vname = format!("tls-{}", port_name(s));
        volumes.push(Volume {
            name: vname.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(s.clone()),
                ..Default::default()
            }),
            ..Default::default()
        });
        mounts.push(VolumeMount {
            name: vname,
            mount_path: format!("{CONFIG_DIR}/tls/{s}"),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let quantities = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect::<BTreeMap<_, _>>()
        })
    };
    let container = Container {
        name: "proxy".into(),
        image: Some(params.image.clone().unwrap_or_else(|| opts.image.clone())),
        args: Some(args),
        ports: Some(
            ports
                .iter()
                .map(|(n, p)| ContainerPort {
                    name: Some(port_name(n)),
                    container_port: *p,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                })
                .chain(std::iter::once(ContainerPort {
                    name: Some("admin".into()),
                    container_port: admin_port,
                    protocol: Some("TCP".into()),
                    ..Default::default()
                }))
                .collect(),
        ),
        env: (!env_vars.is_empty()).then_some(env_vars),
        resources: params.resources.as_ref().map(|r| ResourceRequirements {
            requests: quantities(&r.requests),
            limits: quantities(&r.limits),
            ..Default::default()
        }),
        readiness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/readyz".into()),
                port: IntOrString::String("admin".into()),
                ..Default::default()
            }),
            period_seconds: Some(5),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        ..Default::default()
    };

    let mut pod_labels = all_labels.clone();
    let mut pod_annotations =
        BTreeMap::from([(CHECKSUM_ANNOTATION.to_string(), checksum.to_string())]);
    match params.istio.unwrap_or_default() {
        IstioMode::None => {}
        IstioMode::Sidecar => {
            pod_labels.insert("sidecar.istio.io/inject".into(), "true".into());
            // An ingress proxy receives traffic directly; only its upstream calls go through
            // the sidecar (and so get mesh mTLS).
            pod_annotations.insert(
                "traffic.sidecar.istio.io/includeInboundPorts".into(),
                String::new(),
            );
            pod_annotations.insert(
                "proxy.istio.io/config".into(),
                "holdApplicationUntilProxyStarts: true".into(),
            );
        }
        IstioMode::Ambient => {
            pod_labels.insert("istio.io/dataplane-mode".into(), "ambient".into());
        }
    }
    let deployment = Deployment {
        metadata: meta,
        spec: DeploymentSpec {
            replicas: params.replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(name.clone()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        },
        ..Default::default()
    };
    Ok(Children {
        config_map,
        deployment,
        service,
        service_account,
    })
}

/// Port names are DNS labels of at most 15 characters.
fn port_name(n: &str) -> String {
    let mut s: String = n
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(15)
        .collect();
    while s.ends_with('-') {
        s.pop();
    }
    if s.is_empty() { "http".into() } else { s }
}

/// The `status.parents[]` of a route after this Gateway's entries are replaced by `ours`;
/// entries of other controllers and of other Gateways are kept.
pub fn merge_route_parents(
    existing: &[RouteParentStatus],
    gw_ns: &str,
    gw_name: &str,
    route_ns: &str,
    ours: Vec<RouteParentStatus>,
) -> Vec<RouteParentStatus> {
    let mut out: Vec<RouteParentStatus> = existing
        .iter()
        .filter(|p| {
            !(p.controller_name == CONTROLLER_NAME
                && parent_is(&p.parent_ref, route_ns, gw_ns, gw_name))
        })
        .cloned()
        .collect();
    out.extend(ours);
    out
}

/// The supported route kinds of every listener.
pub fn supported_kinds() -> Vec<RouteGroupKind> {
    vec![RouteGroupKind {
        group: gwapi::GROUP.into(),
        kind: "HTTPRoute".into(),
    }]
}

/// Builds the listener status entries with stamped conditions.
pub fn listener_statuses(
    rendered: &[ListenerOutcome],
    previous: &[ListenerStatus],
    generation: Option<i64>,
    now: &str,
) -> Vec<ListenerStatus> {
    rendered
        .iter()
        .map(|l| {
            let prev = previous
                .iter()
                .find(|p| p.name == l.name)
                .map(|p| p.conditions.as_slice())
                .unwrap_or(&[]);
            ListenerStatus {
                name: l.name.clone(),
                supported_kinds: supported_kinds(),
                attached_routes: l.attached_routes,
                conditions: l
                    .conditions
                    .iter()
                    .map(|c| c.stamp(generation, prev, now))
                    .collect(),
            }
        })
        .collect()
}

/// Reads a Gateway API or Switchboard object kind from a YAML document (for manifests and
/// golden tests): returns the world with the object added.
pub fn add_document(world: &mut World, doc: Value) -> Result<(), String> {
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let de = |e: serde_json::Error| format!("{kind}: {e}");
    match kind.as_str() {
        "GatewayClass" => world
            .classes
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Gateway" => world
            .gateways
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "HTTPRoute" => world
            .routes
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "ReferenceGrant" => world
            .grants
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Backend" => world
            .backends
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Policy" => world
            .policies
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "GatewayParameters" => world
            .parameters
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Service" => world
            .services
            .push(Arc::new(serde_json::from_value(doc).map_err(de)?)),
        "Secret" => {
            let meta = &doc["metadata"];
            world.secrets.insert((
                meta["namespace"].as_str().unwrap_or("default").to_string(),
                meta["name"].as_str().unwrap_or_default().to_string(),
            ));
        }
        _ => return Err(format!("unknown kind `{kind}`")),
    }
    Ok(())
}

/// `Resource` helper for ObjectRef-less lookups in tests and the reconciler.
pub fn key_of<K: Resource>(o: &K) -> (String, String) {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}
