//! The API server a test runs against, chosen once per test:
//!
//! - `KUBECONFIG` set: that cluster (CRDs are installed with server-side apply; each test
//!   works in namespaces of its own with a random suffix);
//! - else, when `<workspace>/../shared/k8s/apiserver/up` exists (or the folder named by
//!   `SWITCHBOARD_APISERVER_SCRIPTS`): a real kube-apiserver + etcd started in a temporary
//!   folder for this test and stopped (`down`) when the test ends, failed or not;
//! - else (or with `SWITCHBOARD_TEST_APISERVER=fake`): the in-process fake of this module,
//!   unless `SWITCHBOARD_TEST_APISERVER=real` (set by `.ci/run`), which makes a missing real
//!   API server a test failure instead of a quiet fallback.
//!
//! Every test prints which one it ran against.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::{Value, json};

use super::{FakeApiServer, workspace_root, yaml_docs};

/// A real API server this test started; stopped on drop.
pub struct OwnedApiServer {
    /// Its state folder (`up DIR`).
    pub dir: PathBuf,
    scripts: PathBuf,
}

impl Drop for OwnedApiServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new(self.scripts.join("down"))
            .arg(&self.dir)
            .status();
    }
}

/// The cluster of one test.
pub struct TestCluster {
    /// A client for it.
    pub client: Client,
    /// A kubeconfig file for processes (the controller binary).
    pub kubeconfig: PathBuf,
    /// The fake, when that is what runs.
    pub fake: Option<FakeApiServer>,
    /// The real API server this test started, if it did.
    pub owned: Option<OwnedApiServer>,
    _tmp: tempfile::TempDir,
}

fn scripts_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SWITCHBOARD_APISERVER_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/k8s/apiserver"));
    dir.join("up").exists().then_some(dir)
}

/// Binaries unpacked once per machine and linked into each test's folder, so `up` skips the
/// unpacking (tens of MB of xz) after the first test.
fn seed_binaries(scripts: &Path, dir: &Path) {
    let cache = std::env::temp_dir().join("switchboard-apiserver-bin");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["etcd", "kube-apiserver", "kubectl"] {
        let cached = cache.join(b);
        let stamp_ok = std::fs::metadata(&cached).is_ok()
            && std::fs::metadata(scripts.join(format!("{b}.xz")))
                .and_then(|m| m.modified())
                .ok()
                <= std::fs::metadata(&cached).and_then(|m| m.modified()).ok();
        if !stamp_ok {
            continue;
        }
        if std::fs::hard_link(&cached, bin.join(b)).is_err() {
            let _ = std::fs::copy(&cached, bin.join(b));
        }
    }
}

fn remember_binaries(dir: &Path) {
    let cache = std::env::temp_dir().join("switchboard-apiserver-bin");
    let _ = std::fs::create_dir_all(&cache);
    for b in ["etcd", "kube-apiserver", "kubectl"] {
        let cached = cache.join(b);
        if cached.exists() {
            continue;
        }
        let tmp = cache.join(format!("{b}.{}", std::process::id()));
        if std::fs::copy(dir.join("bin").join(b), &tmp).is_ok() {
            let _ = std::fs::rename(&tmp, &cached);
        }
        let _ = std::fs::remove_file(&tmp);
    }
}

