//! `switchboard-controller install`: the manifests that install the controller on a cluster
//! (namespace, CRDs, least-privilege RBAC, the controller Deployment with probes, resources
//! and a locked-down securityContext, a PodDisruptionBudget, the push Service and the
//! `switchboard` GatewayClass).
//!
//! The RBAC rules are [`CLUSTER_RULES`], [`LEASE_RULES`] and [`CERT_SECRET_RULES`]: exactly what the controller
//! calls (watches of its inputs, server-side apply and prune of its children, status patches,
//! Events, TokenReviews, its Lease and its serving-certificate Secret). `run` checks the same
//! lists at start-up with SelfSubjectAccessReviews (see [`missing_permissions`]), so a
//! missing permission is one clear error instead of a warning every few seconds.

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::render::CONTROLLER_NAME;

/// One RBAC rule: API groups, resources, verbs.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Why the controller needs it (a comment in the manifest).
    pub why: &'static str,
    /// API groups (`""` is the core group).
    pub groups: &'static [&'static str],
    /// Resources (`kind/status` for status subresources).
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
}

/// Cluster-wide permissions (a ClusterRole).
pub const CLUSTER_RULES: &[Rule] = &[
    Rule {
        why: "inputs: watched, never written",
        groups: &["gateway.networking.k8s.io"],
        resources: &[
            "gatewayclasses",
            "gateways",
            "httproutes",
            "grpcroutes",
            "referencegrants",
        ],
        verbs: &["list", "watch"],
    },
    Rule {
        why: "inputs: watched, never written",
        groups: &["switchboard.dev"],
        resources: &["backends", "policies", "gatewayparameters"],
        verbs: &["list", "watch"],
    },
    Rule {
        why: "status subresources only (never the specs)",
        groups: &["gateway.networking.k8s.io"],
        resources: &[
            "gatewayclasses/status",
            "gateways/status",
            "httproutes/status",
            "grpcroutes/status",
        ],
        verbs: &["patch"],
    },
    Rule {
        why: "status subresources only (never the specs)",
        groups: &["switchboard.dev"],
        resources: &[
            "backends/status",
            "policies/status",
            "gatewayparameters/status",
        ],
        verbs: &["patch"],
    },
    Rule {
        why: "children (server-side apply creates and patches; prune deletes); Services are inputs too",
        groups: &[""],
        resources: &["services", "configmaps", "serviceaccounts"],
        verbs: &["list", "watch", "create", "patch", "delete"],
    },
    Rule {
        why: "children: the proxy Deployments",
        groups: &["apps"],
        resources: &["deployments"],
        verbs: &["list", "watch", "create", "patch", "delete"],
    },
    Rule {
        why: "Secret metadata only (existence checks); values reach proxies as secretKeyRef env vars and volumes",
        groups: &[""],
        resources: &["secrets"],
        verbs: &["list", "watch"],
    },
    Rule {
        why: "Events about problems found while rendering",
        groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
    },
    Rule {
        why: "config push: check proxies' service-account tokens",
        groups: &["authentication.k8s.io"],
        resources: &["tokenreviews"],
        verbs: &["create"],
    },
    Rule {
        why: "to say clearly that the Lease namespace is missing, instead of retrying forever",
        groups: &[""],
        resources: &["namespaces"],
        verbs: &["get"],
    },
    Rule {
        why: "namespace labels for listeners' allowedRoutes selectors (metadata only)",
        groups: &[""],
        resources: &["namespaces"],
        verbs: &["list", "watch"],
    },
];

/// Permissions in the controller's own namespace (a Role): leader election.
pub const LEASE_RULES: &[Rule] = &[Rule {
    why: "leader election",
    groups: &["coordination.k8s.io"],
    resources: &["leases"],
    verbs: &["get", "create", "update"],
}];

/// Permissions in the controller's own namespace (the same Role), needed only when the push
/// server's certificate comes from its Secret (not with `--tls-cert` or `--plain-http`).
pub const CERT_SECRET_RULES: &[Rule] = &[Rule {
    why: "the push server's certificate, generated once and shared by the replicas",
    groups: &[""],
    resources: &["secrets"],
    verbs: &["get", "create"],
}];

