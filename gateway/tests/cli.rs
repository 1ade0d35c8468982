//! The `switchboard` command line: `validate` prints every error located as
//! `FILE:LINE:COL: key.path: message`, `schema` prints a JSON Schema, and `run` shuts down
//! gracefully on SIGTERM.

use crate::common;

use std::process::Command;
use std::time::Duration;

use common::*;
use futures::StreamExt;

fn validate(file: &str) -> (i32, String, String) {
    let path = format!("{}/tests/configs/{file}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(switchboard_bin())
        .args(["validate", &path])
        .env_remove("SB_TEST_PORT_UNSET")
        .env_remove("SB_TEST_UPSTREAM_PORT")
        .output()
        .unwrap();
    let prefix = format!("{path}:");
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&prefix, "FILE:");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        stderr,
    )
}

#[test]
fn valid_config_exits_zero() {
    let (code, stdout, _) = validate("ok.yaml");
    assert_eq!(code, 0);
    assert!(stdout.ends_with("ok.yaml: ok\n"), "{stdout}");
}

#[test]
fn every_unknown_key_with_did_you_mean() {
    let (code, _, stderr) = validate("unknown_keys.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:2:3: admin.bnd: unknown key `bnd`; did you mean `bind`?\n\
         FILE:8:9: listeners[0].routes[0].mathc: unknown key `mathc`; did you mean `match`?\n\
         FILE:9:46: listeners[0].routes[0].http.timeout: unknown key `timeout`; expected one of: http2, mirror, preserve_host, retries, rewrite, upgrades, upstreams, url\n"
    );
}

#[test]
fn semantic_rules_duplicates_unreachable_missing_backend_bad_url() {
    let (code, _, stderr) = validate("semantic.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:9:9: listeners[0].routes[1].match: this route can never match: routes[0] (`all`) comes first and matches every request it would\n\
         FILE:11:9: listeners[0].routes[2]: route has no backend: set exactly one of `mcp`, `llm`, `a2a`, `http`, `redirect`\n\
         FILE:12:17: listeners[0].routes[2].match.path: `relative` must start with `/`\n\
         FILE:13:5: listeners[1].name: duplicate listener name `public` (also listeners[0])\n\
         FILE:14:5: listeners[1].bind: address 127.0.0.1:8080 is already used by listeners[0]\n\
         FILE:17:16: listeners[1].routes[0].http.url: scheme `ftp` is not supported; use http or https\n"
    );
}

