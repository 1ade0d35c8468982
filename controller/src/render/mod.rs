//! Rendering: pure functions from a snapshot of the cluster ([`World`]) and one Gateway to the
//! proxy [`Config`] (the same type the proxy reads from a file), the child objects that run the
//! proxy fleet, and the status the reconciler writes back. Nothing here talks to the API
//! server, so every rule is covered by golden tests.
//!
//! [`render`] runs these stages, one file each (routes use backends, policies and secrets as
//! they go):
//!
//! - `parameters.rs`: the GatewayParameters of the class and of the Gateway, merged.
//! - `listeners.rs`: Gateway listeners that share a port become one proxy listener (their
//!   hostnames become route host matches); TLS certificates; listener conditions.
//! - `routes.rs`: HTTPRoute rules become proxy routes ordered by Gateway API precedence (host
//!   specificity, exact path, longest prefix, method, header count, route age); a rule that an
//!   earlier one fully covers is dropped, as the proxy refuses unreachable routes.
//! - `backends.rs`: backendRefs resolve to Services or Switchboard Backends, rendered as the
//!   route's `http`, `mcp`, `llm` or `a2a` key.
//! - `policies.rs`: Policy objects become `policies` blocks, merged over what HTTPRoute
//!   filters ask for.
//! - `secrets.rs`: Secrets referenced by Backends and GatewayParameters (session keys, the
//!   admin token) become `${VAR}` references in the config and `secretKeyRef` environment
//!   variables in the Deployment, so the ConfigMap never holds a secret.
//! - `children.rs`: the ConfigMap, Deployment, Service and ServiceAccount.
//! - `status.rs`: conditions and the status entries the reconciler writes.
//!
//! `world.rs` holds the snapshot itself.

mod backends;
mod children;
mod listeners;
mod parameters;
mod policies;
mod routes;
mod secrets;
mod status;
mod world;

use kube::ResourceExt;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_gateway::config::Config;

pub use backends::{RenderedBackend, attach_backend};
pub use children::Children;
pub use policies::policy_to_config;
pub use routes::{intersect_hosts, parent_is};
pub use status::{
    Cond, ListenerOutcome, ResourceOutcome, RouteOutcome, listener_statuses, merge_route_parents,
    supported_kinds,
};
pub use world::{World, add_document, key_of, our_class};

use crate::gateway_api::Gateway;
use listeners::Listeners;
use policies::PolicyIndex;
use secrets::EnvCollector;
use status::Resources;

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
/// ConfigMap key (and file in [`CONFIG_DIR`]) of the CA bundle that verifies the push server.
pub const PUSH_CA_KEY: &str = "control-plane-ca.pem";

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
    /// `https://switchboard-controller.switchboard-system.svc:9977`; `None` disables push.
    /// An `http://` URL makes the proxies follow it with `--control-plane-allow-http`.
    pub push_url: Option<String>,
    /// PEM CA bundle that verifies the push server's certificate; rendered into each
    /// Gateway's ConfigMap and passed to the proxies as `--control-plane-ca`.
    pub push_ca: Option<String>,
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
            push_url: Some(
                "https://switchboard-controller.switchboard-system.svc:9977".to_string(),
            ),
            push_ca: None,
            admin_bind: "0.0.0.0:15000".into(),
            listener_host: "0.0.0.0".into(),
            cluster_domain: "cluster.local".into(),
            config_map_limit: DEFAULT_CONFIG_MAP_LIMIT,
        }
    }
}

/// Everything rendered for one Gateway.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The proxy configuration.
    pub config: Config,
    /// `config` as YAML: what push serves, and what the ConfigMap holds unless it is over
    /// [`RenderOptions::config_map_limit`].
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

/// What every stage of one rendering reads.
struct Scope<'a> {
    world: &'a World,
    gw: &'a Gateway,
    /// The Gateway's namespace.
    ns: String,
    opts: &'a RenderOptions,
    policies: PolicyIndex<'a>,
    /// `GatewayParameters.proxyProtocol`, for every proxy listener.
    proxy_protocol: Option<switchboard_gateway::config::ProxyProtocol>,
    /// `GatewayParameters.trustedProxies`, for every proxy listener.
    trusted_proxies: switchboard_gateway::config::TrustedProxiesConfig,
}

/// What the stages collect on the way, besides the config.
struct Collected {
    /// Secrets the config refers to.
    env: EnvCollector,
    /// Conditions of the Backends and Policies used.
    resources: Resources,
    /// Problems worth an Event on the Gateway.
    warnings: Vec<String>,
}

