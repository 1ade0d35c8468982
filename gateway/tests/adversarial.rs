//! The edge as an attacker tries it: upgrades, hop-by-hop and forwarding headers, request
//! targets and framing (RFC 9110/9112), HTTP/1.1 smuggling variants and HTTP/2 abuse. Every
//! test asserts what the upstream actually received, recorded by a raw-socket upstream
//! ([`raw_support::RawUpstream`]). nginx 1.22 (`proxy_pass` to the same upstream,
//! `proxy_http_version 1.1`) is the reference where noted.

use crate::common;
use crate::raw_support;

use std::time::Duration;

use raw_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(3);

async fn gateway_for(yaml: &str, up: &RawUpstream) -> switchboard_gateway::Gateway {
    common::gateway(yaml, up.addr).await
}

async fn addr(gw: &switchboard_gateway::Gateway, listener: &str) -> std::net::SocketAddr {
    gw.listener_addr(listener).await.unwrap()
}

const ONE_ROUTE: &str = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: custom
        match: {path_prefix: /custom}
        http: {url: "http://${UPSTREAM}", upgrades: [foo]}
      - name: none
        match: {path_prefix: /none}
        http: {url: "http://${UPSTREAM}", upgrades: []}
      - name: web
        match: {path_prefix: /}
        http: {url: "http://${UPSTREAM}"}
"#;

#[tokio::test]
async fn upgrades_pass_by_allow_list_and_h2c_never() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(ONE_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let get = |path: &str, upgrade: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
             Upgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
    };
    // (path, Upgrade the client asks for, what the upstream must get in `Upgrade`)
    let cases = [
        // nginx forwards h2c as a plain request (without Upgrade); so does the gateway.
        ("/h2c", "h2c", None),
        ("/h2c-on-custom", "h2c", None),
        ("/custom/h2c", "h2c", None),
        ("/foo", "foo", None),
        ("/custom/foo", "foo", Some("foo")),
        ("/custom/ws", "websocket", None),
        ("/none/ws", "websocket", None),
        ("/ws", "websocket", Some("websocket")),
        ("/ws-list", "websocket, h2c", None),
    ];
    for (path, asked, expect) in cases {
        let answer = exchange(gw_addr, get(path, asked).as_bytes(), WAIT).await;
        assert_eq!(statuses(&answer).first(), Some(&200), "{path}");
        let reqs = up.requests();
        let got = reqs.iter().find(|r| r.target() == path).unwrap();
        assert_eq!(got.get("upgrade"), expect, "{path}: {got:?}");
        assert!(got.get("http2-settings").is_none(), "{path}: {got:?}");
        match expect {
            Some(_) => assert_eq!(got.get("connection"), Some("upgrade"), "{path}"),
            None => assert!(
                got.get("connection").is_none_or(|c| !c.contains("pgrade")),
                "{path}: {got:?}"
            ),
        }
    }
    assert!(up.errors().is_empty(), "{:?}", up.errors());
}

#[tokio::test]
async fn connect_and_asterisk_targets_are_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(ONE_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    // nginx 1.22 answers 400 to all three; for CONNECT the gateway says what is refused (405).
    let cases: [(&[u8], u16); 4] = [
        (
            b"CONNECT up.test:443 HTTP/1.1\r\nHost: up.test:443\r\nConnection: close\r\n\r\n",
            405,
        ),
        (
            b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\nConnection: close\r\n\r\n",
            405,
        ),
        (
            b"OPTIONS * HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            b"GET * HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
            400,
        ),
    ];
    for (bytes, status) in cases {
        let answer = exchange(gw_addr, bytes, WAIT).await;
        assert_eq!(
            statuses(&answer).first(),
            Some(&status),
            "{}",
            String::from_utf8_lossy(bytes)
        );
    }
    // HTTP/2 CONNECT (no :path): refused too.
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    let mut block = vec![0x02, 0x07]; // :method CONNECT (literal, indexed name 2)
    block.extend(b"CONNECT");
    block.push(0x01);
    block.extend(hpack_str(b"up.test:443"));
    let mut out = H2_PREFACE.to_vec();
    out.extend(frame(HEADERS, END_HEADERS, 1, &block));
    s.write_all(&out).await.unwrap();
    let frames = read_stream(&mut s, 1, WAIT).await;
    assert!(
        !frames
            .iter()
            .any(|f| f.kind == HEADERS && f.stream == 1 && h2_status(f) == Some(200)),
        "{frames:?}"
    );
    assert!(up.requests().is_empty(), "{:?}", up.requests());
    assert!(up.raw().is_empty());
}

