//! Golden tests of rendering: Gateway API and Switchboard objects in; the proxy config, child
//! objects and status out. Every manifest under examples/kubernetes/ is parsed and rendered
//! (and its config checked by the proxy's own loader); focused cases pin the rules. Also checks
//! that the committed CRDs are the ones the types generate.

use crate::common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};
use switchboard_controller::crd;
use switchboard_controller::gateway_api::Gateway;
use switchboard_controller::render::{self, RenderOptions, Rendered, World};

/// Kinds in the manifests that rendering does not read.
const IGNORED: &[&str] = &[
    "Namespace",
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
    "Deployment",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "CustomResourceDefinition",
];

fn world_from(docs: Vec<Value>) -> World {
    let mut world = World::default();
    for (i, mut doc) in docs.into_iter().enumerate() {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        if IGNORED.contains(&kind.as_str()) {
            continue;
        }
        // What the API server would add.
        doc["metadata"]["uid"] = json!(format!("uid-{i}"));
        doc["metadata"]["creationTimestamp"] = json!(format!("2026-01-01T00:00:{:02}Z", i % 60));
        if doc["metadata"]["namespace"].is_null() && kind != "GatewayClass" {
            doc["metadata"]["namespace"] = json!("default");
        }
        render::add_document(&mut world, doc).unwrap_or_else(|e| panic!("{e}"));
    }
    world
}

fn docs_of(rel: &str) -> Vec<Value> {
    let path = workspace_root().join("examples/kubernetes").join(rel);
    yaml_docs(&std::fs::read_to_string(&path).unwrap())
}

/// Renders every Gateway of ours; the Services they create are then visible to routes (central
/// ingress points at them), so render twice, as the controller converges in two reconciles.
fn render_all(world: &mut World, opts: &RenderOptions) -> Vec<(Arc<Gateway>, Rendered)> {
    for _ in 0..2 {
        let mut services = Vec::new();
        for gw in world.gateways.clone() {
            if render::our_class(world, &gw).is_some() {
                let r = render::render(world, &gw, opts).unwrap();
                services.push(Arc::new(r.children.service.clone()));
            }
        }
        for s in services {
            let key = render::key_of(s.as_ref());
            if !world
                .services
                .iter()
                .any(|x| render::key_of(x.as_ref()) == key)
            {
                world.services.push(s);
            }
        }
    }
    let mut out = Vec::new();
    for gw in world.gateways.clone() {
        if render::our_class(world, &gw).is_some() {
            out.push((gw.clone(), render::render(world, &gw, opts).unwrap()));
        }
    }
    out
}

/// The golden view of one rendering.
fn golden(r: &Rendered) -> Value {
    json!({
        "config": yaml_serde::from_str::<Value>(&r.config_yaml).unwrap(),
        "gateway_conditions": r.gateway_conditions,
        "listeners": r.listeners,
        "routes": r.routes,
        "resources": r.resources,
        "warnings": r.warnings,
        "children": {
            "configmap_keys": r.children.config_map.data.as_ref().map(|d| d.keys().cloned().collect::<Vec<_>>()),
            "deployment": serde_json::to_value(&r.children.deployment).unwrap(),
            "service": serde_json::to_value(&r.children.service).unwrap(),
            "serviceaccount": serde_json::to_value(&r.children.service_account).unwrap(),
        },
    })
}

fn check_config(r: &Rendered) {
    switchboard_gateway::config::load_str(&r.config_yaml, "rendered", &|_| Some("x".into()))
        .unwrap_or_else(|e| panic!("rendered config is invalid:\n{e}\n{}", r.config_yaml));
}

