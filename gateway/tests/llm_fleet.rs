//! Two `switchboard run` processes sharing one Redis enforce one token budget: a burst spread
//! over both is cut off at the budget (within one request's worth), not at twice the budget.

mod common;

use common::*;
use serde_json::json;
use switchboard_testing::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_one_token_budget_through_redis() {
    let Some(redis) = RedisServer::start_or_skip("two_gateway_processes_share_one_token_budget")
    else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"
admin: {{bind: "127.0.0.1:0"}}
sessions:
  store: redis
  redis: {{url: "{redis}"}}
  keys: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          rate_limit: {{tokens: 300, per: 1m}}
        llm:
          models:
            - name: fast
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
"#,
        redis = redis.url()
    );
    let path = dir.path().join("sb.yaml");
    std::fs::write(&path, yaml).unwrap();
    let a = spawn_switchboard(&path).await;
    let b = spawn_switchboard(&path).await;
    let c = client();
    let mut ok = 0;
    let mut refused_by = None;
    for i in 0..40 {
        let gw = if i % 2 == 0 { &a } else { &b };
        let resp = c
            .post(format!("http://{}/v1/chat/completions", gw.listeners["main"]))
            .json(&json!({"model": "fast", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                refused_by = Some(i % 2);
                break;
            }
            s => panic!("unexpected status {s}: {}", resp.text().await.unwrap()),
        }
    }
    assert!(refused_by.is_some(), "the shared budget ran out");
    // Each request really uses 59 tokens (42 in, 17 out): a 300-token budget admits 5, or 6
    // when the last one overshoots by its own estimate. Two separate budgets would admit ~10.
    assert!(
        (5..=6).contains(&ok),
        "{ok} requests admitted across both gateways"
    );
}

/// Moved from the LLM crate's tests with the limiter: two gateways in one process, each with
/// its own limiter on one Redis, enforce one token budget; both refuse once it is spent, and
/// the 429 names the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_token_budget_is_shared_by_two_gateways() {
    let Some(redis) = RedisServer::start_or_skip("redis_token_budget_is_shared_by_two_gateways")
    else {
        return;
    };
    let (mock, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let yaml = format!(
        r#"
sessions:
  store: redis
  redis: {{url: "{redis}"}}
  keys: ["AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: models
        match: {{path_prefix: /v1}}
        policies:
          rate_limit: {{tokens: 600, per: 1m}}
        llm:
          models:
            - name: smart
              providers: [{{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{mock}/v1"}}]
"#,
        redis = redis.url()
    );
    let a = gateway(&yaml, mock).await;
    let b = gateway(&yaml, mock).await;
    let bases = [base(&a, "main").await, base(&b, "main").await];
    let c = client();
    let mut ok = 0;
    let mut denied = [false, false];
    for i in 0..40 {
        let resp = c
            .post(format!("{}/v1/chat/completions", bases[i % 2]))
            .json(&json!({"model": "smart", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap();
        match resp.status().as_u16() {
            200 => ok += 1,
            429 => {
                assert!(resp.headers().contains_key("retry-after"));
                assert_eq!(resp.headers()["x-ratelimit-limit-tokens"], "600");
                denied[i % 2] = true;
                if denied == [true, true] {
                    break;
                }
            }
            s => panic!("unexpected status {s}"),
        }
        // Let the reconcile of the finished request land before the next estimate.
        tokio::task::yield_now().await;
    }
    // 59 real tokens per request: one shared 600-token budget admits ~10-11; two separate
    // budgets would have admitted twice that.
    assert!((6..=12).contains(&ok), "admitted {ok}");
    assert_eq!(
        denied,
        [true, true],
        "both gateways enforce the shared budget"
    );
}
