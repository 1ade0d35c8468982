//! One schema: the Backend and Policy CRDs embed the proxy's own config types, so every proxy
//! config example goes through Kubernetes objects (checked against the generated CRD schemas,
//! as the API server would, unknown fields included) and back through the renderer unchanged.

use crate::common;

use common::*;
use serde_json::{Value, json};
use switchboard_controller::crd::Backend;
use switchboard_controller::render::{self, RenderOptions, World};
use switchboard_gateway::config::{Config, RouteConfig, expose_secrets};

/// The proxy configs among examples/**/*.yaml (the OpenAPI document and the Kubernetes
/// manifests are not) and the README's whole-config `yaml` blocks.
fn example_configs() -> Vec<(String, Config)> {
    let root = workspace_root();
    let mut out = Vec::new();
    let mut files = Vec::new();
    for e in std::fs::read_dir(root.join("examples")).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && !p.ends_with("kubernetes") {
            for f in std::fs::read_dir(&p).unwrap() {
                files.push(f.unwrap().path());
            }
        } else {
            files.push(p);
        }
    }
    files.sort();
    for p in files {
        if p.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&p).unwrap();
            if text.contains("listeners:") {
                let c: Config =
                    yaml_serde::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                out.push((p.display().to_string(), c));
            }
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (i, block) in readme.split("```yaml\n").skip(1).enumerate() {
        let block = block.split("```").next().unwrap();
        let indent = |n: usize| -> String {
            block
                .lines()
                .map(|l| format!("{}{l}\n", " ".repeat(n)))
                .collect()
        };
        // Whole configs, and the `mcp:`, `llm:`, `a2a:` and `policies:` blocks of the
        // backend and policy sections put on a route (or a listener).
        let text = if block.contains("listeners:") {
            block.to_string()
        } else if ["mcp:", "llm:", "a2a:"]
            .iter()
            .any(|k| block.starts_with(k))
        {
            format!(
                "listeners:\n  - name: l\n    bind: 127.0.0.1:0\n    routes:\n      - name: r\n{}",
                indent(8)
            )
        } else if block.starts_with("policies:") {
            format!(
                "listeners:\n  - name: l\n    bind: 127.0.0.1:0\n{}    routes: []\n",
                indent(4)
            )
        } else {
            continue;
        };
        let c = yaml_serde::from_str::<Config>(&text)
            .unwrap_or_else(|e| panic!("README.md yaml block {i}: {e}\n{text}"));
        out.push((format!("README.md yaml block {i}"), c));
    }
    out
}

fn check_schema(schemas: &Schemas, plural: &str, obj: &Value, at: &str) {
    let errors = schemas
        .validate("switchboard.dev", plural, "v1alpha1", obj)
        .unwrap();
    assert!(errors.is_empty(), "{at}: the CRD refuses {obj}: {errors:?}");
}

/// Stored by the API server and read back: YAML out and in, then decoded like the controller.
fn through_yaml(obj: &Value) -> Value {
    yaml_serde::from_str(&yaml_serde::to_string(obj).unwrap()).unwrap()
}