#[test]
fn every_example_manifest_renders() {
    let dirs = [
        "simple-ingress",
        "sharded-gateways",
        "central-ingress",
        "mcp-and-llm",
        "istio-ingress",
        "behind-load-balancer",
    ];
    // Every directory under examples/kubernetes is covered here.
    let mut found: Vec<String> = std::fs::read_dir(workspace_root().join("examples/kubernetes"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    let mut want: Vec<String> = dirs.iter().map(|d| d.to_string()).collect();
    want.sort();
    assert_eq!(found, want);

    for dir in dirs {
        let mut docs = docs_of("install.yaml");
        for f in std::fs::read_dir(workspace_root().join("examples/kubernetes").join(dir)).unwrap()
        {
            let f = f.unwrap().path();
            docs.extend(docs_of(
                &f.strip_prefix(workspace_root().join("examples/kubernetes"))
                    .unwrap()
                    .to_string_lossy(),
            ));
        }
        // Every Gateway API and Switchboard object validates against its CRD schema.
        let schemas = Schemas::load();
        for d in &docs {
            let (group, version) = match d["apiVersion"].as_str().unwrap().split_once('/') {
                Some((g, v)) => (g, v),
                None => continue,
            };
            let plural = match d["kind"].as_str().unwrap() {
                "GatewayClass" => "gatewayclasses",
                "Gateway" => "gateways",
                "HTTPRoute" => "httproutes",
                "ReferenceGrant" => "referencegrants",
                "Backend" => "backends",
                "Policy" => "policies",
                "GatewayParameters" => "gatewayparameters",
                _ => continue,
            };
            let errors = schemas
                .validate(group, plural, version, d)
                .unwrap_or_else(|| panic!("no schema for {group}/{version} {plural}"));
            assert!(
                errors.is_empty(),
                "{dir}: {} {}: {errors:?}",
                d["kind"],
                d["metadata"]["name"]
            );
        }
        let mut world = world_from(docs);
        let rendered = render_all(&mut world, &RenderOptions::default());
        assert!(!rendered.is_empty(), "{dir}: no Gateway rendered");
        for (gw, r) in &rendered {
            let name = format!("{dir}__{}", gw.metadata.name.as_deref().unwrap());
            check_config(r);
            assert!(
                !r.config_yaml.contains("replace-me"),
                "{name}: a secret value reached the ConfigMap"
            );
            assert!(
                r.gateway_conditions[0].status,
                "{name}: not accepted: {:?}",
                r.gateway_conditions
            );
            insta::assert_yaml_snapshot!(name, golden(r));
        }
    }
}

#[test]
fn central_ingress_edge_routes_to_second_layer_gateways_with_edge_headers() {
    let mut docs = docs_of("install.yaml");
    docs.extend(docs_of("central-ingress/central-ingress.yaml"));
    let mut world = world_from(docs);
    let all = render_all(&mut world, &RenderOptions::default());
    let (_, edge) = all
        .iter()
        .find(|(g, _)| g.metadata.name.as_deref() == Some("edge"))
        .unwrap();
    let l = &edge.config.listeners[0];
    let urls: Vec<(&str, &str)> = l
        .routes
        .iter()
        .map(|r| {
            (
                r.matcher.host.as_deref().unwrap(),
                r.http.as_ref().unwrap().url.as_str(),
            )
        })
        .collect();
    assert_eq!(
        urls,
        vec![
            ("a.example.com", "http://team-a.team-a.svc.cluster.local:80"),
            ("b.example.com", "http://team-b.team-b.svc.cluster.local:80"),
        ]
    );
    let headers = l.policies.as_ref().unwrap().headers.as_ref().unwrap();
    assert_eq!(headers.request.set["x-entry-point"], "edge");
    assert!(
        edge.routes
            .iter()
            .all(|r| r.conditions.iter().all(|c| c.status)),
        "{:?}",
        edge.routes
    );
}

fn world_yaml(extra: &str) -> World {
    let mut docs = docs_of("install.yaml");
    docs.extend(yaml_docs(extra));
    world_from(docs)
}

fn render_one(world: &World, name: &str) -> Rendered {
    let gw = world
        .gateways
        .iter()
        .find(|g| g.metadata.name.as_deref() == Some(name))
        .unwrap();
    render::render(world, gw, &RenderOptions::default()).unwrap()
}

const GW: &str = r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners:
    - {name: http, port: 80, protocol: HTTP}
    - {name: api, port: 80, protocol: HTTP, hostname: "*.api.example.com"}
    - {name: tcp, port: 9000, protocol: TCP}
---
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: ns}
spec: {ports: [{port: 80}]}
"#;

#[test]
fn precedence_hostnames_and_listener_checks() {
    let world = world_yaml(&format!(
        r#"{GW}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: broad, namespace: ns}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /}}}}]
      backendRefs: [{{name: svc, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /a}}}}, {{path: {{type: Exact, value: /a/exact}}}}]
      backendRefs: [{{name: svc, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /a}}, method: POST, headers: [{{name: X-Team, value: ml}}]}}]
      backendRefs: [{{name: svc, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: hosts, namespace: ns}}
spec:
  parentRefs: [{{name: gw, sectionName: api}}]
  hostnames: [v1.api.example.com, other.example.org]
  rules:
    - backendRefs: [{{name: svc, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: nomatch, namespace: ns}}
spec:
  parentRefs: [{{name: gw, sectionName: api}}]
  hostnames: [only.example.org]
  rules:
    - backendRefs: [{{name: svc, port: 80}}]
"#
    ));
    let r = render_one(&world, "gw");
    check_config(&r);
    let routes: Vec<String> = r.config.listeners[0]
        .routes
        .iter()
        .map(|x| format!("{} {:?}", x.name, x.matcher))
        .collect();
    insta::assert_yaml_snapshot!(
        "precedence",
        json!({"routes": routes, "listeners": r.listeners, "route_status": r.routes})
    );
    // Host-specific first, then exact, longer prefix, method+headers, catch-all last.
    assert!(routes[0].contains("v1.api.example.com"));
    assert!(routes[1].contains("/a/exact"));
    assert!(routes[2].contains("POST"));
    assert!(routes.last().unwrap().starts_with("ns.broad.0.0"));
    // The TCP listener is refused; the route without a shared hostname is not accepted.
    let tcp = r.listeners.iter().find(|l| l.name == "tcp").unwrap();
    assert!(
        tcp.conditions
            .iter()
            .any(|c| c.type_ == "Accepted" && !c.status && c.reason == "UnsupportedProtocol")
    );
    let nomatch = r.routes.iter().find(|o| o.name == "nomatch").unwrap();
    assert_eq!(nomatch.conditions[0].reason, "NoMatchingListenerHostname");
    assert_eq!(r.gateway_conditions[0].reason, "ListenersNotValid");
}

