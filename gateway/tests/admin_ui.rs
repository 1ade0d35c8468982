//! The admin UI and its authentication, against a real gateway with an MCP route (the stdio
//! `mcp-echo` and HTTP `mcp-fixture` examples), an LLM route (the mock provider) and an A2A
//! route (the example agent):
//!
//! - `ui_pages_in_headless_chromium` drives every page in headless Chromium
//!   (`tests/admin_ui/drive.cjs`, playwright-core): sign-in, live data on each page, no console
//!   errors, a tool call and a streamed chat from the playground. Screenshots and page HTML
//!   land in `target/ui-screenshots/`.
//! - `admin_token_guards_everything_but_probes` and
//!   `admin_beyond_loopback_without_token_is_forbidden`: the 401 and 403 rules.
//! - `no_secret_in_any_admin_response`: configured secrets appear in no page or API answer.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use switchboard_gateway::{Gateway, config};
use switchboard_testing::peers;

const TOKEN: &str = "admin-TOKEN-0f3a9c";
const API_KEY: &str = "sk-PROVIDER-SECRET-77";
const UPSTREAM_SECRET: &str = "UPSTREAM-CRED-SECRET-42";
/// base64 of 32 bytes: a session key.
const SESSION_KEY: &str = "c2Vzc2lvbi1rZXktU0VDUkVULTAxMjM0NTY3ODlhYmM=";
/// Every string the admin must never show.
const SECRETS: &[&str] = &[TOKEN, API_KEY, UPSTREAM_SECRET, SESSION_KEY, CLIENT_KEY];
/// The API key a client (and the playground) presents to the `guarded` route.
const CLIENT_KEY: &str = "client-KEY-SECRET-5150";

/// An example binary, built if needed.
fn example_binary(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
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

struct Setup {
    gw: Gateway,
    admin: String,
    data: String,
    config_file: PathBuf,
    _dir: tempfile::TempDir,
}

/// The gateway of these tests: `admin` is the `admin:` block, `extra` more routes (YAML list
/// items at the routes' indentation).
async fn start(admin: &str) -> Setup {
    start_with(admin, "").await
}

async fn start_with(admin: &str, extra: &str) -> Setup {
    switchboard_gateway::install_crypto_provider();
    let (llm, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (mcp, _mcp_task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let (agent, _agent_task) = switchboard_examples::a2a_echo::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let echo = example_binary("mcp-echo");
    // `gpt-4o-trickle`: the mock streams its parts with a pause between them, so the browser
    // sees the answer grow.
    let yaml = format!(
        r#"
admin: {admin}
sessions:
  keys: ["{SESSION_KEY}"]
listeners:
  - name: public
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          prices: {{gpt-4o-trickle: {{input: 2.5, output: 10}}}}
          outlier: {{consecutive_failures: 1, base_ejection: 10m, max_ejection: 10m}}
          models:
            # `broken` always answers 500: one failure ejects it, `steady` serves.
            - name: flaky
              strategy: failover
              providers:
                - {{provider: openai, name: broken, model: fail-500, api_key: "{API_KEY}", base_url: "http://{llm}/v1"}}
                - {{provider: openai, name: steady, model: gpt-4o, api_key: "{API_KEY}", base_url: "http://{llm}/v1", priority: 1}}
            - name: smart
              strategy: failover
              providers:
                - {{provider: openai, name: primary, model: gpt-4o-trickle, api_key: "${{UI_PROVIDER_KEY}}", base_url: "http://{llm}/v1"}}
                - {{provider: anthropic, name: backup, model: claude-sonnet-4-5, api_key: "{API_KEY}", base_url: "http://{llm}", priority: 1}}
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: local
              stdio: {{command: "{echo}"}}
            - name: remote
              http: {{url: "http://{mcp}/mcp"}}
              upstream_auth: {{header: x-api-key, value: "{UPSTREAM_SECRET}"}}
      - name: agent
        match: {{path_prefix: /agents/echo}}
        a2a: {{url: "http://{agent}"}}
{extra}
"#,
        echo = echo.display(),
        extra = extra.replace("{MCP}", &mcp.to_string()),
    );
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("switchboard.yaml");
    std::fs::write(&config_file, &yaml).unwrap();
    let env = |name: &str| match name {
        "UI_ADMIN_TOKEN" => Some(TOKEN.to_string()),
        "UI_PROVIDER_KEY" => Some(API_KEY.to_string()),
        _ => None,
    };
    let cfg = config::load_str(&yaml, &config_file.display().to_string(), &env)
        .unwrap_or_else(|e| panic!("{e}"));
    let gw = Gateway::start(cfg, Some(config_file.clone()))
        .await
        .unwrap();
    let admin = format!("http://{}", loopback(gw.admin_addr().await.unwrap()));
    let data = format!("http://{}", gw.listener_addr("public").await.unwrap());
    // The upstream tasks live as long as the runtime of the test.
    std::mem::forget(_mcp_task);
    std::mem::forget(_agent_task);
    Setup {
        gw,
        admin,
        data,
        config_file,
        _dir: dir,
    }
}

/// A wildcard bind reached on loopback.
fn loopback(a: SocketAddr) -> SocketAddr {
    if a.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], a.port()))
    } else {
        a
    }
}

