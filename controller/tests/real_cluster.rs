//! Issue 14: the controller on a real API server (see `common::TestCluster`; the fake stands
//! in where no real one is available, and tests that need real-server behaviour say so and
//! return). Restarts leave children alone, one leader at a time, one bad object breaks
//! nothing else, status tells the truth, watches survive an API server restart, and 5,000
//! routes converge and are served.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;

use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use switchboard_controller::crd::Backend;
use switchboard_controller::gateway_api::{Gateway, HTTPRoute};
use switchboard_controller::push::ConfigHub;
use switchboard_controller::reconcile;
use switchboard_controller::render::{CONTROLLER_NAME, RenderOptions};

/// An in-process controller (reconciler only; push is the hub).
struct Running {
    hub: ConfigHub,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(client: &Client, opts: RenderOptions) -> Self {
        let hub = ConfigHub::new();
        hub.set_serving(true);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(reconcile::run(
            client.clone(),
            hub.clone(),
            opts,
            async move {
                let _ = rx.await;
            },
        ));
        Self {
            hub,
            stop: Some(tx),
            task,
        }
    }
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        // A crash would not wait for anything: abort if graceful takes long.
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
        }
    }
}

fn opts() -> RenderOptions {
    RenderOptions {
        push_url: Some("http://controller.test:9977".into()),
        ..Default::default()
    }
}

fn cond<'a>(conds: &'a Value, ty: &str) -> Option<&'a Value> {
    conds.as_array()?.iter().find(|c| c["type"] == ty)
}

/// Class (named like the namespace), a Service `web`, a Gateway `edge` and a route `r1`.
async fn basic_setup(cluster: &TestCluster, ns: &str, service_type: &str) {
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": ns}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "GatewayParameters",
               "metadata": {"name": "p", "namespace": ns}, "spec": {"serviceType": service_type}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "infrastructure": {"parametersRef": {"group": "switchboard.dev", "kind": "GatewayParameters", "name": "p"}},
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        route(ns, "r1", "/one"),
    ] {
        cluster.create(doc).await;
    }
}

fn route(ns: &str, name: &str, path: &str) -> Value {
    json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": name, "namespace": ns},
           "spec": {"parentRefs": [{"name": "edge"}],
                    "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": path}}],
                               "backendRefs": [{"name": "web", "port": 80}]}]}})
}

/// Waits for the ConfigMap to hold `needle` and for the Deployment (applied after it) whose
/// checksum annotation matches it.
async fn config_with(client: &Client, ns: &str, needle: &str) -> String {
    let cms = Api::<ConfigMap>::namespaced(client.clone(), ns);
    let deps = Api::<Deployment>::namespaced(client.clone(), ns);
    eventually_async(
        &format!("ConfigMap with {needle}"),
        Duration::from_secs(30),
        || async {
            let cm = cms.get_opt("edge").await.ok()??;
            let yaml = cm.data?.get("config.yaml")?.clone();
            if !yaml.contains(needle) {
                return None;
            }
            let d = deps.get_opt("edge").await.ok()??;
            let sum = d.spec.template.metadata?.annotations?
                [switchboard_controller::render::CHECKSUM_ANNOTATION]
                .clone();
            use sha2::Digest;
            (sum == hex::encode(sha2::Sha256::digest(yaml.as_bytes()))).then_some(yaml)
        },
    )
    .await
}

/// UID and resourceVersion of every child, plus the Service's cluster IP and node port.
async fn children_fingerprint(client: &Client, ns: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get("edge")
        .await
        .unwrap();
    out.insert("deployment uid".into(), d.uid().unwrap());
    let c = Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get("edge")
        .await
        .unwrap();
    out.insert("configmap uid".into(), c.uid().unwrap());
    let a = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get("edge")
        .await
        .unwrap();
    out.insert("serviceaccount uid".into(), a.uid().unwrap());
    out.insert("serviceaccount rv".into(), a.resource_version().unwrap());
    let s = Api::<Service>::namespaced(client.clone(), ns)
        .get("edge")
        .await
        .unwrap();
    out.insert("service uid".into(), s.uid().unwrap());
    out.insert("service rv".into(), s.resource_version().unwrap());
    let spec = s.spec.unwrap();
    out.insert(
        "service clusterIP".into(),
        spec.cluster_ip.unwrap_or_default(),
    );
    out.insert(
        "service nodePort".into(),
        format!("{:?}", spec.ports.unwrap()[0].node_port),
    );
    out
}