#[test]
fn every_example_config_goes_through_the_crds_and_back_unchanged() {
    let schemas = Schemas::load();
    let configs = example_configs();
    let names: Vec<&str> = configs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.ends_with("quickstart.yaml"))
            && names.iter().any(|n| n.ends_with("gateway.yaml"))
            && names.iter().filter(|n| n.starts_with("README")).count() >= 5,
        "{names:?}"
    );
    let mut blocks = 0;
    for (name, config) in &configs {
        for (li, listener) in config.listeners.iter().enumerate() {
            let at = format!("{name} listeners[{li}]");
            let mut docs = vec![
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                    "metadata": {"name": "switchboard"},
                    "spec": {"controllerName": "switchboard.dev/gateway-controller"}}),
                json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                    "metadata": {"name": "gw", "namespace": "default"},
                    "spec": {"gatewayClassName": "switchboard",
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
                json!({"apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "keys", "namespace": "default"}}),
            ];
            if let Some(p) = &listener.policies {
                let mut spec = expose_secrets(|| serde_json::to_value(p)).unwrap();
                spec["targetRefs"] = json!([{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]);
                let obj = json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Policy",
                    "metadata": {"name": "listener", "namespace": "default"}, "spec": spec});
                check_schema(&schemas, "policies", &obj, &at);
                docs.push(through_yaml(&obj));
                blocks += 1;
            }
            // One HTTPRoute per proxy route with a Backend of its kind, so each renders on its
            // own path.
            let mut kept: Vec<(usize, &RouteConfig)> = Vec::new();
            for (ri, route) in listener.routes.iter().enumerate() {
                let at = format!("{at}.routes[{ri}] ({})", route.name);
                let backend = expose_secrets(|| {
                    [
                        ("mcp", serde_json::to_value(&route.mcp)),
                        ("llm", serde_json::to_value(&route.llm)),
                        ("a2a", serde_json::to_value(&route.a2a)),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k, v.unwrap()))
                    .find(|(_, v)| !v.is_null())
                });
                let Some((key, block)) = backend else {
                    continue;
                };
                let obj = json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
                    "metadata": {"name": format!("b{ri}"), "namespace": "default"},
                    "spec": {key: block}});
                check_schema(&schemas, "backends", &obj, &at);
                let stored = through_yaml(&obj);
                // What the controller decodes equals what was written.
                let decoded: Backend = serde_json::from_value(stored.clone()).unwrap();
                let again = expose_secrets(|| serde_json::to_value(&decoded.spec)).unwrap();
                assert_eq!(
                    again, obj["spec"],
                    "{at}: the Backend does not decode losslessly"
                );
                docs.push(stored);
                docs.push(
                    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                    "metadata": {"name": format!("r{ri}"), "namespace": "default"},
                    "spec": {"parentRefs": [{"name": "gw"}], "rules": [{
                        "matches": [{"path": {"type": "PathPrefix", "value": format!("/r{ri}")}}],
                        "backendRefs": [{"group": "switchboard.dev", "kind": "Backend",
                            "name": format!("b{ri}")}]}]}}),
                );
                if let Some(p) = &route.policies {
                    let mut spec = expose_secrets(|| serde_json::to_value(p)).unwrap();
                    spec["targetRefs"] = json!([{"group": "gateway.networking.k8s.io",
                        "kind": "HTTPRoute", "name": format!("r{ri}")}]);
                    let obj = json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Policy",
                        "metadata": {"name": format!("p{ri}"), "namespace": "default"},
                        "spec": spec});
                    check_schema(&schemas, "policies", &obj, &at);
                    docs.push(through_yaml(&obj));
                    blocks += 1;
                }
                kept.push((ri, route));
                blocks += 1;
            }
            if kept.is_empty() && listener.policies.is_none() {
                continue;
            }
            let mut world = World::default();
            for (i, mut d) in docs.into_iter().enumerate() {
                d["metadata"]["uid"] = json!(format!("uid-{i}"));
                d["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                render::add_document(&mut world, d).unwrap_or_else(|e| panic!("{at}: {e}"));
            }
            let gw = world.gateways[0].clone();
            let r = render::render(&world, &gw, &RenderOptions::default()).unwrap();
            let rl = &r.config.listeners[0];
            assert_eq!(
                rl.policies, listener.policies,
                "{at}: listener policies changed"
            );
            for (ri, original) in kept {
                let prefix = format!("/r{ri}");
                let rendered = rl
                    .routes
                    .iter()
                    .find(|x| x.matcher.path_prefix.as_deref() == Some(prefix.as_str()))
                    .unwrap_or_else(|| {
                        panic!(
                            "{at}.routes[{ri}] not rendered: {:?} {:?}",
                            r.routes, r.resources
                        )
                    });
                let at = format!("{at}.routes[{ri}] ({})", original.name);
                assert_eq!(rendered.mcp, original.mcp, "{at}: mcp changed");
                assert_eq!(rendered.llm, original.llm, "{at}: llm changed");
                assert_eq!(rendered.a2a, original.a2a, "{at}: a2a changed");
                assert_eq!(
                    rendered.policies, original.policies,
                    "{at}: policies changed"
                );
            }
        }
    }
    assert!(blocks >= 8, "only {blocks} blocks went through the CRDs");
}

