//! The A2A proxy against the real `a2a-sdk` (Python): an agent behind the gateway, a client in
//! front of it, on protocol 1.0 and 0.3; two agent replicas behind two gateways sharing Redis.
//!
//! Peers: `$SWITCHBOARD_PYTHON` or `<workspace>/.venv/bin/python` with a2a-sdk 1.3 (starlette,
//! sse-starlette, uvicorn), and `redis-server` on PATH. Missing peers fail under `CI`, else the
//! test prints `SKIPPED` and returns.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use switchboard_gateway::{Gateway, config};
use switchboard_testing::redis::RedisServer;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

fn workspace() -> PathBuf {
    switchboard_testing::peers::root()
}

/// The Python with a2a-sdk, or `None` (after a loud SKIPPED line) outside CI.
fn python() -> Option<PathBuf> {
    switchboard_testing::peers::require_python(&["a2a.server.routes", "uvicorn", "sse_starlette"])
}

/// An example agent (examples/a2a/agent.py) on a free port.
struct Agent {
    _child: Child,
    port: u16,
}

impl Agent {
    async fn start(py: &PathBuf, name: &str, extra: &[&str]) -> Agent {
        let mut child = Command::new(py)
            .arg(workspace().join("examples/a2a/agent.py"))
            .args(["--port", "0", "--name", name])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(p) = line.strip_prefix("READY ") {
                    return p.trim().parse::<u16>().unwrap();
                }
            }
            panic!("agent {name} exited before READY");
        })
        .await
        .expect("agent READY within 60s");
        Agent {
            _child: child,
            port,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn release(&self, key: &str) {
        let r = common::client()
            .post(format!("{}/_test/release/{key}", self.url()))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
}

async fn gateway(yaml: &str) -> Gateway {
    switchboard_gateway::install_crypto_provider();
    let yaml = format!("admin: {{bind: '127.0.0.1:0'}}\n{yaml}");
    let cfg =
        config::load_str(&yaml, "a2a.yaml", &|_: &str| None).unwrap_or_else(|e| panic!("{e}"));
    Gateway::start(cfg, None).await.unwrap()
}

/// Runs the a2a-sdk client script; `on_step` may answer a step (e.g. release a held stream)
/// by returning a line for its stdin. Returns every step by name (the last of each name).
async fn run_client(
    py: &PathBuf,
    args: &[String],
    mut on_step: impl AsyncFnMut(&Value) -> Option<&'static str>,
) -> HashMap<String, Value> {
    let mut child = Command::new(py)
        .arg(workspace().join("gateway/tests/py/a2a_client.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = HashMap::new();
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("client said: {line}"));
            if let Some(answer) = on_step(&v).await {
                stdin
                    .write_all(format!("{answer}\n").as_bytes())
                    .await
                    .unwrap();
                stdin.flush().await.unwrap();
            }
            steps.insert(v["step"].as_str().unwrap().to_owned(), v);
        }
        let status = child.wait().await.unwrap();
        assert!(
            status.success(),
            "a2a client failed: {status}; steps so far: {steps:#?}"
        );
    })
    .await
    .expect("a2a client finished within 120s");
    steps
}

fn last_state(events: &Value) -> &str {
    events
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|e| e["state"].as_str())
        .unwrap_or("")
}

