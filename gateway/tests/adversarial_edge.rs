//! Adversarial requests against the edge stage (issue 13: one normalized request). Each test
//! sends bytes from a raw TCP client (nothing normalizes them on the way) and asserts what a
//! raw-socket upstream actually received, or that it received nothing.
//!
//! nginx 1.x is the reference where it applies. Its answers, from a manual check with the same
//! requests against `server_name public.example` / `admin.example` and `location /`:
//!   /%61dmin/secret, /x/../admin/secret, //admin/secret, /./admin/secret, /%2e/admin/secret
//!                                       → $uri /admin/secret (matched by `location /admin`)
//!   /api/../internal, /api/%2e%2e/internal → $uri /internal
//!   /a%2fb → /a/b, /a%5cb and /a\b → /a\b (nginx decodes them; we refuse them by default)
//!   /a%00b, /%zz, /../x, `GET *`          → 400
//!   GET http://public.example/ + Host: admin.example → served as public.example (we: 400)
//!   Host: admin.example. / ADMIN.example  → server admin.example
//!   Host: admin.example:abc               → server admin.example, port ignored (we: 400)
//!   HTTP/1.1 without Host, two Hosts, Host: a..b → 400; HTTP/1.0 without Host → served

use crate::common;
use crate::raw_support;

use raw_support::{Answer, RawUpstream, get, send};

const KEY: &str = "sk-edge-test";

fn key_hash() -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(KEY.as_bytes()))
}

/// An authenticated `/admin` route and `admin.example` host route beside open routes; an
/// `/api` route to a base path; an A2A route; a lenient listener; a listener whose CEL rule
/// refuses `/admin`.
fn config() -> String {
    let h = key_hash();
    format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: admin
        match: {{path_prefix: /admin}}
        policies: {{authn: {{api_keys: [{{name: ops, sha256: "{h}"}}]}}}}
        http: {{url: "http://${{UPSTREAM}}"}}
      - name: api
        match: {{path_prefix: /api}}
        http: {{url: "http://${{UPSTREAM}}/public"}}
      - name: admin-host
        match: {{host: admin.example}}
        policies: {{authn: {{api_keys: [{{name: ops, sha256: "{h}"}}]}}}}
        http: {{url: "http://${{UPSTREAM}}", preserve_host: true}}
      - name: agents
        match: {{path_prefix: /agents}}
        a2a: {{url: "http://${{UPSTREAM}}"}}
      - name: open
        match: {{path_prefix: /}}
        http: {{url: "http://${{UPSTREAM}}", preserve_host: true}}
  - name: lenient
    bind: 127.0.0.1:0
    paths: {{merge_slashes: false, escaped_slashes: keep}}
    routes:
      - name: open
        http: {{url: "http://${{UPSTREAM}}"}}
  - name: cel
    bind: 127.0.0.1:0
    policies:
      authz: {{rules: ['!request.path.startsWith("/admin")']}}
    routes:
      - name: open
        http: {{url: "http://${{UPSTREAM}}"}}
"#
    )
}

struct Setup {
    _gw: switchboard_gateway::Gateway,
    up: RawUpstream,
    main: std::net::SocketAddr,
    lenient: std::net::SocketAddr,
    cel: std::net::SocketAddr,
}

async fn setup() -> Setup {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = common::gateway(&config(), up.addr).await;
    Setup {
        main: gw.listener_addr("main").await.unwrap(),
        lenient: gw.listener_addr("lenient").await.unwrap(),
        cel: gw.listener_addr("cel").await.unwrap(),
        _gw: gw,
        up,
    }
}

fn with_key() -> String {
    format!("x-api-key: {KEY}\r\n")
}

/// A path trick aimed at `/admin/secret` lands on the authenticated `/admin` route: refused
/// without a key (and the upstream sees nothing), and with the key the upstream receives the
/// normalized `/admin/secret`.
async fn admin_path_trick(target: &str) {
    let s = setup().await;
    let resp = get(s.main, target, "public.example", "").await;
    assert_eq!(resp.status, 401, "{target}: {}", resp.text);
    s.up.assert_nothing().await;

    let resp = get(s.main, target, "public.example", &with_key()).await;
    assert_eq!(resp.status, 200, "{target}: {}", resp.text);
    let got = s.up.next().await;
    assert_eq!(got.request_line(), "GET /admin/secret HTTP/1.1", "{target}");
}

#[tokio::test]
async fn path_percent_encoded_unreserved() {
    admin_path_trick("/%61dmin/secret").await;
}

#[tokio::test]
async fn path_dot_dot_segment() {
    admin_path_trick("/x/../admin/secret").await;
}

#[tokio::test]
async fn path_double_slash() {
    admin_path_trick("//admin/secret").await;
}

#[tokio::test]
async fn path_dot_segment() {
    admin_path_trick("/./admin/secret").await;
}

#[tokio::test]
async fn path_encoded_dot_segment() {
    admin_path_trick("/%2e/admin/secret").await;
}

