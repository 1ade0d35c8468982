//! Installing the controller and running it from a workstation, on a real API server:
//!
//! - `switchboard-controller install` is what examples/kubernetes/install.yaml holds;
//! - its output applies server-side without warnings, and the controller running with the
//!   token of the ServiceAccount it creates (exactly its RBAC) passes its permission check,
//!   leads, reconciles a Gateway and serves the Gateway's proxy its config over HTTPS after a
//!   real TokenReview;
//! - `switchboard-controller run` with an admin's kubeconfig and no install manifests puts its
//!   Lease in the kubeconfig context's namespace; a missing namespace and a missing permission
//!   are one clear error each, and the process exits.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::config::{AuthInfo, Kubeconfig};
use serde_json::{Value, json};
use switchboard_controller::gateway_api::Gateway;

fn controller_bin() -> &'static str {
    env!("CARGO_BIN_EXE_switchboard-controller")
}

/// `switchboard-controller ARGS`'s stdout.
fn controller_output(args: &[&str]) -> String {
    let out = std::process::Command::new(controller_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_committed_install_yaml_is_the_install_output() {
    let path = workspace_root().join("examples/kubernetes/install.yaml");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == controller_output(&["install"]),
        "examples/kubernetes/install.yaml is stale: run \
         `cargo run -p switchboard-controller -- install > examples/kubernetes/install.yaml`"
    );
}

#[test]
fn install_prints_every_part_with_least_privilege() {
    let docs = yaml_docs(&controller_output(&["install"]));
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    for k in [
        "Namespace",
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "GatewayClass",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    assert_eq!(kinds[0], "Namespace", "the namespace comes first");
    // No wildcard, and the only write to anything but children, status, Events and
    // TokenReviews is in the controller's own namespace.
    for d in docs
        .iter()
        .filter(|d| d["kind"] == "ClusterRole" || d["kind"] == "Role")
    {
        for rule in d["rules"].as_array().unwrap() {
            for field in ["apiGroups", "resources", "verbs"] {
                assert!(
                    !rule[field].as_array().unwrap().contains(&json!("*")),
                    "{rule}"
                );
            }
        }
    }
    let cluster_role = docs.iter().find(|d| d["kind"] == "ClusterRole").unwrap();
    for rule in cluster_role["rules"].as_array().unwrap() {
        if rule["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("secrets"))
        {
            assert_eq!(rule["verbs"], json!(["list", "watch"]), "{rule}");
        }
        if rule["resources"]
            .as_array()
            .unwrap()
            .contains(&json!("leases"))
        {
            panic!("leases cluster-wide: {rule}");
        }
    }
    let dep = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(c[probe]["httpGet"]["path"], "/healthz", "{c}");
        assert_eq!(c[probe]["httpGet"]["scheme"], "HTTPS", "{c}");
    }
    assert_eq!(c["resources"]["requests"]["memory"], "64Mi", "{c}");
    assert_eq!(c["resources"]["limits"]["memory"], "256Mi", "{c}");
    assert_eq!(dep["spec"]["replicas"], 2);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["serviceAccountName"], "switchboard-controller");
    let pdb = docs
        .iter()
        .find(|d| d["kind"] == "PodDisruptionBudget")
        .unwrap();
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        dep["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    // Images of one's own.
    let mine = yaml_docs(&controller_output(&[
        "install",
        "--image",
        "registry.example/switchboard-controller:1",
        "--proxy-image",
        "registry.example/switchboard:1",
    ]));
    let c = &mine.iter().find(|d| d["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"]["containers"]
        [0];
    assert_eq!(c["image"], "registry.example/switchboard-controller:1");
    assert!(
        c["env"].as_array().unwrap().contains(
            &json!({"name": "SWITCHBOARD_PROXY_IMAGE", "value": "registry.example/switchboard:1"})
        ),
        "{c}"
    );
    // `--without-crds` leaves our CRDs out; `--namespace` moves everything namespaced.
    let other = yaml_docs(&controller_output(&[
        "install",
        "--without-crds",
        "--namespace",
        "sb-elsewhere",
    ]));
    assert!(
        other
            .iter()
            .all(|d| d["kind"] != "CustomResourceDefinition")
    );
    for d in &other {
        if let Some(ns) = d["metadata"]["namespace"].as_str() {
            assert_eq!(ns, "sb-elsewhere", "{}", d["kind"]);
        }
    }
}

/// kubectl beside the API server this test started (or on PATH for a KUBECONFIG cluster).
fn kubectl(cluster: &TestCluster) -> PathBuf {
    match &cluster.owned {
        Some(o) => o.dir.join("bin/kubectl"),
        None => PathBuf::from("kubectl"),
    }
}

/// Runs kubectl with the cluster's admin kubeconfig; returns stdout, asserting success.
fn kubectl_run(cluster: &TestCluster, args: &[&str], stdin: Option<&str>) -> (String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(kubectl(cluster))
        .arg("--kubeconfig")
        .arg(&cluster.kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "kubectl {args:?}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// `switchboard-controller install | kubectl apply --server-side -f -`, asserting no warning.
fn apply_install(cluster: &TestCluster) {
    let manifests = controller_output(&["install"]);
    let (stdout, stderr) = kubectl_run(
        cluster,
        &["apply", "--server-side", "-f", "-"],
        Some(&manifests),
    );
    assert!(
        !stderr.to_lowercase().contains("warning"),
        "{stdout}\n{stderr}"
    );
    println!("install applied:\n{stdout}");
}

/// A token for ServiceAccount `ns/name` (TokenRequest, as the kubelet gets a pod's).
fn token_for(cluster: &TestCluster, ns: &str, name: &str) -> String {
    let (token, _) = kubectl_run(cluster, &["create", "token", name, "-n", ns], None);
    token.trim().to_string()
}

/// The cluster's kubeconfig with every user replaced by `token` (when given) and the
/// current context's namespace set to `namespace` (when given), written into `dir`.
fn kubeconfig_with(
    cluster: &TestCluster,
    dir: &Path,
    token: Option<&str>,
    namespace: Option<&str>,
) -> PathBuf {
    let mut kc = Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
    if let Some(token) = token {
        for ai in &mut kc.auth_infos {
            ai.auth_info = Some(AuthInfo {
                token: Some(token.to_string().into()),
                ..Default::default()
            });
        }
    }
    let current = kc.current_context.clone().unwrap();
    for c in &mut kc.contexts {
        if c.name == current {
            c.context.as_mut().unwrap().namespace = namespace.map(String::from);
        }
    }
    let path = dir.join(format!("kubeconfig-{}", rand_suffix()));
    std::fs::write(&path, serde_json::to_vec(&kc).unwrap()).unwrap();
    path
}

fn rand_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!("{:08x}", h.finish() as u32)
}

/// The warnings in a controller's log, but for kube's "Server cert bypassed" (the test
/// kubeconfig skips verifying the API server's self-signed certificate).
fn warnings(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(" WARN ") && !l.contains("Server cert bypassed"))
        .collect()
}

fn cond<'a>(conds: &'a Value, ty: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == ty)
}

#[tokio::test]
async fn the_install_manifests_apply_and_the_controller_runs_with_exactly_their_rbac() {
    let cluster = TestCluster::start().await;
    assert!(
        cluster.is_real(),
        "needs a real API server (RBAC, TokenRequest)"
    );
    let client = cluster.client.clone();
    apply_install(&cluster);
    // Applying it again is a no-op, also without warnings.
    apply_install(&cluster);

    let dir = tempfile::tempdir().unwrap();
    let sa_token = token_for(&cluster, "switchboard-system", "switchboard-controller");
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), Some(&sa_token), None);
    // As in its pod: POD_NAMESPACE from the downward API, the default certificate Secret and
    // lease duration.
    let mut ctl = spawn_controller(
        &kubeconfig,
        &[],
        &[
            ("POD_NAMESPACE", "switchboard-system"),
            ("POD_NAME", "ctl-0"),
        ],
    );
    let port = ctl.push_port().await;
    let probe = Probe {
        https: push_client(&client, "switchboard-system").await,
        port,
    };
    ctl.eventually("the controller leads", Duration::from_secs(30), || async {
        probe.ready().await?.then_some(())
    })
    .await;
    let lease = Api::<Lease>::namespaced(client.clone(), "switchboard-system")
        .get("switchboard-controller")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some("ctl-0")
    );

    // It reconciles a Gateway of the installed `switchboard` class.
    let ns = cluster.namespace("sb-installed").await;
    for doc in [
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": "switchboard",
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "r1", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge"}],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/one"}}],
                                   "backendRefs": [{"name": "web", "port": 80}]}]}}),
    ] {
        cluster.create(doc).await;
    }
    let gateways = Api::<Gateway>::namespaced(client.clone(), &ns);
    ctl.eventually("Gateway Accepted", Duration::from_secs(30), || async {
        let g = gateways.get("edge").await.ok()?;
        let v = serde_json::to_value(g.status?).ok()?;
        (cond(&v["conditions"], "Accepted")?["status"] == "True").then_some(())
    })
    .await;
    let data = ctl
        .eventually(
            "the proxy ConfigMap with the route",
            Duration::from_secs(30),
            || async {
                let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
                    .get_opt("edge")
                    .await
                    .ok()??;
                let data = cm.data?;
                data["config.yaml"].contains("/one").then_some(data)
            },
        )
        .await;
    let secret_ca = ctl
        .eventually("the certificate Secret", Duration::from_secs(5), || async {
            let s = Api::<k8s_openapi::api::core::v1::Secret>::namespaced(
                client.clone(),
                "switchboard-system",
            )
            .get("switchboard-controller-tls")
            .await
            .ok()?;
            String::from_utf8(s.data?.get("ca.crt")?.0.clone()).ok()
        })
        .await;
    assert_eq!(data["control-plane-ca.pem"], secret_ca);
    let dep = ctl
        .eventually("the proxy Deployment", Duration::from_secs(30), || async {
            Api::<Deployment>::namespaced(client.clone(), &ns)
                .get_opt("edge")
                .await
                .ok()?
        })
        .await;
    let args = dep.spec.template.spec.unwrap().containers[0]
        .args
        .clone()
        .unwrap();
    let expected_url =
        format!("https://switchboard-controller.switchboard-system.svc:9977/v1/config/{ns}/edge");
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--control-plane" && w[1] == expected_url),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(
            |w| w[0] == "--control-plane-ca" && w[1] == "/etc/switchboard/control-plane-ca.pem"
        ),
        "{args:?}"
    );

    // The Gateway's proxy (its ServiceAccount's token) gets its config over HTTPS: the
    // controller checked the token with a TokenReview under its own RBAC. Another
    // ServiceAccount's token is refused.
    let stream = format!("https://127.0.0.1:{port}/v1/config/{ns}/edge");
    let proxy_token = token_for(&cluster, &ns, "edge");
    // Nothing it did so far was refused: no warning in its log.
    let log = ctl.log_text();
    assert!(
        warnings(&log).is_empty(),
        "warnings while running with the install RBAC:\n{log}"
    );
    let mut resp = probe
        .https
        .get(&stream)
        .bearer_auth(&proxy_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let line: Value = serde_json::from_slice(first.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert!(line["config"].as_str().unwrap().contains("/one"), "{line}");
    drop(resp);
    let other = probe
        .https
        .get(&stream)
        .bearer_auth(&sa_token)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);

    // SIGTERM: it releases the Lease and exits cleanly.
    std::process::Command::new("kill")
        .arg(ctl.child.id().unwrap().to_string())
        .status()
        .unwrap();
    let status = ctl.exit(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}\n{}", ctl.log_text());
}

