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
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
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
        let mut server = RedisServer { child, dir, socket };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(log)) => {
                return Err(std::io::Error::other(format!(
                    "redis-server exited:\n{log}"
                )));
            }
            Err(_) => return Err(std::io::Error::other("redis-server not ready after 20s")),
        }
        server.ping()?;
        Ok(server)
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