fn client() -> reqwest::Client {
    common::client()
}

async fn get(url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Paths behind the token.
const GUARDED: &[&str] = &[
    "/ui",
    "/ui/app.js",
    "/ui/style.css",
    "/api/overview",
    "/api/mcp",
    "/api/sessions",
    "/api/llm",
    "/api/config",
    "/config",
];

/// Paths the admin does not serve: behind the token as well (401 without, 404 with it).
const UNKNOWN: &str = "/api/nothing-here";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_guards_everything_but_probes() {
    let s = start(r#"{bind: "127.0.0.1:0", token: "${UI_ADMIN_TOKEN}"}"#).await;
    for path in GUARDED {
        let url = format!("{}{path}", s.admin);
        let (status, body) = get(&url, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} without the token");
        if *path == "/ui" {
            assert!(
                body.contains("id=\"login\""),
                "/ui offers the login form: {body}"
            );
        } else {
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["error"]["type"], "unauthorized", "{path}: {body}");
        }
        let (status, _) = get(&url, Some("wrong-token")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{path} with a wrong token"
        );
        let r = client().get(&url).bearer_auth(TOKEN).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} with the token");
        if path.starts_with("/ui") {
            let csp = r.headers()["content-security-policy"].to_str().unwrap();
            assert!(
                csp.starts_with("default-src 'none'; script-src 'self'"),
                "{csp}"
            );
        }
    }
    let (status, _) = get(&format!("{}{UNKNOWN}", s.admin), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an unknown path without the token"
    );
    let (status, _) = get(&format!("{}{UNKNOWN}", s.admin), Some(TOKEN)).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an unknown path with the token"
    );
    // POST endpoints too.
    for path in ["/drain", "/api/playground/mcp", "/api/playground/chat"] {
        let r = client()
            .post(format!("{}{path}", s.admin))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "POST {path}");
    }
    // Probes and scrapes stay open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = get(&format!("{}{path}", s.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{path} is open");
    }
    // The login form's POST sets an HttpOnly, SameSite=Strict cookie that opens the API.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(format!("{}/ui/login", s.admin))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(TOKEN),
        "the cookie does not carry the token"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let r = client()
        .get(format!("{}/api/overview", s.admin))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the cookie opens the API");
    let r = no_redirect
        .post(format!("{}/ui/login", s.admin))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "a wrong token signs nobody in"
    );
    s.gw.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_beyond_loopback_without_token_is_forbidden() {
    let s = start(r#"{bind: "0.0.0.0:0"}"#).await;
    for path in GUARDED {
        let (status, body) = get(&format!("{}{path}", s.admin), None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["type"], "forbidden");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("admin.token"),
            "{body}"
        );
    }
    let r = client()
        .post(format!("{}/drain", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "POST /drain");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = get(&format!("{}{path}", s.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{path} stays open");
    }
    assert!(s.gw.is_ready(), "the 403 did not drain the gateway");
    s.gw.shutdown(Duration::from_secs(1)).await;

    // `switchboard validate` warns about such a config and still accepts it.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.yaml");
    std::fs::write(
        &file,
        "admin: {bind: \"0.0.0.0:15000\"}\nlisteners:\n  - name: public\n    bind: 127.0.0.1:0\n    routes:\n      - {name: web, match: {path_prefix: /}, http: {url: \"http://127.0.0.1:9\"}}\n",
    )
    .unwrap();
    let out = Command::new(common::switchboard_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("admin.bind: warning:") && text.contains("admin.token"),
        "{text}"
    );
    // `switchboard run` logs the warning at start.
    std::fs::write(
        &file,
        "admin: {bind: \"0.0.0.0:0\"}\nlisteners:\n  - name: public\n    bind: 127.0.0.1:0\n    routes:\n      - {name: web, match: {path_prefix: /}, http: {url: \"http://127.0.0.1:9\"}}\n",
    )
    .unwrap();
    let mut child = std::process::Command::new(common::switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut seen = Vec::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            let ready = line.contains("switchboard ready");
            seen.push(line);
            if ready {
                break;
            }
        }
        seen
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lines.is_finished() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let lines = lines.join().unwrap();
    assert!(
        lines.iter().any(|l| l.contains("\"WARN\"")
            && l.contains("beyond loopback")
            && l.contains("admin.token")),
        "{lines:#?}"
    );
    // The `admin listening` line carries the UI's URL (`make quickstart` prints it too).
    let listening: Value = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| switchboard_testing::process::message(v) == Some("admin listening"))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    let ui = switchboard_testing::process::field(&listening, "ui").unwrap();
    assert!(
        ui.starts_with("http://") && ui.ends_with("/ui"),
        "{listening}"
    );
    // With a token, no warning.
    std::fs::write(
        &file,
        "admin: {bind: \"0.0.0.0:15000\", token: t}\nlisteners:\n  - name: public\n    bind: 127.0.0.1:0\n    routes:\n      - {name: web, match: {path_prefix: /}, http: {url: \"http://127.0.0.1:9\"}}\n",
    )
    .unwrap();
    let out = Command::new(common::switchboard_bin())
        .arg("validate")
        .arg(&file)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !text.contains("admin.bind"),
        "{text}"
    );
}