#[tokio::test]
async fn restarts_leave_every_child_uid_ip_and_node_port_alone() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-restart").await;
    basic_setup(&cluster, &ns, "NodePort").await;

    let c = Running::start(&client, opts());
    config_with(&client, &ns, "/one").await;
    if cluster.is_real() {
        eventually_async("node port", Duration::from_secs(30), || async {
            let s = Api::<Service>::namespaced(client.clone(), &ns)
                .get("edge")
                .await
                .ok()?;
            s.spec?.ports?[0].node_port
        })
        .await;
    }
    let before = children_fingerprint(&client, &ns).await;
    c.stop().await;

    // Three restarts (a crash, an upgrade, a leader change all look like this): each must
    // find its own Gateway as its own, whatever order its caches fill in.
    for i in 2..5 {
        let c = Running::start(&client, opts());
        cluster
            .create(route(&ns, &format!("r{i}"), &format!("/n{i}")))
            .await;
        config_with(&client, &ns, &format!("/n{i}")).await;
        c.stop().await;
        let after = children_fingerprint(&client, &ns).await;
        assert_eq!(
            before, after,
            "restart {i}: children were recreated or rewritten"
        );
    }
}

#[tokio::test]
async fn a_second_field_manager_keeps_its_fields_and_loses_ours() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-ssa").await;
    basic_setup(&cluster, &ns, "ClusterIP").await;
    let c = Running::start(&client, opts());
    config_with(&client, &ns, "/one").await;
    let deps = Api::<Deployment>::namespaced(client.clone(), &ns);
    // An autoscaler owns replicas; someone also overwrites a label we own.
    let hpa = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "edge", "namespace": ns,
                     "labels": {"app.kubernetes.io/managed-by": "someone-else"}},
        "spec": {"replicas": 7}});
    deps.patch(
        "edge",
        &PatchParams::apply("autoscaler").force(),
        &Patch::Apply(&hpa),
    )
    .await
    .unwrap();
    // The controller re-applies on the change to its child: our label back, their replicas
    // kept.
    eventually_async("label restored", Duration::from_secs(30), || async {
        let d = deps.get("edge").await.ok()?;
        (d.labels().get("app.kubernetes.io/managed-by")? == "switchboard-controller").then_some(())
    })
    .await;
    let d = deps.get("edge").await.unwrap();
    assert_eq!(d.spec.replicas, Some(7), "the autoscaler's replicas");
    c.stop().await;
}

