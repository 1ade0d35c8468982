//! A throwaway `redis-server` for integration tests (the session stores, two-replica gateways,
//! shared rate limits).
//!
//! ```no_run
//! # fn demo() {
//! use switchboard_testing::redis::RedisServer;
//! let Some(redis) = RedisServer::start_or_skip("two replicas share sessions") else { return };
//! let url = redis.url(); // unix:///tmp/.../redis.sock — put it in `sessions.redis.url`
//! # }
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// A `redis-server` child on a unix socket in a fresh temporary directory, without persistence.
/// Killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    socket: PathBuf,
}

/// `DEBUG` (for `DEBUG SLEEP`) is off by default since Redis 7; loopback clients may use it.
const DEBUG_ARGS: [&str; 2] = ["--enable-debug-command", "local"];

impl RedisServer {
    /// Starts a server, or returns `None` when `redis-server` is not on `PATH` (see
    /// [`crate::peers::skip`]: a loud SKIPPED line, or a failure under `CI`). `test` names the
    /// test in the message.
    pub fn start_or_skip(test: &str) -> Option<RedisServer> {
        if !crate::peers::require_on_path(test, "redis-server", "apt-get install redis-server") {
            return None;
        }
        Some(RedisServer::start().unwrap_or_else(|e| panic!("{test}: starting redis-server: {e}")))
    }

    /// Starts a server and waits until it answers `PING`.
    pub fn start() -> std::io::Result<RedisServer> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchboard-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A directory left by an earlier process with the same pid.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let socket = dir.join("redis.sock");
        let child = Self::spawn(&dir, &socket)?;
        let mut server = RedisServer { child, dir, socket };
        server.wait_ready()?;
        Ok(server)
    }

    fn spawn(dir: &Path, socket: &Path) -> std::io::Result<Child> {
        Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(DEBUG_ARGS)
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        let child = &mut self.child;
        // Readiness: redis logs that it accepts connections once its listeners are up. Read
        // its log on a thread so a server that hangs cannot hang the test forever.
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut log = String::new();
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                log.push_str(&line);
                log.push('\n');
                // "Ready to accept connections" (6.x) or "The server is now ready to accept
                // connections at <socket>" (7.x).
                if line
                    .to_ascii_lowercase()
                    .contains("ready to accept connections")
                {
                    let _ = tx.send(Ok(()));
                    // Keep draining so redis never blocks on a full pipe.
                    for _ in lines.by_ref() {}
                    return;
                }
            }
            let _ = tx.send(Err(log));
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => {
                return Err(std::io::Error::other(format!(
                    "redis-server exited:\n{log}"
                )));
            }
            Err(_) => return Err(std::io::Error::other("redis-server not ready after 20s")),
        }
        self.ping()
    }

    /// Kills the server (its data is gone: no persistence). [`restart`](Self::restart) brings
    /// up an empty one on the same socket.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Starts a fresh (empty) server on the same socket after [`stop`](Self::stop).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.child = Self::spawn(&self.dir, &self.socket)?;
        self.wait_ready()
    }

    /// Freezes the process (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Thaws a [`pause`](Self::pause)d server (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        run_cli(&["-s", &self.socket.display().to_string()], args)
    }

    /// The connection URL (`unix:///.../redis.sock`).
    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Sends `PING` and expects `+PONG`.
    pub fn ping(&mut self) -> std::io::Result<()> {
        let mut conn = UnixStream::connect(&self.socket)?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        conn.write_all(b"PING\r\n")?;
        let mut buf = [0u8; 7];
        conn.read_exact(&mut buf)?;
        if &buf == b"+PONG\r\n" {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "unexpected PING reply {:?}",
                String::from_utf8_lossy(&buf)
            )))
        }
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

fn run_cli(target: &[&str], args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(target)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `redis-server` (or sentinel) on a loopback TCP port, for set-ups that need ports: a
/// Redis Cluster, a Sentinel group. Killed on drop.
#[derive(Debug)]
pub struct RedisNode {
    child: Child,
    port: u16,
    args: Vec<String>,
    dir: PathBuf,
}

/// A port in 20000..50000 (the cluster bus takes port + 10000). Nothing reserves it: a node
/// that fails to bind is started again on another one.
fn random_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(NODE.fetch_add(1, Ordering::Relaxed));
    20000 + (h.finish() % 30000) as u16
}

static NODE: AtomicU64 = AtomicU64::new(0);