#[test]
fn mcp_target_names_that_collide_after_prefixing() {
    let (code, _, stderr) = validate("mcp_names.yaml");
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("FILE:11:15: listeners[0].routes[0].mcp.targets[1].name: `a_` must not contain `__` or end with `_`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn bad_duration() {
    let (code, _, stderr) = validate("bad_duration.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:7:22: listeners[0].routes[0].policies.timeouts.connect: invalid value: string \"5 parsecs\", expected a duration\n"
    );
}

#[test]
fn bad_bind_address() {
    let (code, _, stderr) = validate("bad_bind.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:1:9: admin.bind: `nowhere` is not a socket address; write host:port, e.g. 127.0.0.1:8080 or [::]:443\n"
    );
}

#[test]
fn yaml_syntax_error() {
    let (code, _, stderr) = validate("bad_yaml.yaml");
    assert_eq!(code, 1);
    assert_eq!(stderr, "FILE:3:11: invalid YAML: unclosed bracket '['\n");
}

#[test]
fn unset_environment_variable() {
    let (code, _, stderr) = validate("env.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:3:21: environment variable SB_TEST_PORT_UNSET is not set and has no default (write ${SB_TEST_PORT_UNSET:-default})\n"
    );
}

#[test]
fn missing_file() {
    let out = Command::new(switchboard_bin())
        .args(["validate", "/nonexistent/switchboard.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("/nonexistent/switchboard.yaml:1:1: cannot read the file:"),
        "{stderr}"
    );
}

#[test]
fn schema_is_a_json_schema_of_the_config() {
    let out = Command::new(switchboard_bin())
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        schema["$schema"]
            .as_str()
            .unwrap()
            .contains("json-schema.org")
    );
    assert_eq!(schema["additionalProperties"], false);
    for key in ["admin", "listeners", "shutdown"] {
        assert!(schema["properties"].get(key).is_some(), "{key} in schema");
    }
    let route = &schema["$defs"]["RouteConfig"];
    assert!(route["properties"]["match"].is_object());
    assert!(route["properties"]["http"].is_object());
    assert!(
        schema["$defs"]["ListenerLimits"]["properties"]["max_body_bytes"]["description"]
            .as_str()
            .unwrap()
            .contains("413")
    );
}

#[test]
fn policies_that_can_have_no_effect_are_warnings() {
    let (code, stdout, stderr) = validate("ineffective.yaml");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.ends_with("ineffective.yaml: ok\n"), "{stdout}");
    assert_eq!(
        stderr,
        "FILE:5:7: listeners[0].policies.forward_client_credentials: warning: has no effect on any route that inherits it: routes[0] (`tools`): mcp targets are never sent the client's credentials (the MCP spec forbids token passthrough); use `upstream_auth`\n\
         FILE:10:11: listeners[0].routes[0].policies.upstream_auth: warning: has no effect: the targets of this mcp route are all stdio; only http, sse and openapi targets are sent a credential\n\
         FILE:11:22: listeners[0].routes[0].policies.timeouts.request: warning: has no effect: mcp routes time each target out by `targets[].timeout`\n\
         FILE:12:21: listeners[0].routes[0].policies.headers.request: warning: has no effect: mcp targets are never sent the client's request headers; set `targets[].http.headers` (or `sse.headers`, `openapi.headers`) for headers a target should get\n\
         FILE:13:38: listeners[0].routes[0].policies.rate_limit.tokens: warning: has no effect: only llm routes count tokens\n\
         FILE:21:11: listeners[0].routes[1].policies.upstream_auth: warning: has no effect: every http, sse and openapi target of this mcp route sets its own `upstream_auth`\n\
         FILE:33:11: listeners[0].routes[2].policies.upstream_auth: warning: has no effect: llm providers are sent their own `api_key`, never this credential\n\
         FILE:34:22: listeners[0].routes[2].policies.timeouts.connect: warning: has no effect: llm routes use `llm.timeouts`\n"
    );
    // The second listener's policies act on some route each: no warning names it.
    assert!(!stderr.contains("listeners[1]"));
    assert!(!stderr.contains("never-printed-SECRET"));
}

#[test]
fn mcp_target_upstream_auth_is_checked() {
    let (code, _, stderr) = validate("mcp_upstream_auth.yaml");
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "FILE:11:15: listeners[0].routes[0].mcp.targets[0].upstream_auth: only http, sse and openapi targets are sent a credential\n\
         FILE:14:15: listeners[0].routes[0].mcp.targets[1].upstream_auth.header: `authorization` is also in this target's `headers`: set it in one place\n\
         FILE:14:15: listeners[0].routes[0].mcp.targets[1].upstream_auth: set exactly one of `value`, `env` or `file`\n\
         FILE:17:31: listeners[0].routes[0].mcp.targets[2].upstream_auth.header: `x-api-key` is also in this target's `headers`: set it in one place\n"
    );
    assert!(!stderr.contains("two-SECRET"));
    assert!(!stderr.contains("three-SECRET"));
}

#[test]
fn every_example_config_validates() {
    let dir = format!("{}/../examples", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let out = Command::new(switchboard_bin())
                .arg("validate")
                .arg(&path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            n += 1;
        }
    }
    assert!(n >= 1, "examples/*.yaml exist");
}