/// A port that was free a moment ago. Only for the one place that cannot take port 0: a
/// Gateway's listener port, which the real API server's Gateway API schema requires in
/// 1..=65535. (Bind-then-release races other tests on the machine; everything else here binds
/// port 0 and reports the address it got.)
fn picked_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc(tokio::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

/// A `switchboard-controller run` process, its push server on port 0, serving HTTPS with the
/// certificate it generated into its Secret (the default).
struct Controller {
    proc: ControllerProc,
    /// Asks its push server (certificate verified) whether it leads.
    probe: Probe,
    /// Its log file (stdout and stderr).
    log: std::path::PathBuf,
}

async fn controller_process(cluster: &TestCluster, lease_ns: &str) -> Controller {
    controller_process_with(
        cluster,
        &cluster.kubeconfig,
        lease_ns,
        &["--lease-duration", "3s"],
    )
    .await
}

async fn controller_process_with(
    cluster: &TestCluster,
    kubeconfig: &std::path::Path,
    lease_ns: &str,
    extra: &[&str],
) -> Controller {
    let mut args = vec!["--namespace", lease_ns];
    args.extend_from_slice(extra);
    let proc = spawn_controller(kubeconfig, &args, &[]);
    let port = proc.push_port().await;
    // Every replica serves the certificate of the one Secret (the first creates it).
    let https = push_client(&cluster.client, lease_ns).await;
    let log = proc.log.clone();
    Controller {
        proc,
        probe: Probe { https, port },
        log,
    }
}

async fn lease_spec(api: &Api<Lease>) -> LeaseSpec {
    api.get("switchboard-controller")
        .await
        .unwrap()
        .spec
        .unwrap_or_default()
}

async fn holder(api: &Api<Lease>) -> Option<String> {
    api.get_opt("switchboard-controller")
        .await
        .ok()??
        .spec?
        .holder_identity
}

#[tokio::test]
async fn two_controllers_one_leader_takeover_on_kill_and_release_on_sigterm() {
    let cluster = TestCluster::start().await;
    let lease_ns = cluster.namespace("sb-lease").await;
    let leases = Api::<Lease>::namespaced(cluster.client.clone(), &lease_ns);
    let mut a = controller_process(&cluster, &lease_ns).await;
    let pa = a.probe.clone();
    let first = eventually_async("a leader", Duration::from_secs(30), || holder(&leases)).await;
    let mut b = controller_process(&cluster, &lease_ns).await;
    let pb = b.probe.clone();
    // Both push servers up; exactly one of them leads.
    eventually_async("both push servers", Duration::from_secs(30), || async {
        pa.ready().await?;
        pb.ready().await
    })
    .await;
    // Give the second replica time to (wrongly) take the Lease too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ra, rb) = (pa.ready().await.unwrap(), pb.ready().await.unwrap());
    assert!(
        ra && !rb,
        "replica a leads, b waits (a ready={ra}, b ready={rb})"
    );
    assert_eq!(holder(&leases).await.unwrap(), first);

    // Kill -9 the leader: it cannot release the Lease, so the follower takes it over once it
    // has expired, and not before (checked on the Lease's own times, not the test's clock).
    a.proc.child.start_kill().unwrap();
    let _ = a.proc.child.wait().await;
    let killed = Instant::now();
    let last = lease_spec(&leases).await;
    assert_eq!(last.holder_identity.as_deref(), Some(first.as_str()));
    eventually_async("takeover", Duration::from_secs(30), || async {
        pb.ready().await?.then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    let taken = lease_spec(&leases).await;
    let second = taken.holder_identity.clone().unwrap();
    assert_ne!(second, first, "a new identity holds the Lease");
    let renewed: SystemTime = last.renew_time.unwrap().0.into();
    let expires = renewed + Duration::from_secs(last.lease_duration_seconds.unwrap() as u64);
    let acquired: SystemTime = taken.acquire_time.unwrap().0.into();
    assert!(
        acquired >= expires,
        "taken over at {acquired:?}, before the dead leader's Lease expired at {expires:?}"
    );
    println!(
        "leader killed (SIGKILL): the follower took over after {:.2} s (lease duration 3 s)",
        takeover.as_secs_f64()
    );

    // SIGTERM: the leader releases its Lease on the way out (an empty holder: the next
    // replica takes it at its first try, without waiting for it to expire). Nothing else runs
    // until it has exited, so the empty holder can only be its own doing.
    let pid = b.proc.child.id().unwrap();
    println!("b logs: {}", b.log.display());
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let termed = Instant::now();
    let status = b.proc.child.wait().await.unwrap();
    assert!(status.success(), "b exits cleanly on SIGTERM: {status}");
    let released = lease_spec(&leases).await;
    assert!(
        released
            .holder_identity
            .as_deref()
            .is_none_or(str::is_empty),
        "b released its Lease: {released:?}"
    );
    let c = controller_process(&cluster, &lease_ns).await;
    let third = eventually_async("the next leader", Duration::from_secs(30), || async {
        holder(&leases)
            .await
            .filter(|h| !h.is_empty() && *h != second)
    })
    .await;
    println!(
        "leader stopped (SIGTERM): lease released, next leader {third} after {:.2} s",
        termed.elapsed().as_secs_f64()
    );
    drop(c);
}

/// A TCP relay to the API server that can be made to stall: from then on no byte is
/// forwarded on any connection, open or new (a partition where packets vanish: requests hang
/// instead of failing).
struct Relay {
    kubeconfig: std::path::PathBuf,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
    _dir: tempfile::TempDir,
}

impl Relay {
    async fn start(cluster: &TestCluster) -> Self {
        use std::sync::atomic::{AtomicU8, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut kc = kube::config::Kubeconfig::read_from(&cluster.kubeconfig).unwrap();
        let ctx = kc.current_context.clone().unwrap();
        let cluster_name = kc
            .contexts
            .iter()
            .find(|c| c.name == ctx)
            .and_then(|c| c.context.as_ref())
            .unwrap()
            .cluster
            .clone();
        let entry = kc
            .clusters
            .iter_mut()
            .find(|c| c.name == cluster_name)
            .and_then(|c| c.cluster.as_mut())
            .unwrap();
        let server: http::Uri = entry.server.as_deref().unwrap().parse().unwrap();
        let host = server.host().unwrap().trim_matches(['[', ']']).to_string();
        let port = server.port_u16().unwrap_or(443);
        let upstream = tokio::net::lookup_host((host.as_str(), port))
            .await
            .unwrap()
            .next()
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        entry.server = Some(format!("https://{addr}"));
        entry.tls_server_name.get_or_insert(host);
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, serde_json::to_vec(&kc).unwrap()).unwrap();
        let state = std::sync::Arc::new(AtomicU8::new(PASS));
        async fn pipe(
            mut r: tokio::net::tcp::OwnedReadHalf,
            mut w: tokio::net::tcp::OwnedWriteHalf,
            state: std::sync::Arc<AtomicU8>,
        ) {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                loop {
                    match state.load(Ordering::Relaxed) {
                        PASS => break,
                        STALL => tokio::time::sleep(Duration::from_millis(100)).await,
                        _ => return,
                    }
                }
                if w.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((down, _)) = listener.accept().await {
                if st.load(Ordering::Relaxed) == CLOSED {
                    return;
                }
                let st = st.clone();
                tokio::spawn(async move {
                    let Ok(up) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (dr, dw) = down.into_split();
                    let (ur, uw) = up.into_split();
                    tokio::join!(pipe(dr, uw, st.clone()), pipe(ur, dw, st));
                });
            }
        });
        Self {
            kubeconfig,
            state,
            _dir: dir,
        }
    }

    fn stall(&self) {
        self.state
            .store(STALL, std::sync::atomic::Ordering::Relaxed);
    }
}

const PASS: u8 = 0;
const STALL: u8 = 1;
const CLOSED: u8 = 2;

/// Stalled connections are closed (the API server would wait for their requests when it
/// stops).
impl Drop for Relay {
    fn drop(&mut self) {
        self.state
            .store(CLOSED, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A leader that stays alive but can no longer renew its Lease (here an admission policy
/// refuses its renewals, then its requests hang; on a real cluster: a partition, an
/// overloaded API server) stops
/// reconciling and serving before the Lease expires, so the follower that takes over once it
/// has expired never overlaps with it; the old leader exits so that a fresh replica can wait.
/// A leader that finds its Lease held by another at a renewal stops and exits too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_before_another_leads() {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    let cluster = TestCluster::start().await;
    if !cluster.is_real() {
        println!("skipped: the fake API server has no admission policies");
        return;
    }
    let client = cluster.client.clone();
    let lease_ns = cluster.namespace("sb-lease").await;
    let ns = cluster.namespace("sb-loss").await;
    basic_setup(&cluster, &ns, "ClusterIP").await;
    let leases = Api::<Lease>::namespaced(client.clone(), &lease_ns);
    let (ida, idb) = (format!("doomed-{ns}"), format!("heir-{ns}"));
    // 6 s: the leader steps down 4 s after its last renewal, the follower may take over after
    // 6 s; both margins are far above scheduling noise on a loaded machine.
    // a reaches the API server through a relay that can be made to stall.
    let relay = Relay::start(&cluster).await;
    let mut a = controller_process_with(
        &cluster,
        &relay.kubeconfig,
        &lease_ns,
        &["--lease-duration", "6s", "--identity", &ida],
    )
    .await;
    let pa = a.probe.clone();
    println!("a logs: {}", a.log.display());
    eventually_async("a leads", Duration::from_secs(30), || async {
        (holder(&leases).await? == ida && pa.ready().await?).then_some(())
    })
    .await;
    config_with(&client, &ns, "/one").await;
    let mut b = controller_process_with(
        &cluster,
        &cluster.kubeconfig,
        &lease_ns,
        &["--lease-duration", "6s", "--identity", &idb],
    )
    .await;
    let pb = b.probe.clone();
    eventually_async("b waits", Duration::from_secs(30), || async {
        (!pb.ready().await?).then_some(())
    })
    .await;

    // From now on the API server refuses every renewal by a (b may still take the Lease).
    let policy_name = format!("deny-renewal-{ns}");
    let policy: ValidatingAdmissionPolicy = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": lease_ns}},
                "resourceRules": [{"apiGroups": ["coordination.k8s.io"], "apiVersions": ["v1"],
                                   "operations": ["UPDATE"], "resources": ["leases"]}]},
            "validations": [{
                "expression": format!("!has(object.spec.holderIdentity) || object.spec.holderIdentity != '{ida}'"),
                "message": "renewals by the old leader are refused by this test"}]}
    }))
    .unwrap();
    let binding: ValidatingAdmissionPolicyBinding = serde_json::from_value(json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"]}
    }))
    .unwrap();
    let policies = Api::<ValidatingAdmissionPolicy>::all(client.clone());
    let bindings = Api::<ValidatingAdmissionPolicyBinding>::all(client.clone());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // In force once a dry-run renewal in a's name is refused (a 409 is a race with a's own
    // renewal, not the policy).
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    eventually_async("the policy in force", Duration::from_secs(30), || async {
        let lease = leases.get("switchboard-controller").await.ok()?;
        match leases.replace("switchboard-controller", &dry, &lease).await {
            Err(kube::Error::Api(s)) if s.code != 409 => Some(()),
            _ => None,
        }
    })
    .await;

    // After a few refused (fast) renewals, a's requests start to hang instead: its step-down
    // deadline still holds (a renewal that hangs from just before the deadline must not carry
    // leadership past it).
    let a_log = a.log.clone();
    eventually_async(
        "three refused renewals by a",
        Duration::from_secs(30),
        || async {
            let log = std::fs::read_to_string(&a_log).ok()?;
            (log.matches("lease renew failed").count() >= 3).then_some(())
        },
    )
    .await;
    relay.stall();

    // Watch both replicas until b leads. In each sample b is asked first, so "b ready, then a
    // still ready" proves an overlap.
    let mut a_stopped_at = None;
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "b never took over (a stopped: {a_stopped_at:?})"
        );
        let rb = pb.ready().await;
        let ra = pa.ready().await;
        if a_stopped_at.is_none() && ra != Some(true) {
            a_stopped_at = Some(started.elapsed());
        }
        if rb == Some(true) {
            assert!(
                a_stopped_at.is_some(),
                "b leads while a still leads (a ready={ra:?})"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "a stopped {:.2} s after its renewals started to hang; b led after {:.2} s",
        a_stopped_at.unwrap().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(holder(&leases).await.as_deref(), Some(idb.as_str()));
    // a gave up for good (a fresh replica would wait as a follower) ...
    let status = tokio::time::timeout(Duration::from_secs(20), a.proc.child.wait())
        .await
        .expect("the old leader exits")
        .unwrap();
    assert!(!status.success(), "{status}");
    let log = std::fs::read_to_string(&a_log).unwrap_or_default();
    assert!(log.contains("stepping down"), "{log}");
    // ... and b reconciles what changes from now on.
    cluster.create(route(&ns, "r2", "/two")).await;
    config_with(&client, &ns, "/two").await;

    // Another holder writes the Lease over b's (as one that found it expired would): b
    // sees it at its next renewal and stops at once.
    let usurped = Instant::now();
    eventually_async("the Lease usurped", Duration::from_secs(30), || async {
        let mut lease = leases.get("switchboard-controller").await.ok()?;
        let spec = lease.spec.get_or_insert_with(Default::default);
        spec.holder_identity = Some("usurper".into());
        spec.lease_duration_seconds = Some(60);
        spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            std::time::SystemTime::now().try_into().unwrap(),
        ));
        leases
            .replace("switchboard-controller", &PostParams::default(), &lease)
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let status = tokio::time::timeout(Duration::from_secs(20), b.proc.child.wait())
        .await
        .expect("the usurped leader exits")
        .unwrap();
    println!(
        "b exited {:.2} s after its Lease was taken",
        usurped.elapsed().as_secs_f64()
    );
    assert!(!status.success(), "{status}");
    assert_eq!(pb.ready().await, None, "b no longer serves");
    let log = std::fs::read_to_string(&b.log).unwrap_or_default();
    assert!(log.contains("lost the lease to another replica"), "{log}");
    assert_eq!(holder(&leases).await.as_deref(), Some("usurper"));
    let _ = bindings
        .delete(&policy_name, &DeleteParams::default())
        .await;
    let _ = policies
        .delete(&policy_name, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn a_missing_lease_namespace_is_a_clear_error() {
    let cluster = TestCluster::start().await;
    if !cluster.is_real() {
        println!("skipped: the fake API server has no namespaces");
        return;
    }
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-controller"))
            .args([
                "run",
                "--push-bind",
                "127.0.0.1:0",
                "--namespace",
                "no-such-namespace",
            ])
            .env("KUBECONFIG", &cluster.kubeconfig)
            .output(),
    )
    .await
    .expect("the controller gives up instead of waiting forever")
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("namespace `no-such-namespace` does not exist"),
        "{err}"
    );
}

fn peak_rss_mib() -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_routes_converge_and_the_proxy_serves_all_of_them() {
    // SWITCHBOARD_TEST_ROUTES scales it (for a quick look); 5,000 is the figure we report.
    let n_routes: usize = std::env::var("SWITCHBOARD_TEST_ROUTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    #[allow(non_snake_case)]
    let N = n_routes;
    let bin = tokio::task::spawn_blocking(switchboard_binary)
        .await
        .unwrap();
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-5k").await;
    let upstream = {
        let app = axum::Router::new()
            .fallback(|uri: axum::http::Uri| async move { format!("upstream saw {}", uri.path()) });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
        addr
    };
    let port = picked_port();
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": ns}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "up", "namespace": ns},
               "spec": {"static": {"host": "127.0.0.1", "port": upstream.port()}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}),
    ] {
        cluster.create(doc).await;
    }
    let created = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let ns = ns.clone();
            let cluster = &cluster;
            async move {
                cluster
                    .create(json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
                        "metadata": {"name": format!("r{i}"), "namespace": ns},
                        "spec": {"parentRefs": [{"name": "edge"}],
                                 "rules": [{"matches": [{"path": {"type": "Exact", "value": format!("/r{i}")}}],
                                            "backendRefs": [{"group": "switchboard.dev", "kind": "Backend", "name": "up"}]}]}}))
                    .await
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    println!(
        "{N} HTTPRoutes created in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    // The controller and its push server.
    let hub = ConfigHub::new();
    hub.set_serving(true);
    let (listener, push_addr) = switchboard_controller::push::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let (push_stop_tx, push_stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(switchboard_controller::push::serve(
        listener,
        hub.clone(),
        switchboard_controller::push::Authenticator::Disabled,
        push_stop_rx,
    ));
    let opts = RenderOptions {
        push_url: Some(format!("http://{push_addr}")),
        listener_host: "127.0.0.1".into(),
        admin_bind: "127.0.0.1:0".into(),
        // Below the size of this config, so the ConfigMap holds the bootstrap and the proxy
        // gets its routes from the push stream, as a config over 1 MiB would.
        config_map_limit: 4 * 1024,
        ..Default::default()
    };
    let rss_before = peak_rss_mib();
    let started = Instant::now();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(reconcile::run(
        client.clone(),
        hub.clone(),
        opts,
        async move {
            let _ = stop_rx.await;
        },
    ));
    // Converged: the config holds every route, and every route says Accepted from us.
    eventually_async(
        "all routes in the config",
        Duration::from_secs(120),
        || async {
            let c = hub.current(&ns, "edge")?;
            (c.config
                .lines()
                .filter(|l| l.trim_start().starts_with("path: /r"))
                .count()
                == N)
                .then_some(())
        },
    )
    .await;
    let routes = Api::<HTTPRoute>::namespaced(client.clone(), &ns);
    eventually_async("every route's status", Duration::from_secs(240), || async {
        // Listing 5,000 routes is not free: look once a second.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = routes.list(&Default::default()).await.ok()?;
        let done = all
            .items
            .iter()
            .filter(|r| {
                r.status.as_ref().is_some_and(|s| {
                    s.parents.iter().any(|p| {
                        p.controller_name == CONTROLLER_NAME
                            && p.conditions
                                .iter()
                                .any(|c| c.type_ == "Accepted" && c.status == "True")
                    })
                })
            })
            .count();
        (done == N).then_some(())
    })
    .await;
    let converged = started.elapsed();
    println!(
        "{N} HTTPRoutes converged (config rendered and pushed, every route's status written) in {:.1} s; test process peak RSS {:.0} MiB (before the controller: {:.0} MiB)",
        converged.as_secs_f64(),
        peak_rss_mib(),
        rss_before
    );

    // The ConfigMap is within the object limit (a bootstrap when the config is larger).
    let cm = Api::<ConfigMap>::namespaced(client.clone(), &ns)
        .get("edge")
        .await
        .unwrap();
    let full = hub.current(&ns, "edge").unwrap().config.clone();
    let boot = cm.data.unwrap()["config.yaml"].clone();
    assert!(boot.len() < 4 * 1024);
    assert_eq!(
        cm.metadata.annotations.as_ref().unwrap()["switchboard.dev/config-mode"],
        "bootstrap"
    );
    println!(
        "config: {} bytes; ConfigMap holds {} bytes ({})",
        full.len(),
        boot.len(),
        cm.metadata.annotations.unwrap()["switchboard.dev/config-mode"]
    );

    // A real proxy boots from the ConfigMap and gets the rest from the push stream.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.yaml");
    std::fs::write(&file, &boot).unwrap();
    // Any token: this push server does not check it (push_e2e covers the TokenReview).
    std::fs::write(dir.path().join("token"), "test-token").unwrap();
    let _proxy = Proc(
        tokio::process::Command::new(&bin)
            .args([
                "run",
                "--config",
                file.to_str().unwrap(),
                "--control-plane",
                &format!("http://{push_addr}/v1/config/{ns}/edge"),
                // Plain HTTP: TLS is beside the point here (push_e2e and the controller
                // process tests cover it).
                "--control-plane-allow-http",
                "--control-plane-token",
                dir.path().join("token").to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(
                std::fs::File::create(std::env::temp_dir().join(format!("sb-proxy-{port}.log")))
                    .unwrap(),
            )
            .kill_on_drop(true)
            .spawn()
            .unwrap(),
    );
    let http = reqwest::Client::new();
    let last = format!("http://127.0.0.1:{port}/r{}", N - 1);
    eventually_async(
        "the proxy serves the last route",
        Duration::from_secs(60),
        || async {
            let r = http.get(&last).send().await.ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let served: Vec<bool> = futures::stream::iter(0..N)
        .map(|i| {
            let http = http.clone();
            async move {
                let r = http
                    .get(format!("http://127.0.0.1:{port}/r{i}"))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status().is_success() => {
                        r.text().await.unwrap_or_default() == format!("upstream saw /r{i}")
                    }
                    _ => false,
                }
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(
        served.iter().filter(|ok| **ok).count(),
        N,
        "every route is served"
    );
    let _ = stop_tx.send(());
    let _ = push_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
}

#[tokio::test]
async fn one_undecodable_backend_breaks_nothing_else() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-blast").await;
    let other = cluster.namespace("sb-blast-other").await;
    let bad = json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
        "metadata": {"name": "bad", "namespace": other},
        "spec": {"llm": {"models": [{"name": "m", "providers": [
            {"provider": "openai", "model": "x", "weight": 4294967296u64}]}]}}});
    if cluster.is_real() {
        // Our CRD refuses the value in the first place.
        let (api, _) = dyn_api(&client, &bad);
        let err = api
            .create(
                &PostParams::default(),
                &serde_json::from_value(bad.clone()).unwrap(),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("4294967295"), "{err}");
        // An object stored under an older, looser schema: loosen the CRD to store one.
        let mut crd = crd_documents()
            .into_iter()
            .find(|d| d["metadata"]["name"] == "backends.switchboard.dev")
            .unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"] =
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
        Api::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>::all(client.clone())
            .patch(
                "backends.switchboard.dev",
                &PatchParams::apply("switchboard-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap();
        eventually_async("the looser schema", Duration::from_secs(20), || async {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(bad.clone()).unwrap(),
            )
            .await
            .ok()
        })
        .await;
    } else {
        cluster.create(bad).await;
    }
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": ns}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "good", "namespace": ns},
               "spec": {"static": {"host": "good.example", "port": 8080}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "r", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge"}],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/one"}}],
                                   "backendRefs": [{"group": "switchboard.dev", "kind": "Backend", "name": "good"}]}]}}),
    ] {
        cluster.create(doc).await;
    }
    let c = Running::start(&client, opts());
    // Everything else renders: the good Backend resolves.
    let yaml = config_with(&client, &ns, "good.example:8080").await;
    assert!(yaml.contains("path_prefix: /one"), "{yaml}");
    // The bad one is reported on itself.
    let backends = Api::<kube::api::DynamicObject>::namespaced_with(
        client.clone(),
        &other,
        &kube::api::ApiResource::erase::<Backend>(&()),
    );
    let st = eventually_async(
        "Invalid condition on the bad Backend",
        Duration::from_secs(30),
        || async {
            let b = backends.get("bad").await.ok()?;
            let v = b.data.get("status")?.clone();
            (cond(&v["conditions"], "Accepted")?["reason"] == "Invalid").then_some(v)
        },
    )
    .await;
    let msg = cond(&st["conditions"], "Accepted").unwrap()["message"].clone();
    assert!(msg.as_str().unwrap().contains("4294967296"), "{msg}");
    c.stop().await;
}

