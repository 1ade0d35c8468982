//! The fleet store under stress: two in-process gateways sharing a real Redis Cluster or a
//! Sentinel-managed Redis keep one token budget and their MCP sessions (with `Last-Event-ID`)
//! across a master failover; and one Redis stopped, paused and restarted under a gateway whose
//! features each follow their stated failure policy, with `/readyz` and `switchboard_store_up`
//! following the store, and the gateway recovering on its own.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};
use switchboard_gateway::Gateway;
use switchboard_testing::redis::{RedisCluster, RedisSentinel, RedisServer};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Two LLM routes (limits failing open and closed) and an MCP route, over `redis` (the YAML of
/// `sessions.redis`).
fn yaml(redis: &str, mock: &str, fixture: &str, per: &str) -> String {
    format!(
        r#"
sessions:
  store: redis
  redis: {redis}
  keys: ["{KEY}"]
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: open
        match: {{path_prefix: /open/v1}}
        policies:
          rate_limit: {{requests: 1000000, tokens: 300, per: {per}}}
        llm:
          models:
            - name: fast
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
      - name: closed
        match: {{path_prefix: /closed/v1}}
        policies:
          rate_limit: {{tokens: 300, per: {per}, fail_open: false}}
        llm:
          models:
            - name: fast
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
      - name: closed-requests
        match: {{path_prefix: /closed-requests/v1}}
        policies:
          rate_limit: {{requests: 1000000, per: {per}, fail_open: false}}
        llm:
          models:
            - name: fast
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "{fixture}"}}
"#
    )
}