/// Name of the controller's ServiceAccount, roles, Deployment, Service, Lease.
pub const NAME: &str = "switchboard-controller";
/// Port of the push server (HTTPS).
pub const PUSH_PORT: u16 = 9977;
/// The Secret holding the push server's certificate (`tls.crt`, `tls.key`, `ca.crt`).
pub const TLS_SECRET: &str = "switchboard-controller-tls";

/// Settings of `install`.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// The controller's namespace.
    pub namespace: String,
    /// The controller image.
    pub image: String,
    /// The default proxy image.
    pub proxy_image: String,
    /// Controller replicas (one leads).
    pub replicas: u32,
    /// Whether to include the Switchboard CRDs.
    pub crds: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        let v = env!("CARGO_PKG_VERSION");
        Self {
            namespace: "switchboard-system".into(),
            image: format!("ghcr.io/switchboard-dev/switchboard-controller:{v}"),
            proxy_image: format!("ghcr.io/switchboard-dev/switchboard:{v}"),
            replicas: 2,
            crds: true,
        }
    }
}

fn rules_json(rules: &[Rule]) -> Value {
    rules
        .iter()
        .map(|r| json!({"apiGroups": r.groups, "resources": r.resources, "verbs": r.verbs}))
        .collect()
}

/// The manifests, in apply order, each with a one-line comment.
pub fn manifests(o: &InstallOptions) -> Vec<(String, Value)> {
    let ns = o.namespace.as_str();
    let labels = json!({"app.kubernetes.io/name": NAME});
    let sa_subject = json!([{"kind": "ServiceAccount", "name": NAME, "namespace": ns}]);
    let mut out: Vec<(String, Value)> = vec![(
        "The controller's namespace.".into(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )];
    if o.crds {
        for crd in crate::crd::crds() {
            out.push((
                "A Switchboard CRD (`switchboard-controller crds`).".into(),
                crd,
            ));
        }
    }
    out.extend([
        (
            "The controller's identity.".into(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": NAME, "namespace": ns}}),
        ),
        (
            format!(
                "Cluster-wide, least privilege: {}.",
                CLUSTER_RULES
                    .iter()
                    .map(|r| r.why)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                   "metadata": {"name": NAME}, "rules": rules_json(CLUSTER_RULES)}),
        ),
        (
            "Binds the ClusterRole to the controller.".into(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": NAME},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
                   "subjects": sa_subject}),
        ),
        (
            "In the controller's namespace only: its Lease and its serving-certificate Secret."
                .into(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                   "metadata": {"name": NAME, "namespace": ns},
                   "rules": rules_json(&[LEASE_RULES, CERT_SECRET_RULES].concat())}),
        ),
        (
            "Binds the Role to the controller.".into(),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": NAME, "namespace": ns},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": NAME},
                   "subjects": sa_subject}),
        ),
        (
            format!(
                "{} replicas: one leads (writes status and children, serves config push over HTTPS); the others wait and answer 503 until they lead.",
                o.replicas
            ),
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": NAME, "namespace": ns, "labels": labels},
                "spec": {
                    "replicas": o.replicas,
                    "selector": {"matchLabels": labels},
                    "template": {
                        "metadata": {"labels": labels},
                        "spec": {
                            "serviceAccountName": NAME,
                            "securityContext": {
                                "runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": "controller",
                                "image": o.image,
                                "args": ["run", "--log-format", "json"],
                                "env": [
                                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                                    {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                                    {"name": "SWITCHBOARD_PUSH_URL", "value": format!("https://{NAME}.{ns}.svc:{PUSH_PORT}")},
                                    {"name": "SWITCHBOARD_PROXY_IMAGE", "value": o.proxy_image},
                                ],
                                "ports": [{"name": "push", "containerPort": PUSH_PORT}],
                                // Ready while alive, leader or not: the PodDisruptionBudget counts
                                // live replicas (with leader-only readiness it would block every
                                // drain of the leader's node). A follower answers the push stream
                                // 503 and the proxy retries; `/readyz` says which replica leads.
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "push", "scheme": "HTTPS"}, "periodSeconds": 5},
                                "livenessProbe": {"httpGet": {"path": "/healthz", "port": "push", "scheme": "HTTPS"}, "periodSeconds": 10},
                                "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                                "securityContext": {
                                    "allowPrivilegeEscalation": false,
                                    "readOnlyRootFilesystem": true,
                                    "capabilities": {"drop": ["ALL"]}},
                            }],
                        },
                    },
                }}),
        ),
        (
            "At most one replica down at a time during voluntary disruptions (drains).".into(),
            json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                   "metadata": {"name": NAME, "namespace": ns},
                   "spec": {"maxUnavailable": 1, "selector": {"matchLabels": labels}}}),
        ),
        (
            "The push endpoint the proxies follow (HTTPS; a replica that does not lead answers 503 and the proxy retries).".into(),
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": NAME, "namespace": ns},
                   "spec": {"selector": labels,
                            "ports": [{"name": "push", "port": PUSH_PORT, "targetPort": "push"}]}}),
        ),
        (
            "The GatewayClass Gateways name to get a Switchboard fleet.".into(),
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                   "metadata": {"name": "switchboard"},
                   "spec": {"controllerName": CONTROLLER_NAME,
                            "description": "Switchboard agentic AI gateway"}}),
        ),
    ]);
    out
}

