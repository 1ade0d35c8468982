//! Authentication, authorization, MCP resource metadata and the credential boundary, against a
//! running gateway, a JWKS served over HTTP and the example upstream (whose `/echo` reports
//! the headers it received).

use crate::common;
use crate::security_support;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use security_support::*;
use serde_json::{Value, json};
use switchboard_gateway::auth::api_key::hash_key;

fn jwt_route(jwks_url: &str, extra: &str) -> String {
    format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: api
        match: {{path_prefix: /echo}}
        policies:
          authn:
            jwt:
              issuer: {ISSUER}
              audiences: [{AUDIENCE}]
              jwks: {{url: "{jwks_url}"}}
              min_refresh_interval: 10ms
{extra}
        http: {{url: "http://${{UPSTREAM}}"}}
"#
    )
}

async fn get(c: &reqwest::Client, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut r = c.get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.unwrap()
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn jwt_valid_token_passes_and_bad_tokens_are_refused() {
    let key = SigningKey::es256("k1");
    let other = SigningKey::es256("k1"); // same kid, different key
    let jwks = JwksServer::start(&[&key]).await;
    let up = upstream().await;
    let gw = gateway(&jwt_route(&jwks.url(), ""), up).await;
    let base = format!("{}/echo", base(&gw, "main").await);
    let c = client();

    let good = key.sign(&claims("alice"));
    let resp = get(&c, &base, Some(&good)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["headers"].get("authorization").is_none(),
        "the client's token must not reach the upstream: {v}"
    );

    // No credential: a bare challenge, no error code (RFC 6750 §3.1).
    let resp = get(&c, &base, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&resp), r#"Bearer realm="switchboard""#);

    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let mut foreign = claims("alice");
    foreign["aud"] = json!("some-other-service");
    let mut wrong_issuer = claims("alice");
    wrong_issuer["iss"] = json!("https://evil.test");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut not_yet = claims("alice");
    not_yet["nbf"] = json!(now() + 3600);
    let x = key.jwk["x"].as_str().unwrap().as_bytes().to_vec();
    let mut tampered = good.clone();
    tampered.insert(good.find('.').unwrap() + 3, 'A');
    let bad: Vec<(&str, String)> = vec![
        ("expired", key.sign(&expired)),
        ("foreign audience", key.sign(&foreign)),
        ("wrong issuer", key.sign(&wrong_issuer)),
        ("no exp", key.sign(&no_exp)),
        ("not yet valid", key.sign(&not_yet)),
        ("unsigned alg none", unsigned("k1", &claims("alice"))),
        ("wrong key, same kid", other.sign(&claims("alice"))),
        (
            "HS256 keyed with the public key",
            hs256("k1", &x, &claims("alice")),
        ),
        ("tampered payload", tampered),
        ("garbage", "a.b.c".into()),
    ];
    for (what, token) in &bad {
        let resp = get(&c, &base, Some(token)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            challenge(&resp),
            r#"Bearer realm="switchboard", error="invalid_token""#,
            "{what}"
        );
        let body = resp.text().await.unwrap();
        // Nothing about why beyond the standard code.
        for word in ["expired", "audience", "issuer", "signature", "alg", "kid"] {
            assert!(!body.to_lowercase().contains(word), "{what}: {body}");
        }
        assert!(!body.contains(token.as_str()), "{what}: token echoed");
    }
    // A token within the clock skew (60s default) still passes.
    let mut just_expired = claims("alice");
    just_expired["exp"] = json!(now() - 20);
    assert_eq!(
        get(&c, &base, Some(&key.sign(&just_expired)))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn key_rotation_needs_no_restart_and_unknown_kids_are_rate_limited() {
    let k1 = SigningKey::ed25519("k1");
    let k2 = SigningKey::ed25519("k2");
    let jwks = JwksServer::start(&[&k1]).await;
    let up = upstream().await;
    let gw = gateway(&jwt_route(&jwks.url(), ""), up).await;
    let base = format!("{}/echo", base(&gw, "main").await);
    let c = client();

    assert_eq!(
        get(&c, &base, Some(&k1.sign(&claims("a")))).await.status(),
        StatusCode::OK
    );
    let before = jwks.fetches();
    // The identity provider rotates: k2 appears, k1 is retired.
    jwks.rotate(&[&k2]);
    tokio::time::sleep(Duration::from_millis(20)).await; // past min_refresh_interval (10ms)
    assert_eq!(
        get(&c, &base, Some(&k2.sign(&claims("a")))).await.status(),
        StatusCode::OK,
        "an unknown kid triggers a JWKS refresh"
    );
    assert_eq!(jwks.fetches(), before + 1);
    assert_eq!(
        get(&c, &base, Some(&k1.sign(&claims("a")))).await.status(),
        StatusCode::UNAUTHORIZED,
        "the retired key no longer verifies"
    );

    // With a long min_refresh_interval, a flood of made-up kids costs no fetches.
    let slow = jwt_route(&jwks.url(), "").replace("10ms", "1h");
    let gw2 = gateway(&slow, up).await;
    let base2 = format!("{}/echo", common::base(&gw2, "main").await);
    assert_eq!(
        get(&c, &base2, Some(&k2.sign(&claims("a")))).await.status(),
        StatusCode::OK
    );
    let fetched = jwks.fetches();
    for i in 0..20 {
        let t = k2.sign_as(&format!("made-up-{i}"), &claims("a"));
        assert_eq!(
            get(&c, &base2, Some(&t)).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(jwks.fetches(), fetched, "unknown kids are rate-limited");
}

#[tokio::test]
async fn api_keys_by_hash_with_expiry_and_rate_limit() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: api
        match: {{path_prefix: /echo}}
        policies:
          authn:
            api_keys:
              - {{name: ci-bot, sha256: "{}"}}
              - {{name: old, sha256: "{}", expires: "2020-01-01T00:00:00Z"}}
              - {{name: limited, sha256: "{}", rate_limit: {{requests: 2, per: 1m}}}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#,
        hash_key(b"sk-ci-123"),
        hash_key(b"sk-old-456"),
        hash_key(b"sk-lim-789"),
    );
    let up = upstream().await;
    let gw = gateway(&yaml, up).await;
    let base = format!("{}/echo", base(&gw, "main").await);
    let c = client();

    let resp = c
        .get(&base)
        .header("x-api-key", "sk-ci-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["headers"].get("x-api-key").is_none(), "{v}");
    assert_eq!(
        get(&c, &base, Some("sk-ci-123")).await.status(),
        StatusCode::OK
    );
    for bad in ["sk-ci-124", "sk-old-456", &hash_key(b"sk-ci-123")] {
        let resp = get(&c, &base, Some(bad)).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{bad}");
        assert!(challenge(&resp).contains(r#"error="invalid_token""#));
    }
    assert_eq!(
        get(&c, &base, Some("sk-lim-789")).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&c, &base, Some("sk-lim-789")).await.status(),
        StatusCode::OK
    );
    let resp = get(&c, &base, Some("sk-lim-789")).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Other keys are unaffected.
    assert_eq!(
        get(&c, &base, Some("sk-ci-123")).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn mcp_protected_resource_metadata_challenge_and_step_up() {
    let key = SigningKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let up = upstream().await;
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {{path_prefix: /mcp}}
        policies:
          authn:
            jwt: {{issuer: {ISSUER}, audiences: [{AUDIENCE}], jwks: {{url: "{}"}}}}
            required_scopes: ["mcp:tools"]
            resource_metadata:
              authorization_servers: [{ISSUER}]
              resource_name: Test tools
        http: {{url: "http://${{UPSTREAM}}/echo"}}
      - name: other
        match: {{path_prefix: /}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#,
        jwks.url()
    );
    let gw = gateway(&yaml, up).await;
    let origin = base(&gw, "main").await;
    let c = client();

    let expected_url = format!("{origin}/.well-known/oauth-protected-resource/mcp");
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let resp = c.get(format!("{origin}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["resource"], format!("{origin}/mcp"), "{path}");
        assert_eq!(doc["authorization_servers"], json!([ISSUER]));
        assert_eq!(doc["scopes_supported"], json!(["mcp:tools"]));
        assert_eq!(doc["bearer_methods_supported"], json!(["header"]));
        assert_eq!(doc["resource_name"], "Test tools");
    }
    assert_eq!(
        c.get(format!(
            "{origin}/.well-known/oauth-protected-resource/nope"
        ))
        .send()
        .await
        .unwrap()
        .status(),
        StatusCode::NOT_FOUND,
        "unknown resources fall through to routing (the example upstream 404s)"
    );

    let resp = c.post(format!("{origin}/mcp")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp),
        format!(r#"Bearer realm="switchboard", resource_metadata="{expected_url}""#)
    );

    // Authenticated, but without the scope: 403 insufficient_scope for step-up.
    let resp = get(&c, &format!("{origin}/mcp"), Some(&key.sign(&claims("a")))).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&resp),
        format!(
            r#"Bearer realm="switchboard", error="insufficient_scope", scope="mcp:tools", resource_metadata="{expected_url}""#
        )
    );
    let mut scoped = claims("a");
    scoped["scope"] = json!("openid mcp:tools");
    let resp = get(&c, &format!("{origin}/mcp"), Some(&key.sign(&scoped))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert!(v["headers"].get("authorization").is_none());

    // A token for another audience (token passthrough from elsewhere) is refused.
    let mut foreign = scoped.clone();
    foreign["aud"] = json!("https://other-mcp.example");
    let resp = get(&c, &format!("{origin}/mcp"), Some(&key.sign(&foreign))).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(challenge(&resp).contains("resource_metadata="));
}

#[tokio::test]
async fn configured_resource_sets_metadata_url_and_audience() {
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: tools
        match: {path_prefix: /mcp}
        policies:
          authn:
            jwt: {issuer: https://idp.test, audiences: ["https://gw.example/mcp"], jwks: {file: /nonexistent/jwks.json}}
            resource_metadata:
              resource: https://gw.example/mcp
              authorization_servers: [https://idp.test]
              scopes_supported: [read, write]
        http: {url: "http://${UPSTREAM}"}
"#;
    let up = upstream().await;
    let gw = gateway(yaml, up).await;
    let origin = base(&gw, "main").await;
    let c = client();
    let doc: Value = c
        .get(format!("{origin}/.well-known/oauth-protected-resource/mcp"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], "https://gw.example/mcp");
    assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
    let resp = c.get(format!("{origin}/mcp")).send().await.unwrap();
    assert_eq!(
        challenge(&resp),
        r#"Bearer realm="switchboard", resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp""#
    );
    // The resource must be among the audiences: validation says so with the key path.
    let bad = yaml.replace(r#"audiences: ["https://gw.example/mcp"]"#, "audiences: [x]");
    let env = |_: &str| Some("127.0.0.1:1".to_string());
    let err = switchboard_gateway::config::load_str(&bad, "t.yaml", &env).unwrap_err();
    assert!(
        err.to_string().contains(
            "listeners[0].routes[0].policies.authn.jwt.audiences: must include the resource"
        ),
        "{err}"
    );
}

#[tokio::test]
async fn no_token_passthrough_unless_opted_in_and_upstream_credentials_from_config() {
    let dir = tempfile::tempdir().unwrap();
    let cred = dir.path().join("upstream-token");
    std::fs::write(&cred, "file-secret-1\n").unwrap();
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: forwarded
        match: {{path_prefix: /echo/forwarded}}
        policies:
          forward_client_credentials: true
        http: {{url: "http://${{UPSTREAM}}"}}
      - name: from-file
        match: {{path_prefix: /echo/file}}
        policies:
          upstream_auth: {{file: "{}", prefix: "Bearer "}}
        http: {{url: "http://${{UPSTREAM}}"}}
      - name: static
        match: {{path_prefix: /echo}}
        policies:
          upstream_auth: {{header: x-upstream-key, value: static-secret}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#,
        cred.display()
    );
    let up = upstream().await;
    let gw = gateway(&yaml, up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let send = |path: &str| {
        c.get(format!("{base}{path}"))
            .header("authorization", "Bearer client-token")
            .header("cookie", "session=client-cookie")
            .header("x-api-key", "client-key")
            .header("proxy-authorization", "Basic cHJveHk=")
            .send()
    };

    let v: Value = send("/echo/x").await.unwrap().json().await.unwrap();
    let h = &v["headers"];
    for name in [
        "authorization",
        "cookie",
        "x-api-key",
        "proxy-authorization",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {v}");
    }
    assert_eq!(h["x-upstream-key"], "static-secret");
    assert!(!v.to_string().contains("client-"), "{v}");

    let v: Value = send("/echo/file").await.unwrap().json().await.unwrap();
    assert_eq!(v["headers"]["authorization"], "Bearer file-secret-1");
    assert!(v["headers"].get("cookie").is_none());
    // Rotate the file: the new credential is used without a reload.
    std::fs::write(&cred, "file-secret-rotated-2\n").unwrap();
    let rotated = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let v: Value = send("/echo/file").await.unwrap().json().await.unwrap();
            if v["headers"]["authorization"] == "Bearer file-secret-rotated-2" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(rotated.is_ok(), "rotated credential file was not picked up");

    let v: Value = send("/echo/forwarded").await.unwrap().json().await.unwrap();
    assert_eq!(v["headers"]["authorization"], "Bearer client-token");
    assert_eq!(v["headers"]["cookie"], "session=client-cookie");
}

#[tokio::test]
async fn route_level_authz_rules_and_optional_mode() {
    let key = SigningKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let extra = r#"            mode: optional
          authz:
            rules:
              - 'jwt.sub == "alice"'
              - 'request.method == "GET" && request.path.startsWith("/echo/public")'
              - 'has(jwt.groups) && "admins" in jwt.groups'"#;
    let up = upstream().await;
    let gw = gateway(&jwt_route(&jwks.url(), extra), up).await;
    let base = base(&gw, "main").await;
    let c = client();
    let alice = key.sign(&claims("alice"));
    let bob = key.sign(&claims("bob"));
    let mut carol = claims("carol");
    carol["groups"] = json!(["admins"]);
    let carol = key.sign(&carol);

    assert_eq!(
        get(&c, &format!("{base}/echo/x"), Some(&alice))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&c, &format!("{base}/echo/x"), Some(&carol))
            .await
            .status(),
        StatusCode::OK
    );
    let resp = get(&c, &format!("{base}/echo/x"), Some(&bob)).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&resp).is_empty(), "a plain 403 has no challenge");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], "forbidden");
    // Anonymous (optional mode): public path allowed, the rest asks for authentication.
    assert_eq!(
        get(&c, &format!("{base}/echo/public/a"), None)
            .await
            .status(),
        StatusCode::OK
    );
    let resp = get(&c, &format!("{base}/echo/x"), None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    // Optional mode still refuses an invalid credential.
    assert_eq!(
        get(&c, &format!("{base}/echo/public/a"), Some("x.y.z"))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn invalid_rules_and_authn_keys_are_located() {
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    policies:
      authz:
        rules:
          - 'jwt.sub == "alice"'
          - 'jwt.sub == '
    routes:
      - name: r
        match: {path_prefix: /}
        policies:
          authn:
            jwt: {issuer: x, audiences: [], jwks: {file: a.json, url: "http://b"}}
            api_keys: [{name: k, sha256: nothex}]
          upstream_auth: {value: a, env: B}
        http: {url: "http://127.0.0.1:1"}
"#;
    let err = switchboard_gateway::config::load_str(yaml, "t.yaml", &|_| None).unwrap_err();
    let text = err.to_string();
    for expected in [
        "t.yaml:9:13: listeners[0].policies.authz.rules[1]: not a valid CEL expression",
        "listeners[0].routes[0].policies.authn.jwt.audiences: list the gateway's own audience",
        "listeners[0].routes[0].policies.authn.jwt.jwks: set exactly one of `file` or `url`",
        "listeners[0].routes[0].policies.authn.api_keys[0].sha256: must be the 64 hex digits",
        "listeners[0].routes[0].policies.upstream_auth: set exactly one of `value`, `env` or `file`",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let typo = yaml
        .replace("mode_unused", "")
        .replace("api_keys:", "api_key:");
    let err = switchboard_gateway::config::load_str(&typo, "t.yaml", &|_| None).unwrap_err();
    assert!(err.to_string().contains("did you mean `api_keys`"), "{err}");
}

/// Secrets (presented tokens and keys, configured upstream credentials, key hashes) appear in
/// no log line (at debug level), no metric, not in `/config` and in no error body.
#[tokio::test]
async fn secrets_never_appear_in_logs_metrics_config_or_errors() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let key = SigningKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let valid_key = "sk-valid-key-77aa";
    let valid_hash = hash_key(valid_key.as_bytes());
    let upstream_secret = "upstream-secret-value-42bb";
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: api
        match: {{path_prefix: /echo}}
        policies:
          authn:
            jwt: {{issuer: {ISSUER}, audiences: [{AUDIENCE}], jwks: {{url: "{}"}}}}
            api_keys: [{{name: ci, sha256: "{valid_hash}"}}]
          upstream_auth: {{value: "{upstream_secret}"}}
        http: {{url: "http://{up}"}}
"#,
            jwks.url()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(switchboard_bin())
        .args(["run", "--log-format", "json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::<String>::new();
    let (mut addr, mut admin) = (None, None);
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            match v["message"].as_str() {
                Some("listening") => addr = v["addr"].as_str().map(str::to_string),
                Some("admin listening") => admin = v["addr"].as_str().map(str::to_string),
                _ => {}
            }
            let ready = v["message"] == "switchboard ready";
            log.push(line);
            if ready {
                break;
            }
        }
    })
    .await
    .expect("switchboard became ready");
    let (addr, admin) = (addr.unwrap(), admin.unwrap());
    let c = client();

    let presented_bad = "sk-presented-bad-secret-99cc";
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 3600);
    let bad_jwt = key.sign(&expired);
    let good_jwt = key.sign(&claims("alice"));
    let mut bodies = Vec::new();
    for (h, v) in [
        ("authorization", format!("Bearer {presented_bad}")),
        ("authorization", format!("Bearer {bad_jwt}")),
        ("x-api-key", presented_bad.to_string()),
        ("authorization", format!("Bearer {good_jwt}")),
        ("x-api-key", valid_key.to_string()),
        ("cookie", format!("session={presented_bad}")),
    ] {
        let resp = c
            .get(format!("http://{addr}/echo/x?token={presented_bad}"))
            .header(h, v)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        if status == StatusCode::OK {
            // The upstream sees its own credential and none of the client's.
            let v: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(v["headers"]["authorization"], upstream_secret);
            let headers = v["headers"].to_string();
            for s in [presented_bad, valid_key, &good_jwt] {
                assert!(!headers.contains(s), "{s} reached the upstream: {headers}");
            }
        } else {
            bodies.push(body);
        }
    }
    let marker = c
        .get(format!("http://{addr}/echo/last-marker"))
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), StatusCode::UNAUTHORIZED);
    let config_dump = c
        .get(format!("http://{admin}/config"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(config_dump.contains("<redacted>"), "{config_dump}");
    let metrics = c
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let done = line.contains("/echo/last-marker");
            log.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .expect("access log of the marker request");
    let _ = child.kill().await;

    let log = log.join("\n");
    assert!(log.contains("bearer token refused"), "debug logging is on");
    let secrets = [
        presented_bad,
        valid_key,
        &valid_hash,
        upstream_secret,
        &bad_jwt,
        &good_jwt,
        // The signature part alone must not leak either.
        good_jwt.rsplit('.').next().unwrap(),
    ];
    for (what, text) in [
        ("logs", &log),
        ("/config", &config_dump),
        ("/metrics", &metrics),
        ("error bodies", &bodies.join("\n")),
    ] {
        for s in secrets {
            assert!(!text.contains(s), "secret `{s}` appears in {what}:\n{text}");
        }
    }
}

/// Keys are re-read in the background every `refresh_interval`, and a config generation's
/// refresh task ends when a reload replaces it. Paused clock: the refresh loop sleeps on tokio's
/// clock (JWKS server and gateway in-process, serving on this runtime), so its 1 s period and the 2.5 s of silence after
/// the reload are exact and take no real time.
#[tokio::test(start_paused = true)]
async fn background_refresh_runs_and_stops_with_its_generation() {
    let key = SigningKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let up = upstream().await;
    let yaml = jwt_route(&jwks.url(), "").replace(
        "min_refresh_interval: 10ms",
        "min_refresh_interval: 10ms\n              refresh_interval: 1s",
    );
    let gw = gateway_here(&yaml, up).await;
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while jwks.fetches() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "background refresh did not run");

    // Reload without authn: the old generation's refresh loop ends.
    let plain = r#"
admin: {bind: "127.0.0.1:0"}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: api
        match: {path_prefix: /echo}
        http: {url: "http://${UPSTREAM}"}
"#;
    let env = |n: &str| (n == "UPSTREAM").then(|| up.to_string());
    let cfg = switchboard_gateway::config::load_str(plain, "t.yaml", &env).unwrap();
    gw.apply(cfg).await.unwrap();
    // Let an in-flight fetch finish, then no more may come.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = jwks.fetches();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        jwks.fetches(),
        after,
        "the replaced generation still refreshes"
    );
}

/// A rule about MCP tools (decided by an MCP backend per tool) must not let anyone through an
/// `http` route: there it is evaluated with empty `mcp` and is false.
#[tokio::test]
async fn tool_rules_never_open_http_routes() {
    let key = SigningKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let extra = r#"          authz:
            rules:
              - 'jwt.sub == "alice"'
              - 'mcp.tool.name.startsWith("search__")'"#;
    let up = upstream().await;
    let gw = gateway(&jwt_route(&jwks.url(), extra), up).await;
    let url = format!("{}/echo", base(&gw, "main").await);
    let c = client();
    assert_eq!(
        get(&c, &url, Some(&key.sign(&claims("alice"))))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&c, &url, Some(&key.sign(&claims("bob"))))
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

/// The README's security example is a valid config (so the reference cannot drift).
#[test]
fn readme_security_example_is_valid() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("```yaml\npolicies:\n  authn:")
        .expect("the security example in README.md")
        + "```yaml\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let indented: String = block.lines().map(|l| format!("    {l}\n")).collect();
    let yaml = format!(
        "listeners:\n  - name: main\n    bind: 127.0.0.1:0\n{indented}    routes:\n      - name: r\n        match: {{path_prefix: /mcp}}\n        http: {{url: \"http://127.0.0.1:1\"}}\n"
    );
    switchboard_gateway::config::load_str(&yaml, "README.md", &|_| None)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
}

#[tokio::test]
async fn relative_jwks_and_credential_files_resolve_against_the_config_folder() {
    // The test process's working directory is the crate, not `dir`: the files are found only
    // if they resolve against the config file's folder.
    let key = SigningKey::es256("k1");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/jwks.json"),
        json!({"keys": [key.jwk.clone()]}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("secrets/upstream-token"),
        "from-the-folder\n",
    )
    .unwrap();
    let up = upstream().await;
    let yaml = format!(
        r#"
admin: {{bind: '127.0.0.1:0'}}
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: api
        match: {{path_prefix: /echo}}
        policies:
          authn:
            jwt: {{issuer: {ISSUER}, audiences: [{AUDIENCE}], jwks: {{file: secrets/jwks.json}}}}
          upstream_auth: {{file: secrets/upstream-token, prefix: "Bearer "}}
        http: {{url: "http://{up}"}}
"#
    );
    let path = dir.path().join("switchboard.yaml");
    std::fs::write(&path, &yaml).unwrap();
    switchboard_gateway::install_crypto_provider();
    let cfg = switchboard_gateway::config::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let gw = switchboard_gateway::Gateway::start(cfg, Some(path))
        .await
        .unwrap();
    let url = format!("{}/echo", base(&gw, "main").await);
    let token = key.sign(&claims("alice"));
    // The JWKS file loads in the background: wait for the first 200.
    let v: Value = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let r = get(&client(), &url, Some(&token)).await;
            if r.status() == StatusCode::OK {
                return r.json::<Value>().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a token signed with the key in secrets/jwks.json is accepted");
    assert_eq!(v["headers"]["authorization"], "Bearer from-the-folder");
}