/// A URL host that is one DNS label is a Service in the Backend's namespace; `${NAME}` of the
/// Backend's `secrets` becomes the fleet's Secret env var; the rest is the proxy's block as is.
#[test]
fn backend_service_hosts_and_secret_names_are_resolved() {
    let world = {
        let mut w = World::default();
        for (i, mut d) in yaml_docs(
            r#"
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: switchboard}
spec: {controllerName: switchboard.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: gw, namespace: ns}
spec:
  gatewayClassName: switchboard
  listeners: [{name: http, port: 8080, protocol: HTTP}]
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: ns}
---
apiVersion: v1
kind: Service
metadata: {name: agent, namespace: ns}
spec: {ports: [{port: 9999}]}
---
apiVersion: switchboard.dev/v1alpha1
kind: Backend
metadata: {name: a, namespace: ns}
spec:
  a2a:
    upstreams: ["http://agent:9999/a2a", "http://localhost:9998", "https://agent.example:443"]
    public_url: https://gw.example/agent
---
apiVersion: switchboard.dev/v1alpha1
kind: Backend
metadata: {name: m, namespace: ns}
spec:
  mcp:
    targets:
      - name: t
        http: {url: "http://agent:9999/mcp", headers: {authorization: "Bearer ${TOKEN}"}}
        upstream_auth: none
  secrets: [{name: TOKEN, secretKeyRef: {name: keys, key: token}}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Backend
metadata: {name: missing, namespace: ns}
spec:
  a2a: {url: "http://nowhere:1"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /a}}]
      backendRefs: [{group: switchboard.dev, kind: Backend, name: a}]
    - matches: [{path: {type: PathPrefix, value: /m}}]
      backendRefs: [{group: switchboard.dev, kind: Backend, name: m}]
---
apiVersion: switchboard.dev/v1alpha1
kind: Policy
metadata: {name: half, namespace: ns}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}]
  authz: {rules: ["true"]}
  rate_limit: {per: 1m}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: broken, namespace: ns}
spec:
  parentRefs: [{name: gw}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /x}}]
      backendRefs: [{group: switchboard.dev, kind: Backend, name: missing}]
"#,
        )
        .into_iter()
        .enumerate()
        {
            d["metadata"]["uid"] = json!(format!("uid-{i}"));
            d["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            render::add_document(&mut w, d).unwrap();
        }
        w
    };
    let r = render::render(&world, &world.gateways[0], &RenderOptions::default()).unwrap();
    let routes = &r.config.listeners[0].routes;
    let a = routes.iter().find_map(|x| x.a2a.as_ref()).unwrap();
    assert_eq!(
        a.upstreams,
        [
            "http://agent.ns.svc.cluster.local:9999/a2a",
            "http://localhost:9998",
            "https://agent.example:443"
        ]
    );
    assert_eq!(a.public_url.as_deref(), Some("https://gw.example/agent"));
    let m = routes.iter().find_map(|x| x.mcp.as_ref()).unwrap();
    let http = m.targets[0].http.as_ref().unwrap();
    assert_eq!(http.url, "http://agent.ns.svc.cluster.local:9999/mcp");
    assert_eq!(
        http.headers["authorization"],
        "Bearer ${SB_SECRET_KEYS_TOKEN}"
    );
    assert!(m.targets[0].upstream_auth.is_some());
    // The Backend whose Service is missing is reported, and its route left out.
    assert!(
        routes
            .iter()
            .all(|x| x.matcher.path_prefix.as_deref() != Some("/x"))
    );
    let broken = r.routes.iter().find(|o| o.name == "broken").unwrap();
    let c = broken
        .conditions
        .iter()
        .find(|c| c.type_ == "ResolvedRefs")
        .unwrap();
    assert_eq!((c.status, c.reason), (false, "BackendNotFound"), "{c:?}");
    assert!(c.message.contains("Service ns/nowhere"), "{}", c.message);
    // A Policy the proxy's checks refuse says why and is not applied, not even in part.
    let half = r.resources.iter().find(|x| x.name == "half").unwrap();
    let accepted = &half.conditions[0];
    assert_eq!((accepted.status, accepted.reason), (false, "Invalid"));
    assert!(
        accepted.message.contains("spec.rate_limit"),
        "{}",
        accepted.message
    );
    assert!(routes.iter().all(|x| x.policies.is_none()), "{routes:?}");
}

