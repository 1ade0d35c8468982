//! Response caching (`llm.cache`) through the gateway with the real OpenAI and Anthropic Python
//! SDKs and the mock provider, whose request counter tells a cached answer from a fresh one:
//! hit, miss, a changed parameter, isolation between API keys, streamed replay in the caller's
//! format, expiry, zero cost for hits, and one cache shared by replicas through a real
//! `redis-server` (in-process gateways, and `switchboard run` processes: an index seeded from
//! Redis, entries published by another replica, a miss that asks Redis nothing, a Redis
//! restart).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use switchboard_examples::mock_llm;
use switchboard_gateway::auth::api_key::hash_key;
use switchboard_testing::redis::RedisServer;

fn sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llm_sdk.py")
}

fn config(mock: std::net::SocketAddr, cache: &str, sessions: &str) -> String {
    format!(
        r#"
{sessions}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          authn:
            mode: optional
            api_keys:
              - {{name: alice, sha256: "{alice}"}}
              - {{name: bob, sha256: "{bob}"}}
        llm:
          cache: {cache}
          prices: {{mock-gpt: {{input: 1, output: 2}}}}
          models:
            - name: fast
              providers:
                - {{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}
            - name: claude
              providers:
                - {{provider: anthropic, model: mock-claude, api_key: k, base_url: "http://{mock}"}}
"#,
        alice = hash_key(b"alice-secret"),
        bob = hash_key(b"bob-secret"),
    )
}

async fn cached_gateway(mock: std::net::SocketAddr, cache: &str) -> switchboard_gateway::Gateway {
    gateway(&config(mock, cache, ""), mock).await
}

/// The sum of the samples whose line starts with `needle`, the metric's name as exposed (`None`: no
/// such sample).
async fn sample(gw: &switchboard_gateway::Gateway, needle: &str) -> Option<f64> {
    metric_sum(gw.admin_addr().await.unwrap(), needle).await
}

fn ask(model: &str, text: &str) -> Value {
    json!({"_api_key": "alice-secret", "model": model, "max_tokens": 100,
           "messages": [{"role": "user", "content": text}]})
}

async fn openai(py: &Path, base: &str, req: &Value) -> Value {
    run_py(py, &sdk(), &["openai_create", base, &req.to_string()]).await
}

async fn anthropic(py: &Path, base: &str, req: &Value) -> Value {
    run_py(py, &sdk(), &["anthropic_create", base, &req.to_string()]).await
}

#[tokio::test]
async fn an_identical_request_is_a_hit_at_zero_cost_and_a_changed_parameter_a_miss() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = cached_gateway(mock, "{ttl: 1m}").await;
    let base = base(&gw, "main").await;
    let req = ask("fast", "What is the capital of France?");
    let first = openai(&py, &base, &req).await;
    assert_eq!(first["headers"]["x-switchboard-cache"], "miss");
    assert_eq!(state.requests(), 1);
    let usage_count = sample(&gw, "gen_ai_client_token_usage_count{").await;
    let cost = sample(&gw, "switchboard_llm_cost_usd_total{").await;
    assert!(cost.unwrap() > 0.0);

    let second = openai(&py, &base, &req).await;
    assert_eq!(second["headers"]["x-switchboard-cache"], "hit");
    assert_eq!(state.requests(), 1, "a hit does not call the provider");
    assert_eq!(second["text"], first["text"]);
    assert_eq!(second["usage"], first["usage"]);
    assert_eq!(second["headers"]["x-switchboard-model"], "mock-gpt");
    // Zero cost: no usage and no cost recorded for the hit.
    assert_eq!(
        sample(&gw, "gen_ai_client_token_usage_count{").await,
        usage_count
    );
    assert_eq!(sample(&gw, "switchboard_llm_cost_usd_total{").await, cost);

    // Every parameter that changes the output is in the key.
    for (k, v) in [
        ("temperature", json!(0.5)),
        ("max_tokens", json!(101)),
        ("top_p", json!(0.9)),
        ("stop", json!(["END"])),
        ("seed", json!(7)),
    ] {
        let mut changed = req.clone();
        changed[k] = v;
        let before = state.requests();
        let r = openai(&py, &base, &changed).await;
        assert_eq!(r["headers"]["x-switchboard-cache"], "miss", "{k}");
        assert_eq!(state.requests(), before + 1, "{k}");
    }
    let mut other_text = req.clone();
    other_text["messages"][0]["content"] = json!("What is the capital of Spain?");
    assert_eq!(
        openai(&py, &base, &other_text).await["headers"]["x-switchboard-cache"],
        "miss"
    );
    // Fields that do not change the answer are not: `user` and the order of keys.
    let mut same = req.clone();
    same["user"] = json!("someone");
    assert_eq!(
        openai(&py, &base, &same).await["headers"]["x-switchboard-cache"],
        "hit"
    );
    let before = state.requests();
    let reordered = r#"{"messages": [{"content": "What is the capital of France?", "role": "user"}], "max_tokens": 100, "model": "fast"}"#;
    let resp = client()
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("alice-secret")
        .header("content-type", "application/json")
        .body(reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-switchboard-cache"], "hit");
    assert_eq!(state.requests(), before);
}

#[tokio::test]
async fn answers_are_not_shared_across_api_keys_unless_configured() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = cached_gateway(mock, "{ttl: 1m}").await;
    let base = common::base(&gw, "main").await;
    let alice = ask("fast", "hello");
    let mut bob = alice.clone();
    bob["_api_key"] = json!("bob-secret");
    assert_eq!(
        openai(&py, &base, &alice).await["headers"]["x-switchboard-cache"],
        "miss"
    );
    assert_eq!(
        openai(&py, &base, &bob).await["headers"]["x-switchboard-cache"],
        "miss"
    );
    assert_eq!(
        openai(&py, &base, &bob).await["headers"]["x-switchboard-cache"],
        "hit"
    );
    assert_eq!(state.requests(), 2);
    drop(gw);

    let gw = cached_gateway(mock, "{ttl: 1m, share_across_keys: true}").await;
    let base = common::base(&gw, "main").await;
    assert_eq!(
        openai(&py, &base, &alice).await["headers"]["x-switchboard-cache"],
        "miss"
    );
    assert_eq!(
        openai(&py, &base, &bob).await["headers"]["x-switchboard-cache"],
        "hit"
    );
    assert_eq!(state.requests(), 3);
}

