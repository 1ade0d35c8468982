//! The Switchboard CRDs in `switchboard.dev/v1alpha1`: [`Backend`], [`GatewayParameters`] and
//! [`Policy`]. Field names follow Kubernetes conventions (camelCase); the renderer maps them
//! onto the proxy's snake_case config keys. Schemas are derived, so `switchboard-controller
//! crds` and the committed `examples/kubernetes/crds.yaml` always match these types.

use std::collections::BTreeMap;

use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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

/// `Backend` — something routes send traffic to: a static host or Service (plain HTTP), MCP
/// targets, LLM providers, or an A2A agent. Exactly one of `static`, `mcp`, `llm`, `a2a`.
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
    /// MCP federation over these targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpBackend>,
    /// LLM provider gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmBackend>,
    /// A2A agent proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aBackend>,
}

/// `Backend.spec.mcp`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpBackend {
    /// Tool name prefixing: `conditional` (default), `always` or `never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The MCP servers to federate.
    pub targets: Vec<McpTarget>,
}

/// One MCP server behind a Backend.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpTarget {
    /// Target name; tools become `{name}__{tool}` when prefixed.
    pub name: String,
    /// Streamable HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Upstream>,
    /// Legacy HTTP+SSE endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<Upstream>,
    /// Bearer token sent to the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<SecretValue>,
}

/// `Backend.spec.llm`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmBackend {
    /// The models clients may ask for.
    pub models: Vec<LlmModel>,
}

/// A model name clients send, served by a pool of providers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmModel {
    /// The model name clients send.
    pub name: String,
    /// `failover` (default), `weighted` or `least_latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// The providers. All render with the proxy's default `priority` (the CRD has no such
    /// field yet), so they form one group: `failover` spreads requests over them by `weight`
    /// and retries a failed one on the others; listing order makes none the primary.
    pub providers: Vec<LlmProvider>,
}

/// One provider of a model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LlmProvider {
    /// The API the provider speaks: `openai` (also any OpenAI-compatible host, with
    /// `baseUrl`), `azure_openai`, `anthropic`, `gemini` or `bedrock`.
    pub provider: String,
    /// The provider's model name.
    pub model: String,
    /// Override of the provider's API base URL; required for `azure_openai`
    /// (`https://{resource}.openai.azure.com`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The API key, from a Secret. For `bedrock`, the secret access key; the proxy reads the
    /// access key id and region from `AWS_ACCESS_KEY_ID` and `AWS_REGION` (GatewayParameters
    /// `env`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretValue>,
    /// Relative weight (default 1) when requests spread over providers (`weighted`, and
    /// `failover` among providers of one group).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
}

/// `Backend.spec.a2a`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct A2aBackend {
    /// The agent's address.
    pub upstream: Upstream,
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
    /// Redis URL (for `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Session token keys (base64 32-byte), from a Secret; the first encrypts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<SecretValue>,
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

/// `Policy` — authentication, authorization, rate limits and header changes attached to
/// Gateways (all or one listener), HTTPRoutes or Backends with `targetRefs`.
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
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn: Option<AuthnPolicy>,
    /// Authorization: CEL rules; any true rule allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<AuthzPolicy>,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitPolicy>,
    /// Request and response header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeadersPolicy>,
}

/// `Policy.spec.authn`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthnPolicy {
    /// `required` (default) or `optional`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// JWT validation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuthn>,
    /// API keys, by name and SHA-256 of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKey>,
}

/// JWT validation settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuthn {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// JWKS URL.
    pub jwks_url: String,
}

/// An accepted API key.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKey {
    /// Key name (the principal).
    pub name: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
}

/// `Policy.spec.authz`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthzPolicy {
    /// CEL expressions.
    pub rules: Vec<String>,
}

/// `Policy.spec.rateLimit`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPolicy {
    /// Requests per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// LLM tokens per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Window, e.g. `1m`.
    pub per: String,
    /// `route`, `subject` or `api_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// `Policy.spec.headers`
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeadersPolicy {
    /// Changes to requests.
    #[serde(default)]
    pub request: HeaderOps,
    /// Changes to responses.
    #[serde(default)]
    pub response: HeaderOps,
}

/// Header changes, applied remove, set, add.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderOps {
    /// Append these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Replace these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Remove these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// The three CRDs, with the schemas the API server enforces (see [`bound_integers`]).
pub fn crds() -> Vec<serde_json::Value> {
    [Backend::crd(), GatewayParameters::crd(), Policy::crd()]
        .into_iter()
        .map(|crd| {
            let mut v = serde_json::to_value(&crd).expect("a CRD always serializes");
            bound_integers(&mut v);
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
                // Kubernetes integers are int64.
                Some("uint64") | Some("uint") => Some(i64::MAX as u64),
                _ => None,
            };
            if let Some(max) = max {
                m.remove("format");
                m.insert("minimum".into(), 0.into());
                m.insert("maximum".into(), max.into());
            }
            for (_, child) in m.iter_mut() {
                bound_integers(child);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(bound_integers),
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
