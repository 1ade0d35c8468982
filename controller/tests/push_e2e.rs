//! Config push end to end: a real `switchboard run --control-plane` process boots from the
//! rendered ConfigMap content, follows the controller's stream, serves a route added to an
//! HTTPRoute (the time from the change to serving is measured and printed), and keeps
//! serving its last good config when the controller stops. The push stream is HTTPS (a real
//! TLS handshake with a generated CA; a proxy trusting another CA refuses it) and the push
//! server checks the proxy's token with a TokenReview (against the fake API server). The
//! Gateway's `adminTokenSecret` reaches the proxy as a `${VAR}` in the config it loads (from
//! the ConfigMap and from the stream), expanded from the environment the Deployment gives it.

use crate::common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use switchboard_controller::gateway_api::HTTPRoute;
use switchboard_controller::push::{self, Authenticator, ConfigHub, ServingCert};
use switchboard_controller::reconcile;
use switchboard_controller::render::{CONTROLLER_NAME, RenderOptions};
use switchboard_testing::process::JsonLog;

/// An upstream that answers with the path it saw.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new()
        .fallback(|uri: axum::http::Uri| async move { format!("upstream saw {}", uri.path()) });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    addr
}

/// The admin token the proxy's environment holds (in a cluster: from the Secret that
/// `adminTokenSecret` names, through the Deployment's `secretKeyRef`).
const ADMIN_TOKEN: &str = "s3cret-admin-token";
/// The env var the controller names for Secret `proxy-admin`, key `token`.
const ADMIN_VAR: &str = "SB_SECRET_PROXY_ADMIN_TOKEN";

struct Kill(tokio::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.start_kill();
    }
}

