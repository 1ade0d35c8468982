//! `rate_limit.by: api_key | jwt.sub | team | header:NAME` through real requests on every
//! route kind: an `http` route (the example upstream), an `llm` route (the mock provider), an
//! `mcp` route (the MCP fixture) and an `a2a` route (the A2A echo agent). Each route allows one
//! request per minute per budget, so the second request of a caller sharing a budget is a 429
//! and the first of a caller with a budget of its own passes. Callers lacking what the limit is
//! keyed by share one budget.

use crate::common;
use crate::security_support;

use common::*;
use reqwest::StatusCode;
use security_support::*;
use serde_json::json;
use switchboard_gateway::auth::api_key::hash_key;

/// Who sends a request.
#[derive(Clone, Copy)]
enum Caller<'a> {
    Anonymous,
    /// An API key (its secret).
    Key(&'a str),
    /// A JWT (the token).
    Jwt(&'a str),
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Http,
    Llm,
    Mcp,
    A2a,
}

const KINDS: [Kind; 4] = [Kind::Http, Kind::Llm, Kind::Mcp, Kind::A2a];

struct Fleet {
    _gw: switchboard_gateway::Gateway,
    base: String,
    alice_jwt: String,
    bob_jwt: String,
    _jwks: JwksServer,
}

/// A gateway with the four route kinds, each limited to one request a minute `by`.
async fn fleet(by: &str) -> Fleet {
    let key = SigningKey::es256("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let up = upstream().await;
    let (llm, _) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (mcp, _mcp_task) = switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    std::mem::forget(_mcp_task);
    let (a2a, _a2a_task) = switchboard_examples::a2a_echo::serve(([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    std::mem::forget(_a2a_task);
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    policies:
      authn:
        mode: optional
        jwt: {{issuer: {ISSUER}, audiences: [{AUDIENCE}], jwks: {{url: "{jwks}"}}}}
        api_keys:
          - {{name: red-1, sha256: "{red1}", team: red}}
          - {{name: red-2, sha256: "{red2}", team: red}}
          - {{name: blue-1, sha256: "{blue1}", team: blue}}
      rate_limit: {{requests: 1, per: 1m, by: "{by}"}}
    routes:
      - name: web
        match: {{path_prefix: /echo}}
        http: {{url: "http://${{UPSTREAM}}"}}
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          models:
            - name: fast
              providers:
                - {{provider: openai, model: mock-gpt, api_key: k, base_url: "http://{llm}/v1"}}
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "http://{mcp}/mcp"}}
      - name: agent
        match: {{path_prefix: /agents/echo}}
        a2a: {{url: "http://{a2a}"}}
"#,
        jwks = jwks.url(),
        red1 = hash_key(b"key-red-1"),
        red2 = hash_key(b"key-red-2"),
        blue1 = hash_key(b"key-blue-1"),
    );
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    Fleet {
        _gw: gw,
        base,
        alice_jwt: key.sign(&claims("alice")),
        bob_jwt: key.sign(&claims("bob")),
        _jwks: jwks,
    }
}

/// One real request of `kind` by `who`, with the extra headers; its status.
async fn send(f: &Fleet, kind: Kind, who: Caller<'_>, headers: &[(&str, &str)]) -> StatusCode {
    let c = client();
    let mut rb = match kind {
        Kind::Http => c.get(format!("{}/echo", f.base)),
        Kind::Llm => c
            .post(format!("{}/v1/chat/completions", f.base))
            .json(&json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})),
        Kind::Mcp => c
            .post(format!("{}/mcp", f.base))
            .header("accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "limit-by", "version": "1"}}}),
            ),
        Kind::A2a => c.post(format!("{}/agents/echo", f.base)).json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {
                "message": {"kind": "message", "role": "user", "messageId": "m1",
                            "parts": [{"kind": "text", "text": "hi"}]}}}),
        ),
    };
    rb = match who {
        Caller::Anonymous => rb,
        Caller::Key(k) => rb.header("x-api-key", k),
        Caller::Jwt(t) => rb.bearer_auth(t),
    };
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let resp = rb.send().await.unwrap();
    let status = resp.status();
    if status == StatusCode::TOO_MANY_REQUESTS {
        assert!(
            resp.headers().contains_key("retry-after"),
            "{kind:?}: a 429 says when to retry"
        );
    } else {
        assert!(
            status.is_success(),
            "{kind:?}: {status} {}",
            resp.text().await.unwrap_or_default()
        );
    }
    status
}