#[test]
fn a_rule_an_earlier_route_covers_is_dropped_with_a_warning() {
    // The same match in two routes: the older route wins, the newer one's rule could never
    // match, and the proxy refuses unreachable routes, so it is left out and reported. The
    // newer route's other rule stays.
    let world = world_yaml(&format!(
        r#"{GW}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: old, namespace: ns}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /a}}}}]
      backendRefs: [{{name: svc, port: 80}}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: new, namespace: ns}}
spec:
  parentRefs: [{{name: gw, sectionName: http}}]
  rules:
    - matches: [{{path: {{type: PathPrefix, value: /a}}}}]
      backendRefs: [{{name: svc, port: 80}}]
    - matches: [{{path: {{type: PathPrefix, value: /b}}}}]
      backendRefs: [{{name: svc, port: 80}}]
"#
    ));
    let r = render_one(&world, "gw");
    check_config(&r);
    let names: Vec<&str> = r.config.listeners[0]
        .routes
        .iter()
        .map(|x| x.name.as_str())
        .collect();
    assert!(names.contains(&"ns.old.0.0.http"), "{names:?}");
    assert!(names.contains(&"ns.new.1.0.http"), "{names:?}");
    assert!(!names.contains(&"ns.new.0.0.http"), "{names:?}");
    assert!(
        r.warnings
            .iter()
            .any(|w| w
                == "HTTPRoute ns/new: a rule is shadowed by ns.old.0.0.http and never matches"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn cross_namespace_refs_need_a_reference_grant() {
    let route = r#"
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
    - backendRefs: [{name: far, namespace: other, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: far, namespace: other}
spec: {ports: [{port: 80}]}
"#;
    let world = world_yaml(&format!("{GW}{route}"));
    let r = render_one(&world, "gw");
    let o = &r.routes[0];
    assert_eq!(o.conditions[1].type_, "ResolvedRefs");
    assert_eq!(o.conditions[1].reason, "RefNotPermitted");
    assert!(r.config.listeners[0].routes.is_empty());

    let grant = r#"
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: {name: g, namespace: other}
spec:
  from: [{group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ns}]
  to: [{group: "", kind: Service}]
"#;
    let world = world_yaml(&format!("{GW}{route}{grant}"));
    let r = render_one(&world, "gw");
    assert!(
        r.routes[0].conditions.iter().all(|c| c.status),
        "{:?}",
        r.routes
    );
    assert_eq!(
        r.config.listeners[0].routes[0].http.as_ref().unwrap().url,
        "http://far.other.svc.cluster.local:80"
    );
}

#[test]
fn https_listener_mounts_its_certificate_secret() {
    let world = world_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners:
    - name: https
      port: 443
      protocol: HTTPS
      tls: {certificateRefs: [{name: gw-cert}]}
---
apiVersion: v1
kind: Secret
metadata: {name: gw-cert, namespace: ns}
"#,
    );
    let r = render_one(&world, "tls");
    let tls = r.config.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls.cert, "/etc/switchboard/tls/gw-cert/tls.crt");
    let pod = r.children.deployment.spec.template.spec.as_ref().unwrap();
    let vols = pod.volumes.as_ref().unwrap();
    assert!(
        vols.iter()
            .any(|v| v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("gw-cert"))
    );

    // Without the Secret: ResolvedRefs False and the listener is not served.
    let world = world_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: tls, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners:
    - {name: https, port: 443, protocol: HTTPS, tls: {certificateRefs: [{name: gw-cert}]}}
"#,
    );
    let r = render_one(&world, "tls");
    assert!(r.config.listeners.is_empty());
    let c = r.listeners[0]
        .conditions
        .iter()
        .find(|c| c.type_ == "ResolvedRefs")
        .unwrap();
    assert_eq!(c.reason, "InvalidCertificateRef");
}

