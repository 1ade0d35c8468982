//! Test harness: real upstreams and a real gateway on port-0 sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_gateway::{Gateway, config};
use switchboard_testing::process::JsonLog;
use tokio::process::{Child, Command};

/// Starts the example upstream on a free port.
pub async fn upstream() -> SocketAddr {
    switchboard_examples::upstream::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Parses `yaml` (with `${UPSTREAM}` set to `upstream`) and starts a gateway in-process.
pub async fn gateway(yaml: &str, upstream: SocketAddr) -> Gateway {
    Gateway::start(test_config(yaml, upstream), None)
        .await
        .unwrap()
}

/// [`gateway`] serving its connections on the test's own runtime (no serving threads), so a
/// `#[tokio::test(start_paused = true)]` test's paused clock drives all of its timers.
pub async fn gateway_here(yaml: &str, upstream: SocketAddr) -> Gateway {
    Gateway::start_with_workers(test_config(yaml, upstream), None, 0)
        .await
        .unwrap()
}

/// The config of [`gateway`] (an admin server on port 0 unless `yaml` has one).
pub fn test_config(yaml: &str, upstream: SocketAddr) -> config::Config {
    switchboard_gateway::install_crypto_provider();
    let up = upstream.to_string();
    let env = move |name: &str| (name == "UPSTREAM").then(|| up.clone());
    let yaml = if yaml.contains("admin:") {
        yaml.to_string()
    } else {
        format!("admin: {{bind: '127.0.0.1:0'}}\n{yaml}")
    };
    config::load_str(&yaml, "test.yaml", &env).unwrap_or_else(|e| panic!("{e}"))
}

/// The base URL of a listener.
pub async fn base(gw: &Gateway, listener: &str) -> String {
    format!("http://{}", gw.listener_addr(listener).await.unwrap())
}

/// Waits for the next window of `per` when the current one ends soon: within a quarter of
/// `per`, at most two minutes (15 s of a minute, 2 min of an hour). Rate-limit windows are
/// aligned to wall-clock multiples of `per` (so replicas agree on them): a test that spends a
/// budget and expects the next request refused must run inside one window, or a window that
/// turns over between the two requests lets the second one through.
pub async fn inside_one_window(per: Duration) {
    let margin = (per / 4).min(Duration::from_secs(120)).as_millis() as u64;
    let per_ms = per.as_millis() as u64;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = per_ms - now_ms % per_ms;
    if left < margin {
        tokio::time::sleep(Duration::from_millis(left + 20)).await;
    }
}

/// A plain HTTP client.
pub fn client() -> reqwest::Client {
    switchboard_gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The admin `/metrics` page of the admin listener at `admin`.
pub async fn metrics_text(admin: SocketAddr) -> String {
    client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Scrapes one sample's value from the admin `/metrics` output.
pub async fn metric(gw: &Gateway, name_and_labels: &str) -> Option<f64> {
    let text = metrics_text(gw.admin_addr().await.unwrap()).await;
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The sum of the samples whose line starts with `prefix` (a name as exposed, with or without
/// labels) on the admin listener at `admin`; `None` when there is no such sample.
pub async fn metric_sum(admin: SocketAddr, prefix: &str) -> Option<f64> {
    let text = metrics_text(admin).await;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The `switchboard` binary built for these tests.
pub fn switchboard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// A `switchboard run` child process, with its addresses read from its JSON log (it binds the
/// ports its config gives, port 0 in these tests, and logs the address it got).
pub struct Proc {
    pub child: Child,
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub admin: SocketAddr,
    /// The peer listener (`sessions.peer`), when configured.
    pub peer: Option<SocketAddr>,
    pub logs: JsonLog,
}

/// Runs `switchboard run --config PATH --log-format json` and waits until it is ready.
pub async fn spawn_switchboard(config: &Path) -> Proc {
    spawn_switchboard_env(config, &[]).await
}

/// Like [`spawn_switchboard`], with extra environment variables.
pub async fn spawn_switchboard_env(config: &Path, envs: &[(&str, String)]) -> Proc {
    let mut child = Command::new(switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(config)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = JsonLog::read("switchboard", child.stderr.take().unwrap(), None);
    let addrs = logs.switchboard_ready(Duration::from_secs(30)).await;
    Proc {
        child,
        listeners: addrs.listeners,
        admin: addrs.admin,
        peer: addrs.peer,
        logs,
    }
}

impl Proc {
    /// Waits for a log line whose message is `msg`.
    pub async fn wait_log(&mut self, msg: &str) -> serde_json::Value {
        self.logs.wait_for(msg, Duration::from_secs(30)).await
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().unwrap().to_string();
        let ok = std::process::Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {pid}");
    }
}

/// The workspace's Python with the test peers, or `None` when missing (see
/// [`switchboard_testing::peers::skip`]: a loud SKIPPED line, a failure under `CI`).
pub fn python() -> Option<PathBuf> {
    switchboard_testing::peers::require_python(&[])
}

/// Runs a Python script with arguments; returns the JSON object on its last stdout line.
pub async fn run_py(py: &Path, script: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(py)
        .arg(script)
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("no JSON from {} ({e}): {stdout}", script.display()))
}
