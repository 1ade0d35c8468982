//! Virtual keys, spend and budgets through real `switchboard run` processes: two replicas
//! sharing one real Redis (keys created on one work on the other, revocation reaches the other
//! within a second, a budget spent concurrently through both is exceeded by at most one
//! request's estimate, spend totals match the usage the responses reported), and one replica
//! with the memory store (team budgets, metrics). The Python `openai` and `anthropic` SDKs are
//! the clients; the mock provider from `examples/` is the upstream.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_testing::redis::RedisServer;

const TOKEN: &str = "admin-secret";
/// USD per million tokens: input, cache read, output.
const PRICE: (f64, f64, f64) = (1000.0, 500.0, 2000.0);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/virtual_keys.py")
}

async fn py(args: &[&str]) -> Value {
    let py = python().expect("python with the openai and anthropic SDKs (run .ci/setup)");
    run_py(&py, &script(), args).await
}

/// What the price table makes of a reported usage.
fn cost(input: f64, cached: f64, output: f64) -> f64 {
    ((input - cached) * PRICE.0 + cached * PRICE.1 + output * PRICE.2) / 1e6
}

fn config(store: &str, mock: std::net::SocketAddr) -> String {
    format!(
        r#"
admin: {{bind: "127.0.0.1:0", token: "{TOKEN}"}}
sessions:
  {store}
  keys: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /}}
        policies:
          authn:
            virtual_keys: true
            api_keys:
              - {{name: from-config, team: ops, sha256: "{config_key}"}}
              - {{name: capped, sha256: "{capped_key}", budget: {{usd: 0.1, period: day}}}}
        llm:
          prices:
            mock-gpt: {{input: {i}, cache_read: {c}, output: {o}}}
            mock-claude: {{input: {i}, cache_read: {c}, output: {o}}}
          models:
            - name: fast
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
            - name: smart
              providers: [{{provider: anthropic, model: mock-claude, api_key: k, base_url: "http://{mock}"}}]
            - name: free
              providers: [{{provider: openai, model: mock-unpriced, api_key: k, base_url: "http://{mock}/v1"}}]
"#,
        config_key = switchboard_gateway::auth::api_key::hash_key(b"config-secret"),
        capped_key = switchboard_gateway::auth::api_key::hash_key(b"capped-secret"),
        i = PRICE.0,
        c = PRICE.1,
        o = PRICE.2,
    )
}

async fn spawn(dir: &Path, name: &str, yaml: &str) -> Proc {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    spawn_switchboard(&path).await
}

