//! The access log on real sockets: lines in a file (text and JSON, configured fields), a
//! stuck writer that drops and counts without slowing requests, lines written at shutdown,
//! and no credentials in any line.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

const SECRETS: [&str; 3] = [
    "sekret-bearer-7f3a",
    "sekret-apikey-91bc",
    "sekret-query-55de",
];

/// A config with one listener proxying to `upstream` and the given `access_log:` block.
fn write_config(
    dir: &Path,
    upstream: std::net::SocketAddr,
    access_log: &str,
) -> std::path::PathBuf {
    let config = dir.join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: "127.0.0.1:0"}}
access_log: {access_log}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    routes: [{{name: web, match: {{path_prefix: /}}, http: {{url: "http://{upstream}"}}}}]
"#
        ),
    )
    .unwrap();
    config
}

/// Requests carrying credentials in the places clients put them.
async fn send_with_secrets(base: &str, path: &str) {
    let resp = common::client()
        .get(format!("{base}{path}?api_key={}", SECRETS[2]))
        .header("authorization", format!("Bearer {}", SECRETS[0]))
        .header("x-api-key", SECRETS[1])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
}

/// Waits until `file` holds at least `n` lines and returns them.
async fn lines(file: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            start.elapsed() < WAIT,
            "{n} access lines expected in {}, got: {text}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_no_secrets(text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "secret {s} in the access log: {text}");
    }
}

#[tokio::test]
async fn text_lines_with_the_configured_fields_reach_the_file() {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        up,
        "{to: access.log, format: text, fields: [method, path, status, route, outcome], flush_interval: 50ms}",
    );
    let proc = common::spawn_switchboard(&config).await;
    let base = format!("http://{}", proc.listeners["edge"]);
    send_with_secrets(&base, "/echo/one").await;
    send_with_secrets(&base, "/echo/two%20words").await;
    // A relative `to` is taken from the config file's directory.
    let got = lines(&dir.path().join("access.log"), 2).await;
    assert_eq!(
        got,
        vec![
            "method=GET path=/echo/one status=200 route=web outcome=ok",
            "method=GET path=/echo/two%20words status=200 route=web outcome=ok",
        ]
    );
    assert_no_secrets(&got.join("\n"));
}