#[test]
fn llm_secrets_become_env_references_not_config_text() {
    let mut docs = docs_of("install.yaml");
    docs.extend(docs_of("mcp-and-llm/mcp-and-llm.yaml"));
    let world = world_from(docs);
    let b = world
        .backends
        .iter()
        .find(|b| b.metadata.name.as_deref() == Some("models"))
        .unwrap();
    // The rendered llm block, as it will land on the route once the proxy has `llm:`.
    let route = switchboard_gateway::config::RouteConfig {
        name: "x".into(),
        matcher: Default::default(),
        policies: None,
        mcp: None,
        llm: None,
        a2a: None,
        http: None,
        redirect: None,
    };
    let r = render_one(&world, "agents");
    let env = r
        .children
        .deployment
        .spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "SB_SECRET_LLM_KEYS_ANTHROPIC",
            "SB_SECRET_LLM_KEYS_DOCS",
            "SB_SECRET_LLM_KEYS_OPENAI"
        ]
    );
    assert_eq!(
        env[2]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap()
            .key,
        "openai"
    );
    let backend_conds = r.resources.iter().find(|x| x.name == "models").unwrap();
    let _ = (b, route);
    // Until the proxy's config has `llm:`, the route is reported, not rendered half-way.
    let agents = r.routes.iter().find(|o| o.name == "agents").unwrap();
    let resolved = &agents.conditions[1];
    if r.config.listeners[0].routes.len() < 3 {
        assert_eq!(resolved.reason, "UnsupportedValue");
        assert!(
            resolved.message.contains("does not support"),
            "{}",
            resolved.message
        );
    }
    assert!(backend_conds.conditions.iter().all(|c| c.status));
}

#[test]
fn istio_modes_label_the_pods() {
    let mut docs = docs_of("install.yaml");
    docs.extend(docs_of("istio-ingress/istio-ingress.yaml"));
    let world = world_from(docs);
    let pod_meta = |n: &str| {
        render_one(&world, n)
            .children
            .deployment
            .spec
            .template
            .metadata
            .unwrap()
    };
    let side = pod_meta("ingress-sidecar");
    assert_eq!(
        side.labels.as_ref().unwrap()["sidecar.istio.io/inject"],
        "true"
    );
    assert_eq!(
        side.annotations.as_ref().unwrap()["traffic.sidecar.istio.io/includeInboundPorts"],
        ""
    );
    let amb = pod_meta("ingress-ambient");
    assert_eq!(
        amb.labels.as_ref().unwrap()["istio.io/dataplane-mode"],
        "ambient"
    );
    assert!(
        !amb.labels
            .as_ref()
            .unwrap()
            .contains_key("sidecar.istio.io/inject")
    );
}

