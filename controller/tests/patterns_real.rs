//! Each deployment pattern of examples/kubernetes/ on a real API server: its manifest is
//! applied server-side as a user would, the controller runs against it, and every Gateway of
//! ours gets its children (ConfigMap, Deployment, Service, ServiceAccount, owned by the
//! Gateway, the Deployment rolled by the config's checksum) and every object its status
//! (Gateway and listeners Accepted/Programmed, each route parent Accepted/ResolvedRefs, our
//! CRDs Accepted); then what makes the pattern what it is. One API server per pattern: the
//! patterns share namespace names, and a real API server without a controller manager never
//! finishes deleting a namespace.

use crate::common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use switchboard_controller::push::ConfigHub;
use switchboard_controller::reconcile;
use switchboard_controller::render::{
    CHECKSUM_ANNOTATION, CONTROLLER_NAME, FIELD_MANAGER, RenderOptions,
};

/// What a pattern's run left on the API server.
struct Applied {
    client: Client,
    docs: Vec<Value>,
    _cluster: TestCluster,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Applied {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Applied {
    /// The rendered proxy config of a Gateway (its ConfigMap's `config.yaml`), parsed.
    async fn config(&self, ns: &str, gateway: &str) -> Value {
        let cm = Api::<ConfigMap>::namespaced(self.client.clone(), ns)
            .get(gateway)
            .await
            .unwrap();
        yaml_docs(&cm.data.unwrap()["config.yaml"]).remove(0)
    }

    async fn deployment(&self, ns: &str, gateway: &str) -> Value {
        let d = Api::<Deployment>::namespaced(self.client.clone(), ns)
            .get(gateway)
            .await
            .unwrap();
        serde_json::to_value(d).unwrap()
    }
}

fn cond<'a>(conds: &'a Value, ty: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == ty)
}

fn is_true(conds: &Value, ty: &str) -> bool {
    cond(conds, ty).is_some_and(|c| c["status"] == "True")
}

