//! Two `switchboard run` processes sharing one Redis enforce one token budget: a burst spread
//! over both is cut off at the budget (within one request's worth), not at twice the budget,
//! and once it is spent both refuse, with a 429 that names the token limit.

use crate::common;

use common::*;
use serde_json::json;
use switchboard_testing::redis::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_share_one_token_budget_through_redis() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
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
    let mut admitted_before_refusal = None;
    let mut denied = [false, false];
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
                // The 429 names the limit that was hit.
                assert_eq!(resp.headers()["x-ratelimit-limit-tokens"], "300");
                admitted_before_refusal.get_or_insert(ok);
                denied[i % 2] = true;
                if denied == [true, true] {
                    break;
                }
            }
            s => panic!("unexpected status {s}: {}", resp.text().await.unwrap()),
        }
    }
    assert_eq!(
        denied,
        [true, true],
        "both gateways enforce the shared budget"
    );
    let ok = admitted_before_refusal.unwrap_or(ok);
    // Each request really uses 59 tokens (42 in, 17 out): a 300-token budget admits 5, or 6
    // when the last one overshoots by its own estimate. Two separate budgets would admit ~10.
    assert!(
        (5..=6).contains(&ok),
        "{ok} requests admitted across both gateways"
    );
}