#[test]
fn a_configmap_only_change_changes_the_pod_checksum() {
    let base = format!(
        "{GW}\n---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {{name: r, namespace: ns}}\nspec:\n  parentRefs: [{{name: gw}}]\n  rules: [{{matches: [{{path: {{value: /PATH}}}}], backendRefs: [{{name: svc, port: 80}}]}}]\n"
    );
    let a = render_one(&world_yaml(&base.replace("PATH", "a")), "gw");
    let b = render_one(&world_yaml(&base.replace("PATH", "b")), "gw");
    let ck = |r: &Rendered| {
        r.children
            .deployment
            .spec
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[render::CHECKSUM_ANNOTATION]
            .clone()
    };
    assert_ne!(ck(&a), ck(&b));
    assert_eq!(ck(&a), a.checksum);
}

#[test]
fn committed_crds_match_the_types_and_are_structural() {
    let generated = crd::crds_yaml();
    let path = workspace_root().join("examples/kubernetes/crds.yaml");
    if std::env::var("UPDATE_CRDS").is_ok() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "examples/kubernetes/crds.yaml is stale: run `cargo run -p switchboard-controller -- crds > examples/kubernetes/crds.yaml`"
    );
    // Only formats the API server knows (it ignores others with a warning, and with them
    // the bounds they imply): unsigned integers carry minimum/maximum instead.
    for line in committed.lines() {
        if let Some(f) = line.trim().strip_prefix("format: ") {
            assert!(
                ["int32", "int64", "byte", "date-time", "double", "float"].contains(&f),
                "unknown format {f} in crds.yaml"
            );
        }
    }
    assert!(committed.contains("maximum: 4294967295"), "u32 bound");
    // Structural: every schema node has a type (or is explicitly int-or-string/preserved).
    fn walk(v: &Value, at: &str) {
        let Some(o) = v.as_object() else { return };
        let exempt = o.contains_key("x-kubernetes-int-or-string")
            || o.contains_key("x-kubernetes-preserve-unknown-fields");
        assert!(
            o.contains_key("type") || exempt,
            "schema node without type at {at}: {v}"
        );
        for key in ["anyOf", "oneOf", "allOf"] {
            assert!(
                !o.contains_key(key) || o.contains_key("type"),
                "{key} at {at}"
            );
        }
        if let Some(p) = o.get("properties").and_then(Value::as_object) {
            for (k, s) in p {
                walk(s, &format!("{at}.{k}"));
            }
        }
        if let Some(items) = o.get("items") {
            walk(items, &format!("{at}[]"));
        }
        if let Some(ap) = o.get("additionalProperties").filter(|a| a.is_object()) {
            walk(ap, &format!("{at}{{}}"));
        }
    }
    let docs = yaml_docs(&generated);
    assert_eq!(docs.len(), 3);
    for d in &docs {
        let kind = d["spec"]["names"]["kind"].as_str().unwrap();
        let v = &d["spec"]["versions"][0];
        assert_eq!(
            v["subresources"]["status"],
            json!({}),
            "{kind} has a status subresource"
        );
        walk(&v["schema"]["openAPIV3Schema"], kind);
    }
}

/// The "paired behind HAProxy / NLB" pattern: GatewayParameters set the Service's type,
/// annotations, `externalTrafficPolicy` and `loadBalancerClass`, and the PROXY protocol of
/// every proxy listener; the Gateway's parameters win over the class's key by key.
#[test]
fn gateway_parameters_shape_the_service_and_proxy_protocol() {
    let world = world_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: behind-nlb}
spec:
  controllerName: switchboard.dev/gateway-controller
  parametersRef: {group: switchboard.dev, kind: GatewayParameters, name: nlb, namespace: ns}