fn fresh_dir(kind: &str) -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "switchboard-{kind}-{}-{}",
        std::process::id(),
        NODE.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl RedisNode {
    /// Starts a node in `dir` with `args` (`{port}` in an argument becomes the port; a
    /// `{conf}` argument becomes a config file written from `conf`, for sentinels, which
    /// rewrite their config). Retries on another port when the chosen one is taken.
    fn start(dir: &Path, args: &[&str], conf: Option<&str>) -> std::io::Result<RedisNode> {
        let mut last = String::new();
        for _ in 0..20 {
            let port = random_port();
            let node_dir = dir.join(port.to_string());
            std::fs::create_dir_all(&node_dir)?;
            let mut full: Vec<String> = Vec::new();
            if let Some(conf) = conf {
                let path = node_dir.join("sentinel.conf");
                std::fs::write(
                    &path,
                    conf.replace("{port}", &port.to_string())
                        .replace("{dir}", &node_dir.display().to_string()),
                )?;
                full.push(path.display().to_string());
            }
            full.extend(args.iter().map(|a| {
                a.replace("{port}", &port.to_string())
                    .replace("{tlsport}", &(port + 10000).to_string())
            }));
            full.extend(
                [
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--enable-debug-command",
                    "local",
                ]
                .map(str::to_owned),
            );
            if conf.is_none() {
                full.extend(["--port".to_owned(), port.to_string()]);
            }
            full.extend(["--dir".to_owned(), node_dir.display().to_string()]);
            let mut node = RedisNode {
                child: Self::spawn(&full, &node_dir)?,
                port,
                args: full,
                dir: node_dir,
            };
            match node.wait_ready() {
                Ok(()) => return Ok(node),
                Err(e) => last = e.to_string(),
            }
        }
        Err(std::io::Error::other(format!(
            "no redis node came up: {last}"
        )))
    }

    fn spawn(args: &[String], dir: &Path) -> std::io::Result<Child> {
        let log = std::fs::File::create(dir.join("log"))?;
        Command::new("redis-server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::null())
            .spawn()
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        for _ in 0..500 {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "redis-server exited ({status}):\n{log}"
                )));
            }
            if self.cli(&["PING"]).trim() == "PONG" {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(std::io::Error::other("redis node not ready after 10s"))
    }

    /// A server that also takes TLS connections, on port + 10000 (see
    /// [`tls_url`](Self::tls_url)), with the PEM certificate and key at `cert` and `key`; the
    /// plain port stays for `redis-cli`. Killed (and its directory removed) on drop.
    pub fn start_tls(cert: &Path, key: &Path) -> std::io::Result<(RedisNode, PathBuf)> {
        let dir = fresh_dir("redis-tls")?;
        let cert = cert.display().to_string();
        let key = key.display().to_string();
        let node = RedisNode::start(
            &dir,
            &[
                "--tls-port",
                "{tlsport}",
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-auth-clients",
                "no",
            ],
            None,
        )?;
        Ok((node, dir))
    }

    /// `rediss://127.0.0.1:PORT+10000` of a [`start_tls`](Self::start_tls) node.
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.port + 10000)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Runs `redis-cli -p PORT args...` and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        run_cli(&["-h", "127.0.0.1", "-p", &self.port.to_string()], args)
    }

    /// Its `ROLE` (`master`, `slave` or `sentinel`).
    pub fn role(&self) -> String {
        self.cli(&["ROLE"]).lines().next().unwrap_or("").to_owned()
    }

    /// Freezes the process (SIGSTOP).
    pub fn pause(&self) {
        signal(self.child.id(), "STOP");
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) {
        signal(self.child.id(), "CONT");
    }

    /// Kills it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same arguments (its data is gone).
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.child = Self::spawn(&self.args, &self.dir)?;
        self.wait_ready()
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        // A paused node would ignore the kill until resumed on some systems; thaw it first.
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A Redis Cluster on loopback: 3 masters, each with one replica (`redis-cli --cluster
/// create ... --cluster-replicas 1`). Nodes and their directory go on drop.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisNode>,
    dir: PathBuf,
}

impl RedisCluster {
    /// Starts the cluster, or `None` when `redis-server` is not on `PATH` (see
    /// [`crate::peers::skip`]).
    pub fn start_or_skip(test: &str) -> Option<RedisCluster> {
        if !crate::peers::require_on_path(test, "redis-server", "apt-get install redis-server") {
            return None;
        }
        Some(
            RedisCluster::start()
                .unwrap_or_else(|e| panic!("{test}: starting a redis cluster: {e}")),
        )
    }