#[tokio::test]
async fn a_cached_answer_replays_as_a_stream_in_the_callers_format() {
    let Some(py) = python() else { return };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = cached_gateway(mock, "{ttl: 1m}").await;
    let base = base(&gw, "main").await;

    // OpenAI: a non-streamed answer, then the same request streamed.
    let req = ask("fast", "Tell me about Paris.");
    let plain = openai(&py, &base, &req).await;
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let replay = openai(&py, &base, &streamed).await;
    assert_eq!(replay["headers"]["x-switchboard-cache"], "hit");
    assert_eq!(replay["text"], plain["text"]);
    assert_eq!(replay["finish_reason"], plain["finish_reason"]);
    assert_eq!(replay["usage"], plain["usage"]);
    assert_eq!(state.requests(), 1);

    // Anthropic: a streamed answer is kept as it passes, then answers both ways.
    let mut req = ask("claude", "Tell me about Lyon.");
    req["stream"] = json!(true);
    let first = anthropic(&py, &base, &req).await;
    assert_eq!(first["headers"]["x-switchboard-cache"], "miss");
    assert_eq!(state.requests(), 2);
    let again = anthropic(&py, &base, &req).await;
    assert_eq!(again["headers"]["x-switchboard-cache"], "hit");
    assert_eq!(again["text"], first["text"]);
    assert_eq!(again["stop_reason"], first["stop_reason"]);
    assert_eq!(again["usage"], first["usage"]);
    assert_eq!(
        again["events"],
        json!([
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ])
    );
    req["stream"] = json!(false);
    let plain = anthropic(&py, &base, &req).await;
    assert_eq!(plain["headers"]["x-switchboard-cache"], "hit");
    assert_eq!(plain["text"], first["text"]);
    assert_eq!(state.requests(), 2);

    // The same words in the other API format are another request.
    let r = openai(&py, &base, &ask("claude", "Tell me about Lyon.")).await;
    assert_eq!(r["headers"]["x-switchboard-cache"], "miss");
}