---
apiVersion: switchboard.dev/v1alpha1
kind: GatewayParameters
metadata: {name: nlb, namespace: ns}
spec:
  serviceType: LoadBalancer
  loadBalancerClass: service.k8s.aws/nlb
  proxyProtocol: v2
  serviceAnnotations:
    service.beta.kubernetes.io/aws-load-balancer-proxy-protocol: "*"
    service.beta.kubernetes.io/aws-load-balancer-scheme: internal
---
apiVersion: switchboard.dev/v1alpha1
kind: GatewayParameters
metadata: {name: public, namespace: ns}
spec:
  externalTrafficPolicy: Local
  serviceAnnotations:
    service.beta.kubernetes.io/aws-load-balancer-scheme: internet-facing
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: ns}
spec:
  gatewayClassName: behind-nlb
  infrastructure:
    parametersRef: {group: switchboard.dev, kind: GatewayParameters, name: public}
  listeners:
    - {name: http, port: 80, protocol: HTTP}
    - {name: alt, port: 8080, protocol: HTTP}
"#,
    );
    let r = render_one(&world, "edge");
    check_config(&r);
    assert_eq!(r.gateway_conditions[0].reason, "Accepted");
    assert_eq!(r.config.listeners.len(), 2);
    for l in &r.config.listeners {
        assert_eq!(
            l.proxy_protocol,
            Some(switchboard_gateway::config::ProxyProtocol::V2),
            "{}",
            l.name
        );
    }
    assert!(r.config_yaml.contains("proxy_protocol: v2"));
    let svc = &r.children.service;
    let a = svc.metadata.annotations.as_ref().unwrap();
    assert_eq!(
        a["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"],
        "*"
    );
    assert_eq!(
        a["service.beta.kubernetes.io/aws-load-balancer-scheme"], "internet-facing",
        "the Gateway's parameters win"
    );
    let spec = svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(
        spec.load_balancer_class.as_deref(),
        Some("service.k8s.aws/nlb")
    );

    // Without parameters: no PROXY protocol, no extra Service fields.
    let r = render_one(&world_yaml(GW), "gw");
    assert!(
        r.config
            .listeners
            .iter()
            .all(|l| l.proxy_protocol.is_none())
    );
    let spec = r.children.service.spec.as_ref().unwrap();
    assert!(spec.external_traffic_policy.is_none() && spec.load_balancer_class.is_none());
}

/// `adminTokenSecret`: the proxy's `admin.token` is a `${VAR}` reference in the config and the
/// variable comes from the Secret through `secretKeyRef`, so the token is in no rendered object;
/// the proxy expands it when it loads the config. The Gateway's parameters win over the
/// class's. Unset: no token, no env var.
#[test]
fn admin_token_secret_becomes_an_env_reference_not_config_text() {
    let world = world_yaml(
        r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: with-admin}
spec:
  controllerName: switchboard.dev/gateway-controller
  parametersRef: {group: switchboard.dev, kind: GatewayParameters, name: class-admin, namespace: ns}
---
apiVersion: switchboard.dev/v1alpha1
kind: GatewayParameters
metadata: {name: class-admin, namespace: ns}
spec:
  adminTokenSecret: {name: class-admin, key: token}
---
apiVersion: switchboard.dev/v1alpha1
kind: GatewayParameters
metadata: {name: own-admin, namespace: ns}
spec:
  adminTokenSecret: {name: proxy-admin, key: admin-token}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: ns}
spec:
  gatewayClassName: with-admin
  infrastructure:
    parametersRef: {group: switchboard.dev, kind: GatewayParameters, name: own-admin}
  listeners:
    - {name: http, port: 80, protocol: HTTP}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: plain, namespace: ns}
spec:
  gatewayClassName: with-admin
  listeners:
    - {name: http, port: 80, protocol: HTTP}
