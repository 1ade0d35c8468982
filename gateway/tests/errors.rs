//! One test per cause the gateway produces before or around a backend: the status, the
//! content type and the exact body on each route kind (http, LLM with its OpenAI and Anthropic
//! fronts, MCP, A2A), as the README's "Errors" table lists them. One gateway serves every case:
//! five listeners with the same four routes, each listener set up for one family of failures.

use crate::common;

use std::net::SocketAddr;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How a route kind writes errors.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Plain,
    OpenAi,
    Anthropic,
    JsonRpc,
}

/// One route kind and the request that reaches it.
#[derive(Clone, Copy, Debug)]
struct Kind {
    name: &'static str,
    path: &'static str,
    format: Format,
}

const HTTP: Kind = Kind {
    name: "http",
    path: "/http/x",
    format: Format::Plain,
};
const OPENAI: Kind = Kind {
    name: "openai",
    path: "/v1/chat/completions",
    format: Format::OpenAi,
};
const ANTHROPIC: Kind = Kind {
    name: "anthropic",
    path: "/v1/messages",
    format: Format::Anthropic,
};
const MCP: Kind = Kind {
    name: "mcp",
    path: "/mcp",
    format: Format::JsonRpc,
};
const A2A: Kind = Kind {
    name: "a2a",
    path: "/a2a",
    format: Format::JsonRpc,
};
const ALL: [Kind; 5] = [HTTP, OPENAI, ANTHROPIC, MCP, A2A];
const JSON_ROUTES: [Kind; 4] = [OPENAI, ANTHROPIC, MCP, A2A];

impl Kind {
    /// A valid request body for the route (JSON-RPC id 7 on MCP and A2A).
    fn body(self) -> String {
        match self.name {
            "http" => "hello".into(),
            "openai" => json!({"model": "fast", "messages": [{"role": "user", "content": "hi"}]})
                .to_string(),
            "anthropic" => json!({"model": "fast", "max_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}]})
            .to_string(),
            "mcp" => json!({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "t", "version": "1"}}})
            .to_string(),
            _ => json!({"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {
                "message": {"role": "user", "parts": [{"kind": "text", "text": "hi"}],
                    "messageId": "m1", "kind": "message"}}})
            .to_string(),
        }
    }
}

/// The error body a cause has in `format`: `kind` is the machine-readable kind, `openai` and
/// `anthropic` the types those APIs report, `rpc` the JSON-RPC code, `id` the JSON-RPC id.
#[allow(clippy::too_many_arguments)]
fn expected(
    format: Format,
    kind: &str,
    openai: &str,
    anthropic: &str,
    rpc: i64,
    id: Value,
    message: &str,
) -> Value {
    match format {
        Format::Plain => json!({"error": {"type": kind, "message": message}}),
        Format::OpenAi => json!({"error": {
            "message": message, "type": openai, "param": null, "code": kind}}),
        Format::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic, "message": message}})
        }
        Format::JsonRpc => json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": rpc, "message": message, "data": {"type": kind}}}),
    }
}

/// A cause as the README's table lists it.
struct Cause {
    status: u16,
    kind: &'static str,
    openai: &'static str,
    anthropic: &'static str,
    rpc: i64,
}

const PAYLOAD_TOO_LARGE: Cause = Cause {
    status: 413,
    kind: "payload_too_large",
    openai: "invalid_request_error",
    anthropic: "request_too_large",
    rpc: -32600,
};
const UNAUTHORIZED: Cause = Cause {
    status: 401,
    kind: "unauthorized",
    openai: "authentication_error",
    anthropic: "authentication_error",
    rpc: -32000,
};
const FORBIDDEN: Cause = Cause {
    status: 403,
    kind: "forbidden",
    openai: "permission_error",
    anthropic: "permission_error",
    rpc: -32000,
};
const RATE_LIMITED: Cause = Cause {
    status: 429,
    kind: "rate_limit_exceeded",
    openai: "rate_limit_error",
    anthropic: "rate_limit_error",
    rpc: -32000,
};
const BAD_GATEWAY: Cause = Cause {
    status: 502,
    kind: "bad_gateway",
    openai: "server_error",
    anthropic: "api_error",
    rpc: -32000,
};
const GATEWAY_TIMEOUT: Cause = Cause {
    status: 504,
    kind: "gateway_timeout",
    openai: "server_error",
    anthropic: "timeout_error",
    rpc: -32000,
};
const INVALID_JSON: Cause = Cause {
    status: 400,
    kind: "invalid_json",
    openai: "invalid_request_error",
    anthropic: "invalid_request_error",
    rpc: -32700,
};

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// Asserts status, `content-type: application/json` and the exact body of `cause` in the
    /// route's format.
    fn assert_cause(&self, kind: Kind, cause: &Cause, id: Value, message: &str) {
        assert_eq!(self.status, cause.status, "{}: {}", kind.name, self.body);
        assert_eq!(self.content_type(), "application/json", "{}", kind.name);
        let want = expected(
            kind.format,
            cause.kind,
            cause.openai,
            cause.anthropic,
            cause.rpc,
            id,
            message,
        );
        assert_eq!(self.body, want, "{}", kind.name);
    }

    /// An error the LLM backend produces: status, content type and the format's shape and
    /// types; its message is the backend's own, and its OpenAI `code` is the kind once the
    /// LLM backend returns core errors (null before).
    fn assert_llm_error(&self, kind: Kind, cause: &Cause) {
        assert_eq!(self.status, cause.status, "{}: {}", kind.name, self.body);
        assert_eq!(self.content_type(), "application/json", "{}", kind.name);
        let e = &self.body["error"];
        assert!(e["message"].is_string(), "{}", self.body);
        match kind.format {
            Format::OpenAi => {
                let keys: Vec<&str> = e
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                assert_eq!(keys, ["code", "message", "param", "type"], "{}", self.body);
                assert_eq!(e["type"], cause.openai, "{}", self.body);
                assert_eq!(e["code"], cause.kind, "{}", self.body);
            }
            _ => {
                assert_eq!(self.body["type"], "error", "{}", self.body);
                assert_eq!(e["type"], cause.anthropic, "{}", self.body);
            }
        }
    }
}