#[tokio::test]
async fn run_from_a_workstation_uses_the_kubeconfig_namespace() {
    let cluster = TestCluster::start().await;
    assert!(cluster.is_real(), "needs a real API server");
    let client = cluster.client.clone();
    // No install manifests: an admin's kubeconfig whose context names namespace `ns`.
    let ns = cluster.namespace("sb-workstation").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), None, Some(&ns));
    let ctl = spawn_controller(&kubeconfig, &[], &[]);
    let port = ctl.push_port().await;
    // The certificate Secret and the Lease are in the context's namespace.
    let probe = Probe {
        https: push_client(&client, &ns).await,
        port,
    };
    ctl.eventually("the controller leads", Duration::from_secs(30), || async {
        probe.ready().await?.then_some(())
    })
    .await;
    let leases = Api::<Lease>::namespaced(client.clone(), &ns);
    let lease = leases.get("switchboard-controller").await.unwrap();
    assert!(lease.spec.unwrap().holder_identity.is_some());
    assert!(
        Api::<Lease>::namespaced(client.clone(), "default")
            .get_opt("switchboard-controller")
            .await
            .unwrap()
            .is_none()
    );
    drop(ctl);

    // --plain-http: the push server speaks plain HTTP, and the proxies it renders are told
    // to follow it over HTTP (and get no CA).
    let ctl = spawn_controller(&kubeconfig, &["--plain-http"], &[]);
    let port = ctl.push_port().await;
    ctl.eventually(
        "the plain-HTTP controller leads",
        Duration::from_secs(30),
        || async {
            let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let gw_ns = cluster.namespace("sb-plain").await;
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": gw_ns},
               "spec": {"controllerName": switchboard_controller::render::CONTROLLER_NAME}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": gw_ns},
               "spec": {"gatewayClassName": gw_ns,
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
    ] {
        cluster.create(doc).await;
    }
    let args = ctl
        .eventually("the proxy Deployment", Duration::from_secs(30), || async {
            let d = Api::<Deployment>::namespaced(client.clone(), &gw_ns)
                .get_opt("edge")
                .await
                .ok()??;
            d.spec.template.spec?.containers[0].args.clone()
        })
        .await;
    assert!(
        args.contains(&format!(
            "http://switchboard-controller.{ns}.svc:9977/v1/config/{gw_ns}/edge"
        )) && args.contains(&"--control-plane-allow-http".to_string())
            && !args.contains(&"--control-plane-ca".to_string()),
        "{args:?}"
    );
    drop(ctl);

    // A context namespace that does not exist: one error naming it and where it came from.
    let missing = format!("{ns}-missing");
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), None, Some(&missing));
    let mut ctl = spawn_controller(&kubeconfig, &[], &[]);
    let status = ctl.exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = ctl.log_text();
    assert!(
        log.contains(&format!("namespace `{missing}` does not exist"))
            && log.contains("kubeconfig context"),
        "{log}"
    );
}