#[tokio::test]
async fn status_tells_the_truth() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-truth").await;
    basic_setup(&cluster, &ns, "ClusterIP").await;
    cluster
        .create(
            json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "gone", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        )
        .await;
    let mut r2 = route(&ns, "r2", "/two");
    r2["spec"]["parentRefs"] = json!([{"name": "gone"}]);
    cluster.create(r2).await;
    let c = Running::start(&client, opts());
    let routes = Api::<HTTPRoute>::namespaced(client.clone(), &ns);
    let gateways = Api::<Gateway>::namespaced(client.clone(), &ns);
    let ours = |r: HTTPRoute| {
        r.status
            .map(|s| {
                s.parents
                    .into_iter()
                    .filter(|p| p.controller_name == CONTROLLER_NAME)
                    .count()
            })
            .unwrap_or(0)
    };
    eventually_async("route parents written", Duration::from_secs(30), || async {
        let a = ours(routes.get("r1").await.ok()?);
        let b = ours(routes.get("r2").await.ok()?);
        (a == 1 && b == 1).then_some(())
    })
    .await;
    eventually_async("configs published", Duration::from_secs(30), || async {
        c.hub.current(&ns, "gone")?;
        c.hub.current(&ns, "edge")
    })
    .await;

    // A Gateway that is deleted: its route loses our entry, its config leaves the push server.
    gateways
        .delete("gone", &DeleteParams::default())
        .await
        .unwrap();
    eventually_async(
        "r2's entry for the deleted Gateway removed",
        Duration::from_secs(30),
        || async { (ours(routes.get("r2").await.ok()?) == 0).then_some(()) },
    )
    .await;
    eventually_async(
        "config of the deleted Gateway withdrawn",
        Duration::from_secs(30),
        || async { c.hub.current(&ns, "gone").is_none().then_some(()) },
    )
    .await;

    if cluster.is_real() {
        // A fleet the API server refuses: the Gateway says so in its Programmed condition.
        Api::<kube::api::DynamicObject>::namespaced_with(
            client.clone(),
            &ns,
            &kube::api::ApiResource::erase::<switchboard_controller::crd::GatewayParameters>(&()),
        )
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"resources": {"requests": {"cpu": "lots"}}}})),
        )
        .await
        .unwrap();
        let st = eventually_async(
            "Programmed=False Invalid",
            Duration::from_secs(30),
            || async {
                let g = gateways.get("edge").await.ok()?;
                let v = serde_json::to_value(g.status?).ok()?;
                let p = cond(&v["conditions"], "Programmed")?.clone();
                (p["reason"] == "Invalid").then_some(p)
            },
        )
        .await;
        assert_eq!(st["status"], "False");
        assert!(
            st["message"].as_str().unwrap().contains("cannot apply"),
            "{st}"
        );
    }

    // Moved to another controller's class: fleet pruned, route entries and stale conditions
    // gone, config withdrawn.
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
    eventually_async("r1's entry removed", Duration::from_secs(30), || async {
        (ours(routes.get("r1").await.ok()?) == 0).then_some(())
    })
    .await;
    eventually_async(
        "no stale condition on the moved Gateway",
        Duration::from_secs(30),
        || async {
            let g = gateways.get("edge").await.ok()?;
            let generation = g.metadata.generation;
            let st = g.status.unwrap_or_default();
            st.conditions
                .iter()
                .all(|c| c.observed_generation.is_none() || c.observed_generation == generation)
                .then_some(())
        },
    )
    .await;
    eventually_async(
        "config of the moved Gateway withdrawn",
        Duration::from_secs(30),
        || async { c.hub.current(&ns, "edge").is_none().then_some(()) },
    )
    .await;
    c.stop().await;
}