async fn client_for(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

impl TestCluster {
    /// Starts (or connects to) the cluster for this test.
    pub async fn start() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tmp = tempfile::tempdir().unwrap();
        let force_fake = std::env::var("SWITCHBOARD_TEST_APISERVER").as_deref() == Ok("fake");
        if !force_fake && let Ok(kc) = std::env::var("KUBECONFIG") {
            println!("cluster: the REAL cluster named by KUBECONFIG ({kc})");
            let kubeconfig = PathBuf::from(kc);
            let client = client_for(&kubeconfig).await;
            install_crds(&client).await;
            return Self {
                client,
                kubeconfig,
                fake: None,
                owned: None,
                _tmp: tmp,
            };
        }
        if !force_fake && let Some(scripts) = scripts_dir() {
            let dir = tmp.path().join("apiserver");
            seed_binaries(&scripts, &dir);
            let started = std::time::Instant::now();
            // A test process killed outright (a timeout's SIGKILL) runs no destructor: a
            // watchdog outside it stops the API server once the test process is gone.
            {
                use std::os::unix::process::CommandExt;
                let _ = std::process::Command::new("sh")
                    .arg("-c")
                    .arg(format!(
                        "while kill -0 {} 2>/dev/null; do sleep 1; done; exec \"$0\" \"$1\"",
                        std::process::id()
                    ))
                    .arg(scripts.join("down"))
                    .arg(&dir)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .process_group(0)
                    .spawn();
            }
            // The guard exists before `up` runs, so a failed start is torn down too.
            let owned = OwnedApiServer {
                dir: dir.clone(),
                scripts: scripts.clone(),
            };
            // `up` picks free ports and binds them a moment later; on a busy machine another
            // test can take one in between ("address already in use"). Such a start is stopped
            // and tried again on new ports; any other failure fails the test at once.
            let mut attempt = 0;
            loop {
                attempt += 1;
                let out = tokio::task::spawn_blocking({
                    let (scripts, dir) = (scripts.clone(), dir.clone());
                    move || {
                        std::process::Command::new(scripts.join("up"))
                            .arg(&dir)
                            .output()
                            .unwrap()
                    }
                })
                .await
                .unwrap();
                if out.status.success() {
                    break;
                }
                let stderr = String::from_utf8_lossy(&out.stderr);
                if attempt < 4 && stderr.contains("address already in use") {
                    println!("cluster: a port `up` picked was taken meanwhile; starting again");
                    let (scripts, dir) = (scripts.clone(), dir.clone());
                    tokio::task::spawn_blocking(move || {
                        std::process::Command::new(scripts.join("down"))
                            .arg(&dir)
                            .output()
                    })
                    .await
                    .unwrap()
                    .unwrap();
                    continue;
                }
                panic!("apiserver up failed (attempt {attempt}): {stderr}");
            }
            remember_binaries(&dir);
            let kubeconfig = dir.join("kubeconfig");
            let client = client_for(&kubeconfig).await;
            install_crds(&client).await;
            println!(
                "cluster: a REAL kube-apiserver started for this test in {:?} ({})",
                started.elapsed(),
                dir.display()
            );
            return Self {
                client,
                kubeconfig,
                fake: None,
                owned: Some(owned),
                _tmp: tmp,
            };
        }
        assert!(
            std::env::var("SWITCHBOARD_TEST_APISERVER").as_deref() != Ok("real"),
            "SWITCHBOARD_TEST_APISERVER=real, but neither KUBECONFIG nor \
             <workspace>/../shared/k8s/apiserver/up (or SWITCHBOARD_APISERVER_SCRIPTS) is there"
        );
        let fake = FakeApiServer::start().await;
        println!(
            "cluster: the in-process FAKE API server at {} (no real one available)",
            fake.addr
        );
        let kubeconfig = tmp.path().join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: \"http://{}\"}}}}]\nusers: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake, namespace: default}}}}]\ncurrent-context: fake\n",
                fake.addr
            ),
        )
        .unwrap();
        Self {
            client: fake.client(),
            kubeconfig,
            fake: Some(fake),
            owned: None,
            _tmp: tmp,
        }
    }

    /// Whether this is a real API server.
    pub fn is_real(&self) -> bool {
        self.fake.is_none()
    }

    /// A fresh namespace named `base-<random>`; created on a real cluster.
    pub async fn namespace(&self, base: &str) -> String {
        let suffix: u32 = rand_u32();
        let name = format!("{base}-{:06x}", suffix & 0xff_ffff);
        if self.is_real() {
            let ns = serde_json::from_value(
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}),
            )
            .unwrap();
            Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone())
                .create(&PostParams::default(), &ns)
                .await
                .unwrap();
        }
        name
    }

    /// Creates (or, on the fake, stores) an object given as JSON.
    pub async fn create(&self, obj: Value) {
        if let Some(fake) = &self.fake {
            fake.put(obj);
            return;
        }
        let (api, name) = dyn_api(&self.client, &obj);
        let data = serde_json::from_value(obj).unwrap();
        match api.create(&PostParams::default(), &data).await {
            Ok(_) => {}
            Err(e) => panic!("creating {name}: {e}"),
        }
    }

    /// Restarts the kube-apiserver process (etcd and its data stay): every watch breaks,
    /// the address stays. Only for an API server this test started.
    pub async fn restart_apiserver(&self) {
        let owned = self
            .owned
            .as_ref()
            .expect("a real API server this test started");
        let pidfile = owned.dir.join("kube-apiserver.pid");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
        for _ in 0..200 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            // A zombie still has /proc/PID; its state is Z.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.contains(") Z ") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(owned.dir.join("logs/kube-apiserver.log"))
            .unwrap();
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new(&args[0])
            .args(&args[1..])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(&pidfile, child.id().to_string()).unwrap();
        // Reaped by a thread, so `down` sees it exit.
        std::thread::spawn(move || {
            let mut child = child;
            let _ = child.wait();
        });
        let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.client.clone());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while api.list(&Default::default()).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "kube-apiserver did not come back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// A dynamic Api for a JSON object, and its name.
pub fn dyn_api(client: &Client, obj: &Value) -> (Api<kube::api::DynamicObject>, String) {
    let api_version = obj["apiVersion"].as_str().unwrap();
    let kind = obj["kind"].as_str().unwrap();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let plural = match kind {
        "GatewayClass" => "gatewayclasses".to_string(),
        "GatewayParameters" => "gatewayparameters".to_string(),
        "Policy" => "policies".to_string(),
        k => format!("{}s", k.to_lowercase()),
    };
    let ar = kube::api::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural,
    };
    let name = obj["metadata"]["name"].as_str().unwrap().to_string();
    let api = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    (api, name)
}

/// The CRD documents the tests install: Gateway API v1.6.1 (standard channel) and ours.
pub fn crd_documents() -> Vec<Value> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gateway-api-v1.6.1");
    let mut docs = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for p in files {
        docs.extend(yaml_docs(&std::fs::read_to_string(p).unwrap()));
    }
    docs.extend(yaml_docs(&switchboard_controller::crd::crds_yaml()));
    docs.retain(|d| d["kind"] == "CustomResourceDefinition");
    docs
}

/// Server-side applies the CRDs and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let pp = PatchParams::apply("switchboard-tests").force();
    let mut names = Vec::new();
    for d in crd_documents() {
        let name = d["metadata"]["name"].as_str().unwrap().to_string();
        api.patch(&name, &pp, &Patch::Apply(&d)).await.unwrap();
        names.push(name);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for name in names {
        loop {
            let crd = api.get(&name).await.unwrap();
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "CRD {name} not established"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