#[test]
fn an_empty_admin_token_is_refused() {
    let err = config::load_str(
        "admin: {bind: \"127.0.0.1:0\", token: \"${EMPTY:-}\"}\nlisteners: []\n",
        "empty.yaml",
        &|_| None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("admin.token: must not be empty"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_admin_without_token_is_open() {
    let s = start(r#"{bind: "127.0.0.1:0"}"#).await;
    for path in GUARDED {
        let (status, _) = get(&format!("{}{path}", s.admin), None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    s.gw.shutdown(Duration::from_secs(1)).await;
}

/// Exercises the routes (so every page has data), then reads every page and API answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_any_admin_response() {
    let s = start(r#"{bind: "127.0.0.1:0", token: "${UI_ADMIN_TOKEN}"}"#).await;
    traffic(&s).await;
    fail_a_reload(&s).await;
    let mut seen = String::new();
    for path in GUARDED {
        let (status, body) = get(&format!("{}{path}", s.admin), Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        seen.push_str(&body);
    }
    for (path, body) in [
        (
            "/api/playground/mcp",
            json!({"listener": "public", "route": "tools", "method": "tools/call",
                   "params": {"name": "local__echo", "arguments": {"text": "x"}},
                   "authorization": format!("Bearer {CLIENT_KEY}")}),
        ),
        (
            "/api/playground/chat",
            json!({"listener": "public", "route": "models", "model": "smart",
                   "messages": [{"role": "user", "content": "hi"}],
                   "authorization": format!("Bearer {CLIENT_KEY}")}),
        ),
    ] {
        let r = client()
            .post(format!("{}{path}", s.admin))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        seen.push_str(&r.text().await.unwrap());
    }
    // The answers carry the live data (so the check below looks at real pages).
    for expected in [
        "local__echo",
        "primary",
        "smart",
        "<redacted>",
        "bogus_key",
        "chat.completion.chunk",
        "\"state\":\"completed\"",
        "\"health\":\"ejected\"",
    ] {
        assert!(
            seen.contains(expected),
            "{expected} missing from the admin answers"
        );
    }
    for secret in SECRETS {
        assert!(!seen.contains(secret), "{secret} leaked by the admin");
    }
    s.gw.shutdown(Duration::from_secs(1)).await;
}

/// An A2A call and an LLM chat, so the pages have traffic to show.
async fn traffic(s: &Setup) {
    let r = client()
        .post(format!("{}/agents/echo", s.data))
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
            "role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "hi"}]}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap();
    // A streamed message makes a task (working, then completed) that the sessions page lists.
    let r = client()
        .post(format!("{}/agents/echo", s.data))
        .header("accept", "text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 2, "method": "message/stream", "params": {"message": {
            "role": "user", "messageId": "m2", "parts": [{"kind": "text", "text": "task"}]}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let events = r.text().await.unwrap();
    assert!(events.contains("completed"), "{events}");
    // A chat to `flaky`: its first provider fails and is ejected, the second answers.
    let r = client()
        .post(format!("{}/v1/chat/completions", s.data))
        .json(&json!({"model": "flaky", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-switchboard-provider"], "steady");
    r.text().await.unwrap();
    // A tool call, counted for its target on the MCP page.
    let r = client()
        .post(format!("{}/mcp", s.data))
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "local__add", "arguments": {"a": 2, "b": 3},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.text().await.unwrap();
}

/// Breaks the config file and reloads it: refused, kept as the last reload error.
async fn fail_a_reload(s: &Setup) {
    std::fs::write(
        &s.config_file,
        "admin: {bind: \"127.0.0.1:0\"}\nbogus_key: 1\n",
    )
    .unwrap();
    assert!(
        !s.gw.reload_from_file().await,
        "the broken config is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ui_pages_in_headless_chromium() {
    let chromium = std::env::var_os("SWITCHBOARD_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !peers::have("chromium (Debian package `chromium`)", &chromium)
        || !peers::require_npm("playwright-core/package.json")
    {
        return;
    }
    let s = start(r#"{bind: "127.0.0.1:0", token: "${UI_ADMIN_TOKEN}"}"#).await;
    traffic(&s).await;
    fail_a_reload(&s).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"))
        .join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/admin_ui/drive.cjs");
    let run = tokio::process::Command::new(peers::node())
        .arg(&script)
        .env("UI_ADMIN", &s.admin)
        .env("UI_DATA", &s.data)
        .env("UI_TOKEN", TOKEN)
        .env("UI_OUT", &out)
        .env("UI_CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the browser run finishes in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "UI driver failed:\n{stdout}\n{stderr}"
    );
    let result: Value = stdout
        .lines()
        .find_map(|l| l.strip_prefix("UI-RESULT "))
        .map(|l| serde_json::from_str(l).unwrap())
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"));
    assert_eq!(result["login_status"], 401, "{result}");
    assert!(result["chat_updates"].as_u64().unwrap() >= 2, "{result}");
    assert_eq!(result["tool_call"], true);
    // Every page the browser saw, checked for secrets.
    let mut pages = 0;
    for entry in std::fs::read_dir(&out).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "html") {
            let html = std::fs::read_to_string(&p).unwrap();
            for secret in SECRETS {
                assert!(!html.contains(secret), "{secret} shown on {}", p.display());
            }
            pages += 1;
        }
        if p.extension().is_some_and(|e| e == "png") {
            assert!(
                std::fs::metadata(&p).unwrap().len() > 1000,
                "{}",
                p.display()
            );
        }
    }
    assert_eq!(pages, 7, "a page per tab and the login page");
    s.gw.shutdown(Duration::from_secs(1)).await;
}

/// The playground's requests go through the route, so its authn policy applies: refused without
/// a credential, served with the client key typed into the playground. A dead target of an
/// MCP route shows as `down` next to a live one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playground_goes_through_route_policies_and_dead_targets_are_down() {
    let hash = switchboard_gateway::auth::api_key::hash_key(CLIENT_KEY.as_bytes());
    let extra = format!(
        r#"      - name: guarded
        match: {{path_prefix: /guarded}}
        policies: {{authn: {{api_keys: [{{name: ui-client, sha256: "{hash}"}}]}}}}
        mcp:
          targets:
            - name: remote
              http: {{url: "http://{{MCP}}/mcp"}}
      - name: partial
        match: {{path_prefix: /partial}}
        mcp:
          failure_mode: fail_open
          targets:
            - name: alive
              http: {{url: "http://{{MCP}}/mcp"}}
            - name: dead
              http: {{url: "http://127.0.0.1:9/mcp"}}
"#
    );
    let s = start_with(
        r#"{bind: "127.0.0.1:0", token: "${UI_ADMIN_TOKEN}"}"#,
        &extra,
    )
    .await;
    let call = |authorization: Option<&str>| {
        let mut body = json!({"listener": "public", "route": "guarded", "method": "tools/call",
            "params": {"name": "test_simple_text", "arguments": {}}});
        if let Some(a) = authorization {
            body["authorization"] = json!(a);
        }
        let admin = s.admin.clone();
        async move {
            let r = client()
                .post(format!("{admin}/api/playground/mcp"))
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    let refused = call(None).await;
    assert_eq!(
        refused["status"], 401,
        "the route's authn applies: {refused}"
    );
    let served = call(Some(&format!("Bearer {CLIENT_KEY}"))).await;
    assert_eq!(served["status"], 200, "{served}");
    assert!(
        served["reply"]["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("simple text")),
        "{served}"
    );
    assert!(!served.to_string().contains(CLIENT_KEY));

    let (status, body) = get(&format!("{}/api/mcp", s.admin), Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK);
    let mcp: Value = serde_json::from_str(&body).unwrap();
    let route = |name: &str| {
        mcp["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"] == name)
            .unwrap()
            .clone()
    };
    let health = |r: &Value| -> Vec<(String, String)> {
        r["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().into(),
                    t["health"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    let partial = route("partial");
    assert_eq!(
        health(&partial),
        [
            ("alive".into(), "up".into()),
            ("dead".into(), "down".into())
        ],
        "{partial}"
    );
    // The admin's own tools/list carries no credential: the guarded route refuses it, and the
    // page says so instead of guessing.
    let guarded = route("guarded");
    assert_eq!(
        health(&guarded),
        [("remote".into(), "unknown".into())],
        "{guarded}"
    );
    assert!(guarded["tools_error"].is_string(), "{guarded}");
    assert!(!body.contains(CLIENT_KEY) && !body.contains(&hash));
    s.gw.shutdown(Duration::from_secs(1)).await;
}