    /// Starts six nodes, joins them into a cluster and waits until every node sees all slots
    /// served and every replica in sync.
    pub fn start() -> std::io::Result<RedisCluster> {
        let dir = fresh_dir("redis-cluster")?;
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(RedisNode::start(
                &dir,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ],
                None,
            )?);
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "redis-cli --cluster create: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        let cluster = RedisCluster { nodes, dir };
        wait_for(
            "cluster_state:ok on every node",
            Duration::from_secs(20),
            || {
                cluster
                    .nodes
                    .iter()
                    .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
            },
        );
        wait_for("every replica in sync", Duration::from_secs(20), || {
            cluster.nodes.iter().all(|n| {
                let role = n.cli(&["ROLE"]);
                !role.starts_with("slave") || role.contains("connected")
            })
        });
        Ok(cluster)
    }

    /// Seed URLs (every node), for `sessions.redis.cluster`.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes.iter().map(RedisNode::url).collect()
    }

    /// The nodes.
    pub fn nodes(&self) -> &[RedisNode] {
        &self.nodes
    }

    /// The node serving `key` as master, and its replica.
    pub fn master_and_replica_of(&self, key: &str) -> (&RedisNode, &RedisNode) {
        let slot: u16 = self.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT");
        // `CLUSTER NODES`: id addr flags master-id ... slot ranges
        let table = self.nodes[0].cli(&["CLUSTER", "NODES"]);
        let mut master_id = None;
        let mut port_of = std::collections::HashMap::new();
        let mut master_of = std::collections::HashMap::new();
        for line in table.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let port: u16 = f[1]
                .split(['@', ':'])
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            port_of.insert(f[0].to_owned(), port);
            if f[2].contains("slave") {
                master_of.insert(f[3].to_owned(), port);
            }
            for range in &f[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                    && f[2].contains("master")
                {
                    master_id = Some(f[0].to_owned());
                }
            }
        }
        let master_id = master_id.expect("a master for the slot");
        let master_port = port_of[&master_id];
        let replica_port = master_of[&master_id];
        let node = |p| self.nodes.iter().find(|n| n.port() == p).expect("node");
        (node(master_port), node(replica_port))
    }

    /// Fails over the master serving `key` to its replica (`CLUSTER FAILOVER` on the replica:
    /// the coordinated manual failover, which waits for the replica to catch up) and waits
    /// until every node agrees. Returns the new master's port.
    pub fn fail_over_master_of(&self, key: &str) -> u16 {
        let (master, replica) = self.master_and_replica_of(key);
        let out = replica.cli(&["CLUSTER", "FAILOVER"]);
        assert!(out.contains("OK"), "CLUSTER FAILOVER: {out}");
        wait_for(
            "the replica to become master",
            Duration::from_secs(20),
            || replica.role() == "master" && master.role() == "slave",
        );
        let port = replica.port();
        wait_for(
            "every node to see the new master",
            Duration::from_secs(20),
            || {
                self.nodes.iter().all(|n| {
                    n.cli(&["CLUSTER", "NODES"])
                        .lines()
                        .any(|l| l.contains(&format!(":{port}@")) && l.contains("master"))
                        && n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                })
            },
        );
        port
    }
}