/// The manifests as one multi-document YAML stream.
pub fn install_yaml(o: &InstallOptions) -> String {
    let mut out = String::from(
        "# Generated by `switchboard-controller install` (controller/src/install.rs); do not edit.\n\
         # Needs the Gateway API CRDs (v1.x standard channel). Apply with:\n\
         #   switchboard-controller install | kubectl apply --server-side -f -\n",
    );
    if !o.crds {
        out.push_str("# Without the Switchboard CRDs: apply crds.yaml first.\n");
    }
    for (comment, doc) in manifests(o) {
        out.push_str("---\n");
        for line in comment.lines() {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&yaml_serde::to_string(&doc).expect("a manifest always serializes"));
    }
    out
}

/// The permissions of [`CLUSTER_RULES`] (cluster-wide), [`LEASE_RULES`] and, with
/// `cert_secret`, [`CERT_SECRET_RULES`] (in `namespace`) the current identity lacks, as
/// `verb group/resource [in namespace NS]`, checked with SelfSubjectAccessReviews (which every
/// authenticated identity may create).
pub async fn missing_permissions(
    client: &Client,
    namespace: &str,
    cert_secret: bool,
) -> kube::Result<Vec<String>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut checks = Vec::new();
    let secret_rules: &[Rule] = if cert_secret { CERT_SECRET_RULES } else { &[] };
    for (rules, ns) in [
        (CLUSTER_RULES, None),
        (LEASE_RULES, Some(namespace)),
        (secret_rules, Some(namespace)),
    ] {
        for r in rules {
            for g in r.groups {
                for res in r.resources {
                    for v in r.verbs {
                        checks.push((*g, *res, *v, ns));
                    }
                }
            }
        }
    }
    let reviews = checks.iter().map(|(group, res, verb, ns)| {
        let (resource, sub) = match res.split_once('/') {
            Some((r, s)) => (r, Some(s.to_string())),
            None => (*res, None),
        };
        let review = SelfSubjectAccessReview {
            metadata: Default::default(),
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(group.to_string()),
                    resource: Some(resource.to_string()),
                    subresource: sub,
                    verb: Some(verb.to_string()),
                    namespace: ns.map(String::from),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            },
            status: None,
        };
        let api = api.clone();
        async move { api.create(&PostParams::default(), &review).await }
    });
    let results = futures::future::join_all(reviews).await;
    let mut missing = Vec::new();
    for ((group, res, verb, ns), r) in checks.iter().zip(results) {
        if !r?.status.is_some_and(|s| s.allowed) {
            let group = if group.is_empty() { "core" } else { group };
            missing.push(match ns {
                Some(ns) => format!("{verb} {group}/{res} in namespace {ns}"),
                None => format!("{verb} {group}/{res}"),
            });
        }
    }
    Ok(missing)
}