/// An admin API call with the token; the status and the JSON body.
async fn admin(gw: &Proc, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let c = client();
    let url = format!("http://{}{path}", gw.admin);
    let mut rb = c.request(method.parse().unwrap(), url).bearer_auth(TOKEN);
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn base(gw: &Proc) -> String {
    format!("http://{}", gw.listeners["main"])
}

/// One raw chat completion with `key`; the status.
async fn raw_chat(gw: &Proc, key: &str) -> u16 {
    client()
        .post(format!("{}/v1/chat/completions", base(gw)))
        .bearer_auth(key)
        .json(&json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// One raw chat completion with `key`; the status and the body.
async fn chat(gw: &Proc, key: &str) -> (u16, Value) {
    let r = client()
        .post(format!("{}/v1/chat/completions", base(gw)))
        .bearer_auth(key)
        .json(&json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_created_on_one_replica_works_on_the_other_and_its_revocation_reaches_it_within_a_second()
 {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let Some(redis) = RedisServer::start_or_skip("virtual_keys_across_replicas") else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &format!("store: redis\n  redis: {{url: \"{}\"}}", redis.url()),
        mock,
    );
    let a = spawn(dir.path(), "a.yaml", &yaml).await;
    let b = spawn(dir.path(), "b.yaml", &yaml).await;

    // The admin API needs its token.
    let r = client()
        .get(format!("http://{}/api/keys", a.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (status, created) = admin(
        &a,
        "POST",
        "/api/keys",
        Some(
            json!({"name": "ci-bot", "team": "ml", "models": ["fast", "smart"],
                    "metadata": {"owner": "alice"}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        created.get("sha256").is_none(),
        "only the secret is shown, never the hash"
    );

    // Listed on B, without the secret or its hash.
    let (_, listed) = admin(&b, "GET", "/api/keys", None).await;
    let k = &listed["keys"][0];
    assert_eq!(k["name"], "ci-bot");
    assert_eq!(k["metadata"]["owner"], "alice");
    assert!(k.get("key").is_none() && k.get("sha256").is_none());
    assert!(!listed.to_string().contains(&secret));

    // Used at once on B, through both SDKs.
    let r = py(&["chat", "openai", &base(&b), &secret, "fast"]).await;
    assert_eq!(r["status"], 200, "{r}");
    let r = py(&["chat", "anthropic", &base(&b), &secret, "smart"]).await;
    assert_eq!(r["status"], 200, "{r}");
    // Its model list holds on every replica; an update made on B reaches A.
    let (status, _) = admin(
        &b,
        "PATCH",
        &format!("/api/keys/{id}"),
        Some(json!({"models": ["smart"]})),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = py(&["chat", "openai", &base(&a), &secret, "fast"]).await;
    assert_eq!(r["status"], 403, "{r}");
    let (_, _) = admin(
        &b,
        "PATCH",
        &format!("/api/keys/{id}"),
        Some(json!({"models": null})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // A key's rate limit is one window for the fleet.
    let (_, limited) = admin(
        &b,
        "POST",
        "/api/keys",
        Some(json!({"name": "limited", "rate_limit": {"requests": 2, "per": "1m"}})),
    )
    .await;
    let limited = limited["key"].as_str().unwrap();
    assert_eq!(raw_chat(&a, limited).await, 200);
    assert_eq!(raw_chat(&b, limited).await, 200);
    assert_eq!(raw_chat(&a, limited).await, 429);
    assert_eq!(raw_chat(&b, limited).await, 429);
    // The config-file key keeps working beside it; unknown keys do not.
    assert_eq!(raw_chat(&a, "config-secret").await, 200);
    assert_eq!(raw_chat(&a, "sk-sb-0000").await, 401);

    // A has the key cached (it just served it); revoked on B, A refuses within a second.
    assert_eq!(raw_chat(&a, &secret).await, 200);
    let (status, revoked) = admin(&b, "DELETE", &format!("/api/keys/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(revoked["revoked_at"].as_u64().is_some());
    // Taken when the revocation was acknowledged; A's first request a second later must be
    // refused. (Waiting out the second rather than timing requests keeps the check sound on a
    // loaded machine, where a request alone may take longer than the cache's 500 ms.)
    let revoked_at = tokio::time::Instant::now();
    assert_eq!(
        raw_chat(&b, &secret).await,
        401,
        "the revoking replica refuses at once"
    );
    tokio::time::sleep_until(revoked_at + Duration::from_secs(1)).await;
    assert_eq!(
        raw_chat(&a, &secret).await,
        401,
        "A still accepts the key a second after it was revoked"
    );
    let r = py(&["chat", "openai", &base(&a), &secret, "fast"]).await;
    assert_eq!(r["status"], 401, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_spent_concurrently_through_two_replicas_is_exceeded_by_at_most_one_estimate() {
    let Some(mut redis) = RedisServer::start_or_skip("virtual_key_budget_across_replicas") else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &format!("store: redis\n  redis: {{url: \"{}\"}}", redis.url()),
        mock,
    );
    let a = spawn(dir.path(), "a.yaml", &yaml).await;
    let b = spawn(dir.path(), "b.yaml", &yaml).await;
    // Each request really costs 0.071 USD (32 uncached + 10 cached prompt tokens, 17 out);
    // it is estimated at about 0.13 (prompt bytes / 4 in, 50 max_tokens out).
    let budget = 0.5;
    let (status, created) = admin(
        &a,
        "POST",
        "/api/keys",
        Some(json!({"name": "spender", "team": "ml", "budget": {"usd": budget, "period": "day"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let bases = format!("{},{}", base(&a), base(&b));
    let r = py(&["burst", &bases, &secret, "fast", "40", "8"]).await;
    let ok = r["ok"].as_u64().unwrap();
    assert!(r["refused"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["statuses"], json!([200, 429]), "{r}");
    // The refusal is OpenAI-shaped, says why, and says what is left.
    let refusal = &r["refusal"];
    assert_eq!(refusal["body"]["type"], "rate_limit_error", "{refusal}");
    assert_eq!(refusal["body"]["code"], "rate_limit_exceeded", "{refusal}");
    let msg = refusal["body"]["message"].as_str().unwrap();
    assert!(
        msg.contains("budget exceeded") && msg.contains("spender"),
        "{msg}"
    );
    assert!(refusal["remaining"].as_str().is_some(), "{refusal}");
    // A daily budget says when it resets: by the next UTC midnight.
    let wait: u64 = refusal["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{refusal}");
    // The usage every answer reported.
    let u = &r["usage"];
    let mut usage = [
        u["input"].as_f64().unwrap(),
        u["cached"].as_f64().unwrap(),
        u["output"].as_f64().unwrap(),
    ];
    let mut ok = ok;
    // Estimates of requests in flight may have refused some that the settled costs would
    // have let through: top up one request at a time, alternating replicas, until refused.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (status, body) = chat(gw, &secret).await;
        if status == 429 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        ok += 1;
        let u = &body["usage"];
        usage[0] += u["prompt_tokens"].as_f64().unwrap();
        usage[1] += u["prompt_tokens_details"]["cached_tokens"]
            .as_f64()
            .unwrap();
        usage[2] += u["completion_tokens"].as_f64().unwrap();
        // Reconciliation runs when the response has been sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let f = |k: &str| match k {
        "input" => usage[0],
        "cached" => usage[1],
        _ => usage[2],
    };
    let reported = cost(f("input"), f("cached"), f("output"));
    // One request's estimate: under 200 prompt bytes (0.05) plus 50 output tokens (0.1).
    let one_estimate = 0.15;
    assert!(
        reported <= budget + one_estimate,
        "{ok} answered for {reported} USD against a {budget} budget"
    );
    // Refused only once the one shared budget was spent (two budgets would admit twice).
    assert!(reported >= budget, "{ok} answered for {reported} USD");

    // Reconciliation is asynchronous: give the last settles a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Spend per key on either replica: the usage the responses reported, exactly.
    let (status, spend) = admin(&b, "GET", "/api/spend?key=spender", None).await;
    assert_eq!(status, 200, "{spend}");
    let t = &spend["total"];
    assert_eq!(t["requests"].as_u64().unwrap(), ok, "{spend}");
    assert_eq!(t["input_tokens"].as_f64().unwrap(), f("input"), "{spend}");
    assert_eq!(
        t["cache_read_tokens"].as_f64().unwrap(),
        f("cached"),
        "{spend}"
    );
    assert_eq!(t["output_tokens"].as_f64().unwrap(), f("output"), "{spend}");
    let charged = t["cost_usd"].as_f64().unwrap();
    assert!((charged - reported).abs() < 1e-6, "{charged} vs {reported}");
    assert_eq!(
        spend["by_model"]["mock-gpt"]["requests"].as_u64().unwrap(),
        ok,
        "{spend}"
    );
    assert_eq!(
        spend["by_provider"]["openai"]["requests"].as_u64().unwrap(),
        ok,
        "{spend}"
    );
    assert!(spend["by_team"]["ml"].is_object(), "{spend}");
    // The key's budget counter agrees.
    let (_, key) = admin(
        &a,
        "GET",
        &format!("/api/keys/{}", created["id"].as_str().unwrap()),
        None,
    )
    .await;
    let used = key["budget_used_usd"].as_f64().unwrap();
    assert!((used - reported).abs() < 1e-6, "{used} vs {reported}");
    // Anthropic callers get the refusal in their format too.
    let r = py(&["chat", "anthropic", &base(&b), &secret, "smart"]).await;
    assert_eq!(r["status"], 429, "{r}");
    assert_eq!(r["body"]["type"], "error", "{r}");
    assert_eq!(r["body"]["error"]["type"], "rate_limit_error", "{r}");
    assert!(
        r["body"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget exceeded"),
        "{r}"
    );
    assert_eq!(r["remaining"], "0.000000", "{r}");
    // A team budget set on A holds for a key of the team created on B, on both replicas; a
    // `total` budget never resets, so its refusal carries no retry-after.
    let (status, _) = admin(
        &a,
        "PUT",
        "/api/teams/qa/budget",
        Some(json!({"usd": 0.1, "period": "total"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, qa) = admin(
        &b,
        "POST",
        "/api/keys",
        Some(json!({"name": "qa-1", "team": "qa"})),
    )
    .await;
    let qa = qa["key"].as_str().unwrap();
    assert_eq!(chat(&a, qa).await.0, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        chat(&b, qa).await.0,
        200,
        "0.071 of 0.1 spent: not yet refused"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = py(&["chat", "openai", &base(&a), qa, "fast"]).await;
    assert_eq!(r["status"], 429, "{r}");
    let msg = r["body"]["message"].as_str().unwrap();
    assert!(
        msg.contains("team `qa`") && msg.contains("does not reset"),
        "{msg}"
    );
    assert!(r["retry_after"].is_null(), "{r}");
    let (_, teams) = admin(&b, "GET", "/api/teams", None).await;
    let used = teams["teams"]["qa"]["budget_used_usd"].as_f64().unwrap();
    assert!(
        (used - 2.0 * cost(42.0, 10.0, 17.0)).abs() < 1e-6,
        "{teams}"
    );

    // A filter that matches nothing is empty; a bad date is refused.
    let (_, none) = admin(&a, "GET", "/api/spend?key=nobody", None).await;
    assert_eq!(none["total"]["requests"], 0);
    let (status, _) = admin(&a, "GET", "/api/spend?from=yesterday", None).await;
    assert_eq!(status, 400);

    // Redis goes away: budgets fail open (the config key's 0.1 budget would refuse the
    // third request), and virtual keys no replica has cached are refused.
    let (_, late) = admin(&a, "POST", "/api/keys", Some(json!({"name": "late"}))).await;
    let late = late["key"].as_str().unwrap().to_string();
    redis.stop();
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..3 {
        assert_eq!(raw_chat(&a, "capped-secret").await, 200);
    }
    assert_eq!(raw_chat(&b, &late).await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_with_the_memory_store_keeps_keys_spend_and_a_team_budget() {
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let a = spawn(dir.path(), "a.yaml", &config("store: memory", mock)).await;
    // A team budget shared by two keys of the team (and the config key of another team).
    let (status, _) = admin(
        &a,
        "PUT",
        "/api/teams/ml/budget",
        Some(json!({"usd": 0.3, "period": "month", "soft_limit": 0.5})),
    )
    .await;
    assert_eq!(status, 200);
    let mut secrets = Vec::new();
    for name in ["ml-1", "ml-2"] {
        let (status, k) = admin(
            &a,
            "POST",
            "/api/keys",
            Some(json!({"name": name, "team": "ml"})),
        )
        .await;
        assert_eq!(status, 201, "{k}");
        secrets.push(k["key"].as_str().unwrap().to_string());
    }
    let (status, dup) = admin(&a, "POST", "/api/keys", Some(json!({"name": "ml-1"}))).await;
    assert_eq!(status, 409, "{dup}");
    let mut answered = 0;
    let mut refusal = None;
    for i in 0..20 {
        let r = py(&["chat", "openai", &base(&a), &secrets[i % 2], "fast"]).await;
        match r["status"].as_u64() {
            Some(200) => answered += 1,
            Some(429) => {
                refusal = Some(r);
                break;
            }
            _ => panic!("{r}"),
        }
    }
    // 0.071 a request: the fifth starts at 0.284 < 0.3, the sixth finds it spent.
    assert_eq!(answered, 5);
    let refusal = refusal.expect("the team budget runs out");
    let msg = refusal["body"]["message"].as_str().unwrap();
    assert!(msg.contains("team `ml`") && msg.contains("month"), "{msg}");
    // The other team's config key is not held back by it.
    assert_eq!(raw_chat(&a, "config-secret").await, 200);
    // A config key's own budget: 0.071 of 0.1 spent admits one more, then it is spent.
    assert_eq!(raw_chat(&a, "capped-secret").await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(raw_chat(&a, "capped-secret").await, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = chat(&a, "capped-secret").await;
    assert_eq!(status, 429);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("key `capped`"),
        "{body}"
    );

    let (_, teams) = admin(&a, "GET", "/api/teams", None).await;
    let used = teams["teams"]["ml"]["budget_used_usd"].as_f64().unwrap();
    assert!(
        (used - 5.0 * cost(42.0, 10.0, 17.0)).abs() < 1e-6,
        "{teams}"
    );
    let (_, spend) = admin(&a, "GET", "/api/spend?team=ml", None).await;
    assert_eq!(spend["total"]["requests"], 5, "{spend}");
    assert_eq!(spend["by_key"]["ml-1"]["requests"], 3, "{spend}");
    assert_eq!(spend["by_key"]["ml-2"]["requests"], 2, "{spend}");
    let (_, ops) = admin(&a, "GET", "/api/spend?key=from-config", None).await;
    assert_eq!(ops["by_team"]["ops"]["requests"], 1, "{ops}");

    // Metrics by key and team, and the soft-limit alert.
    let text = client()
        .get(format!("http://{}/metrics", a.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // Whole names: a line starts with the metric's name.
    let has = |line: &str| text.lines().any(|l| l.starts_with(line));
    assert!(
        has(r#"switchboard_spend_requests_total{key="ml-1",team="ml",model="mock-gpt"} 3"#),
        "{text}"
    );
    assert!(
        has(r#"switchboard_budget_soft_limit_reached{scope="team",name="ml"} 1"#),
        "{text}"
    );
    assert!(
        has(r#"switchboard_spend_usd_total{key="ml-2",team="ml",model="mock-gpt"} 0.142"#),
        "{text}"
    );
    assert!(
        has(r#"switchboard_budget_used_ratio{scope="team",name="ml"}"#),
        "{text}"
    );
    // Removing the team budget lets the team through again.
    let (status, _) = admin(&a, "DELETE", "/api/teams/ml/budget", None).await;
    assert_eq!(status, 200);
    // A streamed answer is charged what its final usage chunk reported.
    let (_, before) = admin(&a, "GET", "/api/spend?key=ml-1", None).await;
    let r = py(&["chat", "openai-stream", &base(&a), &secrets[0], "fast"]).await;
    assert_eq!(r["status"], 200, "{r}");
    assert!(r["text"].as_str().unwrap().contains("hi"), "{r}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, after) = admin(&a, "GET", "/api/spend?key=ml-1", None).await;
    let d = |k: &str| after["total"][k].as_f64().unwrap() - before["total"][k].as_f64().unwrap();
    assert_eq!(d("requests"), 1.0, "{after}");
    assert_eq!(
        d("input_tokens"),
        r["usage"]["input"].as_f64().unwrap(),
        "{after}"
    );
    assert_eq!(
        d("output_tokens"),
        r["usage"]["output"].as_f64().unwrap(),
        "{after}"
    );
    let u = &r["usage"];
    let expected = cost(
        u["input"].as_f64().unwrap(),
        u["cached"].as_f64().unwrap(),
        u["output"].as_f64().unwrap(),
    );
    assert!((d("cost_usd") - expected).abs() < 1e-9, "{after}");
    // A model without a price costs nothing; its tokens are still counted.
    let r = py(&["chat", "openai", &base(&a), &secrets[1], "free"]).await;
    assert_eq!(r["status"], 200, "{r}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (_, free) = admin(&a, "GET", "/api/spend?model=mock-unpriced", None).await;
    assert_eq!(free["total"]["cost_usd"], 0.0, "{free}");
    assert_eq!(free["total"]["requests"], 1, "{free}");
    assert_eq!(free["total"]["input_tokens"], 42, "{free}");
    assert_eq!(free["by_key"]["ml-2"]["output_tokens"], 17, "{free}");
}

#[test]
fn validate_warns_about_virtual_keys_that_can_have_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vk.yaml");
    std::fs::write(
        &path,
        r#"admin: {bind: "0.0.0.0:15000"}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {path_prefix: /v1}
        policies:
          authn: {virtual_keys: true}
        llm:
          models:
            - name: fast
              providers: [{provider: openai, model: m, api_key: k, base_url: "http://127.0.0.1:9/v1"}]
"#,
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `virtual_keys: true` alone is a valid authn; what it cannot do is a warning.
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("listeners[0].routes[0].policies.authn.virtual_keys: warning: no virtual key can be created"),
        "{stderr}"
    );
    assert!(
        stderr.contains("listeners[0].routes[0].policies.authn.virtual_keys: warning: has no effect: keys are accepted, but this llm route has no `llm.prices`"),
        "{stderr}"
    );
    assert!(!stderr.contains("nothing could authenticate"), "{stderr}");
}

#[test]
fn validate_refuses_a_config_key_budget_that_is_not_positive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budget.yaml");
    std::fs::write(
        &path,
        format!(
            r#"listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          authn:
            api_keys: [{{name: k, sha256: "{}", budget: {{usd: 0, period: month}}}}]
        llm:
          models:
            - name: fast
              providers: [{{provider: openai, model: m, api_key: k, base_url: "http://127.0.0.1:9/v1"}}]
"#,
            switchboard_gateway::auth::api_key::hash_key(b"k")
        ),
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("listeners[0].routes[0].policies.authn.api_keys[0].budget: `budget.usd` must be a positive number"),
        "{stderr}"
    );
}

/// The key's budget counter as either replica reports it (slices held count as used).
async fn budget_used(gw: &Proc, id: &str) -> f64 {
    let (status, key) = admin(gw, "GET", &format!("/api/keys/{id}"), None).await;
    assert_eq!(status, 200, "{key}");
    key["budget_used_usd"].as_f64().unwrap()
}

/// The key's spend total: (requests, cost).
async fn spent(gw: &Proc, name: &str) -> (u64, f64) {
    let (status, spend) = admin(gw, "GET", &format!("/api/spend?key={name}"), None).await;
    assert_eq!(status, 200, "{spend}");
    let t = &spend["total"];
    (
        t["requests"].as_u64().unwrap(),
        t["cost_usd"].as_f64().unwrap(),
    )
}

/// Polls `f` until it is true, for up to 20 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match f().await {
            None => return,
            Some(state) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: not within 20 s ({state})"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_big_enough_for_slices_spent_through_two_replicas_stops_within_its_bounds() {
    let Some(_redis) = RedisServer::start_or_skip("virtual_key_budget_slices") else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &format!("store: redis\n  redis: {{url: \"{}\"}}", _redis.url()),
        mock,
    );
    let a = spawn(dir.path(), "a.yaml", &yaml).await;
    let b = spawn(dir.path(), "b.yaml", &yaml).await;
    // 10 USD is about 70 estimates (0.13-0.15 each): the replicas take slices (a sixteenth
    // of what is left) until fewer than 32 estimates are left, then charge each request in
    // Redis. A request really costs 0.071, so the budget pays for about 140.
    let budget = 10.0;
    let one_estimate = 0.15;
    let (status, created) = admin(
        &a,
        "POST",
        "/api/keys",
        Some(json!({"name": "sliced", "budget": {"usd": budget, "period": "day"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    let bases = format!("{},{}", base(&a), base(&b));
    let r = py(&["burst", &bases, &secret, "fast", "200", "8"]).await;
    assert!(r["refused"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["statuses"], json!([200, 429]), "{r}");
    let u = &r["usage"];
    let mut ok = r["ok"].as_u64().unwrap();
    let mut usage = [
        u["input"].as_f64().unwrap(),
        u["cached"].as_f64().unwrap(),
        u["output"].as_f64().unwrap(),
    ];
    // Then one request at a time, alternating replicas, until both refuse in a row.
    let mut refused_in_a_row = 0;
    for i in 0..200 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let (status, body) = chat(gw, &secret).await;
        if status == 429 {
            refused_in_a_row += 1;
            if refused_in_a_row == 2 {
                break;
            }
            continue;
        }
        assert_eq!(status, 200, "{body}");
        refused_in_a_row = 0;
        ok += 1;
        let u = &body["usage"];
        usage[0] += u["prompt_tokens"].as_f64().unwrap();
        usage[1] += u["prompt_tokens_details"]["cached_tokens"]
            .as_f64()
            .unwrap();
        usage[2] += u["completion_tokens"].as_f64().unwrap();
        // Reconciliation runs when the response has been sent.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused_in_a_row, 2, "both replicas never refused");
    let reported = cost(usage[0], usage[1], usage[2]);
    assert!(
        reported <= budget + one_estimate,
        "{ok} answered for {reported} USD against a {budget} budget"
    );
    // The documented bound: once every replica refuses, at most one estimate per replica
    // (requests whose settle had not landed) is left unspent.
    assert!(
        reported >= budget - 2.0 * one_estimate,
        "{ok} answered for only {reported} USD of a {budget} budget"
    );
    // Spend per key: the usage the responses reported, exactly, once settled.
    eventually("the spend recorded", || {
        let b = &b;
        async move {
            let (requests, cost) = spent(b, "sliced").await;
            (requests != ok || (cost - reported).abs() > 1e-6)
                .then(|| format!("{requests} requests, {cost} USD; answered {ok} for {reported}"))
        }
    })
    .await;
    // Idle slices go back: the counter comes down to what was spent.
    eventually("the counter back at the spend", || {
        let (a, id) = (&a, &id);
        async move {
            let used = budget_used(a, id).await;
            ((used - reported).abs() > 1e-6).then(|| format!("{used} vs {reported}"))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_stopped_gracefully_gives_its_budget_slice_back() {
    let Some(_redis) = RedisServer::start_or_skip("virtual_key_slice_shutdown") else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config(
        &format!("store: redis\n  redis: {{url: \"{}\"}}", _redis.url()),
        mock,
    );
    let mut a = spawn(dir.path(), "a.yaml", &yaml).await;
    let b = spawn(dir.path(), "b.yaml", &yaml).await;
    let (status, created) = admin(
        &b,
        "POST",
        "/api/keys",
        Some(json!({"name": "leaver", "budget": {"usd": 100, "period": "month"}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let secret = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    // Requests through A only, until A has stopped.
    let stop = tokio_util::sync::CancellationToken::new();
    let url = format!("{}/v1/chat/completions", base(&a));
    let traffic = tokio::spawn({
        let (stop, secret) = (stop.clone(), secret.clone());
        async move {
            let c = client();
            let mut answered = 0u64;
            while !stop.is_cancelled() {
                let r = c
                    .post(&url)
                    .bearer_auth(&secret)
                    .json(&json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => {
                        if r.json::<Value>().await.is_ok() {
                            answered += 1;
                        }
                    }
                    Ok(r) => panic!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                    // A has stopped.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            answered
        }
    });
    // A holds a slice: the counter (as B reads it) is well above what was spent.
    eventually("a slice held by A", || {
        let (b, id) = (&b, &id);
        async move {
            let used = budget_used(b, id).await;
            let (_, cost) = spent(b, "leaver").await;
            (used - cost < 1.0).then(|| format!("counter {used}, spent {cost}"))
        }
    })
    .await;
    a.signal("TERM");
    let exit = tokio::time::timeout(Duration::from_secs(30), a.child.wait())
        .await
        .expect("A stops")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    stop.cancel();
    let answered = traffic.await.unwrap();
    assert!(answered > 0);
    // What A held went back on the way out: the counter is what the answers cost.
    let (requests, cost) = spent(&b, "leaver").await;
    assert_eq!(requests, answered);
    let used = budget_used(&b, &id).await;
    assert!((used - cost).abs() < 1e-6, "counter {used} vs spent {cost}");
}

/// `/api/spend` for `query` once it has counted `requests` requests (spend is recorded when a
/// request ends, after its answer went out).
async fn spend_once(gw: &Proc, query: &str, requests: u64) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, s) = admin(gw, "GET", &format!("/api/spend?{query}"), None).await;
        if s["total"]["requests"].as_u64() == Some(requests) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "spend never reached {requests} requests: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_and_responses_are_charged_and_refused_like_chat_and_a_cache_hit_is_a_free_request()
 {
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = config("store: memory", mock).replace(
        "        llm:\n",
        "        llm:\n          cache: {ttl: 60s}\n",
    );
    let a = spawn(dir.path(), "a.yaml", &yaml).await;
    let (status, k) = admin(
        &a,
        "POST",
        "/api/keys",
        Some(json!({"name": "passer", "budget": {"usd": 0.25, "period": "day"}})),
    )
    .await;
    assert_eq!(status, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    // Each kind through the OpenAI SDK, charged what its answer reported.
    let mut reported = Vec::new();
    for kind in ["responses", "responses-stream", "embeddings"] {
        let r = py(&[kind, &base(&a), &key, "fast"]).await;
        assert_eq!(r["status"], 200, "{kind}: {r}");
        reported.push(r["usage"].clone());
    }
    let s = spend_once(&a, "key=passer", 3).await;
    let sum = |f: &str| reported.iter().map(|u| u[f].as_f64().unwrap()).sum::<f64>();
    assert!(sum("input") > 0.0 && sum("output") > 0.0, "{reported:?}");
    assert_eq!(
        s["total"]["input_tokens"].as_f64(),
        Some(sum("input")),
        "{s}"
    );
    assert_eq!(
        s["total"]["output_tokens"].as_f64(),
        Some(sum("output")),
        "{s}"
    );
    let expected = cost(sum("input"), sum("cached"), sum("output"));
    let charged = s["total"]["cost_usd"].as_f64().unwrap();
    assert!((charged - expected).abs() < 1e-9, "{s} vs {expected}");
    // The key's budget holds for them as for chat: spent, the next one is refused.
    let mut refusal = None;
    for _ in 0..10 {
        let r = py(&["responses", &base(&a), &key, "fast"]).await;
        if r["status"] == 429 {
            refusal = Some(r);
            break;
        }
        assert_eq!(r["status"], 200, "{r}");
    }
    let refusal = refusal.expect("the key's budget runs out on /v1/responses");
    assert!(
        refusal["body"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("key `passer`")),
        "{refusal}"
    );
    assert!(refusal["remaining"].is_string(), "{refusal}");
    let r = py(&["embeddings", &base(&a), &key, "fast"]).await;
    assert_eq!(r["status"], 429, "{r}");

    // A response-cache hit: a request at no cost, counted as cached.
    let (status, k) = admin(&a, "POST", "/api/keys", Some(json!({"name": "cached"}))).await;
    assert_eq!(status, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let r = py(&["chat", "openai", &base(&a), &key, "fast"]).await;
        assert_eq!(r["status"], 200, "{r}");
    }
    let s = spend_once(&a, "key=cached", 2).await;
    assert_eq!(s["total"]["cached_requests"], 1, "{s}");
    let one = cost(42.0, 10.0, 17.0);
    assert!(
        (s["total"]["cost_usd"].as_f64().unwrap() - one).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(s["total"]["input_tokens"], 42, "{s}");
}