struct Setup {
    gw: switchboard_gateway::Gateway,
    _mcp: tokio::task::JoinHandle<()>,
    _hole: tokio::task::JoinHandle<()>,
}

impl Setup {
    async fn base(&self, listener: &str) -> String {
        base(&self.gw, listener).await
    }

    async fn send(&self, listener: &str, kind: Kind, key: Option<&str>, body: String) -> Answer {
        let mut req = client()
            .post(format!("{}{}", self.base(listener).await, kind.path))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("anthropic-version", "2023-06-01")
            .body(body);
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Initializes an MCP session on `listener` and calls the target's `echo` tool (id 9):
    /// the JSON-RPC answer, read from the SSE stream or the JSON body.
    async fn mcp_call_error(&self, listener: &str) -> Value {
        let init = self.send(listener, MCP, None, MCP.body()).await;
        assert_eq!(init.status, 200, "{}", init.body);
        let sid = init.headers["mcp-session-id"].clone();
        let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"message": "x"}}});
        let r = client()
            .post(format!("{}/mcp", self.base(listener).await))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .header("mcp-session-id", sid)
            .body(call.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .unwrap_or(&text);
        serde_json::from_str(data.trim()).unwrap()
    }
}

fn sha(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The four routes of a listener, their upstreams at `http` (the http route and the A2A
/// agent), `llm` (an OpenAI-compatible provider) and `mcp` (a streamable HTTP MCP server).
fn routes(http: &str, llm: &str, mcp: &str, timeouts: Option<&str>) -> String {
    let (llm_timeouts, mcp_timeout) = match timeouts {
        Some(t) => (
            format!("timeouts: {{attempt: {t}, deadline: {t}}}"),
            format!("\n              timeout: {t}"),
        ),
        None => (String::new(), String::new()),
    };
    format!(
        r#"
    routes:
      - name: http
        match: {{path_prefix: /http}}
        http: {{url: "http://{http}"}}
      - name: models
        match: {{path_prefix: /v1}}
        llm:
          {llm_timeouts}
          models:
            - name: fast
              providers:
                - {{provider: openai, name: gpt, model: mock-gpt, api_key: k, base_url: "http://{llm}/v1"}}
      - name: tools
        match: {{path_prefix: /mcp}}
        mcp:
          targets:
            - name: fixture
              http: {{url: "http://{mcp}/mcp"}}{mcp_timeout}
      - name: agent
        match: {{path_prefix: /a2a}}
        a2a: {{url: "http://{http}"}}
"#
    )
}

/// One gateway, five listeners: `main` (working upstreams, small body and nesting limits),
/// `guarded` (API keys and an authorization rule), `limited` (one request per route),
/// `down` (every upstream a closed port) and `slow` (every upstream a socket that never
/// answers, with a 300ms request timeout).
async fn setup() -> Setup {
    let up = upstream().await;
    let (llm, _state) = switchboard_examples::mock_llm::spawn().await.unwrap();
    let (mcp, mcp_task) = switchboard_examples::mcp_fixture::serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hole_addr = hole.local_addr().unwrap();
    // Accepts and holds every connection without a byte of answer.
    let hole_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = hole.accept().await {
            held.push(s);
        }
    });
    let (up, llm, mcp, closed, hole) = (
        up.to_string(),
        llm.to_string(),
        mcp.to_string(),
        closed.to_string(),
        hole_addr.to_string(),
    );
    let yaml = format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{max_body_bytes: 2048, json: {{max_depth: 8}}}}
{main}
  - name: guarded
    bind: 127.0.0.1:0
    policies:
      authn:
        api_keys: [{{name: ci, sha256: "{ci}"}}, {{name: other, sha256: "{other}"}}]
      authz:
        rules: ['api_key.name == "ci"']
{guarded}
  - name: limited
    bind: 127.0.0.1:0
    policies:
      rate_limit: {{requests: 1, per: 1m, by: route}}
{limited}
  - name: down
    bind: 127.0.0.1:0
{down}
  - name: slow
    bind: 127.0.0.1:0
    policies:
      timeouts: {{request: 300ms}}
{slow}
"#,
        main = routes(&up, &llm, &mcp, None),
        guarded = routes(&up, &llm, &mcp, None),
        limited = routes(&up, &llm, &mcp, None),
        down = routes(&closed, &closed, &closed, None),
        slow = routes(&hole, &hole, &hole, Some("300ms")),
        ci = sha("sk-ci"),
        other = sha("sk-other"),
    );
    let gw = gateway(&yaml, up.parse::<SocketAddr>().unwrap()).await;
    Setup {
        gw,
        _mcp: mcp_task,
        _hole: hole_task,
    }
}

