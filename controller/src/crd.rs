//! The Switchboard CRDs in `switchboard.dev/v1alpha1`: [`Backend`], [`GatewayParameters`] and
//! [`Policy`]. Field names follow Kubernetes conventions (camelCase); the renderer maps them
//! onto the proxy's snake_case config keys. Schemas are derived, so `switchboard-controller
//! crds` and the committed `examples/kubernetes/crds.yaml` always match these types.

use std::collections::BTreeMap;

use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use switchboard_gateway::config::{A2aBackendConfig, Policies};
use switchboard_llm::LlmConfig;
use switchboard_mcp::McpConfig;

/// The API group of the Switchboard CRDs.
pub const GROUP: &str = "switchboard.dev";

/// A status condition, shaped like `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Accepted`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    #[serde(default)]
    pub message: String,
    /// RFC 3339 time of the last change of `status`.
    #[serde(default)]
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Status of a Switchboard resource: conditions only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// `Accepted` (the spec renders) and `ResolvedRefs` (referenced Secrets and Services exist).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A reference to one key of a Secret in the referencing object's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// A value given inline or read from a Secret; secrets reach the proxy as environment
/// variables, never as plain text in its ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretValue {
    /// The Secret key that holds the value.
    pub secret_key_ref: SecretKeyRef,
}

/// An upstream address: a static host, or a Service in this namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Upstream {
    /// A static host name or IP address (with `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// A Service in the Backend's namespace (with `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Port on the host or Service.
    pub port: u16,
    /// Speak TLS to the upstream.
    #[serde(default)]
    pub tls: bool,
    /// Base path, e.g. `/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `Backend` — something routes send traffic to: a static host or Service (plain HTTP), or
/// one of the proxy's own route backends: `mcp`, `llm` or `a2a`. Exactly one of `static`,
/// `mcp`, `llm`, `a2a`.
///
/// `mcp`, `llm` and `a2a` are the proxy config's blocks of the same names, the same Rust types
/// (so every proxy feature is expressible and the CRD cannot drift from the proxy), with the
/// proxy's snake_case keys. Two Kubernetes additions: a URL whose host is a single DNS label
/// other than `localhost` (`http://search-mcp:3001/mcp`) names a Service in the Backend's
/// namespace, and `${NAME}` in any string names an entry of `secrets`, a Secret key the proxy
/// reads from its environment (never text in its ConfigMap).
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "Backend",
    namespaced,
    status = "ResourceStatus",
    shortname = "sbbackend"
)]
#[serde(rename_all = "camelCase")]
pub struct BackendSpec {
    /// Plain HTTP reverse proxy to a static host or a Service.
    #[serde(default, rename = "static", skip_serializing_if = "Option::is_none")]
    pub static_: Option<Upstream>,
    /// MCP federation: the proxy's `routes[].mcp` block (README, `mcp` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpConfig>,
    /// LLM provider gateway: the proxy's `routes[].llm` block (README, `llm` backend).
    /// Providers fail over by `priority` (lower first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmConfig>,
    /// A2A agent proxy: the proxy's `routes[].a2a` block (README, `a2a` backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aBackendConfig>,
    /// Secret keys the blocks above refer to as `${NAME}`. The Backend must then be in the
    /// Gateway's namespace (the proxy reads them as environment variables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretVar>,
}

/// A Secret key that the proxy blocks of a Backend refer to as `${NAME}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVar {
    /// The name used in `${NAME}`: letters, digits and `_`.
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// The Secret key that holds the value.
    pub secret_key_ref: SecretKeyRef,
}

impl SecretVar {
    /// The Secret key as a [`SecretValue`].
    pub fn value(&self) -> SecretValue {
        SecretValue {
            secret_key_ref: self.secret_key_ref.clone(),
        }
    }
}