fn texts(events: &Value) -> String {
    events
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["texts"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect::<Vec<_>>()
        .join("|")
}

async fn full_scenario(version: &str) {
    let Some(py) = python() else { return };
    let agent = Agent::start(&py, "a", &["--sign"]).await;
    let gw = gateway(&format!(
        r#"
listeners:
  - name: public
    bind: 127.0.0.1:0
    routes:
      - name: helper
        match: {{path_prefix: /agents/helper}}
        a2a:
          url: {}
          push_notifications: {{allowed_urls: ["http://hooks.test/a2a/"]}}
"#,
        agent.url()
    ))
    .await;
    let base = common::base(&gw, "public").await;
    let route_url = format!("{base}/agents/helper");
    let key = format!("k{version}");
    let args: Vec<String> = vec![
        route_url.clone(),
        "--version".into(),
        version.into(),
        "--hold-key".into(),
        key.clone(),
        "--push-ok".into(),
        "http://hooks.test/a2a/cb".into(),
        "--push-bad".into(),
        "http://169.254.169.254/latest/meta-data".into(),
    ];
    let steps = run_client(&py, &args, async |v: &Value| {
        if v["step"] == "stream_first" {
            // The client holds the stream's first event before the agent has emitted the
            // rest: only now may the agent go on.
            agent.release(&key).await;
            return Some("release");
        }
        None
    })
    .await;

    // The card the client fetched points at the gateway, has no agent security or signatures,
    // and offers JSON-RPC only.
    let card = &steps["card"];
    let want = format!("{route_url}/");
    assert_eq!(card["interfaces"][0]["url"], want.as_str(), "{card:#}");
    for i in card["raw_interfaces"].as_array().unwrap() {
        assert_eq!(i["url"], want.as_str(), "{card:#}");
        assert_eq!(i["protocolBinding"], "JSONRPC", "{card:#}");
    }
    assert_eq!(card["raw_url"], want.as_str());
    assert!(card["security"].is_null(), "{card:#}");
    assert!(card["signatures"].is_null(), "{card:#}");

    let send = &steps["send"];
    assert_eq!(
        last_state(&send["events"]),
        "TASK_STATE_COMPLETED",
        "{send:#}"
    );
    assert!(texts(&send["events"]).contains(&format!("replica=a echo=hello {version}")));
    let get = &steps["get"];
    assert_eq!(get["state"], "TASK_STATE_COMPLETED");
    assert_eq!(get["task_id"], send["events"][0]["task_id"]);

    assert_eq!(steps["stream_first"]["state"], "TASK_STATE_WORKING");
    let done = &steps["stream_done"]["events"];
    assert_eq!(last_state(done), "TASK_STATE_COMPLETED", "{done:#}");
    assert!(texts(done).contains("replica=a step 2"), "{done:#}");

    assert_eq!(steps["cancel"]["state"], "TASK_STATE_CANCELED");
    assert_eq!(
        steps["resubscribed"]["task_id"],
        steps["wait_started"]["task_id"]
    );
    assert_eq!(
        last_state(&steps["resubscribe_done"]["events"]),
        "TASK_STATE_CANCELED"
    );

    if version == "1.0" {
        let listed = steps["list"]["task_ids"].as_array().unwrap();
        assert!(listed.contains(&get["task_id"]), "{listed:?}");
    }
    let bad = &steps["push_bad"];
    assert_eq!(bad["refused"], true, "{bad:#}");
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("not allowed by this gateway"),
        "{bad:#}"
    );
    assert_eq!(steps["push_ok"]["ok"], true, "{:#}", steps["push_ok"]);

    // Metrics name the method and the task states.
    let (send_m, stream_m, get_m) = if version == "1.0" {
        ("SendMessage", "SendStreamingMessage", "GetTask")
    } else {
        ("message/send", "message/stream", "tasks/get")
    };
    for (method, outcome) in [
        (send_m, "ok"),
        (stream_m, "ok"),
        (get_m, "ok"),
        ("agent_card", "ok"),
    ] {
        let sample = format!(
            "switchboard_a2a_requests_total{{route=\"helper\",method=\"{method}\",outcome=\"{outcome}\"}}"
        );
        assert!(
            common::metric(&gw, &sample).await.unwrap_or(0.0) >= 1.0,
            "{sample}"
        );
    }
    let refused = format!(
        "switchboard_a2a_requests_total{{route=\"helper\",method=\"{}\",outcome=\"refused\"}}",
        if version == "1.0" {
            "CreateTaskPushNotificationConfig"
        } else {
            "tasks/pushNotificationConfig/set"
        }
    );
    assert_eq!(common::metric(&gw, &refused).await, Some(1.0), "{refused}");
    for state in ["completed", "working", "canceled"] {
        let sample =
            format!("switchboard_a2a_task_states_total{{route=\"helper\",state=\"{state}\"}}");
        assert!(
            common::metric(&gw, &sample).await.unwrap_or(0.0) >= 1.0,
            "{sample}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_1_0_through_the_gateway() {
    full_scenario("1.0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_0_3_through_the_gateway() {
    full_scenario("0.3").await;
}

/// Two replicas behind one route, two gateways sharing one Redis: tasks created through
/// gateway A are read through gateway B from the replica that owns them, found by the pinning
/// A wrote (B's lookups hit; none has to probe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_pinned_across_gateways_via_redis() {
    let test = "a2a::replicas_pinned_across_gateways_via_redis";
    let Some(py) = python() else { return };
    let Some(mut redis) = RedisServer::start_or_skip(test) else {
        return;
    };
    let a = Agent::start(&py, "a", &[]).await;
    let b = Agent::start(&py, "b", &[]).await;
    let yaml = format!(
        r#"
sessions:
  store: redis
  redis: {{url: "{}"}}
listeners:
  - name: public
    bind: 127.0.0.1:0
    routes:
      - name: fleet
        match: {{path_prefix: /agents/fleet}}
        a2a:
          upstreams: [{}, {}]
"#,
        redis.url(),
        a.url(),
        b.url()
    );
    let gw_a = gateway(&yaml).await;
    let gw_b = gateway(&yaml).await;
    let url_a = format!("{}/agents/fleet", common::base(&gw_a, "public").await);
    let url_b = format!("{}/agents/fleet", common::base(&gw_b, "public").await);

    // New tasks go to the replicas in turn, so both own some.
    let mut owned = Vec::new();
    for i in 0..4 {
        let args = vec![url_a.clone(), "--only-send".into(), format!("hello {i}")];
        let steps = run_client(&py, &args, async |_: &Value| None).await;
        let send = &steps["send"];
        let text = send["texts"][0].as_str().unwrap().to_owned();
        let replica = text.split_whitespace().next().unwrap().to_owned();
        owned.push((send["task_id"].as_str().unwrap().to_owned(), replica));
    }
    let replicas: std::collections::HashSet<_> = owned.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(replicas.len(), 2, "both replicas got tasks: {owned:?}");

    // A task revealed only by stream events is pinned too.
    for i in 0..2 {
        let args = vec![url_a.clone(), "--only-stream".into(), format!("hello s{i}")];
        let steps = run_client(&py, &args, async |_: &Value| None).await;
        let events = &steps["stream"]["events"];
        assert_eq!(last_state(events), "TASK_STATE_COMPLETED", "{events:#}");
        let replica = texts(events).split_whitespace().next().unwrap().to_owned();
        owned.push((events[0]["task_id"].as_str().unwrap().to_owned(), replica));
    }

    // A task still running on its replica is cancelled through the other gateway.
    let steps = run_client(
        &py,
        &[url_a.clone(), "--only-start".into(), "wait".into()],
        async |_: &Value| None,
    )
    .await;
    let waiting = steps["start"]["task_id"].as_str().unwrap().to_owned();
    let steps = run_client(
        &py,
        &[url_b.clone(), "--only-cancel".into(), waiting.clone()],
        async |_: &Value| None,
    )
    .await;
    assert_eq!(steps["cancel"]["task_id"], waiting.as_str());
    assert_eq!(steps["cancel"]["state"], "TASK_STATE_CANCELED");

    for (task, replica) in &owned {
        let args = vec![url_b.clone(), "--only-get".into(), task.clone()];
        let steps = run_client(&py, &args, async |_: &Value| None).await;
        let get = &steps["get"];
        assert_eq!(get["task_id"], task.as_str());
        assert_eq!(get["state"], "TASK_STATE_COMPLETED");
        assert!(
            get["texts"][0]
                .as_str()
                .unwrap()
                .starts_with(replica.as_str()),
            "{get:#} from {replica}"
        );
    }
    // ListTasks through B pages through both replicas: every task once, pages of at most 2.
    let steps = run_client(
        &py,
        &[url_b.clone(), "--only-list".into(), "2".into()],
        async |_: &Value| None,
    )
    .await;
    let mut listed: Vec<String> = steps["list"]["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let mut want: Vec<String> = owned
        .iter()
        .map(|(t, _)| t.clone())
        .chain([waiting.clone()])
        .collect();
    listed.sort();
    want.sort();
    assert_eq!(listed, want);
    assert!(
        steps["list"]["pages"].as_u64().unwrap() >= 4,
        "{:#}",
        steps["list"]
    );

    let hits = "switchboard_a2a_pinning_lookups_total{route=\"fleet\",result=\"hit\"}";
    let misses = "switchboard_a2a_pinning_lookups_total{route=\"fleet\",result=\"miss\"}";
    assert_eq!(
        common::metric(&gw_b, hits).await,
        Some(owned.len() as f64 + 1.0)
    );
    assert_eq!(common::metric(&gw_b, misses).await, None);

    // Redis gone: pins cannot be read, so B asks the replicas in turn and still finds the task
    // (the fleet store's failure policy for A2A pins).
    redis.stop();
    let (task, replica) = &owned[0];
    let args = vec![url_b.clone(), "--only-get".into(), task.clone()];
    let steps = run_client(&py, &args, async |_: &Value| None).await;
    let get = &steps["get"];
    assert_eq!(get["state"], "TASK_STATE_COMPLETED", "{get:#}");
    assert!(
        get["texts"][0]
            .as_str()
            .unwrap()
            .starts_with(replica.as_str()),
        "{get:#} from {replica}"
    );
    assert_eq!(common::metric(&gw_b, misses).await, Some(1.0));
}

/// Without a shared store (each gateway has its own memory store) a task created through
/// gateway A is still found through gateway B: B has no pinning, so it asks the replicas in
/// turn until one does not answer "task not found".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpinned_tasks_are_found_by_asking_each_replica() {
    let Some(py) = python() else { return };
    let a = Agent::start(&py, "a", &[]).await;
    let b = Agent::start(&py, "b", &[]).await;
    let yaml = format!(
        r#"
listeners:
  - name: public
    bind: 127.0.0.1:0
    routes:
      - name: fleet
        match: {{path_prefix: /fleet}}
        a2a: {{upstreams: [{}, {}]}}
"#,
        a.url(),
        b.url()
    );
    let gw_a = gateway(&yaml).await;
    let gw_b = gateway(&yaml).await;
    let url_a = format!("{}/fleet", common::base(&gw_a, "public").await);
    let url_b = format!("{}/fleet", common::base(&gw_b, "public").await);
    let mut owned = Vec::new();
    for i in 0..2 {
        let steps = run_client(
            &py,
            &[url_a.clone(), "--only-send".into(), format!("hello {i}")],
            async |_: &Value| None,
        )
        .await;
        let send = &steps["send"];
        let replica = send["texts"][0]
            .as_str()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        owned.push((send["task_id"].as_str().unwrap().to_owned(), replica));
    }
    assert_ne!(
        owned[0].1, owned[1].1,
        "round robin spreads new tasks: {owned:?}"
    );
    // B's turn order starts where A's did, so reading in reverse sends each read to the
    // replica that does not have the task first.
    for (task, replica) in owned.iter().rev() {
        let steps = run_client(
            &py,
            &[url_b.clone(), "--only-get".into(), task.clone()],
            async |_: &Value| None,
        )
        .await;
        assert_eq!(steps["get"]["state"], "TASK_STATE_COMPLETED");
        assert!(
            steps["get"]["texts"][0]
                .as_str()
                .unwrap()
                .starts_with(replica.as_str())
        );
    }
    let misses = "switchboard_a2a_pinning_lookups_total{route=\"fleet\",result=\"miss\"}";
    assert_eq!(common::metric(&gw_b, misses).await, Some(2.0));
    // B learned the pinning from the answers: a second read hits.
    let steps = run_client(
        &py,
        &[url_b.clone(), "--only-get".into(), owned[0].0.clone()],
        async |_: &Value| None,
    )
    .await;
    assert_eq!(steps["get"]["state"], "TASK_STATE_COMPLETED");
    let hits = "switchboard_a2a_pinning_lookups_total{route=\"fleet\",result=\"hit\"}";
    assert_eq!(common::metric(&gw_b, hits).await, Some(1.0));
}

/// A hostile agent with a giant card: over `a2a.max_card_bytes` the card is a JSON-RPC error
/// (502) without the gateway reading past the cap, and JSON-RPC calls keep working. Request
/// bodies over `limits.json` are refused while read, as JSON-RPC errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giant_agent_card_and_oversized_requests_are_refused() {
    let Some(py) = python() else {
        return;
    };
    let agent = Agent::start(&py, "giant", &["--card-bytes", "3000000"]).await;
    let gw = gateway(&format!(
        r#"
listeners:
  - name: public
    bind: 127.0.0.1:0
    limits: {{json: {{max_message_bytes: 65536, max_depth: 16}}}}
    routes:
      - name: helper
        match: {{path_prefix: /agents/helper}}
        a2a: {{url: {}, max_card_bytes: 1048576}}
"#,
        agent.url()
    ))
    .await;
    let base = format!("{}/agents/helper", common::base(&gw, "public").await);
    let client = common::client();
    let r = client
        .get(format!("{base}/.well-known/agent-card.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["data"]["type"], "bad_gateway", "{v}");

    let post = |body: String| {
        client
            .post(&base)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let send = |text: &str| {
        serde_json::json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
            "message": {"role": "user", "parts": [{"kind": "text", "text": text}], "messageId": "m1", "kind": "message"}}})
        .to_string()
    };
    let r = post(send(&"x".repeat(70_000))).await.unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert_eq!(v["error"]["data"]["type"], "payload_too_large", "{v}");
    let deep = format!("{}1{}", "[".repeat(17), "]".repeat(17));
    let r = post(format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"message/send","params":{deep}}}"#
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    // The gateway still serves the agent.
    let r = post(send("hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v.get("result").is_some(), "{v}");
}

/// A hostile agent's answers (no Python needed: the example upstream plays the agent): an
/// answer that is not JSON, and one over `a2a.max_response_bytes`, become JSON-RPC errors
/// carrying the request's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_json_and_oversized_agent_answers_are_json_rpc_errors() {
    let up = common::upstream().await;
    let gw = gateway(&format!(
        r#"
listeners:
  - name: public
    bind: 127.0.0.1:0
    routes:
      - name: html
        match: {{path_prefix: /html}}
        a2a: {{url: "http://{up}/"}}
      - name: big
        match: {{path_prefix: /big}}
        a2a: {{url: "http://{up}/stream", max_response_bytes: 1000}}
"#
    ))
    .await;
    let base = common::base(&gw, "public").await;
    let client = common::client();
    let call = |path: &str, text: &str| {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"jsonrpc": "2.0", "id": 42, "method": "message/send", "params": {
                    "message": {"role": "user", "parts": [{"kind": "text", "text": text}], "messageId": "m"}}})
                .to_string(),
            )
            .send()
    };
    // The upstream's `/` answers a POST with a non-JSON 405.
    let r = call("/html", "hi").await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 42, "{v}");
    assert_eq!(v["error"]["data"]["type"], "bad_gateway", "{v}");
    // `/stream` echoes the request: 2000 bytes of answer against a 1000-byte cap.
    let r = call("/big", &"x".repeat(2000)).await.unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["id"], 42, "{v}");
    // Small answers still pass.
    let r = call("/big", "x").await.unwrap();
    assert_eq!(r.status(), 200);
}