"#,
    );
    let env_of = |r: &Rendered| {
        r.children
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap_or_default()
    };

    let r = render_one(&world, "edge");
    check_config(&r);
    assert_eq!(r.gateway_conditions[0].reason, "Accepted");
    let var = "SB_SECRET_PROXY_ADMIN_ADMIN_TOKEN";
    assert_eq!(
        r.config.admin.token.as_deref(),
        Some(format!("${{{var}}}").as_str()),
        "the Gateway's parameters win"
    );
    assert!(
        r.config_yaml.contains(&format!("token: ${{{var}}}")),
        "{}",
        r.config_yaml
    );
    let env = env_of(&r);
    assert_eq!(env.len(), 1, "{env:?}");
    assert_eq!(env[0].name, var);
    assert!(
        env[0].value.is_none(),
        "the value is never in the Deployment"
    );
    let sel = env[0]
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (sel.name.as_str(), sel.key.as_str(), sel.optional),
        ("proxy-admin", "admin-token", Some(false))
    );
    // The proxy expands the reference from its environment when it loads the config.
    let loaded = switchboard_gateway::config::load_str(&r.config_yaml, "rendered", &|v| {
        (v == var).then(|| "s3cret-admin".to_string())
    })
    .unwrap();
    assert_eq!(loaded.admin.token.as_deref(), Some("s3cret-admin"));
    // The same reference is in the ConfigMap; the value is nowhere in the children.
    let cm = &r.children.config_map.data.as_ref().unwrap()[render::CONFIG_KEY];
    assert!(cm.contains(&format!("${{{var}}}")), "{cm}");

    // The class's parameters apply to a Gateway without its own.
    let r = render_one(&world, "plain");
    assert_eq!(
        r.config.admin.token.as_deref(),
        Some("${SB_SECRET_CLASS_ADMIN_TOKEN}")
    );
    assert_eq!(env_of(&r)[0].name, "SB_SECRET_CLASS_ADMIN_TOKEN");

    // Unset: no token in the config, no env var in the Deployment.
    let r = render_one(&world_yaml(GW), "gw");
    assert!(r.config.admin.token.is_none());
    assert!(!r.config_yaml.contains("token"), "{}", r.config_yaml);
    assert!(env_of(&r).is_empty());
}