/// The `mcp-and-llm` example's providers keep their failover order: OpenAI (priority 0) before
/// Anthropic (priority 1), not one group that splits traffic between them.
#[test]
fn mcp_and_llm_providers_render_in_failover_order() {
    let mut world = World::default();
    let root = workspace_root().join("examples/kubernetes");
    let mut docs = yaml_docs(&std::fs::read_to_string(root.join("install.yaml")).unwrap());
    docs.extend(yaml_docs(
        &std::fs::read_to_string(root.join("mcp-and-llm/mcp-and-llm.yaml")).unwrap(),
    ));
    for (i, mut d) in docs.into_iter().enumerate() {
        let kind = d["kind"].as_str().unwrap_or_default().to_string();
        if !matches!(
            kind.as_str(),
            "GatewayClass" | "Gateway" | "HTTPRoute" | "Backend" | "Policy" | "Secret" | "Service"
        ) {
            continue;
        }
        d["metadata"]["uid"] = json!(format!("uid-{i}"));
        d["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        render::add_document(&mut world, d).unwrap();
    }
    let gw = world.gateways[0].clone();
    let r = render::render(&world, &gw, &RenderOptions::default()).unwrap();
    let llm = r.config.listeners[0]
        .routes
        .iter()
        .find_map(|x| x.llm.as_ref())
        .expect("the llm route renders");
    let providers: Vec<(&str, u32)> = llm.models[0]
        .providers
        .iter()
        .map(|p| (p.provider.as_str(), p.priority))
        .collect();
    assert_eq!(providers, [("openai", 0), ("anthropic", 1)]);
    assert_eq!(
        llm.models[0].strategy,
        switchboard_llm::config::Strategy::Failover
    );
}

/// The generated CRDs are accepted by a real API server, and every manifest under
/// examples/kubernetes/ applies to it with `kubectl apply --server-side`, without a warning
/// (an unknown or pruned field, an unknown format) and without an error.
#[tokio::test]
async fn every_example_manifest_applies_server_side_without_warnings() {
    let cluster = TestCluster::start().await;
    let Some(owned) = cluster.owned.as_ref() else {
        println!("skipped: needs a real API server started by the test (kubectl beside it)");
        return;
    };
    let kubectl = owned.dir.join("bin/kubectl");
    let root = workspace_root().join("examples/kubernetes");
    let mut files = vec![root.join("crds.yaml"), root.join("install.yaml")];
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut inner: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        inner.sort();
        files.extend(inner);
    }
    assert!(files.len() >= 7, "{files:?}");
    for f in files {
        let out = tokio::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(&f)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.to_lowercase().contains("warning"),
            "{}: {}\n{stderr}",
            f.display(),
            String::from_utf8_lossy(&out.stdout)
        );
        println!("applied {}", f.display());
    }
}
