//! stdio targets with `sessions: per_session`: server-everything spawned once per downstream
//! session, initialized with that client's capabilities, its server requests answered by that
//! session only, and killed (never restarted) when the session ends.

use crate::harness;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use harness::*;
use serde_json::{Value, json};
use switchboard_mcp::{McpConfig, McpShared, Metrics};
use switchboard_sessions::{MemoryStore, SessionManager, SessionsConfig, StoreLimits};
use switchboard_testing::until;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn per_session() -> Value {
    json!({"targets": [{"name": "ev", "timeout": "30s", "stdio": {
        "command": node(), "args": [everything(), "stdio"], "sessions": "per_session"}}]})
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// How long the processes and tasks involved (which report nothing to await) may take.
const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sessions_each_own_their_child_its_sampling_and_roots() {
    if !have_peers() {
        return;
    }
    let gw = gateway(per_session()).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/per_session_client.py");
    let mut child = tokio::process::Command::new(python())
        .arg(script)
        .arg(&gw.url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run python");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stderr = child.stderr.take().unwrap();
    let open = tokio::time::timeout(Duration::from_secs(180), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if let Some(j) = l.strip_prefix("OPEN ") {
                return Some(serde_json::from_str::<Value>(j).unwrap());
            }
        }
        None
    })
    .await
    .expect("the python sessions were opened and checked in time");
    let Some(open) = open else {
        let mut err = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut err)
            .await
            .unwrap();
        panic!("python client failed:\n{err}");
    };
    println!("python (per_session): {open}");
    // Three sessions, three children, none shared.
    assert!(gw.backend.target_pids().is_empty());
    let mut pids: Vec<u32> = gw
        .backend
        .session_target_pids()
        .into_iter()
        .map(|(t, p)| {
            assert_eq!(t, "ev");
            p
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.iter().all(|p| alive(*p)));
    assert_eq!(gw.backend.session_count(), 3);

    // The clients close their sessions (DELETE): every child goes, none comes back.
    stdin.write_all(b"close\n").await.unwrap();
    let mut done = false;
    while let Ok(Some(l)) = lines.next_line().await {
        done |= l.starts_with("DONE ");
    }
    assert!(child.wait().await.unwrap().success());
    assert!(done);
    until("the sessions are gone", WAIT, || {
        gw.backend.session_count() == 0
    })
    .await;
    until("the children are gone", WAIT, || {
        pids.iter().all(|p| !alive(*p))
    })
    .await;
    assert!(gw.backend.session_target_pids().is_empty());
}

async fn echo(url: &str, sid: &str, text: &str) -> Value {
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": text}}});
    let (status, _, body) = post(url, Some(sid), &call.to_string()).await;
    (status == 200)
        .then(|| messages(&body).pop())
        .flatten()
        .unwrap_or(Value::Null)
}