#[tokio::test]
async fn answers_expire_after_the_ttl_and_errors_are_not_kept() {
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let gw = cached_gateway(mock, "{ttl: 1s}").await;
    let base = base(&gw, "main").await;
    let send = |model: &'static str, text: &'static str| {
        let base = base.clone();
        async move {
            let resp = client()
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
                .send()
                .await
                .unwrap();
            (
                resp.status().as_u16(),
                resp.headers()
                    .get("x-switchboard-cache")
                    .map(|v| v.to_str().unwrap().to_string()),
            )
        }
    };
    assert_eq!(send("fast", "hi").await, (200, Some("miss".into())));
    assert_eq!(send("fast", "hi").await, (200, Some("hit".into())));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(send("fast", "hi").await, (200, Some("miss".into())));
    assert_eq!(state.requests(), 2);

    // A provider error is passed on and not kept: the next identical request asks again.
    state.set_mode(mock_llm::Mode::Fail500);
    assert_eq!(send("claude", "error?").await.0, 500);
    state.set_mode(mock_llm::Mode::Ok);
    assert_eq!(send("claude", "error?").await, (200, Some("miss".into())));
    assert_eq!(send("claude", "error?").await, (200, Some("hit".into())));
}

#[tokio::test]
async fn two_replicas_share_one_cache_through_redis() {
    let Some(py) = python() else { return };
    let Some(redis) = RedisServer::start_or_skip("two_replicas_share_one_cache_through_redis")
    else {
        return;
    };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let sessions = format!(
        "sessions:\n  store: redis\n  redis: {{url: \"{}\"}}\n  keys: [\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]",
        redis.url()
    );
    let yaml = config(mock, "{ttl: 1m, store: redis}", &sessions);
    let a = gateway(&yaml, mock).await;
    let b = gateway(&yaml, mock).await;
    let (base_a, base_b) = (base(&a, "main").await, base(&b, "main").await);
    let trusted = "switchboard_llm_cache_index_trusted";
    until(&b, trusted, |v| v == 1.0).await;

    let req = ask("fast", "Shared question");
    assert_eq!(
        openai(&py, &base_a, &req).await["headers"]["x-switchboard-cache"],
        "miss"
    );
    // The put runs in the background: wait until B's index has seen it.
    until(&b, "switchboard_llm_cache_index_entries", |v| v >= 1.0).await;
    let hit = openai(&py, &base_b, &req).await;
    assert_eq!(hit["headers"]["x-switchboard-cache"], "hit", "{hit}");
    assert_eq!(state.requests(), 1);
    // Streamed, on B, answered from the answer A kept; and kept with its TTL in Redis.
    let mut streamed = req.clone();
    streamed["stream"] = json!(true);
    let r = openai(&py, &base_b, &streamed).await;
    assert_eq!(r["headers"]["x-switchboard-cache"], "hit");
    assert_eq!(r["text"], hit["text"]);
    let keys = redis.cli(&["--scan", "--pattern", "*llmcache:*"]);
    let key = keys.lines().next().unwrap_or_default().trim().to_string();
    assert!(!key.is_empty(), "no cache key in Redis");
    let ttl: i64 = redis.cli(&["pttl", &key]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "{ttl}");
    assert_eq!(state.requests(), 1);

    // Redis unreachable: a miss served by the provider, not a failed request.
    redis.pause();
    let down = openai(&py, &base_a, &ask("fast", "While Redis sleeps")).await;
    assert_eq!(down["headers"]["x-switchboard-cache"], "miss");
    assert_eq!(state.requests(), 2);
    redis.resume();
}

/// Polls `gw`'s metric samples named `needle` (summed; 0 when absent) until `ok` holds, for up
/// to 30 s; panics with the last value otherwise.
async fn until(gw: &switchboard_gateway::Gateway, needle: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let admin = gw.admin_addr().await.unwrap();
    until_at(admin, needle, ok).await
}