/// `/api/../internal` is `/internal`: the `/api` route (base path `/public`) never sees it,
/// so the upstream never gets `/public/../internal`; the open route forwards `/internal`.
async fn no_climb_out_of_base(target: &str) {
    let s = setup().await;
    let resp = get(s.main, target, "public.example", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(s.up.next().await.target(), "/internal", "{target}");
    // Inside the route, dot segments resolve below the base path.
    let resp = get(s.main, "/api/x/%2E%2E/y/./z?q=/../", "public.example", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(s.up.next().await.target(), "/public/y/z?q=/../");
}

#[tokio::test]
async fn base_path_traversal() {
    no_climb_out_of_base("/api/../internal").await;
}

#[tokio::test]
async fn base_path_traversal_encoded() {
    no_climb_out_of_base("/api/%2e%2e/internal").await;
}

#[tokio::test]
async fn dot_dot_above_the_root_is_refused() {
    // nginx: 400 as well.
    let s = setup().await;
    for target in ["/../admin/secret", "/a/../../admin", "/%2e%2e/x"] {
        let resp = get(s.main, target, "public.example", "").await;
        assert_eq!(resp.status, 400, "{target}: {}", resp.text);
        assert_eq!(resp.json()["error"]["type"], "bad_request");
    }
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn query_is_forwarded_as_sent() {
    let s = setup().await;
    let resp = get(s.main, "/%7Euser/./p?q=/../%2f&r=%61", "public.example", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(s.up.next().await.target(), "/~user/p?q=/../%2f&r=%61");
}

/// Encoded `/`, `\`, NUL and a raw `\` are refused (400, JSON error) and never forwarded.
async fn refused_path(target: &str) {
    let s = setup().await;
    let resp = get(s.main, target, "public.example", "").await;
    assert_eq!(resp.status, 400, "{target}: {}", resp.text);
    assert_eq!(resp.json()["error"]["type"], "bad_request", "{target}");
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn encoded_slash_is_refused() {
    refused_path("/admin%2Fsecret").await;
    refused_path("/x/..%2fadmin/secret").await;
}

#[tokio::test]
async fn encoded_backslash_is_refused() {
    refused_path("/x/..%5Cadmin/secret").await;
}

#[tokio::test]
async fn encoded_nul_is_refused() {
    refused_path("/admin/secret%00.html").await;
}

#[tokio::test]
async fn raw_backslash_is_refused() {
    refused_path("/x/..\\admin/secret").await;
}

#[tokio::test]
async fn broken_percent_encoding_is_refused() {
    refused_path("/%zz").await;
    refused_path("/a%4").await;
}

#[tokio::test]
async fn lenient_listener_keeps_escaped_slashes_and_empty_segments() {
    let s = setup().await;
    let resp = get(s.lenient, "/a%2fb/..%5c/x//y/%61", "h", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(s.up.next().await.target(), "/a%2Fb/..%5C/x//y/a");
    // NUL is refused whatever the options.
    let resp = get(s.lenient, "/a%00", "h", "").await;
    assert_eq!(resp.status, 400);
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn errors_take_the_route_format() {
    // The raw request would reach the A2A route: its 400 is a JSON-RPC error.
    let s = setup().await;
    let resp = get(s.main, "/agents/a%2Fb", "public.example", "").await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    let v = resp.json();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["data"]["type"], "bad_request");
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn cel_request_path_is_the_normalized_path() {
    let s = setup().await;
    for target in [
        "/%61dmin/x",
        "/x/../admin/x",
        "//admin/x",
        "/./admin",
        "/%2e/admin",
    ] {
        let resp = get(s.cel, target, "h", "").await;
        assert_eq!(resp.status, 403, "{target}: {}", resp.text);
    }
    s.up.assert_nothing().await;
    let resp = get(s.cel, "/public/./%61", "h", "").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(s.up.next().await.target(), "/public/a");
}

#[tokio::test]
async fn absolute_form_must_agree_with_host() {
    let s = setup().await;
    // The issue's case: routed as public.example, forwarded as admin.example. Now 400.
    let raw =
        b"GET http://public.example/ HTTP/1.1\r\nHost: admin.example\r\nConnection: close\r\n\r\n";
    let resp = send(s.main, raw).await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(resp.json()["error"]["type"], "bad_request");
    // The other way round cannot reach the open route either.
    let raw =
        b"GET http://admin.example/ HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n";
    assert_eq!(send(s.main, raw).await.status, 400);
    s.up.assert_nothing().await;

    // Agreeing (case, trailing dot, default port): one authority, origin-form upstream.
    let raw = format!(
        "GET http://ADMIN.example.:80/x HTTP/1.1\r\nHost: admin.example\r\n{}Connection: close\r\n\r\n",
        with_key()
    );
    let resp = send(s.main, raw.as_bytes()).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let got = s.up.next().await;
    assert_eq!(got.request_line(), "GET /x HTTP/1.1");
    assert_eq!(got.headers("host"), ["admin.example:80"]);
    assert_eq!(got.headers("x-forwarded-host"), ["admin.example:80"]);
}

#[tokio::test]
async fn trailing_dot_host_matches_the_host_route() {
    let s = setup().await;
    for host in ["admin.example.", "ADMIN.Example"] {
        let resp = get(s.main, "/", host, "").await;
        assert_eq!(resp.status, 401, "{host}: {}", resp.text);
    }
    s.up.assert_nothing().await;
    let resp = get(s.main, "/x", "Admin.Example.", &with_key()).await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let got = s.up.next().await;
    // preserve_host and X-Forwarded-Host carry the same canonical value routing used.
    assert_eq!(got.headers("host"), ["admin.example"]);
    assert_eq!(got.headers("x-forwarded-host"), ["admin.example"]);
}

#[tokio::test]
async fn non_numeric_port_is_refused() {
    let s = setup().await;
    for host in [
        "admin.example:abc",
        "admin.example:99999",
        "admin.example:1:2",
    ] {
        let resp = get(s.main, "/", host, "").await;
        assert_eq!(resp.status, 400, "{host}: {}", resp.text);
        assert_eq!(resp.json()["error"]["type"], "bad_request");
    }
    s.up.assert_nothing().await;
    // A numeric port is kept, and ignored by host matching.
    let resp = get(s.main, "/", "admin.example:8080", "").await;
    assert_eq!(resp.status, 401);
}

#[tokio::test]
async fn malformed_hosts_are_refused() {
    let s = setup().await;
    for host in [
        "admin.example..",
        "u@admin.example",
        "a/b",
        "",
        "admin%2eexample",
    ] {
        let resp = get(s.main, "/", host, "").await;
        assert_eq!(resp.status, 400, "{host:?}: {}", resp.text);
    }
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn missing_host_is_refused_on_http_1_1() {
    let s = setup().await;
    let resp = send(s.main, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert_eq!(resp.status, 400, "{}", resp.text);
    assert_eq!(resp.json()["error"]["type"], "bad_request");
    s.up.assert_nothing().await;
    // HTTP/1.0 may omit it (as nginx allows); it reaches the open route.
    let resp = send(s.main, b"GET /%61 HTTP/1.0\r\n\r\n").await;
    assert_eq!(resp.status, 200, "{}", resp.text);
    let got = s.up.next().await;
    assert_eq!(got.target(), "/a");
}

#[tokio::test]
async fn two_host_headers_are_refused() {
    let s = setup().await;
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: public.example\r\nHost: public.example\r\nConnection: close\r\n\r\n",
    ] {
        let resp = send(s.main, raw).await;
        assert_eq!(resp.status, 400, "{}", resp.text);
    }
    s.up.assert_nothing().await;
}

/// HTTP/2 (h2c prior knowledge): `:authority` and a `Host` header must agree too, and
/// `:authority` is normalized like `Host`.
#[tokio::test]
async fn http2_authority_must_agree_with_host() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let s = setup().await;
    let send_h2 = |uri: &'static str, host: Option<&'static str>, key: bool| {
        let addr = s.main;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut tx, conn) =
                hyper::client::conn::http2::handshake::<_, _, Empty<bytes::Bytes>>(
                    TokioExecutor::new(),
                    TokioIo::new(tcp),
                )
                .await
                .unwrap();
            tokio::spawn(conn);
            let mut b = http::Request::builder().uri(uri);
            if let Some(h) = host {
                b = b.header("host", h);
            }
            if key {
                b = b.header("x-api-key", KEY);
            }
            tx.send_request(b.body(Empty::new()).unwrap())
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        send_h2("http://public.example/", Some("admin.example"), false).await,
        400
    );
    s.up.assert_nothing().await;
    assert_eq!(send_h2("http://Admin.Example./y", None, false).await, 401);
    assert_eq!(send_h2("http://Admin.Example./y", None, true).await, 200);
    let got = s.up.next().await;
    assert_eq!(got.request_line(), "GET /y HTTP/1.1");
    assert_eq!(got.headers("host"), ["admin.example"]);
    assert_eq!(got.headers("x-forwarded-host"), ["admin.example"]);
}

#[test]
fn route_paths_that_cannot_match_are_config_errors() {
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: a
        match: {path_prefix: /api/../admin}
        http: {url: "http://127.0.0.1:1"}
      - name: b
        match: {path: "/x%2fy"}
        http: {url: "http://127.0.0.1:1"}
"#;
    let err = switchboard_gateway::config::load_str(yaml, "t.yaml", &|_| None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("t.yaml:7:") && text.contains("listeners[0].routes[0].match.path_prefix"),
        "{text}"
    );
    assert!(text.contains("listeners[0].routes[1].match.path"), "{text}");
    let bad = yaml.replace("routes:", "paths: {escaped_slashes: maybe}\n    routes:");
    let err = switchboard_gateway::config::load_str(&bad, "t.yaml", &|_| None).unwrap_err();
    assert!(
        err.to_string()
            .contains("listeners[0].paths.escaped_slashes"),
        "{err}"
    );
}
