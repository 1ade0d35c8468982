//! The whole controller loop (watches, reconcile, apply, prune, status) against the API server
//! of `common::TestCluster` (a real kube-apiserver when available, else the in-process fake;
//! the output says which one ran).

use crate::common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use switchboard_controller::gateway_api::{Gateway, GatewayClass, HTTPRoute};
use switchboard_controller::push::ConfigHub;
use switchboard_controller::reconcile;
use switchboard_controller::render::{CHECKSUM_ANNOTATION, CONTROLLER_NAME, RenderOptions};

fn cond<'a>(conds: &'a serde_json::Value, ty: &str) -> Option<&'a serde_json::Value> {
    conds.as_array()?.iter().find(|c| c["type"] == ty)
}

#[tokio::test]
async fn controller_loop_renders_applies_prunes_and_writes_status() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let _fake = cluster.fake.clone();
    let ns_name = cluster.namespace("sb-loop").await;
    let ns = ns_name.as_str();
    let pp = PostParams::default();

    let class: GatewayClass = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
        "metadata": {"name": ns},
        "spec": {"controllerName": CONTROLLER_NAME}
    }))
    .unwrap();
    Api::<GatewayClass>::all(client.clone())
        .create(&pp, &class)
        .await
        .unwrap();
    let web: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&pp, &web)
        .await
        .unwrap();
    let gw: Gateway = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": ns},
        "spec": {"gatewayClassName": ns,
                 "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}
    }))
    .unwrap();
    let gateways = Api::<Gateway>::namespaced(client.clone(), ns);
    gateways.create(&pp, &gw).await.unwrap();
    let route: HTTPRoute = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "web", "namespace": ns},
        "spec": {"parentRefs": [{"name": "edge"}],
                 "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/app"}}],
                            "backendRefs": [{"name": "web", "port": 80}]}]}
    }))
    .unwrap();
    let routes = Api::<HTTPRoute>::namespaced(client.clone(), ns);
    routes.create(&pp, &route).await.unwrap();
    // Another controller's status entry must survive our writes.
    routes
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"parents": [{
                "parentRef": {"name": "other-gw"}, "controllerName": "example.com/other",
                "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
                                "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]}})),
        )
        .await
        .unwrap();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let hub = ConfigHub::new();
    let opts = RenderOptions {
        push_url: Some("http://controller.test:9977".into()),
        ..Default::default()
    };
    let loop_task = tokio::spawn(reconcile::run(
        client.clone(),
        hub.clone(),
        opts,
        async move {
            let _ = stop_rx.await;
        },
    ));

    // GatewayClass accepted.
    let classes = Api::<GatewayClass>::all(client.clone());
    eventually_async("GatewayClass Accepted", Duration::from_secs(20), || async {
        let c = classes.get(ns).await.ok()?;
        let v = serde_json::to_value(c.status?).ok()?;
        (cond(&v["conditions"], "Accepted")?["status"] == "True").then_some(())
    })
    .await;

    // Children applied, config rendered with the Service URL, checksum annotation set.
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    let configmaps = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let services = Api::<Service>::namespaced(client.clone(), ns);
    let cm = eventually_async("ConfigMap", Duration::from_secs(20), || async {
        configmaps.get_opt("edge").await.ok()?
    })
    .await;
    let yaml = cm.data.unwrap()["config.yaml"].clone();
    assert!(
        yaml.contains(&format!("http://web.{ns}.svc.cluster.local:80")),
        "{yaml}"
    );
    assert!(yaml.contains("path_prefix: /app"), "{yaml}");
    let dep = eventually_async("Deployment", Duration::from_secs(20), || async {
        deployments.get_opt("edge").await.ok()?
    })
    .await;
    let checksum1 =
        dep.spec.template.metadata.unwrap().annotations.unwrap()[CHECKSUM_ANNOTATION].clone();
    assert_eq!(dep.metadata.owner_references.unwrap()[0].kind, "Gateway");
    assert!(services.get_opt("edge").await.unwrap().is_some());
    let pushed = eventually("published config", Duration::from_secs(20), || {
        hub.current(ns, "edge")
    })
    .await;
    assert_eq!(pushed.config, yaml);

    // Gateway Accepted; not Programmed until the LoadBalancer has an address.
    let st = eventually_async("Gateway Accepted", Duration::from_secs(20), || async {
        let g = gateways.get("edge").await.ok()?;
        let v = serde_json::to_value(g.status?).ok()?;
        // (The CRD defaults both conditions to Unknown/Pending until a controller writes.)
        (cond(&v["conditions"], "Programmed")?["reason"] != "Pending").then_some(v)
    })
    .await;
    assert_eq!(
        cond(&st["conditions"], "Accepted").unwrap()["status"],
        "True"
    );
    assert_eq!(
        cond(&st["conditions"], "Programmed").unwrap()["reason"],
        "AddressNotAssigned"
    );
    assert_eq!(st["listeners"][0]["attachedRoutes"], 1, "{st}");
    if _fake.is_some() {
        // Play the cloud load balancer.
        services
            .patch_status(
                "edge",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}),
                ),
            )
            .await
            .unwrap();
        let st = eventually_async("Gateway Programmed", Duration::from_secs(20), || async {
            let g = gateways.get("edge").await.ok()?;
            let v = serde_json::to_value(g.status?).ok()?;
            (cond(&v["conditions"], "Programmed")?["status"] == "True").then_some(v)
        })
        .await;
        assert_eq!(st["addresses"][0]["value"], "203.0.113.7");
    }

    // HTTPRoute parents: ours Accepted and ResolvedRefs; the other controller's kept.
    let parents = eventually_async("HTTPRoute status", Duration::from_secs(20), || async {
        let r = routes.get("web").await.ok()?;
        let v = serde_json::to_value(r.status?).ok()?;
        let parents = v["parents"].as_array()?.clone();
        parents
            .iter()
            .any(|p| p["controllerName"] == CONTROLLER_NAME)
            .then_some(parents)
    })
    .await;
    assert_eq!(parents.len(), 2, "{parents:?}");
    let ours = parents
        .iter()
        .find(|p| p["controllerName"] == CONTROLLER_NAME)
        .unwrap();
    assert_eq!(
        cond(&ours["conditions"], "Accepted").unwrap()["status"],
        "True"
    );
    assert_eq!(
        cond(&ours["conditions"], "ResolvedRefs").unwrap()["status"],
        "True"
    );

    // A route change re-renders: new ConfigMap content and a new checksum (pods roll).
    routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
                                                     "backendRefs": [{"name": "web", "port": 80}]}]}})),
        )
        .await
        .unwrap();
    let checksum2 = eventually_async("checksum change", Duration::from_secs(20), || async {
        let d = deployments.get("edge").await.ok()?;
        let c = d.spec.template.metadata?.annotations?[CHECKSUM_ANNOTATION].clone();
        (c != checksum1).then_some(c)
    })
    .await;
    assert_ne!(checksum1, checksum2);
    let yaml = configmaps.get("edge").await.unwrap().data.unwrap()["config.yaml"].clone();
    assert!(yaml.contains("path_prefix: /v2"), "{yaml}");

    // A backend that does not exist: ResolvedRefs False, BackendNotFound.
    routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"rules": [{"backendRefs": [{"name": "missing", "port": 80}]}]}}),
            ),
        )
        .await
        .unwrap();
    eventually_async("ResolvedRefs False", Duration::from_secs(20), || async {
        let r = routes.get("web").await.ok()?;
        let v = serde_json::to_value(r.status?).ok()?;
        let ours = v["parents"]
            .as_array()?
            .iter()
            .find(|p| p["controllerName"] == CONTROLLER_NAME)?
            .clone();
        (cond(&ours["conditions"], "ResolvedRefs")?["reason"] == "BackendNotFound").then_some(())
    })
    .await;

    // The problem is reported as a Warning Event on the Gateway.
    if let Some(fake) = &_fake {
        eventually("warning Event", Duration::from_secs(20), || {
            fake.list("events.k8s.io", "events").into_iter().find(|e| {
                e["reason"] == "RenderWarning"
                    && e["regarding"]["name"] == "edge"
                    && e["note"].as_str().is_some_and(|n| n.contains("not found"))
            })
        })
        .await;
    }

    // The route leaves the Gateway: our entry goes, the other controller's stays.
    routes
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"parentRefs": [{"name": "elsewhere"}]}})),
        )
        .await
        .unwrap();
    eventually_async(
        "stale parent entry removed",
        Duration::from_secs(20),
        || async {
            let r = routes.get("web").await.ok()?;
            let v = serde_json::to_value(r.status?).ok()?;
            let parents = v["parents"].as_array()?.clone();
            (parents.len() == 1 && parents[0]["controllerName"] == "example.com/other")
                .then_some(())
        },
    )
    .await;

    // The Gateway moves to a class that is not ours: its fleet is pruned.
    cluster
        .create(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                       "metadata": {"name": format!("{ns}-other")},
                       "spec": {"controllerName": "example.com/other"}}),
        )
        .await;
    gateways
        .patch(
            "edge",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"gatewayClassName": format!("{ns}-other")}})),
        )
        .await
        .unwrap();
    eventually_async("prune", Duration::from_secs(20), || async {
        let d = deployments.get_opt("edge").await.ok()?;
        let c = configmaps.get_opt("edge").await.ok()?;
        (d.is_none() && c.is_none()).then_some(())
    })
    .await;
    eventually(
        "config withdrawn from push",
        Duration::from_secs(20),
        || hub.current(ns, "edge").is_none().then_some(()),
    )
    .await;

    if let Some(fake) = &_fake {
        assert!(
            fake.rejected().is_empty(),
            "writes refused by the CRD schemas: {:?}",
            fake.rejected()
        );
    }
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), loop_task)
        .await
        .expect("the controller stops on shutdown")
        .unwrap();
}

#[tokio::test]
async fn the_fake_api_server_enforces_the_real_crd_schemas() {
    let fake = FakeApiServer::start().await;
    let routes = Api::<HTTPRoute>::namespaced(fake.client(), "ns");
    let mut bad: HTTPRoute = serde_json::from_value(json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"parentRefs": [{"name": "gw"}],
                 "rules": [{"matches": [{"path": {"type": "Prefix", "value": "/"}}]}]}
    }))
    .unwrap();
    let err = routes
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not one of"), "{err}");
    bad.spec.rules[0].matches[0].path.as_mut().unwrap().type_ = Some("PathPrefix".into());
    routes.create(&PostParams::default(), &bad).await.unwrap();
    // Status: a condition without its required fields is refused.
    let err = routes
        .patch_status(
            "r",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"parents": [{"parentRef": {"name": "gw"}, "controllerName": "x/y",
                                                         "conditions": [{"type": "Accepted"}]}]}}),
            ),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("required"), "{err}");
}
