//! Test harness: real upstreams and a real gateway on port-0 sockets.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use switchboard_gateway::{Gateway, config};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Starts the example upstream on a free port.
pub async fn upstream() -> SocketAddr {
    switchboard_examples::upstream::spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

/// Parses `yaml` (with `${UPSTREAM}` set to `upstream`) and starts a gateway in-process.
pub async fn gateway(yaml: &str, upstream: SocketAddr) -> Gateway {
    switchboard_gateway::install_crypto_provider();
    let up = upstream.to_string();
    let env = move |name: &str| (name == "UPSTREAM").then(|| up.clone());
    let yaml = if yaml.contains("admin:") {
        yaml.to_string()
    } else {
        format!("admin: {{bind: '127.0.0.1:0'}}\n{yaml}")
    };
    let cfg = config::load_str(&yaml, "test.yaml", &env).unwrap_or_else(|e| panic!("{e}"));
    Gateway::start(cfg, None).await.unwrap()
}

/// The base URL of a listener.
pub async fn base(gw: &Gateway, listener: &str) -> String {
    format!("http://{}", gw.listener_addr(listener).await.unwrap())
}

/// A plain HTTP client.
pub fn client() -> reqwest::Client {
    switchboard_gateway::install_crypto_provider();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Scrapes one sample's value from the admin `/metrics` output.
pub async fn metric(gw: &Gateway, name_and_labels: &str) -> Option<f64> {
    let admin = gw.admin_addr().await.unwrap();
    let text = client()
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The `switchboard` binary built for these tests.
pub fn switchboard_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_switchboard"))
}

/// A `switchboard run` child process, with its addresses read from its JSON log.
pub struct Proc {
    pub child: Child,
    pub listeners: std::collections::HashMap<String, SocketAddr>,
    pub admin: SocketAddr,
    pub logs: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
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
    let stderr = child.stderr.take().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) => {
                    let _ = tx.send(v);
                }
                Err(_) => eprintln!("switchboard: {line}"),
            }
        }
    });
    let mut listeners = std::collections::HashMap::new();
    let mut admin = None;
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(v) = rx.recv().await {
            let msg = v["message"].as_str().unwrap_or_default();
            match msg {
                "listening" => {
                    listeners.insert(
                        v["listener"].as_str().unwrap().to_string(),
                        v["addr"].as_str().unwrap().parse().unwrap(),
                    );
                }
                "admin listening" => admin = Some(v["addr"].as_str().unwrap().parse().unwrap()),
                "switchboard ready" => return true,
                _ => {}
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "switchboard did not become ready");
    Proc {
        child,
        listeners,
        admin: admin.expect("admin address logged"),
        logs: rx,
    }
}

impl Proc {
    /// Waits for a log line whose message is `msg`.
    pub async fn wait_log(&mut self, msg: &str) -> serde_json::Value {
        tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(v) = self.logs.recv().await {
                if v["message"].as_str() == Some(msg) {
                    return v;
                }
            }
            panic!("log ended before `{msg}`");
        })
        .await
        .unwrap_or_else(|_| panic!("no `{msg}` log line within 30s"))
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

/// The workspace's Python with the test peers, or `None` (loudly) outside CI when missing;
/// in CI a missing venv fails the test.
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("SWITCHBOARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "Python venv not found at {} (run `make setup`)",
            p.display()
        );
    }
    eprintln!(
        "==== SKIPPED: Python venv not found at {} (run `make setup`) ====",
        p.display()
    );
    None
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