async fn until_at(admin: std::net::SocketAddr, needle: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let v = scrape(admin, needle).await;
        if ok(v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{needle} still {v} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of the samples of `name` (0 when there is none).
async fn scrape(admin: std::net::SocketAddr, name: &str) -> f64 {
    metric_sum(admin, name).await.unwrap_or(0.0)
}

/// A `switchboard run` replica of `yaml` (admin on port 0), its config written to `dir`.
async fn replica(dir: &Path, name: &str, yaml: &str) -> Proc {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, format!("admin: {{bind: '127.0.0.1:0'}}\n{yaml}")).unwrap();
    spawn_switchboard(&path).await
}

/// Asks `p` a one-line question as alice: the status, `x-switchboard-cache`, the answer.
async fn chat(p: &Proc, text: &str) -> (u16, String, String) {
    let resp = client()
        .post(format!(
            "http://{}/v1/chat/completions",
            p.listeners["main"]
        ))
        .bearer_auth("alice-secret")
        .json(&json!({"model": "fast", "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-switchboard-cache")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let answer = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (status, cache, answer)
}

/// `GET` commands Redis has run (`INFO commandstats`).
fn redis_gets(redis: &RedisServer) -> u64 {
    let info = redis.cli(&["info", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Cache keys in Redis.
fn cache_keys(redis: &RedisServer) -> usize {
    redis
        .cli(&["--scan", "--pattern", "*llmcache:*"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

async fn until_keys(redis: &RedisServer, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while cache_keys(redis) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} cache keys in redis after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fleet_yaml(mock: std::net::SocketAddr, redis: &RedisServer) -> String {
    let sessions = format!(
        "sessions:\n  store: redis\n  redis: {{url: \"{}\"}}\n  keys: [\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]",
        redis.url()
    );
    config(mock, "{ttl: 1m, store: redis}", &sessions)
}

#[tokio::test]
async fn switchboard_replicas_share_the_cache_and_a_miss_asks_redis_nothing() {
    let Some(redis) = RedisServer::start_or_skip(
        "switchboard_replicas_share_the_cache_and_a_miss_asks_redis_nothing",
    ) else {
        return;
    };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let yaml = fleet_yaml(mock, &redis);
    let dir = tempfile::tempdir().unwrap();
    let trusted = "switchboard_llm_cache_index_trusted";
    let entries = "switchboard_llm_cache_index_entries";

    // B answers a question before A exists.
    let b = replica(dir.path(), "b", &yaml).await;
    until_at(b.admin, trusted, |v| v == 1.0).await;
    let (status, cache, stored) = chat(&b, "Asked before A started").await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    assert_eq!(state.requests(), 1);
    until_keys(&redis, 1).await;

    // A starts, seeds its index from Redis, and serves B's answer as a hit.
    let a = replica(dir.path(), "a", &yaml).await;
    until_at(a.admin, trusted, |v| v == 1.0).await;
    assert_eq!(scrape(a.admin, entries).await, 1.0, "seeded from redis");
    let (status, cache, answer) = chat(&a, "Asked before A started").await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    assert_eq!(answer, stored);
    assert_eq!(state.requests(), 1);

    // An answer B stores now is a hit on A once A has seen B's publish.
    let (_, cache, stored) = chat(&b, "Asked while both run").await;
    assert_eq!(cache, "miss");
    until_at(a.admin, entries, |v| v >= 2.0).await;
    let (status, cache, answer) = chat(&a, "Asked while both run").await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    assert_eq!(answer, stored);
    assert_eq!(state.requests(), 2);

    // A miss on a replica whose index is trusted costs no Redis read; its answer is kept.
    let gets = redis_gets(&redis);
    let (status, cache, _) = chat(&a, "Nobody asked this yet").await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    assert_eq!(redis_gets(&redis), gets, "a miss asked redis");
    assert_eq!(state.requests(), 3);
    until_at(b.admin, entries, |v| v >= 3.0).await;
    assert_eq!(chat(&b, "Nobody asked this yet").await.1, "hit");

    // Each lookup counted: A had two hits and one miss.
    let hits = r#"switchboard_llm_cache_requests_total{result="hit"}"#;
    let misses = r#"switchboard_llm_cache_requests_total{result="miss"}"#;
    assert_eq!(scrape(a.admin, hits).await, 2.0);
    assert_eq!(scrape(a.admin, misses).await, 1.0);
    assert_eq!(scrape(b.admin, hits).await, 1.0);
    assert_eq!(scrape(b.admin, misses).await, 2.0);
}

#[tokio::test]
async fn after_a_redis_restart_answers_stay_right_and_the_index_is_rebuilt() {
    let Some(mut redis) = RedisServer::start_or_skip(
        "after_a_redis_restart_answers_stay_right_and_the_index_is_rebuilt",
    ) else {
        return;
    };
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let yaml = fleet_yaml(mock, &redis);
    let dir = tempfile::tempdir().unwrap();
    let trusted = "switchboard_llm_cache_index_trusted";
    let entries = "switchboard_llm_cache_index_entries";
    let seeds = "switchboard_llm_cache_index_seeds_total";
    let a = replica(dir.path(), "a", &yaml).await;
    let b = replica(dir.path(), "b", &yaml).await;
    until_at(a.admin, trusted, |v| v == 1.0).await;
    until_at(b.admin, trusted, |v| v == 1.0).await;
    let (_, cache, before) = chat(&b, "Asked before the restart").await;
    assert_eq!(cache, "miss");
    until_at(a.admin, entries, |v| v >= 1.0).await;
    assert_eq!(chat(&a, "Asked before the restart").await.1, "hit");
    let (seeds_a, seeds_b) = (scrape(a.admin, seeds).await, scrape(b.admin, seeds).await);

    // Redis comes back empty: the subscription dropped. The answer A's index still lists is
    // gone; asking again is a miss answered by the provider, not a failure or a stale answer.
    redis.restart().unwrap();
    let (status, cache, answer) = chat(&a, "Asked before the restart").await;
    assert_eq!((status, cache.as_str()), (200, "miss"));
    assert_eq!(answer, before, "the mock answers alike");
    assert_eq!(state.requests(), 2);

    // Both replicas subscribe again and re-seed.
    until_at(a.admin, seeds, |v| v > seeds_a).await;
    until_at(b.admin, seeds, |v| v > seeds_b).await;
    until_at(a.admin, trusted, |v| v == 1.0).await;
    until_at(b.admin, trusted, |v| v == 1.0).await;

    // An answer B stores after the restart is a hit on A; a new miss asks Redis nothing.
    let held = scrape(a.admin, entries).await;
    let (_, cache, stored) = chat(&b, "Asked after the restart").await;
    assert_eq!(cache, "miss");
    until_at(a.admin, entries, |v| v > held).await;
    let (status, cache, answer) = chat(&a, "Asked after the restart").await;
    assert_eq!((status, cache.as_str()), (200, "hit"));
    assert_eq!(answer, stored);
    let gets = redis_gets(&redis);
    assert_eq!(chat(&a, "Asked after the restart, new").await.1, "miss");
    assert_eq!(redis_gets(&redis), gets, "a miss asked redis");
    assert_eq!(state.requests(), 4);
    drop((a, b));
}

#[tokio::test]
async fn a_hit_takes_no_tokens_but_counts_as_a_request_and_n_over_1_is_not_kept() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let (mock, state) = mock_llm::spawn().await.unwrap();
    let yaml = config(mock, "{ttl: 1m}", "").replace(
        "\n        llm:\n",
        "\n          rate_limit: {requests: 4, tokens: 50, per: 1m}\n        llm:\n",
    );
    let gw = gateway(&yaml, mock).await;
    let base = base(&gw, "main").await;
    let send = |text: &'static str, n: u64| {
        let base = base.clone();
        async move {
            client()
                .post(format!("{base}/v1/chat/completions"))
                .json(&json!({"model": "fast", "n": n, "max_tokens": 100,
                              "messages": [{"role": "user", "content": text}]}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = send("q1", 1).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-switchboard-cache"], "miss");
    // The first answer spent the token budget (59 of 50): another question is refused...
    let r = send("q2", 1).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("x-ratelimit-remaining-tokens"));
    // ...but a cached answer needs no tokens.
    for _ in 0..2 {
        let r = send("q1", 1).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchboard-cache"], "hit");
    }
    // It is still a request: the fifth of four is refused.
    let r = send("q1", 1).await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(state.requests(), 1);

    // Several choices are never kept.
    let gw = cached_gateway(mock, "{ttl: 1m}").await;
    let base = common::base(&gw, "main").await;
    for _ in 0..2 {
        let r = client()
            .post(format!("{base}/v1/chat/completions"))
            .json(
                &json!({"model": "fast", "n": 2, "messages": [{"role": "user", "content": "two"}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-switchboard-cache"], "miss");
    }
    assert_eq!(state.requests(), 3);
}

#[test]
fn validate_refuses_a_redis_cache_without_a_redis_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        config(
            "127.0.0.1:1".parse().unwrap(),
            "{store: redis, max_entries: 0}",
            "",
        ),
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains(
            "listeners[0].routes[0].llm.cache.store: `redis` needs `sessions.store: redis`"
        ),
        "{all}"
    );
    assert!(
        all.contains("listeners[0].routes[0].llm.cache.max_entries: must be at least 1"),
        "{all}"
    );
}