#[tokio::test]
async fn an_identity_without_a_permission_gets_one_error_naming_it() {
    let cluster = TestCluster::start().await;
    assert!(cluster.is_real(), "needs RBAC");
    apply_install(&cluster);
    let ns = cluster.namespace("sb-limited").await;
    // A ServiceAccount bound to the install's ClusterRole only (not its Role in `ns`).
    for doc in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "limited", "namespace": ns}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": format!("{ns}-limited")},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                           "name": "switchboard-controller"},
               "subjects": [{"kind": "ServiceAccount", "name": "limited", "namespace": ns}]}),
    ] {
        cluster.create(doc).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let token = token_for(&cluster, &ns, "limited");
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), Some(&token), Some(&ns));
    let mut ctl = spawn_controller(&kubeconfig, &[], &[]);
    let status = ctl.exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = ctl.log_text();
    println!("{log}");
    // Exactly the Role's permissions are named, once, with what to do; nothing is retried.
    let missing: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| l.contains(&format!(" in namespace {ns}")))
        .collect();
    assert_eq!(
        missing,
        [
            format!("get coordination.k8s.io/leases in namespace {ns}"),
            format!("create coordination.k8s.io/leases in namespace {ns}"),
            format!("update coordination.k8s.io/leases in namespace {ns}"),
            format!("get core/secrets in namespace {ns}"),
            format!("create core/secrets in namespace {ns}"),
        ],
        "{log}"
    );
    assert_eq!(log.matches("lacks 5 permission(s)").count(), 1, "{log}");
    assert!(log.contains("switchboard-controller install"), "{log}");
    assert!(warnings(&log).is_empty(), "{log}");

    // With --plain-http the Secret is not needed, so only the Lease permissions are named.
    let mut ctl = spawn_controller(&kubeconfig, &["--plain-http"], &[]);
    let status = ctl.exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = ctl.log_text();
    assert!(log.contains("lacks 3 permission(s)"), "{log}");
    assert!(!log.contains("secrets"), "{log}");

    // An identity with no grants at all: the whole list, still one error.
    cluster
        .create(json!({"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": "nobody", "namespace": ns}}))
        .await;
    let token = token_for(&cluster, &ns, "nobody");
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), Some(&token), Some(&ns));
    let mut ctl = spawn_controller(&kubeconfig, &[], &[]);
    let status = ctl.exit(Duration::from_secs(20)).await;
    assert!(!status.success());
    let log = ctl.log_text();
    assert_eq!(log.matches("permission(s) it needs").count(), 1, "{log}");
    for needed in [
        "list gateway.networking.k8s.io/gateways",
        "patch gateway.networking.k8s.io/gateways/status",
        "create authentication.k8s.io/tokenreviews",
        "get core/namespaces",
        "watch core/secrets",
    ] {
        assert!(log.contains(&format!("  {needed}\n")), "{needed}: {log}");
    }
}