/// Applies examples/kubernetes/{pattern}/*.yaml server-side to a fresh real API server (with
/// the `switchboard` GatewayClass the install manifests create), runs the controller, and
/// waits until every object of ours has its children and a true status.
async fn apply_pattern(pattern: &str) -> Option<Applied> {
    let cluster = TestCluster::start().await;
    if !cluster.is_real() {
        switchboard_testing::peers::skip("needs a real API server (SWITCHBOARD_TEST_APISERVER)");
        return None;
    }
    let client = cluster.client.clone();
    let dir = workspace_root().join("examples/kubernetes").join(pattern);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = vec![json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": "switchboard"}, "spec": {"controllerName": CONTROLLER_NAME}})];
    for f in files {
        docs.extend(yaml_docs(&std::fs::read_to_string(f).unwrap()));
    }
    let pp = PatchParams::apply("kubectl").force();
    for d in &docs {
        let (api, name) = dyn_api(&client, d);
        api.patch(&name, &pp, &Patch::Apply(d))
            .await
            .unwrap_or_else(|e| panic!("{pattern}: applying {} {name}: {e}", d["kind"]));
    }

    let hub = ConfigHub::new();
    hub.set_serving(true);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(reconcile::run(
        client.clone(),
        hub,
        RenderOptions {
            push_url: Some("https://switchboard-controller.switchboard-system.svc:9977".into()),
            ..Default::default()
        },
        async move {
            let _ = rx.await;
        },
    ));
    let applied = Applied {
        client: client.clone(),
        docs,
        _cluster: cluster,
        stop: Some(tx),
    };

    let of = |kind: &str| {
        applied
            .docs
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| {
                (
                    d["metadata"]["namespace"].as_str().unwrap().to_string(),
                    d["metadata"]["name"].as_str().unwrap().to_string(),
                    d.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let gateways: Vec<_> = of("Gateway")
        .into_iter()
        .filter(|(_, _, d)| d["spec"]["gatewayClassName"] == "switchboard")
        .collect();
    assert!(!gateways.is_empty(), "{pattern}: no Gateway of ours");
    for (ns, name, doc) in &gateways {
        let (api, _) = dyn_api(&client, doc);
        let uid = api.get(name).await.unwrap().uid().unwrap();
        // Children, owned by the Gateway; the Deployment carries the config's checksum.
        let owned = |meta: &kube::api::ObjectMeta| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.kind == "Gateway" && o.controller == Some(true))
        };
        let svc = eventually_async(
            &format!("{pattern}: children of {ns}/{name}"),
            Duration::from_secs(60),
            || async {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .ok()??;
                let d = Api::<Deployment>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .ok()??;
                let s = Api::<Service>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .ok()??;
                let a = Api::<ServiceAccount>::namespaced(client.clone(), ns)
                    .get_opt(name)
                    .await
                    .ok()??;
                let yaml = cm.data.as_ref()?.get("config.yaml")?.clone();
                use sha2::Digest;
                let template = &d.spec.template;
                let sum =
                    template.metadata.as_ref()?.annotations.as_ref()?[CHECKSUM_ANNOTATION].clone();
                (sum == hex::encode(sha2::Sha256::digest(yaml.as_bytes()))
                    && [&cm.metadata, &d.metadata, &s.metadata, &a.metadata]
                        .into_iter()
                        .all(owned))
                .then_some(s)
            },
        )
        .await;
        // No cloud here: play its load-balancer controller, which gives a LoadBalancer Service
        // an address; until then the Gateway is truthfully Programmed=False.
        let lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        if lb {
            Api::<Service>::namespaced(client.clone(), ns)
                .patch_status(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(
                        json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
                    ),
                )
                .await
                .unwrap();
        }
        let what = format!("{pattern}: Gateway {ns}/{name} Accepted and Programmed");
        let gw = eventually_async(&what, Duration::from_secs(60), || async {
            let g = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            let st = &g["status"];
            let listeners = st["listeners"].as_array()?;
            (is_true(&st["conditions"], "Accepted")
                && is_true(&st["conditions"], "Programmed")
                && listeners.len() == doc["spec"]["listeners"].as_array().unwrap().len()
                && listeners.iter().all(|l| {
                    ["Accepted", "Programmed", "ResolvedRefs"]
                        .iter()
                        .all(|t| is_true(&l["conditions"], t))
                }))
            .then_some(g)
        })
        .await;
        if lb {
            assert_eq!(
                gw["status"]["addresses"][0]["value"], "203.0.113.7",
                "{}",
                gw["status"]
            );
        } else {
            assert!(
                !gw["status"]["addresses"].as_array().unwrap().is_empty(),
                "{}",
                gw["status"]
            );
        }
    }
    for (ns, name, doc) in of("HTTPRoute") {
        let (api, _) = dyn_api(&client, &doc);
        let want = doc["spec"]["parentRefs"].as_array().unwrap().len();
        eventually_async(
            &format!("{pattern}: HTTPRoute {ns}/{name} Accepted and ResolvedRefs on every parent"),
            Duration::from_secs(60),
            || async {
                let r = serde_json::to_value(api.get(&name).await.ok()?).ok()?;
                let parents: Vec<_> = r["status"]["parents"]
                    .as_array()?
                    .iter()
                    .filter(|p| p["controllerName"] == CONTROLLER_NAME)
                    .collect();
                (parents.len() == want
                    && parents.iter().all(|p| {
                        is_true(&p["conditions"], "Accepted")
                            && is_true(&p["conditions"], "ResolvedRefs")
                    }))
                .then_some(())
            },
        )
        .await;
    }
    for kind in ["Backend", "Policy"] {
        for (ns, name, doc) in of(kind) {
            let (api, _) = dyn_api(&client, &doc);
            eventually_async(
                &format!("{pattern}: {kind} {ns}/{name} Accepted"),
                Duration::from_secs(60),
                || async {
                    let o = serde_json::to_value(api.get(&name).await.ok()?).ok()?;
                    is_true(&o["status"]["conditions"], "Accepted").then_some(())
                },
            )
            .await;
        }
    }
    println!("{pattern}: every object has its children and a true status");
    Some(applied)
}

/// The routes of a rendered config, by name.
fn route<'a>(config: &'a Value, needle: &str) -> &'a Value {
    config["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["routes"].as_array().unwrap())
        .find(|r| r["name"].as_str().unwrap().contains(needle))
        .unwrap_or_else(|| panic!("no route named like {needle} in {config}"))
}

#[tokio::test]
async fn simple_ingress() {
    let Some(a) = apply_pattern("simple-ingress").await else {
        return;
    };
    let c = a.config("web", "web").await;
    let api = route(&c, "shop");
    assert_eq!(api["match"]["host"], "shop.example.com", "{api}");
    let text = c.to_string();
    assert!(
        text.contains("shop-api.web.svc.cluster.local:8080"),
        "{text}"
    );
    assert!(
        text.contains("shop-frontend.web.svc.cluster.local:80"),
        "{text}"
    );
    assert!(text.contains("shop-api"), "{text}");
    assert!(text.contains("30s"), "the rule's request timeout: {text}");
}

#[tokio::test]
async fn sharded_gateways() {
    let Some(a) = apply_pattern("sharded-gateways").await else {
        return;
    };
    // One fleet per team: team-a sized by its GatewayParameters, team-b left to its HPA.
    let da = a.deployment("team-a", "team-a").await;
    assert_eq!(da["spec"]["replicas"], 4, "{}", da["spec"]);
    // team-b: the controller does not own `replicas` (the API server defaults it at create;
    // the HPA sets it from then on without a conflict).
    let db = a.deployment("team-b", "team-b").await;
    let ours: Vec<_> = db["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["manager"] == FIELD_MANAGER)
        .collect();
    assert_eq!(ours.len(), 1, "{}", db["metadata"]);
    assert!(
        ours[0]["fieldsV1"]["f:spec"].get("f:template").is_some(),
        "{}",
        ours[0]
    );
    assert!(
        ours[0]["fieldsV1"]["f:spec"].get("f:replicas").is_none(),
        "{}",
        ours[0]
    );
    let own_a = da["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["manager"] == FIELD_MANAGER)
        .unwrap();
    assert!(
        own_a["fieldsV1"]["f:spec"].get("f:replicas").is_some(),
        "{own_a}"
    );
    let ca = a.config("team-a", "team-a").await.to_string();
    let cb = a.config("team-b", "team-b").await.to_string();
    assert!(
        ca.contains(".team-a.svc") && !ca.contains(".team-b.svc"),
        "{ca}"
    );
    assert!(
        cb.contains(".team-b.svc") && !cb.contains(".team-a.svc"),
        "{cb}"
    );
}

#[tokio::test]
async fn central_ingress() {
    let Some(a) = apply_pattern("central-ingress").await else {
        return;
    };
    // The edge routes by host to the second-layer Gateways' Services (which the controller
    // created), allowed by the ReferenceGrants; its header Policy applies at the edge.
    let edge = a.config("edge", "edge").await;
    let text = edge.to_string();
    assert!(text.contains("team-a.team-a.svc.cluster.local"), "{text}");
    assert!(text.contains("team-b.team-b.svc.cluster.local"), "{text}");
    assert!(text.contains("x-entry-point"), "{text}");
    for team in ["team-a", "team-b"] {
        Api::<Service>::namespaced(a.client.clone(), team)
            .get(team)
            .await
            .unwrap();
        let inner = a.config(team, team).await.to_string();
        assert!(!inner.contains("x-entry-point"), "{inner}");
    }
}

#[tokio::test]
async fn mcp_and_llm() {
    let Some(a) = apply_pattern("mcp-and-llm").await else {
        return;
    };
    let c = a.config("agents", "agents").await;
    let text = c.to_string();
    // Failover order kept; secrets as env references, never text.
    let llm = &route(&c, "agents")["llm"];
    let providers = if llm.is_null() {
        c["listeners"][0]["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| !r["llm"].is_null())
            .unwrap()["llm"]["models"][0]["providers"]
            .clone()
    } else {
        llm["models"][0]["providers"].clone()
    };
    assert_eq!(providers[0]["provider"], "openai", "{providers}");
    assert_eq!(providers[0]["priority"], 0, "{providers}");
    assert_eq!(providers[1]["provider"], "anthropic", "{providers}");
    assert_eq!(providers[1]["priority"], 1, "{providers}");
    assert!(
        !text.contains("replace-me"),
        "a secret value in the ConfigMap: {text}"
    );
    assert!(
        text.contains("search-mcp.agents.svc.cluster.local:3001"),
        "{text}"
    );
    assert!(
        text.contains("fail_closed") && text.contains("docs__delete_*"),
        "{text}"
    );
    let d = a.deployment("agents", "agents").await.to_string();
    assert!(d.contains("llm-keys") && d.contains("secretKeyRef"), "{d}");
}

#[tokio::test]
async fn istio_ingress() {
    let Some(a) = apply_pattern("istio-ingress").await else {
        return;
    };
    let sidecar = a.deployment("mesh", "ingress-sidecar").await;
    let labels = &sidecar["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["sidecar.istio.io/inject"], "true", "{labels}");
    let ambient = a.deployment("mesh", "ingress-ambient").await;
    let labels = &ambient["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels["istio.io/dataplane-mode"], "ambient", "{labels}");
}

#[tokio::test]
async fn behind_load_balancer() {
    let Some(a) = apply_pattern("behind-load-balancer").await else {
        return;
    };
    // Behind the NLB: the Service asks for it, keeps client addresses, and every listener
    // requires the PROXY header the balancer sends.
    let s = Api::<Service>::namespaced(a.client.clone(), "shop")
        .get("public")
        .await
        .unwrap();
    let annotations = s.metadata.annotations.unwrap();
    assert_eq!(
        annotations["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"],
        "*"
    );
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(
        spec.load_balancer_class.as_deref(),
        Some("service.k8s.aws/nlb")
    );
    assert!(spec.health_check_node_port.is_some());
    let public = a.config("shop", "public").await;
    for l in public["listeners"].as_array().unwrap() {
        assert_eq!(l["proxy_protocol"], "v2", "{l}");
        assert!(l.get("trusted_proxies").is_none(), "{l}");
    }
    // Behind the HTTP balancer: X-Forwarded-For believed from 10.0.0.0/8 only.
    let internal = a.config("shop", "internal").await;
    for l in internal["listeners"].as_array().unwrap() {
        assert_eq!(l["trusted_proxies"]["cidrs"][0], "10.0.0.0/8", "{l}");
        assert!(l.get("proxy_protocol").is_none(), "{l}");
    }
    for gw in ["public", "internal"] {
        assert_eq!(a.deployment("shop", gw).await["spec"]["replicas"], 2);
    }
}
