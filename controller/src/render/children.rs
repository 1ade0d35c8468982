//! Children: the objects that run one Gateway's proxy fleet — the ConfigMap holding the
//! rendered config, the Deployment, the Service and the ServiceAccount the proxies identify
//! with when they follow the config push stream.

use std::collections::BTreeMap;

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
use switchboard_gateway::config::Config;

use super::secrets::EnvCollector;
use super::{
    CHECKSUM_ANNOTATION, CONFIG_DIR, CONFIG_KEY, CONFIG_MODE_ANNOTATION, GATEWAY_LABEL,
    PUSH_CA_KEY, RenderOptions,
};
use crate::crd::{self, IstioMode};
use crate::gateway_api::Gateway;

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

/// The labels of every child object.
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

/// The child objects of `gw`. `config_yaml` is what the ConfigMap holds (the whole config, or
/// the bootstrap one when `bootstrap`); `checksum`, the whole config's, goes on the pod
/// template, so a config change rolls the pods.
#[allow(clippy::too_many_arguments)]
pub(super) fn children(
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
        data: Some({
            let mut data = BTreeMap::from([(CONFIG_KEY.to_string(), config_yaml.to_string())]);
            // The CA that verifies the controller's push server, mounted next to the config.
            if let Some(ca) = &opts.push_ca {
                data.insert(PUSH_CA_KEY.to_string(), ca.clone());
            }
            data
        }),
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
    let mut service_meta = meta.clone();
    // The Gateway's `infrastructure.annotations` plus GatewayParameters' `serviceAnnotations`
    // (the load balancer's settings), the latter winning.
    if !params.service_annotations.is_empty() {
        let mut a = service_meta.annotations.take().unwrap_or_default();
        a.extend(params.service_annotations.clone());
        service_meta.annotations = Some(a);
    }
    let service = Service {
        metadata: service_meta,
        spec: Some(ServiceSpec {
            external_traffic_policy: params
                .external_traffic_policy
                .map(|p| p.as_str().to_string()),
            load_balancer_class: params.load_balancer_class.clone(),
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
        if opts.push_ca.is_some() {
            args.push("--control-plane-ca".into());
            args.push(format!("{CONFIG_DIR}/{PUSH_CA_KEY}"));
        }
        if push.starts_with("http://") {
            args.push("--control-plane-allow-http".into());
        }
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