/// `GatewayParameters` — how the proxy fleet of a Gateway is deployed. Referenced from a
/// GatewayClass's `parametersRef` (defaults for all its Gateways) or a Gateway's
/// `spec.infrastructure.parametersRef` (wins).
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "GatewayParameters",
    plural = "gatewayparameters",
    namespaced,
    status = "ResourceStatus",
    shortname = "sbgwp"
)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParametersSpec {
    /// Proxy image; default `ghcr.io/switchboard-dev/switchboard:<controller version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Replica count. Leave unset to let a HorizontalPodAutoscaler own it (the controller then
    /// never writes `spec.replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Container resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Service type: `LoadBalancer` (default), `ClusterIP` or `NodePort`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<String>,
    /// Annotations on the proxy Service, e.g. for the cloud's load balancer
    /// (`service.beta.kubernetes.io/aws-load-balancer-type: external`, and
    /// `service.beta.kubernetes.io/aws-load-balancer-proxy-protocol: "*"` with
    /// `proxyProtocol: v2`). Merged key by key, the Gateway's over the class's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub service_annotations: BTreeMap<String, String>,
    /// The Service's `externalTrafficPolicy`: `Cluster` (Kubernetes' default) or `Local`
    /// (keeps the client's source address on NodePort/LoadBalancer traffic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<ExternalTrafficPolicy>,
    /// The Service's `loadBalancerClass` (e.g. `service.k8s.aws/nlb`); immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_class: Option<String>,
    /// PROXY protocol the load balancer in front sends (`v1`, `v2` or `any`): rendered as
    /// `proxy_protocol` into every listener of the Gateway's proxy config. Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<switchboard_gateway::config::ProxyProtocol>,
    /// Whose `X-Forwarded-For` the proxies believe (the proxy's `trusted_proxies`: `cidrs`
    /// and/or `hops`), rendered into every listener of the Gateway's proxy config; for a load
    /// balancer that forwards HTTP (an ALB, HAProxy in `mode http`). Absent: no peer is
    /// trusted, and a client's own `X-Forwarded-For` is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<switchboard_gateway::config::TrustedProxiesConfig>,
    /// The Secret key (in the Gateway's namespace) holding the proxies' `admin.token`: the
    /// bearer token of their admin UI and config API (`/ui`, `/api/*`, `/config`, `/drain`).
    /// The proxy container reads it as an environment variable (`secretKeyRef`) and the
    /// rendered config refers to it as `${VAR}`, so the value stays in the Secret. Absent:
    /// the admin listener (bound beyond loopback) serves `/healthz`, `/readyz` and `/metrics`
    /// only, and answers 403 to the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret: Option<SecretKeyRef>,
    /// Extra environment variables for the proxy container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Session store shared by the fleet's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_store: Option<SessionStore>,
    /// Istio mesh enrolment: `none` (default), `sidecar` or `ambient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub istio: Option<IstioMode>,
}

/// `GatewayParameters.spec.externalTrafficPolicy`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ExternalTrafficPolicy {
    /// Any node forwards to any proxy pod (the source address is lost without PROXY protocol).
    Cluster,
    /// Only nodes with a proxy pod get traffic; the client's source address is kept.
    Local,
}

impl ExternalTrafficPolicy {
    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ExternalTrafficPolicy::Cluster => "Cluster",
            ExternalTrafficPolicy::Local => "Local",
        }
    }
}

/// Container resource requests and limits (`cpu`, `memory`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// Requests, e.g. `{cpu: 100m, memory: 128Mi}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requests: BTreeMap<String, String>,
    /// Limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, String>,
}

/// An environment variable: a value or a Secret key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Literal value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Value from a Secret key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// `GatewayParameters.spec.sessionStore`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStore {
    /// `memory` or `redis`.
    pub store: String,
    /// One Redis server's URL (`redis://`, `rediss://`): the proxy's `sessions.redis.url`.
    /// Exactly one of `redisUrl`, `redisCluster` and `redisSentinel` (for `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Redis Cluster seed node URLs: the proxy's `sessions.redis.cluster`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redis_cluster: Vec<String>,
    /// Redis Sentinel (`master` name and sentinel `nodes` URLs): the proxy's
    /// `sessions.redis.sentinel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_sentinel: Option<RedisSentinel>,
    /// ACL user for every Redis node: the proxy's `sessions.redis.username`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_username: Option<String>,
    /// The Secret key (in the Gateway's namespace) holding the Redis password: the proxy
    /// container reads it as an environment variable (`secretKeyRef`) and the rendered
    /// `sessions.redis.password` is `${VAR}`, so the value stays in the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_password_secret: Option<SecretKeyRef>,
    /// Session token keys (base64 32-byte), from a Secret; the first encrypts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SecretValue>,
}

/// `GatewayParameters.spec.sessionStore.redisSentinel`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSentinel {
    /// The master's name as the sentinels know it.
    pub master: String,
    /// Sentinel URLs, `redis://host:port` (`rediss://` for TLS).
    pub nodes: Vec<String>,
}

/// Istio mesh enrolment of the proxy pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum IstioMode {
    /// Not enrolled.
    #[default]
    None,
    /// Sidecar injection; inbound traffic bypasses the sidecar (ingress), outbound uses mesh mTLS.
    Sidecar,
    /// Ambient mode (`istio.io/dataplane-mode: ambient`).
    Ambient,
}

/// A reference to a Gateway, HTTPRoute or Backend in the Policy's namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API group: `gateway.networking.k8s.io` or `switchboard.dev`.
    pub group: String,
    /// `Gateway`, `HTTPRoute` or `Backend`.
    pub kind: String,
    /// Object name.
    pub name: String,
    /// For a Gateway: one listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