/// Renders one Gateway. Errors only for objects missing identity (name, namespace, uid);
/// everything a user can get wrong becomes a condition instead.
pub fn render(world: &World, gw: &Gateway, opts: &RenderOptions) -> crate::Result<Rendered> {
    let ns = gw
        .namespace()
        .ok_or(crate::Error::MissingField("metadata.namespace"))?;
    let gw_name = gw.name_any();
    let mut out = Collected {
        env: EnvCollector::new(&ns),
        resources: Resources::new(),
        warnings: Vec::new(),
    };

    // Parameters: class defaults, then the Gateway's own reference.
    let (params, params_error) = parameters::resolve(world, gw, &ns);
    let mut gateway_conditions = vec![match &params_error {
        Some(e) => {
            out.warnings.push(e.clone());
            Cond::fail("Accepted", "InvalidParameters", e.clone())
        }
        None => Cond::ok("Accepted", "Accepted"),
    }];

    let scope = Scope {
        world,
        gw,
        ns,
        opts,
        policies: PolicyIndex::new(world),
        proxy_protocol: params.proxy_protocol,
        trusted_proxies: params.trusted_proxies.clone().unwrap_or_default(),
    };

    // Listeners, grouped by port.
    let mut listeners = Listeners::of(&scope);
    if listeners.any_invalid() && params_error.is_none() {
        gateway_conditions[0] = Cond::ok("Accepted", "ListenersNotValid")
            .with("some listeners are not valid; see status.listeners");
    }

    // Policies that name the Gateway, then routes and the Backends and Policies they use.
    out.resources = scope.policies.on_gateway(&gw_name);
    let (candidates, route_outcomes) = routes::attach(&scope, &mut listeners, &mut out);

    // Assemble listeners; drop routes an earlier one covers (the proxy refuses them).
    let mut config = Config {
        listeners: listeners.proxy_listeners(&scope, &candidates, &mut out),
        ..Default::default()
    };
    config.admin.bind = opts.admin_bind.clone();
    // The admin token stays in its Secret: the config names the env var that carries it, and
    // the proxy expands `${VAR}` when it loads the config (file or push).
    if let Some(r) = &params.admin_token_secret {
        config.admin.token = Some(out.env.reference(&crate::crd::SecretValue {
            secret_key_ref: r.clone(),
        }));
    }
    if let Some(store) = &params.session_store {
        match session_store(store, &mut out.env).and_then(|s| attach_key(&config, "sessions", s)) {
            Ok(c) => config = c,
            Err(msg) => {
                gateway_conditions[0] = Cond::fail("Accepted", "InvalidParameters", msg.clone());
                out.warnings.push(msg);
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
    let children = children::children(
        gw,
        &scope.ns,
        &params,
        &config,
        boot_yaml.as_deref().unwrap_or(&config_yaml),
        boot_yaml.is_some(),
        &checksum,
        &out.env,
        &listeners.tls_secrets(),
        opts,
    )?;

    Ok(Rendered {
        config,
        config_yaml,
        checksum,
        children,
        gateway_conditions,
        listeners: listeners.outcomes,
        routes: route_outcomes,
        resources: status::resource_outcomes(out.resources),
        warnings: out.warnings,
        too_large,
    })
}

/// The proxy's `sessions` block for `GatewayParameters.sessionStore`; the Redis password and
/// the session keys become `${VAR}` references to Secret keys.
fn session_store(
    store: &crate::crd::SessionStore,
    env: &mut EnvCollector,
) -> Result<Value, String> {
    let topologies = usize::from(store.redis_url.is_some())
        + usize::from(!store.redis_cluster.is_empty())
        + usize::from(store.redis_sentinel.is_some());
    if topologies > 1 {
        return Err(
            "sessionStore: set exactly one of redisUrl, redisCluster and redisSentinel".to_string(),
        );
    }
    let mut sessions = json!({"store": store.store});
    let mut redis = serde_json::Map::new();
    if let Some(url) = &store.redis_url {
        redis.insert("url".into(), json!(url));
    }
    if !store.redis_cluster.is_empty() {
        redis.insert("cluster".into(), json!(store.redis_cluster));
    }
    if let Some(s) = &store.redis_sentinel {
        redis.insert(
            "sentinel".into(),
            json!({"master": s.master, "nodes": s.nodes}),
        );
    }
    if topologies == 0 && (store.redis_username.is_some() || store.redis_password_secret.is_some())
    {
        return Err(
            "sessionStore: redisUsername and redisPasswordSecret need one of redisUrl, redisCluster and redisSentinel"
                .to_string(),
        );
    }
    if let Some(user) = &store.redis_username {
        redis.insert("username".into(), json!(user));
    }
    if let Some(r) = &store.redis_password_secret {
        let var = env.reference(&crate::crd::SecretValue {
            secret_key_ref: r.clone(),
        });
        redis.insert("password".into(), json!(var));
    }
    if !redis.is_empty() {
        sessions["redis"] = Value::Object(redis);
    }
    let keys: Vec<String> = store.keys.iter().map(|k| env.reference(k)).collect();
    if !keys.is_empty() {
        sessions["keys"] = json!(keys);
    }
    Ok(sessions)
}

/// Sets `key` on any config struct through its serde form; fails when the type refuses the
/// key or its value.
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