#[tokio::test]
async fn watches_survive_an_api_server_restart() {
    let cluster = TestCluster::start().await;
    if cluster.owned.is_none() {
        println!("skipped: needs a real API server this test starts (to restart it)");
        return;
    }
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-watch").await;
    basic_setup(&cluster, &ns, "NodePort").await;
    let c = Running::start(&client, opts());
    config_with(&client, &ns, "/one").await;
    let before = children_fingerprint(&client, &ns).await;
    let restarted = Instant::now();
    cluster.restart_apiserver().await;
    println!(
        "kube-apiserver restarted in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    cluster.create(route(&ns, "r2", "/two")).await;
    config_with(&client, &ns, "/two").await;
    println!(
        "the controller served a change {:.1} s after the restart began",
        restarted.elapsed().as_secs_f64()
    );
    assert_eq!(before, children_fingerprint(&client, &ns).await);
    c.stop().await;
}

/// GatewayParameters for the "behind an NLB" pattern reach the real API server: the Service
/// gets the type, annotations, `externalTrafficPolicy` and `loadBalancerClass`, and the
/// ConfigMap's proxy config expects PROXY protocol v2 on every listener. `adminTokenSecret`
/// (kept by the CRD schema) becomes the proxy's `admin.token` as a `${VAR}` reference and a
/// `secretKeyRef` env var of the Deployment; the token's value is in no object but its Secret.
#[tokio::test]
async fn gateway_parameters_set_the_service_for_a_load_balancer() {
    let cluster = TestCluster::start().await;
    let client = cluster.client.clone();
    let ns = cluster.namespace("sb-nlb").await;
    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": ns}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
               "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "GatewayParameters",
               "metadata": {"name": "p", "namespace": ns},
               "spec": {"serviceType": "LoadBalancer",
                        "externalTrafficPolicy": "Local",
                        "loadBalancerClass": "service.k8s.aws/nlb",
                        "proxyProtocol": "v2",
                        "adminTokenSecret": {"name": "proxy-admin", "key": "token"},
                        "serviceAnnotations": {
                            "service.beta.kubernetes.io/aws-load-balancer-proxy-protocol": "*"}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": ns,
                        "infrastructure": {"parametersRef": {"group": "switchboard.dev", "kind": "GatewayParameters", "name": "p"}},
                        "listeners": [{"name": "http", "port": 8080, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "proxy-admin", "namespace": ns},
               "stringData": {"token": "s3cret-admin-token"}}),
        route(&ns, "r1", "/one"),
    ] {
        cluster.create(doc).await;
    }
    let c = Running::start(&client, opts());
    let yaml = config_with(&client, &ns, "/one").await;
    assert!(yaml.contains("proxy_protocol: v2"), "{yaml}");
    let var = "SB_SECRET_PROXY_ADMIN_TOKEN";
    assert!(yaml.contains(&format!("token: ${{{var}}}")), "{yaml}");
    let d = Api::<Deployment>::namespaced(client.clone(), &ns)
        .get("edge")
        .await
        .unwrap();
    let env = d.spec.template.spec.as_ref().unwrap().containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let e = env
        .iter()
        .find(|e| e.name == var)
        .unwrap_or_else(|| panic!("{env:?}"));
    let sel = e
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (sel.name.as_str(), sel.key.as_str()),
        ("proxy-admin", "token")
    );
    assert!(e.value.is_none());
    // The value is only in the Secret: not in the ConfigMap, Deployment or Gateway status.
    for (what, text) in [
        ("ConfigMap", yaml.clone()),
        ("Deployment", serde_json::to_string(&d).unwrap()),
        (
            "Gateway",
            serde_json::to_string(
                &Api::<Gateway>::namespaced(client.clone(), &ns)
                    .get("edge")
                    .await
                    .unwrap(),
            )
            .unwrap(),
        ),
    ] {
        assert!(!text.contains("s3cret-admin-token"), "{what}: {text}");
    }
    let s = Api::<Service>::namespaced(client.clone(), &ns)
        .get("edge")
        .await
        .unwrap();
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()["service.beta.kubernetes.io/aws-load-balancer-proxy-protocol"],
        "*"
    );
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.external_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(
        spec.load_balancer_class.as_deref(),
        Some("service.k8s.aws/nlb")
    );
    if cluster.is_real() {
        // The API server allocated the health check node port `Local` needs.
        assert!(spec.health_check_node_port.is_some());
    }
    c.stop().await;
}