/// SIGTERM with a request in flight: the request completes, an open SSE stream is ended
/// cleanly (its chunked body terminates, no reset), new connections are refused, exit 0.
#[tokio::test]
async fn graceful_shutdown_with_a_request_in_flight() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sb.yaml");
    std::fs::write(
        &path,
        format!(
            "admin: {{bind: '127.0.0.1:0'}}\nshutdown: {{grace_period: 10s}}\nlisteners:\n  - name: main\n    bind: 127.0.0.1:0\n    routes: [{{name: all, http: {{url: 'http://{up}'}}}}]\n"
        ),
    )
    .unwrap();
    let mut proc = spawn_switchboard(&path).await;
    let addr = proc.listeners["main"];
    let c = client();

    let sse = c
        .get(format!("http://{addr}/sse?count=3&hold=shutdown-sse"))
        .send()
        .await
        .unwrap();
    let mut sse = sse.bytes_stream();
    assert!(sse.next().await.unwrap().unwrap().starts_with(b"id: 0"));

    let in_flight = tokio::spawn({
        let c = c.clone();
        async move {
            c.get(format!("http://{addr}/slow?ms=1500"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    });
    // Nothing observable marks "the upstream has the request"; 300ms of its 1.5s is ample,
    // and if it were not yet sent the test would fail (refused), not pass wrongly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    proc.signal("TERM");
    proc.wait_log("shutting down: no new connections, draining")
        .await;

    // The open stream ends cleanly (Ok(None), not an error).
    let end = tokio::time::timeout(Duration::from_secs(5), sse.next())
        .await
        .unwrap();
    assert!(end.is_none(), "stream ended cleanly, got {end:?}");
    // The in-flight request completes with its full body.
    assert_eq!(in_flight.await.unwrap(), "slow\n");
    // New connections are refused.
    assert!(
        reqwest::Client::new()
            .get(format!("http://{addr}/echo"))
            .send()
            .await
            .is_err()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), proc.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

/// An example binary of `switchboard-examples`, built on demand (it belongs to another package
/// of the workspace, so cargo does not build it for this test).
fn example_binary(name: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-p", "switchboard-examples", "--bin", name])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {name} failed");
    let bin = target.join("debug").join(name);
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// The JSON-RPC messages of a JSON or SSE reply body.
fn rpc_messages(body: &str) -> Vec<serde_json::Value> {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        return vec![v];
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// One MCP request to the quickstart's `/mcp` route (in `session` when given); the reply's
/// JSON-RPC response (the message carrying `id`) and the session id header, if any.
async fn mcp_post(
    c: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> (serde_json::Value, Option<String>) {
    let mut req = c
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req
            .header("mcp-session-id", s)
            .header("mcp-protocol-version", "2025-11-25");
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    assert!(status.is_success(), "{status}: {text}");
    if body.get("id").is_none() {
        return (serde_json::Value::Null, sid);
    }
    let reply = rpc_messages(&text)
        .into_iter()
        .find(|m| m.get("id") == body.get("id"))
        .unwrap_or_else(|| panic!("no response to {body} in {text}"));
    (reply, sid)
}

/// The names of the tools a `tools/list` response lists.
fn tool_names(reply: &serde_json::Value) -> Vec<String> {
    reply["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{reply}"))
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// The quickstart as `make quickstart` runs it: its config file, and its example upstreams on
/// free ports (in this process; the stdio MCP server is the `mcp-echo` binary the gateway starts).
struct Quickstart {
    proc: Proc,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start_quickstart() -> Quickstart {
    let up = upstream().await;
    let (llm, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (mcp, mcp_task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (agent, agent_task) = switchboard_examples::a2a_echo::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let mcp_echo = example_binary("mcp-echo");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml");
    let proc = spawn_switchboard_env(
        &path,
        &[
            ("SWITCHBOARD_BIND", "127.0.0.1:0".into()),
            ("SWITCHBOARD_ADMIN", "127.0.0.1:0".into()),
            ("UPSTREAM_HTTP", up.to_string()),
            ("UPSTREAM_LLM", llm.to_string()),
            ("UPSTREAM_MCP", mcp.to_string()),
            ("UPSTREAM_A2A", agent.to_string()),
            ("MCP_ECHO", mcp_echo.display().to_string()),
        ],
    )
    .await;
    Quickstart {
        proc,
        _tasks: vec![mcp_task, agent_task],
    }
}

/// The quickstart config, as `make quickstart` runs it, serves every example it documents: the
/// HTTP and LLM routes, the MCP route federating the stdio example server (`local__`, started
/// by the gateway) and the HTTP MCP fixture (`remote__`), and the A2A route to the example agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_serves_its_examples() {
    // `switchboard validate` accepts the quickstart config without a warning.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.yaml");
    let out = Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
    let mut qs = start_quickstart().await;
    let proc = &mut qs.proc;
    let base = format!("http://{}", proc.listeners["public"]);
    let c = client();
    let hello = c
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        hello.starts_with("Hello from the Switchboard example upstream"),
        "{hello}"
    );
    let sse = c
        .get(format!("{base}/sse?count=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(sse.contains("id: 1"), "{sse}");
    let chat: serde_json::Value = c
        .post(format!("{base}/v1/chat/completions"))
        .json(
            &serde_json::json!({"model": "smart", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(chat["object"], "chat.completion", "{chat}");
    assert_eq!(
        chat["choices"][0]["message"]["content"], "Mock reply to: hi",
        "{chat}"
    );
    let msg: serde_json::Value = c
        .post(format!("{base}/v1/messages"))
        .json(&serde_json::json!({"model": "smart", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(msg["type"], "message", "{msg}");
    let metrics = c
        .get(format!("http://{}/metrics", proc.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("switchboard_requests_total"), "{metrics}");
    let cfg = c
        .get(format!("http://{}/config", proc.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !cfg.contains("mock-key"),
        "secrets are redacted in /config: {cfg}"
    );
    // The admin UI (loopback, no token needed) and its MCP page's live data.
    let ui = c
        .get(format!("http://{}/ui", proc.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("Switchboard admin"));
    let mcp: serde_json::Value = c
        .get(format!("http://{}/api/mcp", proc.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let health: Vec<(&str, &str)> = mcp["routes"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["health"].as_str().unwrap()))
        .collect();
    assert_eq!(health, [("local", "up"), ("remote", "up")], "{mcp}");

    // MCP, as an SDK client does it: a session, the tools of both targets (prefixed), one call
    // to each.
    let mcp_url = format!("{base}/mcp");
    let (init, sid) = mcp_post(&c, &mcp_url, None, serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "quickstart-test", "version": "1"}}})).await;
    assert!(init["result"]["serverInfo"].is_object(), "{init}");
    let sid = sid.expect("initialize answers with a session id");
    mcp_post(
        &c,
        &mcp_url,
        Some(&sid),
        serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    let (list, _) = mcp_post(
        &c,
        &mcp_url,
        Some(&sid),
        serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let names = tool_names(&list);
    for want in ["local__echo", "local__add", "remote__test_simple_text"] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    let (echo, _) = mcp_post(
        &c,
        &mcp_url,
        Some(&sid),
        serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "local__echo", "arguments": {"text": "hello"}}}),
    )
    .await;
    assert_eq!(echo["result"]["content"][0]["text"], "hello", "{echo}");
    let (remote, _) = mcp_post(
        &c,
        &mcp_url,
        Some(&sid),
        serde_json::json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
        "params": {"name": "remote__test_simple_text", "arguments": {}}}),
    )
    .await;
    assert_eq!(
        remote["result"]["content"][0]["text"], "This is a simple text response for testing.",
        "{remote}"
    );
    // The README's one-line commands: stateless (2026-07-28) requests, no session.
    let meta = serde_json::json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let readme_list = c
        .post(&mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(&serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    let stateless = tool_names(&readme_list);
    assert_eq!(stateless, names, "{readme_list}");
    let readme_add = c
        .post(&mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "local__add", "arguments": {"a": 2, "b": 3}, "_meta": meta}}),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        readme_add["result"]["content"][0]["text"], "5",
        "{readme_add}"
    );
    let readme_remote = c
        .post(&mcp_url)
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "remote__test_simple_text", "arguments": {}, "_meta": meta}}),
        )
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(
        readme_remote["result"]["content"][0]["text"],
        "This is a simple text response for testing.",
        "{readme_remote}"
    );

    // A2A: the agent's card, rewritten to point at the gateway, and a message sent and
    // streamed through it.
    let card: serde_json::Value = c
        .get(format!("{base}/agents/echo/.well-known/agent-card.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(card["name"], "echo", "{card}");
    assert_eq!(card["url"], format!("{base}/agents/echo/"), "{card}");
    let message = serde_json::json!({"role": "user", "messageId": "m1",
        "parts": [{"kind": "text", "text": "hi"}]});
    let sent: serde_json::Value = c
        .post(format!("{base}/agents/echo"))
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "message/send",
            "params": {"message": message}}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["result"]["parts"][0]["text"], "echo: hi", "{sent}");
    let streamed = c
        .post(format!("{base}/agents/echo"))
        .header("accept", "text/event-stream")
        .json(
            &serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "message/stream",
            "params": {"message": message}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = rpc_messages(&streamed);
    let kinds: Vec<_> = events
        .iter()
        .map(|e| e["result"]["kind"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        kinds,
        ["task", "artifact-update", "status-update"],
        "{streamed}"
    );
    assert_eq!(
        events[1]["result"]["artifact"]["parts"][0]["text"], "echo: hi",
        "{streamed}"
    );
    assert_eq!(
        events[2]["result"]["status"]["state"], "completed",
        "{streamed}"
    );
    proc.signal("TERM");
    proc.wait_log("stopped").await;
}

/// The quickstart's example agent answers a real A2A client (the a2a-sdk, over 1.0 and 0.3
/// JSON-RPC, a message and a stream) through the gateway's A2A route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quickstart_agent_answers_the_a2a_sdk() {
    let Some(py) = switchboard_testing::peers::require_python(&["a2a.client", "httpx"]) else {
        return;
    };
    let qs = start_quickstart().await;
    let url = format!("http://{}/agents/echo", qs.proc.listeners["public"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/a2a_client.py");
    for version in ["1.0", "0.3"] {
        for flag in ["--only-send", "--only-stream"] {
            let out = tokio::process::Command::new(&py)
                .arg(&script)
                .args([url.as_str(), "--version", version, flag, "hi"])
                .output()
                .await
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "{version} {flag}: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let last: serde_json::Value =
                serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
            if flag == "--only-send" {
                assert_eq!(last["step"], "send", "{version}: {last}");
                assert_eq!(last["kind"], "message", "{version}: {last}");
            } else {
                let events = last["events"].as_array().unwrap();
                let kinds: Vec<_> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
                assert_eq!(
                    kinds,
                    ["task", "artifactUpdate", "statusUpdate"],
                    "{version}: {last}"
                );
                assert_eq!(
                    events[1]["texts"],
                    serde_json::json!(["echo: hi"]),
                    "{last}"
                );
                assert_eq!(
                    events[2]["state"], "TASK_STATE_COMPLETED",
                    "{version}: {last}"
                );
            }
        }
    }
}

/// `validate` with `openapi` targets: a relative `spec` file is read from the config file's
/// folder (not the working directory); what a document leaves out is a warning, for files and
/// fetched URLs alike; a URL that cannot be fetched is a warning (exit 0); and `upstream_auth`
/// counts openapi targets like http and sse ones (no warning where it reaches one, a warning
/// where each sets its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_are_read_beside_the_config_and_fetched_by_validate() {
    let (pets, _task) = switchboard_examples::pets::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("docs")).unwrap();
    std::fs::write(
        dir.path().join("docs/pets.yaml"),
        switchboard_examples::pets::OPENAPI,
    )
    .unwrap();
    let path = dir.path().join("switchboard.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listeners:
  - name: main
    bind: 127.0.0.1:8080
    routes:
      - name: rest
        match: {{path_prefix: /rest}}
        policies:
          upstream_auth: {{value: "never-printed-SECRET"}}
        mcp:
          targets:
            - name: file
              openapi: {{spec: docs/pets.yaml, base_url: "http://{pets}"}}
            - name: url
              openapi: {{spec: "http://{pets}/openapi.yaml", base_url: "http://{pets}"}}
            - name: gone
              openapi: {{spec: "http://{gone_addr}/openapi.yaml", base_url: "http://{gone_addr}"}}
      - name: own
        match: {{path_prefix: /own}}
        policies:
          upstream_auth: {{value: "never-printed-SECRET"}}
        mcp:
          targets:
            - name: file
              openapi: {{spec: docs/pets.yaml, base_url: "http://{pets}"}}
              upstream_auth: none
"#
        ),
    )
    .unwrap();
    let out = tokio::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&format!("{}:", path.display()), "FILE:")
        .replace(&pets.to_string(), "PETS")
        .replace(&gone_addr.to_string(), "GONE");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let skipped = "warning: PUT /pets/{petId}/photo: request body is not JSON (image/png) and only JSON bodies are supported, operation skipped";
    assert_eq!(
        stderr,
        format!(
            "FILE:12:25: listeners[0].routes[0].mcp.targets[0].openapi.spec: {skipped}\n\
             FILE:14:25: listeners[0].routes[0].mcp.targets[1].openapi.spec: {skipped}\n\
             FILE:16:25: listeners[0].routes[0].mcp.targets[2].openapi.spec: warning: the document cannot be loaded now (fetching http://GONE/openapi.yaml: error sending request); until it can be, the target fails to initialize\n\
             FILE:20:11: listeners[0].routes[1].policies.upstream_auth: warning: has no effect: every http, sse and openapi target of this mcp route sets its own `upstream_auth`\n\
             FILE:24:25: listeners[0].routes[1].mcp.targets[0].openapi.spec: {skipped}\n"
        )
    );
    assert!(!stderr.contains("never-printed-SECRET"));
}