const OK: StatusCode = StatusCode::OK;
const LIMITED: StatusCode = StatusCode::TOO_MANY_REQUESTS;

/// One step of a check: who sends, with which extra headers, and the status expected.
type Step<'a> = (Caller<'a>, &'a [(&'a str, &'a str)], StatusCode);

/// Runs `steps` in order on each route kind.
async fn check(f: &Fleet, steps: &[Step<'_>]) {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    for kind in KINDS {
        for (i, (who, headers, want)) in steps.iter().enumerate() {
            let got = send(f, kind, *who, headers).await;
            let got = if got.is_success() { OK } else { got };
            assert_eq!(got, *want, "{kind:?} step {i}");
        }
    }
}

#[tokio::test]
async fn by_api_key_gives_each_key_its_budget_and_keyless_callers_share_one() {
    let f = fleet("api_key").await;
    let carol = f.alice_jwt.clone();
    check(
        &f,
        &[
            (Caller::Key("key-red-1"), &[], OK),
            (Caller::Key("key-red-1"), &[], LIMITED),
            (Caller::Key("key-red-2"), &[], OK),
            (Caller::Anonymous, &[], OK),
            // A JWT caller has no API key: it shares the keyless budget, spent already.
            (Caller::Jwt(&carol), &[], LIMITED),
        ],
    )
    .await;
}

#[tokio::test]
async fn by_jwt_sub_gives_each_subject_its_budget_and_others_share_one() {
    let f = fleet("jwt.sub").await;
    check(
        &f,
        &[
            (Caller::Jwt(&f.alice_jwt), &[], OK),
            (Caller::Jwt(&f.alice_jwt), &[], LIMITED),
            (Caller::Jwt(&f.bob_jwt), &[], OK),
            (Caller::Key("key-red-1"), &[], OK),
            // API keys and anonymous callers carry no JWT: one shared budget.
            (Caller::Key("key-blue-1"), &[], LIMITED),
            (Caller::Anonymous, &[], LIMITED),
        ],
    )
    .await;
}

#[tokio::test]
async fn by_team_gives_a_team_one_budget_across_its_keys() {
    let f = fleet("team").await;
    check(
        &f,
        &[
            (Caller::Key("key-red-1"), &[], OK),
            // Same team, another key: the team's budget is spent.
            (Caller::Key("key-red-2"), &[], LIMITED),
            (Caller::Key("key-blue-1"), &[], OK),
            (Caller::Anonymous, &[], OK),
            // A JWT caller has no team: it shares the teamless budget.
            (Caller::Jwt(&f.alice_jwt), &[], LIMITED),
        ],
    )
    .await;
}

#[tokio::test]
async fn by_header_gives_each_value_its_budget_and_callers_without_it_share_one() {
    // `header:NAME` is case-insensitive in the name.
    let f = fleet("header:X-Tenant").await;
    check(
        &f,
        &[
            (Caller::Anonymous, &[("x-tenant", "acme")], OK),
            // Another caller with the same value: the value's budget is spent.
            (Caller::Key("key-red-1"), &[("x-tenant", "acme")], LIMITED),
            (Caller::Key("key-red-1"), &[("x-tenant", "globex")], OK),
            (Caller::Key("key-red-2"), &[], OK),
            (Caller::Anonymous, &[], LIMITED),
        ],
    )
    .await;
}

#[test]
fn validate_names_a_bad_by() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: web
        match: {path_prefix: /}
        policies:
          rate_limit: {requests: 1, per: 1m, by: "header:bad name"}
        http: {url: "http://127.0.0.1:1"}
"#,
    )
    .unwrap();
    let out = std::process::Command::new(switchboard_bin())
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("rate_limit.by"), "{all}");
    assert!(all.contains("not a valid header name"), "{all}");

    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("header:bad name", "tenant"),
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
    assert!(all.contains("rate_limit.by"), "{all}");
    assert!(
        all.contains("expected route, subject, api_key, client, jwt.sub, team or header:NAME"),
        "{all}"
    );
}