impl RedisCluster {
    /// Fails over every master to its replica, one after the other (see
    /// [`fail_over_master_of`](Self::fail_over_master_of)): afterwards every slot is served by
    /// a node that was a replica.
    pub fn fail_over_every_master(&self) {
        let replicas: Vec<&RedisNode> = self.nodes.iter().filter(|n| n.role() == "slave").collect();
        for replica in replicas {
            let out = replica.cli(&["CLUSTER", "FAILOVER"]);
            assert!(out.contains("OK"), "CLUSTER FAILOVER: {out}");
            wait_for(
                "the replica to become master",
                Duration::from_secs(20),
                || replica.role() == "master",
            );
        }
        wait_for(
            "cluster_state:ok everywhere after the failovers",
            Duration::from_secs(20),
            || {
                self.nodes.iter().all(|n| {
                    let role = n.cli(&["ROLE"]);
                    n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")
                        && (!role.starts_with("slave") || role.contains("connected"))
                })
            },
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Sentinel set-up on loopback: one master, one replica, three sentinels watching the master
/// under [`RedisSentinel::MASTER`].
#[derive(Debug)]
pub struct RedisSentinel {
    /// Index 0 and 1: the two data nodes (0 starts as master).
    data: Vec<RedisNode>,
    sentinels: Vec<RedisNode>,
    dir: PathBuf,
}

impl RedisSentinel {
    /// The master's name as the sentinels know it.
    pub const MASTER: &'static str = "sbmaster";

    /// Starts the set-up, or `None` when `redis-server` is not on `PATH`.
    pub fn start_or_skip(test: &str) -> Option<RedisSentinel> {
        if !crate::peers::require_on_path(test, "redis-server", "apt-get install redis-server") {
            return None;
        }
        Some(
            RedisSentinel::start()
                .unwrap_or_else(|e| panic!("{test}: starting redis sentinels: {e}")),
        )
    }

    /// Starts the master, its replica (in sync) and three sentinels that see both and each
    /// other.
    pub fn start() -> std::io::Result<RedisSentinel> {
        let dir = fresh_dir("redis-sentinel")?;
        let master = RedisNode::start(&dir, &[], None)?;
        let port = master.port().to_string();
        let replica = RedisNode::start(&dir, &["--replicaof", "127.0.0.1", &port], None)?;
        wait_for("the replica in sync", Duration::from_secs(20), || {
            replica.cli(&["ROLE"]).contains("connected")
        });
        let conf = format!(
            "port {{port}}\nbind 127.0.0.1\ndir {{dir}}\n\
             sentinel monitor {name} 127.0.0.1 {port} 2\n\
             sentinel down-after-milliseconds {name} 1000\n\
             sentinel failover-timeout {name} 5000\n\
             sentinel parallel-syncs {name} 1\n",
            name = Self::MASTER
        );
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(RedisNode::start(&dir, &["--sentinel"], Some(&conf))?);
        }
        let setup = RedisSentinel {
            data: vec![master, replica],
            sentinels,
            dir,
        };
        wait_for(
            "the sentinels to know the replica and each other",
            Duration::from_secs(20),
            || {
                setup.sentinels.iter().all(|s| {
                    let info = s.cli(&["SENTINEL", "MASTER", Self::MASTER]);
                    let mut lines = info.lines();
                    let mut replicas = 0;
                    let mut others = 0;
                    while let Some(l) = lines.next() {
                        match l {
                            "num-slaves" => {
                                replicas = lines.next().and_then(|v| v.parse().ok()).unwrap_or(0)
                            }
                            "num-other-sentinels" => {
                                others = lines.next().and_then(|v| v.parse().ok()).unwrap_or(0)
                            }
                            _ => {}
                        }
                    }
                    replicas >= 1 && others >= 2
                })
            },
        );
        Ok(setup)
    }

    /// Sentinel URLs, for `sessions.redis.sentinel.nodes`.
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisNode::url).collect()
    }

    /// The port of the master as the first sentinel reports it.
    pub fn master_port(&self) -> u16 {
        let out = self.sentinels[0].cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER]);
        out.lines()
            .nth(1)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The current master node.
    pub fn master(&self) -> &RedisNode {
        let port = self.master_port();
        self.data.iter().find(|n| n.port() == port).expect("master")
    }

    /// `SENTINEL FAILOVER`: promotes the replica; waits until it is master, every sentinel
    /// names it, and the old master replicates from it. Returns the new master's port.
    pub fn failover(&self) -> u16 {
        let old = self.master_port();
        let out = self.sentinels[0].cli(&["SENTINEL", "FAILOVER", Self::MASTER]);
        assert!(out.contains("OK"), "SENTINEL FAILOVER: {out}");
        let new = self
            .data
            .iter()
            .find(|n| n.port() != old)
            .expect("the replica")
            .port();
        wait_for(
            "the sentinels to name the new master",
            Duration::from_secs(20),
            || {
                self.sentinels.iter().all(|s| {
                    s.cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::MASTER])
                        .lines()
                        .nth(1)
                        .is_some_and(|p| p.trim() == new.to_string())
                })
            },
        );
        wait_for(
            "the new master to be master",
            Duration::from_secs(20),
            || {
                self.data
                    .iter()
                    .any(|n| n.port() == new && n.role() == "master")
            },
        );
        new
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.sentinels.clear();
        self.data.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
