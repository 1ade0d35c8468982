//! A running control plane and proxy for end-to-end tests: the controller's reconciler and
//! its push server (HTTPS with a generated CA) in this process, and a real `switchboard run
//! --control-plane` process that boots from the rendered config and follows the stream.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use switchboard_controller::push::{self, Authenticator, ConfigHub, ServingCert};
use switchboard_controller::reconcile;
use switchboard_controller::render::RenderOptions;
use switchboard_testing::process::{Addresses, JsonLog};

/// The controller (reconciler and push server), stopped on drop.
pub struct ControlPlane {
    /// The configs it publishes.
    pub hub: ConfigHub,
    /// Its push server's address.
    pub push_addr: SocketAddr,
    /// The CA (PEM) that signed the push server's certificate.
    pub ca: String,
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ControlPlane {
    /// Starts the reconciler against `client` and an HTTPS push server on a free port. The
    /// rendered proxies bind their listeners and admin server on 127.0.0.1. `auth` decides
    /// who may read a Gateway's stream.
    pub async fn start(client: kube::Client, auth: Authenticator) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let hub = ConfigHub::new();
        hub.set_serving(true);
        let (listener, push_addr) = push::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let cert = ServingCert::generate(&["127.0.0.1".into(), "localhost".into()]).unwrap();
        let tls = cert.server_config().unwrap();
        let server = tokio::spawn({
            let (hub, stop_rx) = (hub.clone(), stop_rx.clone());
            async move {
                push::serve_tls(listener, tls, hub, auth, stop_rx)
                    .await
                    .unwrap();
            }
        });
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
        Self {
            hub,
            push_addr,
            ca: cert.ca,
            stop,
            tasks: vec![server, controller],
        }
    }

    /// The push stream URL of a Gateway.
    pub fn stream_url(&self, ns: &str, gateway: &str) -> String {
        format!("https://{}/v1/config/{ns}/{gateway}", self.push_addr)
    }

    /// Waits for the first rendering of a Gateway and returns its config (what the ConfigMap
    /// holds).
    pub async fn first_config(&self, ns: &str, gateway: &str) -> String {
        switchboard_testing::eventually("first rendering", Duration::from_secs(30), || {
            self.hub.current(ns, gateway)
        })
        .await
        .config
        .clone()
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A `switchboard run --control-plane` process, killed on drop.
pub struct Proxy {
    child: tokio::process::Child,
    /// Its listener and admin addresses, from its log.
    pub addrs: Addresses,
    /// Its log (JSON lines), still being read.
    pub log: JsonLog,
    _dir: tempfile::TempDir,
}

impl Proxy {
    /// Starts the proxy binary from `boot_config` (as the kubelet would mount the ConfigMap),
    /// following `cp`'s stream for `ns/gateway` with `token`, and waits until it is ready.
    pub async fn start(
        bin: &std::path::Path,
        cp: &ControlPlane,
        ns: &str,
        gateway: &str,
        boot_config: &str,
        token: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("config.yaml");
        std::fs::write(&cfg_path, boot_config).unwrap();
        let token_path = dir.path().join("token");
        std::fs::write(&token_path, format!("{token}\n")).unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &cp.ca).unwrap();
        let mut child = tokio::process::Command::new(bin)
            .args(["run", "--log-format", "json"])
            .arg("--config")
            .arg(&cfg_path)
            .arg("--control-plane")
            .arg(cp.stream_url(ns, gateway))
            .arg("--control-plane-token")
            .arg(&token_path)
            .arg("--control-plane-ca")
            .arg(&ca_path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = JsonLog::read("switchboard", child.stderr.take().unwrap(), None);
        let addrs = log.switchboard_ready(Duration::from_secs(30)).await;
        Self {
            child,
            addrs,
            log,
            _dir: dir,
        }
    }

    /// `http://ADDR` of its only listener.
    pub fn base(&self) -> String {
        assert_eq!(self.addrs.listeners.len(), 1, "{:?}", self.addrs);
        format!("http://{}", self.addrs.listeners.values().next().unwrap())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A free loopback TCP port (bound, then released). Gateway listeners need a real port on a
/// real API server (1..=65535), and the proxy binds what the Gateway says.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