#[tokio::test]
async fn transfer_codings_other_than_chunked_get_501_and_a_bad_chunk_400() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(ONE_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    // nginx: 501 for a coding other than chunked.
    for te in [
        "gzip, chunked",
        "chunked, chunked",
        "identity, chunked",
        "deflate,chunked",
    ] {
        let req = format!(
            "POST /te HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let answer = exchange(gw_addr, req.as_bytes(), WAIT).await;
        assert_eq!(statuses(&answer), vec![501], "{te}");
        assert!(first_head(&answer).contains("connection: close"), "{te}");
    }
    assert!(up.requests().is_empty(), "{:?}", up.requests());

    // A malformed chunk is the client's fault (nginx: 400), not the upstream's (502).
    for body in [
        "5\r\nhello\r\nzz\r\nabc\r\n0\r\n\r\n",
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhel",
    ] {
        let req = format!(
            "POST /chunk HTTP/1.1\r\nHost: gw.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        );
        let answer = exchange_then_eof(gw_addr, req.as_bytes(), WAIT).await;
        assert_eq!(statuses(&answer).first(), Some(&400), "{body:?}");
    }
    // The upstream never got a complete request from them.
    assert!(
        up.requests().iter().all(|r| r.target() != "/chunk"),
        "{:?}",
        up.requests()
    );
}

#[tokio::test]
async fn an_unasked_switch_is_502() {
    let up = RawUpstream::start(Answer::Raw(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    ))
    .await;
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: agent
        match: {path_prefix: /agent}
        a2a: {url: "http://${UPSTREAM}"}
      - name: web
        match: {path_prefix: /}
        http: {url: "http://${UPSTREAM}"}
"#;
    let gw = gateway_for(yaml, &up).await;
    let gw_addr = addr(&gw, "main").await;
    // A plain request, an h2c upgrade (never forwarded), and a WebSocket upgrade answered
    // with a switch to another protocol.
    for req in [
        "GET /plain HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
        "GET /h2c HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, close\r\nUpgrade: h2c\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: gw.test\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    ] {
        let answer = exchange(gw_addr, req.as_bytes(), WAIT).await;
        assert_eq!(statuses(&answer).first(), Some(&502), "{req}");
    }
    // A2A forwards JSON-RPC; an agent's 101 is a JSON-RPC error with 502.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"message/send","params":{"message":{"role":"user","parts":[{"kind":"text","text":"hi"}],"messageId":"m1","kind":"message"}}}"#;
    let req = format!(
        "POST /agent HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = exchange(gw_addr, req.as_bytes(), WAIT).await;
    assert_eq!(statuses(&answer).first(), Some(&502));
    assert!(String::from_utf8_lossy(&answer).contains("\"jsonrpc\""));
}

#[tokio::test]
async fn a_length_beside_chunked_in_a_response_is_dropped() {
    let up = RawUpstream::start(Answer::Raw(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nhello world\r\n0\r\n\r\n",
    ))
    .await;
    let gw = gateway_for(ONE_ROUTE, &up).await;
    let answer = exchange(
        addr(&gw, "main").await,
        b"GET / HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    let head = first_head(&answer);
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(!head.contains("content-length: 5"), "{head}");
    // The whole body, framed once (chunked to this HTTP/1.1 client).
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("hello world"), "{text}");
}

#[tokio::test]
async fn connection_cannot_remove_what_the_gateway_sets() {
    let up = RawUpstream::start(Answer::Ok).await;
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: agent
        match: {path_prefix: /agent}
        policies:
          upstream_auth: {header: x-upstream-token, value: s3cret}
          headers: {request: {set: {x-team: ml}}}
        a2a: {url: "http://${UPSTREAM}"}
      - name: web
        match: {path_prefix: /}
        policies:
          upstream_auth: {header: x-upstream-token, value: s3cret}
          headers: {request: {set: {x-team: ml}}}
        http: {url: "http://${UPSTREAM}"}
"#;
    let gw = gateway_for(yaml, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let named = "Connection: close, x-upstream-token, x-team, x-forwarded-for, x-real-ip, x-client\r\n\
                 x-client: mine\r\n";
    let get = format!("GET /web HTTP/1.1\r\nHost: gw.test\r\n{named}\r\n");
    exchange(gw_addr, get.as_bytes(), WAIT).await;
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1"}}"#;
    // The A2A route also asks for a WebSocket upgrade: only http routes tunnel.
    let post = format!(
        "POST /agent HTTP/1.1\r\nHost: gw.test\r\n{named}Connection: upgrade\r\nUpgrade: websocket\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(gw_addr, post.as_bytes(), WAIT).await;
    let reqs = up.requests();
    let a2a = reqs.iter().find(|r| r.line.starts_with("POST")).unwrap();
    assert_eq!(a2a.get("upgrade"), None, "{a2a:?}");
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    for r in &reqs {
        assert_eq!(r.get("x-upstream-token"), Some("s3cret"), "{r:?}");
        assert_eq!(r.get("x-team"), Some("ml"), "{r:?}");
        assert_eq!(r.get("x-forwarded-for"), Some("127.0.0.1"), "{r:?}");
        assert_eq!(r.get("x-real-ip"), Some("127.0.0.1"), "{r:?}");
        // What the client named as its own hop-by-hop header is gone.
        assert_eq!(r.get("x-client"), None, "{r:?}");
        assert_eq!(r.get("connection"), None, "{r:?}");
    }
}

#[tokio::test]
async fn forwarding_headers_are_replaced_unless_a_trusted_proxy_sent_them() {
    let up = RawUpstream::start(Answer::Ok).await;
    let yaml = r#"
listeners:
  - name: edge
    bind: 127.0.0.1:0
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
  - name: behind-lb
    bind: 127.0.0.1:0
    trusted_proxies: {cidrs: [127.0.0.0/8, "10.0.0.0/8"]}
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
  - name: one-hop
    bind: 127.0.0.1:0
    trusted_proxies: {hops: 1}
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
  - name: other-net
    bind: 127.0.0.1:0
    trusted_proxies: {cidrs: ["192.0.2.0/24"]}
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
"#;
    let gw = gateway_for(yaml, &up).await;
    let spoof = "X-Forwarded-For: 6.6.6.6, 10.1.1.1\r\nX-Forwarded-Host: admin.example\r\n\
                 X-Forwarded-Proto: https\r\nForwarded: for=6.6.6.6;host=admin.example\r\n\
                 X-Real-IP: 6.6.6.6\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Prefix: /evil\r\n";
    for listener in ["edge", "behind-lb", "one-hop", "other-net"] {
        let req = format!(
            "GET /{listener} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n{spoof}\r\n"
        );
        exchange(addr(&gw, listener).await, req.as_bytes(), WAIT).await;
    }
    let reqs = up.requests();
    let of = |l: &str| {
        reqs.iter()
            .find(|r| r.target() == format!("/{l}"))
            .unwrap()
            .clone()
    };
    // Not a trusted peer (default, or not in the CIDRs): every forwarding header replaced.
    for l in ["edge", "other-net"] {
        let r = of(l);
        assert_eq!(r.get("x-forwarded-for"), Some("127.0.0.1"), "{l}");
        assert_eq!(r.get("x-real-ip"), Some("127.0.0.1"), "{l}");
        assert_eq!(r.get("x-forwarded-host"), Some("gw.test"), "{l}");
        assert_eq!(r.get("x-forwarded-proto"), Some("http"), "{l}");
        for gone in ["forwarded", "x-forwarded-port", "x-forwarded-prefix"] {
            assert_eq!(r.get(gone), None, "{l}: {gone}");
        }
    }
    // Trusted by CIDR (nginx set_real_ip_from + real_ip_recursive): the client is the first
    // untrusted address from the right; the proxy's headers are kept, the peer appended.
    let r = of("behind-lb");
    assert_eq!(
        r.get("x-forwarded-for"),
        Some("6.6.6.6, 10.1.1.1, 127.0.0.1")
    );
    assert_eq!(r.get("x-real-ip"), Some("6.6.6.6"));
    assert_eq!(r.get("x-forwarded-proto"), Some("https"));
    assert_eq!(r.get("x-forwarded-host"), Some("admin.example"));
    assert_eq!(r.get("forwarded"), Some("for=6.6.6.6;host=admin.example"));
    // Trusted by hop count (Envoy xff_num_trusted_hops: 1): the peer only, so the client is
    // the rightmost address it reported.
    let r = of("one-hop");
    assert_eq!(r.get("x-real-ip"), Some("10.1.1.1"));
    assert_eq!(
        r.get("x-forwarded-for"),
        Some("6.6.6.6, 10.1.1.1, 127.0.0.1")
    );
}

#[test]
fn upgrade_and_trusted_proxy_keys_are_validated() {
    let yaml = r#"
admin: {bind: "127.0.0.1:0"}
listeners:
  - name: main
    bind: 127.0.0.1:0
    trusted_proxies: {cidrs: ["10.0.0.0/33", "not-an-ip", "10.0.0.0/8"], hops: 1}
    routes:
      - name: web
        match: {path_prefix: /}
        http: {url: "http://127.0.0.1:1", upgrades: [websocket, h2c, "bad proto"]}
"#;
    let err = switchboard_gateway::config::load_str(yaml, "t.yaml", &|_| None)
        .unwrap_err()
        .to_string();
    for needle in [
        "listeners[0].trusted_proxies.cidrs[0]",
        "listeners[0].trusted_proxies.cidrs[1]",
        "listeners[0].routes[0].http.upgrades[1]: h2c is never forwarded",
        "listeners[0].routes[0].http.upgrades[2]",
    ] {
        assert!(err.contains(needle), "{needle} missing in:\n{err}");
    }
    assert!(!err.contains("cidrs[2]"), "{err}");
    assert!(!err.contains("upgrades[0]"), "{err}");
}

// ---- HTTP/1.1 request smuggling ----

/// Behind an open route `/` sits a protected `/admin` (API key required): every variant hides
/// `GET /admin/v{i}` where a parser that frames the body differently from the gateway would
/// see a second request. Whatever the gateway answers, the upstream must never receive a
/// request for `/admin/…`, and the strict parser of the raw upstream must frame everything
/// the gateway sent it without ambiguity. `{S}` is the hidden request, `{SHEX}` its length in
/// hex, `{BLEN}` the length of the body as written.
const SMUGGLING: &[(&str, &str, &str)] = &[
    // (name, header lines after Host, body)
    (
        "cl_te",
        "Content-Length: {BLEN}\r\nTransfer-Encoding: chunked",
        "0\r\n\r\n{S}",
    ),
    (
        "te_cl",
        "Transfer-Encoding: chunked\r\nContent-Length: 4",
        "{SHEX}\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "cl_before_te",
        "Content-Length: 4\r\nTransfer-Encoding: chunked",
        "{SHEX}\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "te_obs_fold",
        "Transfer-Encoding:\r\n chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_obs_fold_tab",
        "Transfer-Encoding: identity\r\n\tchunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_space_before_colon",
        "Transfer-Encoding : chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_tab_value",
        "Transfer-Encoding:\tchunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_vertical_tab",
        "Transfer-Encoding:\x0bchunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_trailing_space",
        "Transfer-Encoding: chunked \r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_xchunked",
        "Transfer-Encoding: xchunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_chunkedx",
        "Transfer-Encoding: chunkedx\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_upper",
        "Transfer-Encoding: CHUNKED\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_quoted",
        "Transfer-Encoding: \"chunked\"\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_chunked_identity",
        "Transfer-Encoding: chunked, identity\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_identity_chunked",
        "Transfer-Encoding: identity, chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_chunked_chunked",
        "Transfer-Encoding: chunked, chunked",
        "{SHEX}\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "te_gzip_chunked",
        "Transfer-Encoding: gzip, chunked",
        "{SHEX}\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "te_two_lines",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_two_lines_rev",
        "Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_empty",
        "Transfer-Encoding: \r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_leading_comma",
        "Transfer-Encoding: ,chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_underscore",
        "Transfer_Encoding: chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_nul",
        "Transfer-Encoding: chunked\0\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_cr_in_value",
        "X-Pad: a\rTransfer-Encoding: chunked\r\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    (
        "te_lf_line_end",
        "Transfer-Encoding: chunked\nContent-Length: {BLEN}",
        "0\r\n\r\n{S}",
    ),
    ("cl_plus", "Content-Length: +{BLEN}", "{S}"),
    ("cl_minus", "Content-Length: -1", "{S}"),
    ("cl_space_inside", "Content-Length: 1 0", "{S}"),
    (
        "cl_two_different",
        "Content-Length: {BLEN}\r\nContent-Length: 0",
        "{S}",
    ),
    (
        "cl_two_different_rev",
        "Content-Length: 0\r\nContent-Length: {BLEN}",
        "{S}",
    ),
    (
        "cl_two_same",
        "Content-Length: {BLEN}\r\nContent-Length: {BLEN}",
        "{S}",
    ),
    ("cl_list", "Content-Length: {BLEN}, 0", "{S}"),
    ("cl_hex", "Content-Length: 0x10", "{S}"),
    (
        "cl_overflow",
        "Content-Length: 99999999999999999999999",
        "{S}",
    ),
    ("cl_leading_zeros", "Content-Length: 000{BLEN}", "{S}"),
    ("cl_space_before_colon", "Content-Length : {BLEN}", "{S}"),
    ("cl_zero_then_request", "Content-Length: 0", "{S}"),
    ("cl_short", "Content-Length: 5", "hello{S}"),
    (
        "chunk_size_plus",
        "Transfer-Encoding: chunked",
        "+5\r\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_size_0x",
        "Transfer-Encoding: chunked",
        "0x5\r\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_size_negative",
        "Transfer-Encoding: chunked",
        "-1\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "chunk_size_overflow",
        "Transfer-Encoding: chunked",
        "10000000000000000{SHEX}\r\n{S}\r\n0\r\n\r\n",
    ),
    (
        "chunk_size_leading_space",
        "Transfer-Encoding: chunked",
        " 5\r\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_size_trailing_space",
        "Transfer-Encoding: chunked",
        "5 \r\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_ext_bare_lf",
        "Transfer-Encoding: chunked",
        "5;a=b\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_data_bare_lf",
        "Transfer-Encoding: chunked",
        "5\r\nhello\n0\r\n\r\n{S}",
    ),
    (
        "chunk_data_longer",
        "Transfer-Encoding: chunked",
        "3\r\nhello\r\n0\r\n\r\n{S}",
    ),
    (
        "chunk_missing_crlf",
        "Transfer-Encoding: chunked",
        "5\r\nhello0\r\n\r\n{S}",
    ),
    (
        "chunk_trailer_fields",
        "Transfer-Encoding: chunked",
        "0\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n{S}",
    ),
    (
        "chunk_last_without_crlf",
        "Transfer-Encoding: chunked",
        "0\r\n{S}",
    ),
    (
        "expect_continue",
        "Expect: 100-continue\r\nContent-Length: {BLEN}",
        "{S}",
    ),
    (
        "h2c_upgrade_with_body",
        "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 0",
        "{S}",
    ),
    (
        "websocket_refused_then_bytes",
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0",
        "{S}",
    ),
];

#[tokio::test]
async fn smuggling_variants_never_reach_the_upstream_as_requests() {
    let up = RawUpstream::start(Answer::Ok).await;
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes:
      - name: admin
        match: {path_prefix: /admin}
        policies:
          authn:
            api_keys: [{name: ops, sha256: "0000000000000000000000000000000000000000000000000000000000000000"}]
        http: {url: "http://${UPSTREAM}"}
      - name: open
        match: {path_prefix: /}
        http: {url: "http://${UPSTREAM}"}
"#;
    let gw = gateway_for(yaml, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let runs = SMUGGLING
        .iter()
        .enumerate()
        .map(|(i, (name, headers, body))| {
            let hidden = format!("GET /admin/v{i} HTTP/1.1\r\nHost: gw.test\r\n\r\n");
            let body = body
                .replace("{SHEX}", &format!("{:x}", hidden.len()))
                .replace("{S}", &hidden);
            let headers = headers.replace("{BLEN}", &body.len().to_string());
            // A last request closes the connection once everything before it was answered.
            let bytes = format!(
                "POST /open/v{i} HTTP/1.1\r\nHost: gw.test\r\n{headers}\r\n\r\n{body}\
             GET /sentinel/v{i} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n"
            );
            async move {
                let answer = exchange(gw_addr, bytes.as_bytes(), WAIT).await;
                (*name, statuses(&answer))
            }
        });
    let answers = futures::future::join_all(runs).await;
    let reqs = up.requests();
    let smuggled: Vec<_> = reqs
        .iter()
        .filter(|r| r.target().starts_with("/admin"))
        .map(|r| {
            let i: usize = r.target()["/admin/v".len()..].parse().unwrap();
            SMUGGLING[i].0
        })
        .collect();
    assert!(smuggled.is_empty(), "smuggled past /admin: {smuggled:?}");
    assert!(
        up.errors().is_empty(),
        "ambiguous framing upstream: {:?}",
        up.errors()
    );
    // What the gateway answered, for comparison with nginx (printed with --nocapture).
    for (name, statuses) in &answers {
        eprintln!("{name:28} {statuses:?}");
    }
    // Refused outright: codings ending in `chunked` other than one plain `chunked` (nginx:
    // 501). Those not ending in `chunked` get 400 from the HTTP/1.1 parser (RFC 9112 §6.3).
    for (name, statuses) in &answers {
        if [
            "te_chunked_chunked",
            "te_gzip_chunked",
            "te_identity_chunked",
            "te_two_lines_rev",
            "te_leading_comma",
        ]
        .contains(name)
        {
            assert_eq!(statuses.first(), Some(&501), "{name}");
        }
    }
    // The answers the README's framing table states (nginx 1.22's in comments).
    let expect: &[(&str, u16)] = &[
        ("te_chunked_identity", 400), // nginx 501
        ("te_xchunked", 400),         // nginx 501
        ("te_two_lines", 400),        // nginx 400
        ("cl_two_different", 400),    // nginx 400
        ("cl_two_different_rev", 400),
        ("cl_plus", 400),  // nginx 400
        ("cl_minus", 400), // nginx 400
        ("cl_hex", 400),
        ("cl_list", 400),            // nginx 400
        ("cl_te", 200),              // nginx 400; RFC 9112 §6.3 lets TE win
        ("chunk_size_plus", 400),    // nginx 400
        ("chunk_missing_crlf", 400), // nginx 400
        ("chunk_data_longer", 400),
    ];
    for (name, status) in expect {
        let got = answers.iter().find(|(n, _)| n == name).unwrap();
        assert_eq!(got.1.first(), Some(status), "{name}");
    }
    // Both framings: answered by the chunked one, then the connection is closed, so the
    // hidden request is never read (nothing after the first answer).
    let cl_te = answers.iter().find(|(n, _)| *n == "cl_te").unwrap();
    assert_eq!(cl_te.1, vec![200]);
    let te_cl = &up
        .requests()
        .into_iter()
        .find(|r| r.target() == format!("/open/v{}", 1))
        .unwrap();
    assert_eq!(te_cl.get("content-length"), None, "{te_cl:?}");
    assert!(te_cl.body.starts_with(b"GET /admin/v1"), "{te_cl:?}");

    // And an honest request still works after all that.
    let answer = exchange(
        gw_addr,
        b"GET /after HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\n\r\n",
        WAIT,
    )
    .await;
    assert_eq!(statuses(&answer), vec![200]);
}

// ---- HTTP/2 abuse (h2c with prior knowledge, frames written by hand) ----
// Regression tests: all of these held before the forwarding stage existed.

const PLAIN_ROUTE: &str = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
"#;

/// Writes `bytes` until done or the gateway stops reading; whether it got through.
async fn write_until_refused(s: &mut TcpStream, bytes: &[u8]) -> bool {
    for piece in bytes.chunks(64 * 1024) {
        if s.write_all(piece).await.is_err() {
            return false;
        }
    }
    true
}

/// A plain request on a new h2c connection still gets through the gateway.
async fn still_serves_h2(gw_addr: std::net::SocketAddr, up: &RawUpstream, path: &str) {
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .no_proxy()
        .build()
        .unwrap();
    let resp = c
        .get(format!("http://{gw_addr}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(up.requests().iter().any(|r| r.target() == path));
}

#[tokio::test]
async fn h2_rapid_reset_is_cut_off() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(PLAIN_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    // CVE-2023-44487: open a stream and cancel it at once, thousands of times.
    const STREAMS: u32 = 5000;
    let mut out = H2_PREFACE.to_vec();
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        out.extend(frame(
            HEADERS,
            END_HEADERS | END_STREAM,
            id,
            &request_block(false, "/rr", &[]),
        ));
        out.extend(frame(RST_STREAM, 0, id, &8u32.to_be_bytes())); // CANCEL
    }
    write_until_refused(&mut s, &out).await;
    let frames = read_frames(&mut s, WAIT).await;
    let goaway = frames.iter().find(|f| f.kind == GOAWAY);
    // hyper/h2 answer a flood of resets with GOAWAY ENHANCE_YOUR_CALM (0xb) (nginx 1.25.3+
    // likewise limits it).
    let goaway = goaway.expect("GOAWAY");
    let code = u32::from_be_bytes(goaway.payload[4..8].try_into().unwrap());
    assert_eq!(code, 0xb, "{goaway:?}");
    let forwarded = up.requests().len() + up.aborted().len();
    assert!(
        forwarded < STREAMS as usize / 10,
        "{forwarded} of {STREAMS} reset streams reached the upstream"
    );
    still_serves_h2(gw_addr, &up, "/after-rapid-reset").await;
}

#[tokio::test]
async fn h2_continuation_flood_is_cut_off() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(PLAIN_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    // HEADERS without END_HEADERS, then CONTINUATION frames that never end: 16 MiB of
    // distinct header fields (CVE-2024-27316 class).
    let mut out = H2_PREFACE.to_vec();
    out.extend(frame(HEADERS, 0, 1, &request_block(false, "/flood", &[])));
    let mut n = 0u32;
    while out.len() < 16 * 1024 * 1024 {
        let mut block = Vec::new();
        while block.len() < 16_000 {
            block.push(0x00);
            block.extend(hpack_str(format!("x-flood-{n}").as_bytes()));
            block.extend(hpack_str(&[b'a'; 100]));
            n += 1;
        }
        out.extend(frame(CONTINUATION, 0, 1, &block));
    }
    let all_written = write_until_refused(&mut s, &out).await;
    let frames = read_frames(&mut s, WAIT).await;
    let refused = !all_written
        || frames.iter().any(|f| {
            f.kind == GOAWAY || (f.kind == RST_STREAM && f.stream == 1) || h2_status(f) == Some(431)
        });
    assert!(refused, "the flood was taken in: {frames:?}");
    assert!(
        up.raw().is_empty(),
        "the upstream got bytes from a header flood"
    );
    still_serves_h2(gw_addr, &up, "/after-flood").await;
}

#[tokio::test]
async fn h2_hpack_bomb_is_refused() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(PLAIN_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    // One 4 000-byte header enters the dynamic table, then 15 000 one-byte references to it:
    // a 16 KB frame that decodes to ~60 MB of headers.
    let mut block = request_block(false, "/bomb", &[]);
    block.push(0x40); // literal with incremental indexing, new name
    block.extend(hpack_str(b"x-bomb"));
    block.extend(hpack_str(&[b'a'; 4000]));
    block.extend(std::iter::repeat_n(0x80 | 62, 15_000)); // indexed: dynamic entry 62
    let mut out = H2_PREFACE.to_vec();
    out.extend(frame(HEADERS, END_HEADERS | END_STREAM, 1, &block));
    write_until_refused(&mut s, &out).await;
    let frames = read_stream(&mut s, 1, WAIT).await;
    assert!(
        !frames
            .iter()
            .any(|f| f.kind == HEADERS && f.stream == 1 && h2_status(f) == Some(200)),
        "{frames:?}"
    );
    assert!(
        frames.iter().any(|f| f.kind == GOAWAY
            || (f.kind == RST_STREAM && f.stream == 1)
            || (f.kind == HEADERS && f.stream == 1)),
        "no refusal: {frames:?}"
    );
    assert!(up.raw().is_empty(), "the upstream got the bomb");
    still_serves_h2(gw_addr, &up, "/after-bomb").await;
}

#[tokio::test]
async fn h2_content_length_lies_never_reach_the_upstream_whole() {
    let up = RawUpstream::start(Answer::Ok).await;
    let gw = gateway_for(PLAIN_ROUTE, &up).await;
    let gw_addr = addr(&gw, "main").await;
    // (path, declared content-length, DATA actually sent)
    let lies: [(&str, &str, &[u8]); 3] = [
        ("/longer", "5", b"hello, and a hidden tail"),
        ("/shorter", "100", b"short"),
        ("/zero", "0", b"GET /admin HTTP/1.1\r\nHost: x\r\n\r\n"),
    ];
    for (i, (path, len, data)) in lies.iter().enumerate() {
        let mut s = TcpStream::connect(gw_addr).await.unwrap();
        let mut out = H2_PREFACE.to_vec();
        out.extend(frame(
            HEADERS,
            END_HEADERS,
            1,
            &request_block(true, path, &[("content-length", len)]),
        ));
        out.extend(frame(DATA, END_STREAM, 1, data));
        write_until_refused(&mut s, &out).await;
        let frames = read_stream(&mut s, 1, WAIT).await;
        // h2 refuses the stream (RST_STREAM PROTOCOL_ERROR) or the gateway answers an error.
        assert!(
            !frames
                .iter()
                .any(|f| f.kind == HEADERS && f.stream == 1 && h2_status(f) == Some(200)),
            "lie {i} ({path}) was served: {frames:?}"
        );
    }
    // The upstream never framed a complete request with a body other than declared.
    for r in up.requests() {
        let declared: usize = r.get("content-length").unwrap_or("0").parse().unwrap();
        assert_eq!(r.body.len(), declared, "{r:?}");
        assert!(!r.target().starts_with("/admin"), "{r:?}");
    }
    assert!(up.errors().is_empty(), "{:?}", up.errors());
    still_serves_h2(gw_addr, &up, "/after-lies").await;
}

#[tokio::test]
async fn the_access_log_names_the_client_a_trusted_proxy_reported() {
    let up = RawUpstream::start(Answer::Ok).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gw.yaml");
    std::fs::write(
        &config,
        format!(
            r#"
admin: {{bind: "127.0.0.1:0"}}
listeners:
  - name: edge
    bind: 127.0.0.1:0
    routes: [{{name: web, match: {{path_prefix: /}}, http: {{url: "http://{0}"}}}}]
  - name: behind-lb
    bind: 127.0.0.1:0
    trusted_proxies: {{cidrs: [127.0.0.1]}}
    routes: [{{name: web, match: {{path_prefix: /}}, http: {{url: "http://{0}"}}}}]
"#,
            up.addr
        ),
    )
    .unwrap();
    let mut proc = common::spawn_switchboard(&config).await;
    for l in ["edge", "behind-lb"] {
        let req = format!(
            "GET /{l} HTTP/1.1\r\nHost: gw.test\r\nConnection: close\r\nX-Forwarded-For: 198.51.100.7\r\n\r\n"
        );
        let answer = exchange(proc.listeners[l], req.as_bytes(), WAIT).await;
        assert_eq!(statuses(&answer), vec![200]);
    }
    let mut clients = std::collections::HashMap::new();
    tokio::time::timeout(WAIT, async {
        while clients.len() < 2 {
            let v = proc.logs.next().await.expect("log line");
            if v["target"] == "access" {
                clients.insert(
                    v["listener"].as_str().unwrap().to_string(),
                    v["client"].as_str().unwrap().to_string(),
                );
            }
        }
    })
    .await
    .expect("two access lines");
    assert_eq!(clients["edge"], "127.0.0.1");
    assert_eq!(clients["behind-lb"], "198.51.100.7");
}

#[tokio::test]
async fn h2_slowloris_is_closed_after_the_header_timeout() {
    let up = RawUpstream::start(Answer::Ok).await;
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {header_read_timeout: 500ms, idle_timeout: 30s}
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
"#;
    let gw = gateway_for(yaml, &up).await;
    let gw_addr = addr(&gw, "main").await;
    let mut s = TcpStream::connect(gw_addr).await.unwrap();
    // The preface, then a HEADERS frame one byte every 100 ms: bytes keep flowing, so the idle
    // timeout never fires, and hyper bounds the time to a head on HTTP/1.1 only.
    s.write_all(H2_PREFACE).await.unwrap();
    // A head longer than what is sent, so it never completes.
    let pad = "p".repeat(200);
    let headers = frame(
        HEADERS,
        END_HEADERS,
        1,
        &request_block(false, "/slow", &[("x-pad", pad.as_str())]),
    );
    let mut closed = false;
    for b in headers.iter().take(80) {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut buf = [0u8; 4096];
        // Frames the gateway sent (SETTINGS) are read and dropped; EOF or a reset is the close.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), s.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "a trickling HTTP/2 client kept its connection for 8 s"
    );
    assert!(up.requests().is_empty(), "nothing reached the upstream");
    still_serves_h2(gw_addr, &up, "/after-slowloris").await;
}

// Paused clock: `exchange` waits out WAIT on the kept-alive connection; with everything
// in-process and serving on this runtime (`gateway_here`) that wait is exact and takes no real
// time.
#[tokio::test(start_paused = true)]
async fn a_refused_request_body_closes_the_connection_and_says_so() {
    let up = RawUpstream::start(Answer::Ok).await;
    let yaml = r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {max_body_bytes: 1024}
    routes: [{name: web, match: {path_prefix: /}, http: {url: "http://${UPSTREAM}"}}]
"#;
    let gw = common::gateway_here(yaml, up.addr).await;
    let gw_addr = addr(&gw, "main").await;
    // A declared body over the limit is refused unread; a client that reused the connection
    // would lose its next request, so the 413 carries `Connection: close`.
    let got = exchange(
        gw_addr,
        b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nxxxx",
        WAIT,
    )
    .await;
    let head = first_head(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 413"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    // A refusal without a body keeps the connection.
    let got = exchange(gw_addr, b"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", WAIT).await;
    let head = first_head(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 400"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    assert!(up.requests().is_empty());
}