/// JSON-RPC routes answer with the request's id when the gateway read it, `null` before.
fn id_when_read(kind: Kind, read: bool) -> Value {
    if read && kind.format == Format::JsonRpc {
        json!(7)
    } else {
        Value::Null
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_is_404_in_the_plain_format() {
    let s = setup().await;
    let r = client()
        .get(format!("{}/nowhere", s.base("main").await))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"error": {"type": "not_found", "message": "no route matches this request"}})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_too_large_is_413_on_every_route() {
    let s = setup().await;
    for kind in ALL {
        let r = s.send("main", kind, None, "x".repeat(3000)).await;
        r.assert_cause(
            kind,
            &PAYLOAD_TOO_LARGE,
            Value::Null,
            "request body is larger than 2048 bytes",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credential_is_401_with_a_challenge_on_every_route() {
    let s = setup().await;
    for kind in ALL {
        let r = s.send("guarded", kind, None, kind.body()).await;
        r.assert_cause(kind, &UNAUTHORIZED, Value::Null, "authentication required");
        assert_eq!(
            r.headers["www-authenticate"], "Bearer realm=\"switchboard\"",
            "{}",
            kind.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_by_a_rule_is_403_on_every_route() {
    let s = setup().await;
    for kind in ALL {
        let r = s.send("guarded", kind, Some("sk-other"), kind.body()).await;
        r.assert_cause(kind, &FORBIDDEN, Value::Null, "access denied");
        assert!(
            !r.headers.contains_key("www-authenticate"),
            "{}: a plain 403 has no challenge",
            kind.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_limit_is_429_with_rate_limit_headers_on_every_route() {
    common::inside_one_window(std::time::Duration::from_secs(60)).await;
    let s = setup().await;
    // Windows are aligned to wall-clock minutes: a pair sent across a minute's turn meets two
    // windows, and is sent again (the second pair then falls in one window).
    let minute = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            / 60
    };
    for kind in ALL {
        let r = loop {
            let started = minute();
            // The first request of the window passes (whatever the backend answers).
            s.send("limited", kind, None, kind.body()).await;
            let r = s.send("limited", kind, None, kind.body()).await;
            if minute() == started {
                break r;
            }
        };
        r.assert_cause(
            kind,
            &RATE_LIMITED,
            Value::Null,
            "rate limit exceeded; retry later",
        );
        for h in [
            "retry-after",
            "retry-after-ms",
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ] {
            assert!(r.headers.contains_key(h), "{}: {h} missing", kind.name);
        }
        assert_eq!(r.headers["x-ratelimit-remaining-requests"], "0");
    }
}

/// The gateway's own upstream failures on http and A2A routes; the LLM backend's on LLM routes
/// (same status and format; see [`Answer::assert_llm_error`]); MCP answers a call to a target
/// it cannot use in-band, as a JSON-RPC error with the call's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_on_every_route() {
    let s = setup().await;
    for kind in [HTTP, A2A] {
        let r = s.send("down", kind, None, kind.body()).await;
        r.assert_cause(
            kind,
            &BAD_GATEWAY,
            id_when_read(kind, true),
            "upstream request failed",
        );
    }
    for kind in [OPENAI, ANTHROPIC] {
        s.send("down", kind, None, kind.body())
            .await
            .assert_llm_error(kind, &BAD_GATEWAY);
    }
    let e = s.mcp_call_error("down").await;
    assert_eq!(e["id"], 9, "{e}");
    assert!(e["error"]["code"].is_i64(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_timeout_is_504_on_every_route() {
    let s = setup().await;
    for kind in [HTTP, A2A] {
        let r = s.send("slow", kind, None, kind.body()).await;
        r.assert_cause(
            kind,
            &GATEWAY_TIMEOUT,
            id_when_read(kind, true),
            "upstream did not respond within 300ms",
        );
    }
    for kind in [OPENAI, ANTHROPIC] {
        s.send("slow", kind, None, kind.body())
            .await
            .assert_llm_error(kind, &GATEWAY_TIMEOUT);
    }
    let e = s.mcp_call_error("slow").await;
    assert_eq!(e["id"], 9, "{e}");
    assert!(e["error"]["code"].is_i64(), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_nesting_too_deep_is_400_invalid_json_on_every_json_route() {
    let s = setup().await;
    for kind in JSON_ROUTES {
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":7,"method":"x","model":"fast","params":{}1{}}}"#,
            "[".repeat(10),
            "]".repeat(10)
        );
        let r = s.send("main", kind, None, deep).await;
        r.assert_cause(
            kind,
            &INVALID_JSON,
            Value::Null,
            "JSON nests deeper than 8 levels",
        );
    }
}

/// A body that is not JSON: the LLM backend answers 400 in the caller's format, MCP 400 with
/// JSON-RPC -32700, and A2A an in-band JSON-RPC -32700 (HTTP 200, as its other protocol
/// refusals).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_a_json_error_on_every_json_route() {
    let s = setup().await;
    for kind in [OPENAI, ANTHROPIC] {
        s.send("main", kind, None, "{not json".into())
            .await
            .assert_llm_error(kind, &INVALID_JSON);
    }
    let r = s.send("main", MCP, None, "{not json".into()).await;
    assert_eq!((r.status, r.content_type()), (400, "application/json"));
    assert_eq!(r.body["error"]["code"], -32700, "{}", r.body);
    assert_eq!(r.body["id"], Value::Null, "{}", r.body);
    let r = s.send("main", A2A, None, "{not json".into()).await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"));
    assert_eq!(
        r.body,
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700,
            "message": "parse error: the body is not JSON", "data": {"type": "invalid_json"}}})
    );
}

/// `CONNECT` and transfer codings other than `chunked` are refused before routing, so their
/// errors are in the plain format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_405_and_unknown_transfer_codings_are_501() {
    let s = setup().await;
    let addr = s.gw.listener_addr("main").await.unwrap();
    let raw = |req: &'static str| async move {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        c.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    };
    let body = |resp: &str| -> Value {
        serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap()
    };
    let resp =
        raw("CONNECT gw.test:443 HTTP/1.1\r\nHost: gw.test:443\r\nConnection: close\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 405"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{resp}"
    );
    assert_eq!(
        body(&resp),
        json!({"error": {"type": "method_not_allowed",
            "message": "CONNECT is not served: the gateway is not a forward proxy"}})
    );
    let resp = raw("POST /http/x HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n").await;
    assert!(resp.starts_with("HTTP/1.1 501"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert_eq!(
        body(&resp),
        json!({"error": {"type": "not_implemented",
            "message": "only the chunked transfer coding is supported"}})
    );
}

/// On an `a2a` route: a method other than `POST` is the gateway's 405 (JSON-RPC, `id: null`);
/// the protocol's own refusals answer the call in-band (HTTP 200) with their JSON-RPC codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_protocol_refusals_are_json_rpc_errors() {
    let s = setup().await;
    let r = client()
        .get(format!("{}/a2a/x", s.base("main").await))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v,
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
            "message": "this A2A route serves JSON-RPC over POST and the agent card at /.well-known/agent-card.json",
            "data": {"type": "method_not_allowed"}}})
    );
    let r = s
        .send(
            "main",
            A2A,
            None,
            json!({"jsonrpc": "2.0", "id": 7}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"));
    assert_eq!(
        r.body,
        json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32600,
            "message": "invalid request: a single JSON-RPC request object with a method is expected",
            "data": {"type": "bad_request"}}})
    );
    let push = json!({"jsonrpc": "2.0", "id": 7, "method": "tasks/pushNotificationConfig/set",
        "params": {"taskId": "t1", "pushNotificationConfig": {"url": "http://evil.test/hook"}}});
    let r = s.send("main", A2A, None, push.to_string()).await;
    assert_eq!((r.status, r.content_type()), (200, "application/json"));
    assert_eq!(
        r.body,
        json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32602,
            "message": "push notification URL is not allowed by this gateway",
            "data": {"type": "push_url_not_allowed"}}})
    );
}