/// `Policy` — the proxy's `policies` block (CORS, header changes, timeouts, rate limits,
/// authentication, authorization, upstream credentials), attached to Gateways (all or one
/// listener), HTTPRoutes or Backends with `targetRefs`. Beside `targetRefs`, the keys are the
/// proxy's own (`rate_limit`, `authn.api_keys`, `authn.resource_metadata`, ...), the same Rust
/// type, so every policy the proxy has is expressible. Secrets: `upstream_auth.env` names an
/// environment variable of the proxy (GatewayParameters `env` with a `secretKeyRef`).
#[derive(CustomResource, Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "switchboard.dev",
    version = "v1alpha1",
    kind = "Policy",
    namespaced,
    status = "ResourceStatus",
    shortname = "sbpolicy"
)]
#[serde(rename_all = "camelCase")]
pub struct PolicySpec {
    /// What the policy attaches to.
    pub target_refs: Vec<TargetRef>,
    /// The proxy's `policies` keys.
    #[serde(flatten)]
    pub policies: Policies,
}

/// The three CRDs, with the schemas the API server enforces (see [`bound_integers`]).
pub fn crds() -> Vec<serde_json::Value> {
    [Backend::crd(), GatewayParameters::crd(), Policy::crd()]
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(&crd).expect("a CRD always serializes");
            bound_integers(&mut v);
            structural(&mut v);
            v
        })
        .collect()
}

/// Replaces the integer formats Kubernetes does not know (`uint8` ... `uint64`, which the API
/// server ignores with a warning, so any int64 got through) by explicit `minimum`/`maximum`,
/// so the API server itself refuses out-of-range values.
pub fn bound_integers(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            let max: Option<u64> = match m.get("format").and_then(|f| f.as_str()) {
                Some("uint8") => Some(u8::MAX.into()),
                Some("uint16") => Some(u16::MAX.into()),
                Some("uint32") => Some(u32::MAX.into()),
                // Kubernetes integers are int64: `format: int64` is their bound. (A `maximum`
                // of i64::MAX does not survive the API server's float64 round trip: it then
                // refuses every value.)
                Some("uint64") | Some("uint") => {
                    m.insert("format".into(), "int64".into());
                    m.entry("minimum").or_insert(0.into());
                    None
                }
                _ => None,
            };
            if m.get("type").and_then(|t| t.as_str()) == Some("integer") {
                // schemars writes `range(min = 1)` as `1.0`, which the API server refuses on
                // an integer.
                for key in ["minimum", "maximum"] {
                    if let Some(f) = m.get(key).and_then(|x| x.as_f64())
                        && f.fract() == 0.0
                        && m.get(key).is_some_and(|x| x.is_f64())
                    {
                        m.insert(key.into(), (f as i64).into());
                    }
                }
            }
            if let Some(max) = max {
                m.remove("format");
                // A bound the type declares itself (`#[schemars(range(...))]`) is kept.
                m.entry("minimum").or_insert(0.into());
                m.entry("maximum").or_insert(max.into());
            }
            for (_, child) in m.iter_mut() {
                bound_integers(child);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// Makes the schemas derived from the proxy's config types structural (what the API server
/// requires of a CRD):
/// - `additionalProperties: false` (the proxy's `deny_unknown_fields`) is dropped: the API
///   server refuses it beside `properties`, and prunes unknown fields (with a warning on
///   server-side apply) by itself;
/// - a union of different types (`anyOf`/`oneOf`, e.g. an MCP target's
///   `upstream_auth: none | {header, value, ...}`) becomes a node that keeps any value
///   (`x-kubernetes-preserve-unknown-fields`), which the controller checks with the proxy's own
///   types when it renders;
/// - `default`s are dropped: the proxy applies its own, and the API server would otherwise write
///   them into every stored object.
pub fn structural(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("additionalProperties") == Some(&serde_json::Value::Bool(false)) {
                m.remove("additionalProperties");
            }
            m.remove("default");
            if m.contains_key("anyOf") || m.contains_key("oneOf") {
                let description = m.remove("description");
                m.clear();
                if let Some(d) = description {
                    m.insert("description".into(), d);
                }
                m.insert("nullable".into(), true.into());
                m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
                return;
            }
            for (key, child) in m.iter_mut() {
                match child {
                    // A map of property names to schemas: a property may be called `default`
                    // (`llm.virtual_models[].default`); only the schemas in it are cleaned.
                    serde_json::Value::Object(props) if key == "properties" => {
                        props.values_mut().for_each(structural);
                    }
                    _ => structural(child),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(structural),
        _ => {}
    }
}

/// The three CRDs as one multi-document YAML stream (what `switchboard-controller crds`
/// prints and examples/kubernetes/crds.yaml holds).
pub fn crds_yaml() -> String {
    let mut out = String::from(
        "# Generated by `switchboard-controller crds` from controller/src/crd.rs; do not edit.\n",
    );
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&yaml_serde::to_string(&crd).expect("a CRD always serializes"));
    }
    out
}
