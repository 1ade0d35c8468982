//! `switchboard-controller run` as a real process, and an HTTPS client for its push server
//! that trusts only the CA in the certificate Secret the controller generated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

/// A running `switchboard-controller` process; killed on drop.
pub struct ControllerProc {
    /// The process.
    pub child: tokio::process::Child,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

impl Drop for ControllerProc {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Starts `switchboard-controller run --push-bind 127.0.0.1:0 ARGS` with `KUBECONFIG` set, no
/// `POD_NAME`/`POD_NAMESPACE` (as on a workstation) unless `env` sets them.
pub fn spawn_controller(kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> ControllerProc {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "sb-ctl-{}-{}.log",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    // Logs (stdout) and the exit error (stderr) both go to the log file.
    let log = std::fs::File::create(&path).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard-controller"));
    cmd.args(["run", "--push-bind", "127.0.0.1:0"])
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .env_remove("SWITCHBOARD_PUSH_URL")
        .env_remove("SWITCHBOARD_PLAIN_HTTP")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        // The exit error as a user sees it, without a backtrace.
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    ControllerProc { child, log: path }
}

impl ControllerProc {
    /// Everything it logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The port its push server bound: it logs
    /// `config push server listening addr=127.0.0.1:PORT` once listening. Panics with its log
    /// when it exits with an error first.
    pub async fn push_port(&self) -> u16 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let text = self.log_text();
            let port = text
                .lines()
                .find(|l| l.contains("config push server listening"))
                .and_then(|line| line.split_once("addr=")?.1.split_whitespace().next())
                .and_then(|addr| addr.parse::<std::net::SocketAddr>().ok())
                .map(|a| a.port());
            if let Some(port) = port {
                return port;
            }
            assert!(
                !text.contains("Error: "),
                "the controller exited with an error:\n{text}"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "no push server address within 30 s; the controller's log:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Its log without kube's per-connection "Server cert bypassed" lines (the test API
    /// server's certificate is not verified).
    pub fn log_for_humans(&self) -> String {
        self.log_text()
            .lines()
            .filter(|l| !l.contains("Server cert bypassed"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// [`super::eventually_async`] whose timeout also prints this controller's log, so a
    /// failure says what the controller was doing meanwhile.
    pub async fn eventually<T, F, Fut>(&self, what: &str, within: Duration, f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let wait = super::eventually_async(what, within, f);
        match futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(wait)).await {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out waiting for {what} ({within:?}); the controller's log:\n{}",
                self.log_for_humans()
            ),
        }
    }

    /// Waits (at most `within`) for it to exit.
    pub async fn exit(&mut self, within: Duration) -> std::process::ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(s) => s.unwrap(),
            Err(_) => panic!(
                "the controller did not exit within {within:?}; its log:\n{}",
                self.log_text()
            ),
        }
    }
}

/// An HTTPS client that trusts only the CA (`ca.crt`) of the controller's certificate Secret
/// `switchboard-controller-tls` in `namespace` (waits for it to exist).
pub async fn push_client(client: &Client, namespace: &str) -> reqwest::Client {
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    let ca = super::eventually_async(
        "the push certificate Secret",
        Duration::from_secs(30),
        || async {
            let s = secrets.get_opt("switchboard-controller-tls").await.ok()??;
            let ca = s.data?.get("ca.crt")?.0.clone();
            Some(ca)
        },
    )
    .await;
    trusting(&ca)
}

/// A client that trusts only the PEM CA bundle `ca`.
pub fn trusting(ca: &[u8]) -> reqwest::Client {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca) {
        roots.add(c.unwrap()).unwrap();
    }
    assert!(!roots.is_empty(), "no certificate in the CA bundle");
    let tls = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .no_proxy()
        .use_preconfigured_tls(tls)
        .build()
        .unwrap()
}

/// Asks a controller's push server (HTTPS, certificate verified) whether it leads.
#[derive(Clone)]
pub struct Probe {
    /// A client trusting the controller's CA.
    pub https: reqwest::Client,
    /// The push server's port on 127.0.0.1.
    pub port: u16,
}

impl Probe {
    /// `Some(true)` on the leader, `Some(false)` on a follower, `None` when it does not answer.
    pub async fn ready(&self) -> Option<bool> {
        let r = self
            .https
            .get(format!("https://127.0.0.1:{}/readyz", self.port))
            .send()
            .await
            .ok()?;
        Some(r.status().is_success())
    }
}