fn pids_of(gw: &Gateway) -> Vec<u32> {
    gw.backend
        .session_target_pids()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_session_child_restarts_while_its_session_lives_and_survives_a_reload() {
    if !have_peers() {
        return;
    }
    init();
    let shared = McpShared::new(Metrics::unregistered()).unwrap();
    let cfg: McpConfig = serde_json::from_value(per_session()).unwrap();
    let first = gateway_with_shared(cfg.clone(), &shared).await;
    let sid = raw_session(&first.url, "2025-03-26", json!({"sampling": {}})).await;
    let r = echo(&first.url, &sid, "one").await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: one", "{r}");
    let pid = pids_of(&first)[0];

    // Killed behind the gateway's back: restarted for the session, the session goes on.
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    let mut again = Value::Null;
    for _ in 0..200 {
        again = echo(&first.url, &sid, "two").await;
        if again["result"].is_object() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        again["result"]["content"][0]["text"], "Echo: two",
        "{again}"
    );
    let restarted = pids_of(&first)[0];
    assert_ne!(restarted, pid);

    // A reload: a new backend over the same shared parts; the old one goes away. The session
    // keeps its child.
    let second = gateway_with_shared(cfg, &shared).await;
    drop(first);
    let r = echo(&second.url, &sid, "three").await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: three", "{r}");
    assert_eq!(pids_of(&second), vec![restarted]);

    // DELETE: the child dies and is not restarted.
    let del = reqwest::Client::new()
        .delete(&second.url)
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    until("the child is gone", WAIT, || !alive(restarted)).await;
    let (status, _, _) = post(
        &second.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert!(pids_of(&second).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_expired_session_takes_its_child_along() {
    if !have_peers() {
        return;
    }
    init();
    let mut scfg: SessionsConfig = serde_json::from_value(json!({})).unwrap();
    scfg.idle_timeout = Duration::from_secs(1);
    let manager = SessionManager::new(
        &scfg,
        Arc::new(MemoryStore::new(StoreLimits::from_config(&scfg))),
        switchboard_sessions::Metrics::default(),
    )
    .unwrap();
    let shared = McpShared::new(Metrics::unregistered())
        .unwrap()
        .with_sessions(manager.clone());
    let cfg: McpConfig = serde_json::from_value(per_session()).unwrap();
    let gw = gateway_with_shared(cfg, &shared).await;
    let sid = raw_session(&gw.url, "2025-03-26", json!({"sampling": {}})).await;
    let r = echo(&gw.url, &sid, "hi").await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: hi", "{r}");
    let pid = pids_of(&gw)[0];
    // Real time passes the 1 s idle timeout (expiry is the absence of use).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    manager.reap().await.unwrap();
    until("the child is gone", WAIT, || !alive(pid)).await;
    assert_eq!(gw.backend.session_count(), 0);
    let (status, _, _) = post(
        &gw.url,
        Some(&sid),
        r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 404);
    assert!(pids_of(&gw).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_sse_session_owns_its_child_until_its_stream_closes() {
    if !have_peers() {
        return;
    }
    let gw = gateway(per_session()).await;
    let base = gw.url.trim_end_matches("/mcp").to_string();
    let resp = reqwest::Client::new()
        .get(format!("{}/sse", gw.url))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    let mut resp = resp;
    let mut buf = String::new();
    while !buf.contains("\n\n") {
        buf.push_str(&String::from_utf8_lossy(
            &resp.chunk().await.unwrap().unwrap(),
        ));
    }
    let endpoint = buf
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap()
        .trim()
        .to_string();
    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "legacy", "version": "1"}}});
    let status = reqwest::Client::new()
        .post(format!("{base}{endpoint}"))
        .header("content-type", "application/json")
        .body(init.to_string())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 202);
    while !buf.contains("\"id\":0") {
        buf.push_str(&String::from_utf8_lossy(
            &resp.chunk().await.unwrap().unwrap(),
        ));
    }
    let pid = pids_of(&gw)[0];
    assert!(alive(pid));
    drop(resp);
    until("the child is gone", WAIT, || !alive(pid)).await;
    until("the session is gone", WAIT, || {
        gw.backend.session_count() == 0
    })
    .await;
}

/// Children of this test process running server-everything.
fn my_everything_children() -> Vec<u32> {
    let me = std::process::id();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the command may contain spaces, so split after `)`.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if ppid == Some(me) && String::from_utf8_lossy(&cmd).contains("server-everything") {
            out.push(pid);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateless_request_gets_a_child_for_its_duration_only() {
    if !have_peers() {
        return;
    }
    let gw = gateway(per_session()).await;
    assert!(
        my_everything_children().is_empty(),
        "none before a session asks"
    );
    let call = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "stateless"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {},
                  "io.modelcontextprotocol/clientInfo": {"name": "modern", "version": "1"}}}});
    let (status, _, body) = post(&gw.url, None, &call.to_string()).await;
    assert_eq!(status, 200, "{body}");
    let r = messages(&body).pop().unwrap();
    assert_eq!(r["result"]["content"][0]["text"], "Echo: stateless", "{r}");
    until("the request's child is gone", WAIT, || {
        my_everything_children().is_empty()
    })
    .await;
    assert_eq!(gw.backend.session_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutting_the_backend_down_ends_per_session_children() {
    if !have_peers() {
        return;
    }
    init();
    let shared = McpShared::new(Metrics::unregistered()).unwrap();
    let cfg: McpConfig = serde_json::from_value(per_session()).unwrap();
    let gw = gateway_with_shared(cfg, &shared).await;
    let sid = raw_session(&gw.url, "2025-03-26", json!({"sampling": {}})).await;
    let r = echo(&gw.url, &sid, "bye").await;
    assert_eq!(r["result"]["content"][0]["text"], "Echo: bye", "{r}");
    let pid = pids_of(&gw)[0];
    // What the gateway's shutdown drops: the serving backend and the shared parts (the pool
    // that keeps sessions' children across reloads).
    drop(gw);
    drop(shared);
    until("the child is gone", WAIT, || !alive(pid)).await;
}