async fn get(c: &reqwest::Client, url: &str) -> Option<String> {
    let r = c.get(url).send().await.ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

#[tokio::test]
async fn proxy_follows_the_controller_and_keeps_serving_without_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = tokio::task::spawn_blocking(switchboard_binary)
        .await
        .unwrap();
    let fake = FakeApiServer::start().await;
    println!("push test: fake API server at {}", fake.addr);
    let ns = "sb-push";
    fake.add_token("proxy-token", &format!("system:serviceaccount:{ns}:edge"));
    fake.add_token(
        "other-token",
        &format!("system:serviceaccount:{ns}:someone"),
    );
    let up = upstream().await;
    // The proxy binds port 0 for its listener and its admin server and logs the addresses it
    // got (the fake API server does not enforce the Gateway API's 1..=65535 port range).
    let port = 0;

    for doc in [
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
               "metadata": {"name": "sb"}, "spec": {"controllerName": CONTROLLER_NAME}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
               "metadata": {"name": "edge", "namespace": ns},
               "spec": {"gatewayClassName": "sb",
                        "infrastructure": {"parametersRef": {"group": "switchboard.dev", "kind": "GatewayParameters", "name": "admin"}},
                        "listeners": [{"name": "http", "port": port, "protocol": "HTTP"}]}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "GatewayParameters",
               "metadata": {"name": "admin", "namespace": ns},
               "spec": {"adminTokenSecret": {"name": "proxy-admin", "key": "token"}}}),
        json!({"apiVersion": "switchboard.dev/v1alpha1", "kind": "Backend",
               "metadata": {"name": "up", "namespace": ns},
               "spec": {"static": {"host": "127.0.0.1", "port": up.port()}}}),
        json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "r", "namespace": ns},
               "spec": {"parentRefs": [{"name": "edge"}],
                        "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/one"}}],
                                   "backendRefs": [{"group": "switchboard.dev", "kind": "Backend", "name": "up"}]}]}}),
    ] {
        fake.put(doc);
    }

    // The controller: reconciler plus push server.
    let client = fake.client();
    let hub = ConfigHub::new();
    hub.set_serving(true);
    let (listener, push_addr) = push::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // HTTPS with a certificate from a fresh CA, as the controller generates into its Secret.
    let cert = ServingCert::generate(&["127.0.0.1".into(), "localhost".into()]).unwrap();
    let server = tokio::spawn(push::serve_tls(
        listener,
        cert.server_config().unwrap(),
        hub.clone(),
        Authenticator::TokenReview(client.clone()),
        stop_rx.clone(),
    ));
    let opts = RenderOptions {
        push_url: Some(format!("https://{push_addr}")),
        push_ca: Some(cert.ca.clone()),
        admin_bind: "127.0.0.1:0".into(),
        listener_host: "127.0.0.1".into(),
        ..Default::default()
    };
    let mut stop_rx2 = stop_rx.clone();
    let controller = tokio::spawn(reconcile::run(client, hub.clone(), opts, async move {
        let _ = stop_rx2.wait_for(|s| *s).await;
    }));
    let boot = eventually("first rendering", Duration::from_secs(20), || {
        hub.current(ns, "edge")
    })
    .await;

    // The rendered proxies verify the push server with the CA the ConfigMap carries (the
    // config is published before the children are applied: wait for the ConfigMap).
    let cm = eventually("the ConfigMap", Duration::from_secs(20), || {
        boot_config_map_ca(&fake, ns)
    })
    .await;
    assert_eq!(cm, cert.ca);
    let deployment = eventually("the Deployment", Duration::from_secs(20), || {
        fake.get("apps", "deployments", ns, "edge")
    })
    .await;
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].clone();
    let args: Vec<&str> = args
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.windows(2).any(|w| w
            == [
                "--control-plane-ca",
                "/etc/switchboard/control-plane-ca.pem"
            ]),
        "{args:?}"
    );
    assert!(!args.contains(&"--control-plane-allow-http"), "{args:?}");
    // The admin token: an env var from the Secret, a reference in the config.
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert_eq!(
        env[0],
        json!({"name": ADMIN_VAR, "valueFrom": {"secretKeyRef":
            {"name": "proxy-admin", "key": "token", "optional": false}}}),
        "{env}"
    );
    assert!(
        boot.config.contains(&format!("token: ${{{ADMIN_VAR}}}")),
        "{}",
        boot.config
    );

    // Authentication: no token, an unknown token and another ServiceAccount's token fail.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let https = client_trusting(&cert.ca);
    let stream_url = format!("https://{push_addr}/v1/config/{ns}/edge");
    let status = |t: Option<&'static str>| {
        let mut r = https.get(&stream_url);
        if let Some(t) = t {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("forged")).await, 401);
    assert_eq!(status(Some("other-token")).await, 403);
    // A client trusting another CA refuses the server; plain HTTP gets no answer.
    let other = ServingCert::generate(&["127.0.0.1".into()]).unwrap();
    let err = client_trusting(&other.ca)
        .get(&stream_url)
        .bearer_auth("proxy-token")
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("InvalidCertificate"), "{err:?}");
    assert!(
        http.get(format!("http://{push_addr}/healthz"))
            .send()
            .await
            .is_err()
    );

    // A proxy told to follow a plain-HTTP control plane refuses to start, unless allowed.
    let out = tokio::process::Command::new(&bin)
        .args(["run", "--config"])
        .arg(workspace_root().join("examples/quickstart.yaml"))
        .args([
            "--control-plane",
            &format!("http://{push_addr}/v1/config/{ns}/edge"),
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--control-plane-allow-http"), "{err}");

    // The proxy boots from the ConfigMap content, as the kubelet would mount it.
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("config.yaml");
    std::fs::write(&cfg_path, &boot.config).unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "proxy-token\n").unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &cert.ca).unwrap();
    // A proxy trusting another CA refuses the controller and says why (and keeps serving
    // its boot config meanwhile).
    let wrong_ca = dir.path().join("wrong-ca.pem");
    std::fs::write(&wrong_ca, &other.ca).unwrap();
    let mut wrong = tokio::process::Command::new(&bin)
        .args(["run", "--log-format", "json"])
        .arg("--config")
        .arg(&cfg_path)
        .arg("--control-plane")
        .arg(&stream_url)
        .arg("--control-plane-token")
        .arg(&token_path)
        .arg("--control-plane-ca")
        .arg(&wrong_ca)
        .env(ADMIN_VAR, ADMIN_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut wrong_log = JsonLog::read("switchboard-wrong-ca", wrong.stderr.take().unwrap(), None);
    let _wrong = Kill(wrong);
    let refused = wrong_log
        .wait_for(
            "control plane unavailable; keeping the current config",
            Duration::from_secs(30),
        )
        .await;
    assert!(
        refused.to_string().contains("invalid peer certificate"),
        "{refused}"
    );
    drop(_wrong);

    let mut child = tokio::process::Command::new(&bin)
        .args(["run", "--log-format", "json"])
        .arg("--config")
        .arg(&cfg_path)
        .arg("--control-plane")
        .arg(&stream_url)
        .arg("--control-plane-token")
        .arg(&token_path)
        .arg("--control-plane-ca")
        .arg(&ca_path)
        .env(ADMIN_VAR, ADMIN_TOKEN)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The reader keeps draining the log after `log` is dropped.
    let mut log = JsonLog::read("switchboard", child.stderr.take().unwrap(), None);
    let _child = Kill(child);
    let addrs = log.switchboard_ready(Duration::from_secs(30)).await;
    assert_eq!(addrs.listeners.len(), 1, "{addrs:?}");
    let base = format!("http://{}", addrs.listeners.values().next().unwrap());
    let body = wait_http(&http, &format!("{base}/one/a"), 20).await;
    assert_eq!(body, "upstream saw /one/a");
    assert!(get(&http, &format!("{base}/two/a")).await.is_none());
    // The proxy expanded the token from its environment: its config API wants it (even on
    // loopback, once a token is set); the probes stay open.
    let admin_http = {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {ADMIN_TOKEN}").parse().unwrap(),
        );
        reqwest::Client::builder()
            .no_proxy()
            .default_headers(h)
            .build()
            .unwrap()
    };
    let admin_status = |c: &reqwest::Client, path: &str| {
        let r = c.get(format!("http://{}{path}", addrs.admin));
        async move { r.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(admin_status(&http, "/config").await, 401);
    assert_eq!(admin_status(&http, "/readyz").await, 200);
    assert_eq!(admin_status(&admin_http, "/config").await, 200);
    let shown = get(&admin_http, &format!("http://{}/config", addrs.admin))
        .await
        .unwrap();
    assert!(!shown.contains(ADMIN_TOKEN), "{shown}");

    // Change the HTTPRoute; measure until the proxy serves the new route.
    let routes = kube::Api::<HTTPRoute>::namespaced(fake.client(), ns);
    let started = Instant::now();
    routes
        .patch(
            "r",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/one"}}],
                 "backendRefs": [{"group": "switchboard.dev", "kind": "Backend", "name": "up"}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/two"}}],
                 "backendRefs": [{"group": "switchboard.dev", "kind": "Backend", "name": "up"}]}]}})),
        )
        .await
        .unwrap();
    let body = wait_http(&http, &format!("{base}/two/b"), 20).await;
    let elapsed = started.elapsed();
    assert_eq!(body, "upstream saw /two/b");
    println!(
        "push test: HTTPRoute change to proxy serving it took {elapsed:?} (ConfigMap file unchanged: pushed)"
    );
    assert_eq!(
        std::fs::read_to_string(&cfg_path).unwrap(),
        boot.config,
        "served through push, not the file"
    );

    // A version the proxy's validation refuses is recorded as a failed reload; the last good
    // config keeps serving (the same rule as for the file).
    hub.publish(
        ns,
        "edge",
        "bad-checksum",
        "listeners: [{name: http, bind: not-an-address, routes: []}]\n",
    );
    let admin = format!("http://{}/config", addrs.admin);
    let err = wait_until(&admin_http, &admin, 20, |body| {
        body.contains("not-an-address").then(|| body.to_string())
    })
    .await;
    assert!(err.contains("control-plane@"), "{err}");
    assert_eq!(
        get(&http, &format!("{base}/two/e")).await.as_deref(),
        Some("upstream saw /two/e")
    );

    // Stop the controller: the proxy keeps its last good config.
    stop_tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), controller)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    for path in ["/one/c", "/two/c"] {
        let body = get(&http, &format!("{base}{path}")).await;
        assert_eq!(
            body.as_deref(),
            Some(format!("upstream saw {path}").as_str())
        );
    }
    // And still after its reconnect attempts have failed a few times.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        get(&http, &format!("{base}/two/d")).await.as_deref(),
        Some("upstream saw /two/d")
    );
}

/// A client that trusts only `ca` (PEM).
fn client_trusting(ca: &str) -> reqwest::Client {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// The push CA in the Gateway's rendered ConfigMap.
fn boot_config_map_ca(fake: &FakeApiServer, ns: &str) -> Option<String> {
    let cm = fake.get("", "configmaps", ns, "edge")?;
    cm["data"]["control-plane-ca.pem"]
        .as_str()
        .map(String::from)
}

async fn wait_http(c: &reqwest::Client, url: &str, secs: u64) -> String {
    let what = format!("{url} to serve");
    eventually_async(&what, Duration::from_secs(secs), || get(c, url)).await
}

async fn wait_until<T>(
    c: &reqwest::Client,
    url: &str,
    secs: u64,
    f: impl Fn(&str) -> Option<T>,
) -> T {
    let what = format!("{url} to satisfy the condition");
    eventually_async(&what, Duration::from_secs(secs), || async {
        f(&get(c, url).await?)
    })
    .await
}