struct Peers {
    mock: String,
    fixture: String,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn peers() -> Peers {
    switchboard_gateway::install_crypto_provider();
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (fixture, task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    Peers {
        mock: mock.to_string(),
        fixture: format!("http://{fixture}/mcp"),
        _tasks: vec![task],
    }
}

async fn start(yaml: &str) -> Gateway {
    let unused = "127.0.0.1:9".parse().unwrap();
    Gateway::start(test_config(yaml, unused), None)
        .await
        .unwrap()
}

/// One chat completion (59 tokens with the mock: 42 in, 17 out) on `route`.
async fn chat(gw: &Gateway, route: &str) -> reqwest::Response {
    client()
        .post(format!(
            "{}/{route}/v1/chat/completions",
            base(gw, "main").await
        ))
        .json(&json!({"model": "fast", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

async fn mcp_post(gw: &Gateway, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/mcp", base(gw, "main").await))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(body.to_string());
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

async fn initialize(gw: &Gateway) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"}}});
    let resp = mcp_post(gw, None, init).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(mcp_post(gw, Some(&sid), note).await.status(), 202);
    sid
}

/// A GET stream's next event carrying a message: (id, message).
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    async fn open(gw: &Gateway, session: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = client()
            .get(format!("{}/mcp", base(gw, "main").await))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session);
        if let Some(l) = last_event_id {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn message(&mut self) -> (String, Value) {
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .map(str::to_string);
                let data: String = block
                    .lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .collect();
                if data.trim().is_empty() {
                    continue;
                }
                return (id.expect("event id"), serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("no SSE event within 20s")
                .unwrap()
                .expect("stream ended");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

fn log_text(msg: &Value) -> String {
    assert_eq!(msg["method"], "notifications/message", "{msg}");
    msg["params"]["data"].as_str().unwrap().to_string()
}

async fn call_logging_tool(gw: &Gateway, session: &str) {
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "test_tool_with_logging", "arguments": {}}});
    let resp = mcp_post(gw, Some(session), call).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Tool with logging executed successfully")
    );
}

/// The two-replica scenario with `fail_over` (blocking) run in the middle: an MCP session
/// initialized on A, whose GET stream saw the first of three log events, resumes on B with
/// `Last-Event-ID` and gets the other two; and a 300-token budget shared by A and B, spent
/// half before and half after the failover, admits 5 or 6 requests in all (each uses 59
/// tokens; two budgets would admit about 10). The limit fails closed here, so a call that
/// could not reach Redis during the failover is refused (503, retried) instead of unmetered.
async fn fleet_across_a_failover(redis_yaml: &str, fail_over: impl FnOnce() + Send + 'static) {
    common::inside_one_window(std::time::Duration::from_secs(3600)).await;
    let p = peers().await;
    let y = yaml(redis_yaml, &p.mock, &p.fixture, "1h");
    let a = start(&y).await;
    let b = start(&y).await;

    let token = initialize(&a).await;
    let mut get_a = Sse::open(&a, &token, None).await;
    call_logging_tool(&a, &token).await;
    let (first_id, first) = get_a.message().await;
    assert_eq!(log_text(&first), "Tool execution started");
    drop(get_a);

    let mut admitted = 0;
    let mut spend = async |gws: [&Gateway; 2], until_refused: bool| {
        let mut denied = [false, false];
        for i in 0..40 {
            let resp = chat(gws[i % 2], "closed").await;
            match resp.status().as_u16() {
                200 => admitted += 1,
                429 => {
                    denied[i % 2] = true;
                    if denied == [true, true] {
                        return denied;
                    }
                }
                // The store was unreachable for a moment (failover): fail closed, retry.
                503 => tokio::time::sleep(Duration::from_millis(100)).await,
                s => panic!("unexpected {s}: {}", resp.text().await.unwrap()),
            }
            if !until_refused && admitted == 2 {
                return denied;
            }
        }
        denied
    };
    spend([&a, &b], false).await;

    tokio::task::spawn_blocking(fail_over).await.unwrap();

    // B resumes the stream with what the client missed.
    let mut get_b = Sse::open(&b, &token, Some(&first_id)).await;
    for want in ["Tool processing data", "Tool execution completed"] {
        let (_, msg) = get_b.message().await;
        assert_eq!(log_text(&msg), want);
    }
    drop(get_b);
    // And the session keeps working on B.
    let list = mcp_post(
        &b,
        Some(&token),
        json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"}),
    )
    .await;
    assert_eq!(list.status(), 200);

    let denied = spend([&a, &b], true).await;
    assert_eq!(
        denied,
        [true, true],
        "both gateways refuse once the budget is spent"
    );
    assert!(
        (5..=6).contains(&admitted),
        "{admitted} requests admitted across both gateways and the failover"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_failover_keeps_sessions_event_logs_and_the_shared_budget() {
    let Some(cluster) = RedisCluster::start_or_skip(
        "cluster_failover_keeps_sessions_event_logs_and_the_shared_budget",
    ) else {
        return;
    };
    let cluster = Arc::new(cluster);
    let seeds: Vec<String> = cluster.seeds().iter().map(|s| format!("\"{s}\"")).collect();
    let redis = format!("{{cluster: [{}], timeout: 1s}}", seeds.join(", "));
    let c = cluster.clone();
    // Every master fails over, so whatever slots the session and the budget live on move.
    fleet_across_a_failover(&redis, move || c.fail_over_every_master()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_sessions_event_logs_and_the_shared_budget() {
    let Some(sentinel) = RedisSentinel::start_or_skip(
        "sentinel_failover_keeps_sessions_event_logs_and_the_shared_budget",
    ) else {
        return;
    };
    let sentinel = Arc::new(sentinel);
    let nodes: Vec<String> = sentinel
        .sentinel_urls()
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    let redis = format!(
        "{{sentinel: {{master: {}, nodes: [{}]}}, timeout: 1s}}",
        RedisSentinel::MASTER,
        nodes.join(", ")
    );
    let s = sentinel.clone();
    fleet_across_a_failover(&redis, move || {
        // Replication is asynchronous and the store does not WAIT: the test waits for the
        // replica to have everything before failing over, as the README says one must.
        assert_eq!(s.master().cli(&["WAIT", "1", "2000"]).trim(), "1");
        s.failover();
    })
    .await;
}

/// ACL credentials from `username` and an `${ENV}` password reach Redis (a server that refuses
/// anonymous clients), and neither `/config` nor the logs' `Debug` shows the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_credentials_from_the_environment_and_never_shown() {
    let Some(server) =
        RedisServer::start_or_skip("acl_credentials_from_the_environment_and_never_shown")
    else {
        return;
    };
    server.cli(&[
        "ACL",
        "SETUSER",
        "sb",
        "on",
        ">s3cret-pw",
        "~*",
        "&*",
        "+@all",
    ]);
    server.cli(&["ACL", "SETUSER", "default", "off"]);
    let p = peers().await;
    let load = |password: &str| {
        let pw = password.to_owned();
        let env = move |name: &str| (name == "REDIS_PW").then(|| pw.clone());
        let y = format!(
            "admin: {{bind: '127.0.0.1:0'}}\n{}",
            yaml(
                &format!(
                    "{{url: \"{}\", username: sb, password: \"${{REDIS_PW}}\"}}",
                    server.url()
                ),
                &p.mock,
                &p.fixture,
                "1m",
            )
        );
        switchboard_gateway::config::load_str(&y, "test.yaml", &env).unwrap()
    };
    // Wrong password: the gateway does not start against a Redis it cannot use.
    assert!(Gateway::start(load("nope"), None).await.is_err());
    let cfg = load("s3cret-pw");
    assert!(!format!("{cfg:?}").contains("s3cret-pw"));
    let gw = Gateway::start(cfg, None).await.unwrap();
    initialize(&gw).await;
    let admin = gw.admin_addr().await.unwrap();
    let shown = client()
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!shown.contains("s3cret-pw"), "{shown}");
    assert!(shown.contains("<redacted>"));
}

/// `rediss://` is TLS (rustls) with a verified server certificate: trusting the private CA
/// (`tls_ca`) works, the system roots alone refuse the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_to_redis_verifies_the_server_against_tls_ca() {
    if !switchboard_testing::peers::require_on_path(
        "tls_to_redis_verifies_the_server_against_tls_ca",
        "redis-server",
        "apt-get install redis-server",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let path = |n: &str| dir.path().join(n);
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("redis.pem"), leaf.pem()).unwrap();
    std::fs::write(path("redis.key"), key.serialize_pem()).unwrap();
    let (node, node_dir) =
        switchboard_testing::redis::RedisNode::start_tls(&path("redis.pem"), &path("redis.key"))
            .unwrap();
    let p = peers().await;
    let with_ca = yaml(
        &format!(
            "{{url: \"{}\", tls_ca: \"{}\"}}",
            node.tls_url(),
            path("ca.pem").display()
        ),
        &p.mock,
        &p.fixture,
        "1m",
    );
    let gw = start(&with_ca).await;
    initialize(&gw).await;
    assert_eq!(chat(&gw, "closed").await.status(), 200);
    // The sessions really went over TLS: the TLS port is the only one the gateway knows.
    let clients = node.cli(&["CLIENT", "LIST"]);
    assert!(clients.lines().count() >= 2, "{clients}");

    let unverified = yaml(
        &format!("{{url: \"{}\"}}", node.tls_url()),
        &p.mock,
        &p.fixture,
        "1m",
    );
    let unused = "127.0.0.1:9".parse().unwrap();
    assert!(
        Gateway::start(test_config(&unverified, unused), None)
            .await
            .is_err(),
        "a server certificate from an unknown CA is refused"
    );
    drop(node);
    let _ = std::fs::remove_dir_all(node_dir);
}

async fn readyz(gw: &Gateway) -> (u16, String) {
    let admin = gw.admin_addr().await.unwrap();
    let resp = client()
        .get(format!("http://{admin}/readyz"))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Redis stopped, then paused, then back: each feature follows its policy.
/// - Limits with `fail_open: true` (default) pass requests unmetered; with `fail_open: false`
///   they answer 503 with `Retry-After`.
/// - MCP sessions and event logs: a retryable JSON-RPC error with HTTP 503 and `Retry-After`.
/// - `/readyz` says `store: down`, and is 503 only with `required_for_ready: true`;
///   `switchboard_store_up` is 0 and `switchboard_store_failures_total` counts.
/// - Every request while Redis is away finishes within 5x the timeout (one timeout, then the
///   breaker fails at once); the gateway recovers without a restart when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_paused_and_back_each_feature_follows_its_policy() {
    let Some(mut server) =
        RedisServer::start_or_skip("redis_stopped_paused_and_back_each_feature_follows_its_policy")
    else {
        return;
    };
    let p = peers().await;
    let timeout = Duration::from_millis(200);
    let redis = |ready: bool| {
        format!(
            "{{url: \"{}\", timeout: 200ms, breaker: {{failures: 2, cool_down: 500ms}}, required_for_ready: {ready}}}",
            server.url()
        )
    };
    let gw = start(&yaml(&redis(false), &p.mock, &p.fixture, "1m")).await;
    let strict = start(&yaml(&redis(true), &p.mock, &p.fixture, "1m")).await;
    let token = initialize(&gw).await;
    assert_eq!(readyz(&gw).await, (200, "ready\nstore: up\n".into()));
    assert_eq!(metric(&gw, "switchboard_store_up").await, Some(1.0));
    assert_eq!(
        metric(&gw, "switchboard_sessions_created_total").await,
        Some(1.0),
        "session families carry one switchboard_ prefix"
    );
    assert_eq!(chat(&gw, "closed").await.status(), 200);

    server.stop();
    let check_down = async |phase: &str| {
        for _ in 0..4 {
            let t = Instant::now();
            assert_eq!(chat(&gw, "open").await.status(), 200, "{phase}: fail open");
            let closed = chat(&gw, "closed").await;
            assert_eq!(closed.status(), 503, "{phase}: fail closed");
            assert!(closed.headers().contains_key("retry-after"));
            assert!(
                closed
                    .text()
                    .await
                    .unwrap()
                    .contains("rate limit store unavailable"),
                "{phase}"
            );
            let resp = mcp_post(
                &gw,
                Some(&token),
                json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
            )
            .await;
            assert_eq!(resp.status(), 503, "{phase}: MCP");
            assert!(resp.headers().contains_key("retry-after"));
            let body: Value = resp.json().await.unwrap();
            assert!(
                body["error"]["code"].is_i64(),
                "{phase}: a JSON-RPC error: {body}"
            );
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("session store unavailable"),
                "{body}"
            );
            let took = t.elapsed();
            assert!(
                took < timeout * 5 * 3,
                "{phase}: three requests took {took:?}"
            );
        }
        assert_eq!(readyz(&gw).await, (200, "ready\nstore: down\n".into()));
        assert_eq!(metric(&gw, "switchboard_store_up").await, Some(0.0));
        assert!(
            metric(
                &gw,
                "switchboard_store_failures_total{reason=\"breaker_open\"}"
            )
            .await
            .unwrap()
                > 0.0
        );
    };
    check_down("stopped").await;
    // The strict replica asks Redis only through its prober and requests; make it notice.
    wait_until("strict replica not ready", async || {
        let _ = chat(&strict, "closed").await;
        readyz(&strict).await == (503, "not ready\nstore: down\n".into())
    })
    .await;

    server.restart().unwrap();
    wait_until("store up again", async || {
        readyz(&gw).await.1.contains("store: up") && readyz(&strict).await.0 == 200
    })
    .await;
    assert_eq!(metric(&gw, "switchboard_store_up").await, Some(1.0));
    // Redis came back empty: the old session is gone (404, re-initialize); new ones work and
    // limits are metered again.
    let gone = mcp_post(
        &gw,
        Some(&token),
        json!({"jsonrpc": "2.0", "id": 6, "method": "tools/list"}),
    )
    .await;
    assert_eq!(gone.status(), 404);
    let token = initialize(&gw).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let s = chat(&gw, "closed").await.status().as_u16();
        statuses.push(s);
        if s == 429 {
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "metered again: {statuses:?}");
    assert!(
        statuses.iter().filter(|s| **s == 200).count() <= 6,
        "{statuses:?}"
    );

    // Paused (SIGSTOP): the same, and the first failures are timeouts.
    server.pause();
    check_down("paused").await;
    assert!(
        metric(&gw, "switchboard_store_failures_total{reason=\"timeout\"}")
            .await
            .unwrap()
            > 0.0
    );
    server.resume();
    wait_until("store up after the pause", async || {
        readyz(&gw).await.1.contains("store: up")
    })
    .await;
    // Nothing was lost while paused: the session resumes.
    let resp = mcp_post(
        &gw,
        Some(&token),
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
    )
    .await;
    assert_eq!(resp.status(), 200);
}