/// `sessionStore`: each Redis topology (`redisUrl`, `redisCluster`, `redisSentinel`) becomes the
/// proxy's `sessions.redis`; `redisUsername` its `username`; `redisPasswordSecret` a `${VAR}`
/// `password` with the variable from the Secret through `secretKeyRef` (like the session
/// keys). The rendered config loads with the proxy's own loader, which expands the password.
/// More than one topology, or credentials without one: `Accepted=False`, `InvalidParameters`.
#[test]
fn session_store_redis_topologies_and_password_secret() {
    let params = |name: &str, store: &str| {
        format!(
            r#"
---
apiVersion: switchboard.dev/v1alpha1
kind: GatewayParameters
metadata: {{name: {name}, namespace: ns}}
spec:
  sessionStore:
{store}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {{name: {name}, namespace: ns}}
spec:
  gatewayClassName: switchboard
  infrastructure:
    parametersRef: {{group: switchboard.dev, kind: GatewayParameters, name: {name}}}
  listeners:
    - {{name: http, port: 80, protocol: HTTP}}
"#
        )
    };
    let mut yaml = String::new();
    yaml += &params(
        "standalone",
        "    store: redis\n    redisUrl: redis://redis.ns.svc:6379",
    );
    yaml += &params(
        "cluster",
        r#"    store: redis
    redisCluster: [redis://redis-0.redis:6379, redis://redis-1.redis:6379]
    redisUsername: switchboard
    redisPasswordSecret: {name: redis-auth, key: password}
    keys: [{secretKeyRef: {name: session-keys, key: k1}}]"#,
    );
    yaml += &params(
        "sentinel",
        r#"    store: redis
    redisSentinel: {master: mymaster, nodes: [redis://sentinel-0:26379, redis://sentinel-1:26379]}
    redisPasswordSecret: {name: redis-auth, key: password}"#,
    );
    yaml += &params(
        "two",
        "    store: redis\n    redisUrl: redis://r:6379\n    redisCluster: [redis://c:6379]",
    );
    yaml += &params("nouri", "    store: redis\n    redisUsername: switchboard");
    // The fields pass the CRD schema the API server enforces (unknown fields included).
    let schemas = Schemas::load();
    for d in yaml_docs(&yaml)
        .iter()
        .filter(|d| d["kind"] == "GatewayParameters")
    {
        let errors = schemas
            .validate("switchboard.dev", "gatewayparameters", "v1alpha1", d)
            .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
    }
    let world = world_yaml(&yaml);
    let env_of = |r: &Rendered| {
        r.children
            .deployment
            .spec
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .env
            .clone()
            .unwrap_or_default()
    };
    let load = |r: &Rendered| {
        switchboard_gateway::config::load_str(&r.config_yaml, "rendered", &|v| match v {
            "SB_SECRET_REDIS_AUTH_PASSWORD" => Some("s3cret-redis".to_string()),
            "SB_SECRET_SESSION_KEYS_K1" => {
                Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_string())
            }
            _ => None,
        })
        .unwrap()
    };

    // Standalone: the URL, no credentials, no env var.
    let r = render_one(&world, "standalone");
    check_config(&r);
    assert_eq!(r.gateway_conditions[0].reason, "Accepted");
    let redis = load(&r).sessions.redis.unwrap();
    assert_eq!(redis.url.as_deref(), Some("redis://redis.ns.svc:6379"));
    assert!(redis.cluster.is_empty() && redis.sentinel.is_none());
    assert!(redis.username.is_none() && redis.password.is_none());
    assert!(env_of(&r).is_empty());

    // Cluster with ACL user and password from a Secret.
    // (`check_config` expands every variable to `x`, not a key: `load` below gives real values.)
    let r = render_one(&world, "cluster");
    assert_eq!(r.gateway_conditions[0].reason, "Accepted");
    let var = "SB_SECRET_REDIS_AUTH_PASSWORD";
    assert!(
        r.config_yaml.contains(&format!("password: ${{{var}}}")),
        "{}",
        r.config_yaml
    );
    assert!(!r.config_yaml.contains("s3cret"), "{}", r.config_yaml);
    let loaded = load(&r);
    let redis = loaded.sessions.redis.unwrap();
    assert_eq!(
        redis.cluster,
        ["redis://redis-0.redis:6379", "redis://redis-1.redis:6379"]
    );
    assert!(redis.url.is_none() && redis.sentinel.is_none());
    assert_eq!(redis.username.as_deref(), Some("switchboard"));
    assert_eq!(redis.password.as_deref(), Some("s3cret-redis"));
    // The keys the CRD does not have keep the proxy's defaults.
    assert_eq!(redis.timeout, std::time::Duration::from_millis(250));
    assert!(redis.tls_ca.is_none() && !redis.required_for_ready);
    assert_eq!(loaded.sessions.keys.len(), 1);
    let env = env_of(&r);
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, [var, "SB_SECRET_SESSION_KEYS_K1"], "{env:?}");
    let e = &env[0];
    assert!(e.value.is_none(), "the value is never in the Deployment");
    let sel = e
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (sel.name.as_str(), sel.key.as_str(), sel.optional),
        ("redis-auth", "password", Some(false))
    );

    // Sentinel.
    let r = render_one(&world, "sentinel");
    check_config(&r);
    assert_eq!(r.gateway_conditions[0].reason, "Accepted");
    let redis = load(&r).sessions.redis.unwrap();
    let s = redis.sentinel.unwrap();
    assert_eq!(s.master, "mymaster");
    assert_eq!(
        s.nodes,
        ["redis://sentinel-0:26379", "redis://sentinel-1:26379"]
    );
    assert!(redis.url.is_none() && redis.cluster.is_empty());
    assert_eq!(redis.password.as_deref(), Some("s3cret-redis"));
    assert_eq!(env_of(&r)[0].name, var);

    // More than one topology; credentials without a topology.
    for (name, want) in [
        (
            "two",
            "exactly one of redisUrl, redisCluster and redisSentinel",
        ),
        (
            "nouri",
            "need one of redisUrl, redisCluster and redisSentinel",
        ),
    ] {
        let r = render_one(&world, name);
        let c = &r.gateway_conditions[0];
        assert_eq!(
            (c.type_, c.status, c.reason),
            ("Accepted", false, "InvalidParameters"),
            "{name}"
        );
        assert!(c.message.contains(want), "{name}: {}", c.message);
        assert!(r.warnings.iter().any(|w| w.contains(want)), "{name}");
        assert!(r.config.sessions.redis.is_none(), "{name}");
    }
}