#[tokio::test]
async fn json_lines_carry_every_field_by_default() {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("access.json");
    let config = write_config(
        dir.path(),
        up,
        &format!(
            "{{to: '{}', format: json, flush_interval: 50ms}}",
            file.display()
        ),
    );
    let proc = common::spawn_switchboard(&config).await;
    let base = format!("http://{}", proc.listeners["edge"]);
    send_with_secrets(&base, "/echo/json").await;
    let resp = common::client()
        .get(format!("{base}/nowhere-upstream-404"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let got = lines(&file, 2).await;
    assert_no_secrets(&got.join("\n"));
    let first: serde_json::Value = serde_json::from_str(&got[0]).unwrap();
    let mut keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // In the line they come in the default order.
    keys.sort_by_key(|k| got[0].find(&format!("\"{k}\":")).unwrap());
    assert_eq!(
        keys,
        [
            "time",
            "listener",
            "route",
            "client",
            "method",
            "path",
            "status",
            "duration_ms",
            "bytes",
            "upstream",
            "outcome"
        ]
    );
    assert_eq!(first["listener"], "edge");
    assert_eq!(first["route"], "web");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/echo/json");
    assert_eq!(first["status"], 200);
    assert_eq!(first["outcome"], "ok");
    assert!(first["bytes"].as_u64().unwrap() > 0, "{first}");
    assert!(first["duration_ms"].as_f64().unwrap() > 0.0, "{first}");
    assert!(first["time"].as_str().unwrap().ends_with('Z'), "{first}");
    let second: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(second["path"], "/nowhere-upstream-404");
    assert_eq!(second["status"], status);
}

#[tokio::test]
async fn lines_are_written_at_shutdown() {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    // Nothing is written before a batch fills or an hour passes: only shutdown writes it.
    let config = write_config(
        dir.path(),
        up,
        "{to: access.log, format: text, fields: [path, status], flush_interval: 1h}",
    );
    let mut proc = common::spawn_switchboard(&config).await;
    let base = format!("http://{}", proc.listeners["edge"]);
    for i in 0..3 {
        send_with_secrets(&base, &format!("/echo/{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = dir.path().join("access.log");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "",
        "still buffered"
    );
    proc.signal("TERM");
    let status = tokio::time::timeout(WAIT, proc.child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "path=/echo/0 status=200\npath=/echo/1 status=200\npath=/echo/2 status=200\n"
    );
}

#[tokio::test]
async fn a_stuck_writer_drops_and_counts_without_slowing_requests() {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // A reader that opens the pipe and never reads: once the pipe's 64 KiB are full, every
    // write blocks the access log writer for good.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::File::open(fifo).unwrap())
    };
    let yaml = format!(
        r#"
access_log: {{to: '{}', format: text, buffer: 8, flush_interval: 1ms}}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    routes: [{{name: web, match: {{path_prefix: /}}, http: {{url: "http://${{UPSTREAM}}"}}}}]
"#,
        fifo.display()
    );
    let gw = common::gateway(&yaml, up).await;
    let _reader = reader.join().unwrap();
    let base = common::base(&gw, "edge").await;
    let client = common::client();
    // 4 KiB paths: a few dozen lines fill the pipe, the writer's batch and the channel.
    let long = "x".repeat(4096);
    let mut slowest = Duration::ZERO;
    let started = Instant::now();
    for i in 0..300 {
        let t = Instant::now();
        let resp = client
            .get(format!("{base}/echo/{i}/{long}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
        slowest = slowest.max(t.elapsed());
    }
    let dropped = common::metric(&gw, "switchboard_access_log_dropped_total")
        .await
        .unwrap();
    assert!(dropped >= 100.0, "dropped {dropped}");
    assert!(
        slowest < Duration::from_secs(1),
        "a request waited {slowest:?} (300 in {:?})",
        started.elapsed()
    );
    // Still serving, still counting.
    let resp = client
        .get(format!("{base}/echo/after"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let start = Instant::now();
    loop {
        let now = common::metric(&gw, "switchboard_access_log_dropped_total")
            .await
            .unwrap();
        if now > dropped {
            break;
        }
        assert!(start.elapsed() < WAIT, "the dropped counter stays at {now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn validate_refuses_bad_access_log_settings() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        "access_log: {to: '', buffer: 0, flush_interval: 0s, fields: [path, path]}\nlisteners: []\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::switchboard_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    for key in [
        "access_log.to",
        "access_log.buffer",
        "access_log.flush_interval",
        "access_log.fields[1]",
    ] {
        assert!(text.contains(key), "{key} not named: {text}");
    }
    std::fs::write(&config, "access_log: {format: xml}\nlisteners: []\n").unwrap();
    let out = std::process::Command::new(common::switchboard_bin())
        .arg("validate")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("access_log"), "{text}");
}

/// The access lines on stderr (the default `to`) of a run under `rust_log`: one request, then
/// SIGTERM, then every line to the end of the log.
async fn stderr_access_lines(rust_log: &str) -> Vec<serde_json::Value> {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), up, "{}");
    let mut child = tokio::process::Command::new(common::switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut logs = switchboard_testing::process::JsonLog::read(
        "switchboard",
        child.stderr.take().unwrap(),
        None,
    );
    let addrs = logs.switchboard_ready(WAIT).await;
    send_with_secrets(
        &format!("http://{}", addrs.listeners["edge"]),
        "/echo/stderr",
    )
    .await;
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut access = Vec::new();
    tokio::time::timeout(WAIT, async {
        while let Some(v) = logs.next().await {
            assert_no_secrets(&v.to_string());
            if v["target"] == "access" {
                access.push(v);
            }
        }
    })
    .await
    .expect("the log ends when the process exits");
    access
}

#[tokio::test]
async fn on_stderr_lines_follow_rust_log() {
    let on = stderr_access_lines("info").await;
    assert_eq!(on.len(), 1, "{on:?}");
    assert_eq!(on[0]["level"], "INFO");
    assert_eq!(on[0]["path"], "/echo/stderr");
    assert_eq!(on[0]["status"], 200);
    assert!(stderr_access_lines("info,access=off").await.is_empty());
    assert!(
        stderr_access_lines("warn,switchboard=info,switchboard_gateway=info")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_reload_keeps_the_running_writer_and_says_so() {
    let up = common::upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        up,
        "{to: first.log, format: text, fields: [path], flush_interval: 50ms}",
    );
    let mut proc = common::spawn_switchboard(&config).await;
    let base = format!("http://{}", proc.listeners["edge"]);
    // Same listener (port 0 binds a new port only for a new listener), new access log.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("first.log", "second.log");
    std::fs::write(&config, text).unwrap();
    proc.wait_log("access_log changes take effect at restart")
        .await;
    send_with_secrets(&base, "/echo/after-reload").await;
    assert_eq!(
        lines(&dir.path().join("first.log"), 1).await,
        vec!["path=/echo/after-reload"]
    );
    assert!(!dir.path().join("second.log").exists());
}