#[tokio::test]
async fn a_kind_that_cannot_be_listed_is_named_in_warnings_until_its_listing_completes() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let cluster = TestCluster::start().await;
    assert!(cluster.is_real(), "needs a real API server");
    let client = cluster.client.clone();
    // The Backend CRD is missing: listing backends answers 404.
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    crds.delete("backends.switchboard.dev", &Default::default())
        .await
        .unwrap();
    let backends = Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &kube::api::ApiResource::erase::<switchboard_controller::crd::Backend>(&()),
    );
    eventually_async("the Backend CRD gone", Duration::from_secs(30), || async {
        matches!(
            backends.list(&Default::default()).await,
            Err(kube::Error::Api(e)) if e.code == 404
        )
        .then_some(())
    })
    .await;
    let ns = cluster.namespace("sb-unlisted").await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_with(&cluster, dir.path(), None, Some(&ns));
    let started = std::time::Instant::now();
    let ctl = spawn_controller(&kubeconfig, &[], &[]);
    // A failed attempt is a warning naming the kind (it retries about every second; while
    // it keeps failing, one warning per 10 s), and every 10 s one says which kinds hold
    // every reconcile back.
    ctl.eventually("the warnings", Duration::from_secs(40), || async {
        let log = ctl.log_text();
        let named = |needle: &str| {
            log.lines()
                .any(|l| l.contains(" WARN ") && l.contains(needle) && l.contains("Backend"))
        };
        (named("watch failed; retrying") && named("no Gateway is reconciled until")).then_some(())
    })
    .await;
    let log = ctl.log_text();
    assert!(!log.contains("caches complete"));
    let warned = log
        .lines()
        .filter(|l| l.contains(" WARN ") && l.contains("watch failed") && l.contains("Backend"))
        .count() as u64;
    assert!(
        warned <= 1 + started.elapsed().as_secs() / 10,
        "{warned} warnings in {:?}:\n{log}",
        started.elapsed()
    );
    // Once the CRD is back, the listing completes (at the watch's next retry).
    install_crds(&client).await;
    ctl.eventually("caches complete", Duration::from_secs(60), || async {
        ctl.log_text()
            .contains("caches complete; reconciling Gateways")
            .then_some(())
    })
    .await;
}
