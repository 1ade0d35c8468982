//! Child processes that log one JSON object a line (`switchboard run --log-format json`,
//! `switchboard-controller run --log-format json`): their log read on a task, and the addresses
//! they report. This is how a test learns where a spawned server listens: it binds port 0 and
//! logs the address it got (`listening` / `admin listening` / `config push server listening`,
//! each with an `addr` field), so no port is picked in advance.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// A child's JSON log, line by line. Lines that are not JSON are echoed to the test's stderr
/// (prefixed with `name`) and skipped; when `copy` is given every line is also appended there
/// (a log file to look at after a failure).
pub struct JsonLog {
    rx: mpsc::UnboundedReceiver<Value>,
}

impl JsonLog {
    /// Reads `out` (a child's piped stdout or stderr) on a task.
    pub fn read(
        name: &str,
        out: impl AsyncRead + Unpin + Send + 'static,
        copy: Option<std::path::PathBuf>,
    ) -> JsonLog {
        let (tx, rx) = mpsc::unbounded_channel();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut file = copy.and_then(|p| std::fs::File::create(p).ok());
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(f) = file.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        // Keep reading (and copying) after the test stopped listening.
                        let _ = tx.send(v);
                    }
                    Err(_) => eprintln!("{name}: {line}"),
                }
            }
        });
        JsonLog { rx }
    }

    /// The next log line (as JSON), or `None` once the child closed its output.
    pub async fn next(&mut self) -> Option<Value> {
        self.rx.recv().await
    }

    /// Waits (at most `within`) for a line whose `message` (or `fields.message`) is `msg`.
    pub async fn wait_for(&mut self, msg: &str, within: Duration) -> Value {
        let found = tokio::time::timeout(within, async {
            while let Some(v) = self.rx.recv().await {
                if message(&v) == Some(msg) {
                    return Some(v);
                }
            }
            None
        })
        .await;
        match found {
            Ok(Some(v)) => v,
            Ok(None) => panic!("the log ended before `{msg}`"),
            Err(_) => panic!("no `{msg}` log line within {within:?}"),
        }
    }

    /// Waits for the `addr` field of the line whose message is `msg`.
    pub async fn addr(&mut self, msg: &str, within: Duration) -> SocketAddr {
        let v = self.wait_for(msg, within).await;
        field(&v, "addr")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("`{msg}` has no socket address in `addr`: {v}"))
    }

    /// Reads a `switchboard run` log until `switchboard ready` (at most `within`): the address
    /// of each listener (`listening`, by listener name) and of the admin server.
    pub async fn switchboard_ready(&mut self, within: Duration) -> Addresses {
        let mut listeners = HashMap::new();
        let mut admin = None;
        let mut peer = None;
        let ready = tokio::time::timeout(within, async {
            while let Some(v) = self.rx.recv().await {
                match message(&v) {
                    Some("listening") => {
                        let name = field(&v, "listener").unwrap_or_default().to_string();
                        let addr = field(&v, "addr").and_then(|a| a.parse().ok());
                        listeners.insert(name, addr.expect("`listening` has an address"));
                    }
                    Some("admin listening") => {
                        admin = field(&v, "addr").and_then(|a| a.parse().ok())
                    }
                    Some("peer listening") => peer = field(&v, "addr").and_then(|a| a.parse().ok()),
                    Some("switchboard ready") => return true,
                    _ => {}
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "switchboard did not become ready");
        Addresses {
            listeners,
            admin: admin.expect("the admin address is logged"),
            peer,
        }
    }
}

/// Where a `switchboard run` listens, as it logged.
#[derive(Debug, Clone)]
pub struct Addresses {
    /// Each listener's bound address, by name.
    pub listeners: HashMap<String, SocketAddr>,
    /// The admin server's bound address.
    pub admin: SocketAddr,
    /// The peer listener's bound address (`sessions.peer`), when it has one.
    pub peer: Option<SocketAddr>,
}

/// A log line's message: tracing-subscriber's JSON puts it at the top level (flattened) or in
/// `fields`.
pub fn message(v: &Value) -> Option<&str> {
    field(v, "message")
}

/// A field of a JSON log line, at the top level or under `fields`.
pub fn field<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v.get(name)
        .or_else(|| v.get("fields").and_then(|f| f.get(name)))
        .and_then(Value::as_str)
}
