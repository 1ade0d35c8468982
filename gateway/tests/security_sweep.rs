//! A bad-input sweep against a running gateway: oversized bodies and headers, deep JSON,
//! invalid UTF-8, malformed requests, a truncated upstream SSE stream, slow-loris and idle
//! connections. Each gets its status (or a closed connection), and meanwhile a well-behaved
//! client keeps being served.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An upstream that answers any request with an SSE head and half an event, then hangs up.
async fn truncating_sse_upstream() -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                          transfer-encoding: chunked\r\n\r\n\
                          1c\r\nevent: message\ndata: {\"partial\r\n",
                    )
                    .await;
                // Mid-event, mid-chunk: gone.
            });
        }
    });
    addr
}

fn config(truncating: std::net::SocketAddr) -> String {
    format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{max_body_bytes: 65536, max_header_bytes: 4096, header_read_timeout: 500ms}}
    routes:
      - name: truncated
        match: {{path_prefix: /truncated}}
        http: {{url: "http://{truncating}"}}
      - name: secure
        match: {{path_prefix: /secure}}
        policies:
          authn:
            api_keys: [{{name: k, sha256: "{}"}}]
        http: {{url: "http://${{UPSTREAM}}/echo"}}
      - name: all
        match: {{path_prefix: /}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#,
        switchboard_gateway::auth::api_key::hash_key(b"good-key")
    )
}

/// Sends raw bytes on a fresh connection and returns the status code of the answer, or
/// `None` when the gateway closed the connection without one.
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let head = String::from_utf8_lossy(&buf);
    head.strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
}

/// Whether the gateway closes `s` within `within` (EOF or reset), draining any answer.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut b = [0u8; 1024];
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_sweep_each_gets_its_status_and_the_gateway_keeps_serving() {
    let up = upstream().await;
    let trunc = truncating_sse_upstream().await;
    let gw = gateway(&config(trunc), up).await;
    let addr = gw.listener_addr("main").await.unwrap();
    let base = format!("http://{addr}");

    // A well-behaved client, served throughout.
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let good = {
        let (ok, failed, stop, base) = (ok.clone(), failed.clone(), stop.clone(), base.clone());
        tokio::spawn(async move {
            let c = client();
            while !stop.is_cancelled() {
                match c.get(format!("{base}/echo/good")).send().await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    // Slow-loris: connections that dribble a header byte by byte, opened first so they are
    // in progress during the whole sweep.
    let mut loris = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        loris.push(tokio::spawn(async move {
            for _ in 0..50 {
                if s.write_all(b"X").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            closed_within(&mut s, Duration::from_secs(5)).await
        }));
    }
    // Idle: connect, send nothing.
    let mut idle = TcpStream::connect(addr).await.unwrap();

    let c = client();
    // Oversized body, declared.
    let resp = c
        .post(format!("{base}/echo"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "declared body"
    );
    // Oversized body, chunked (no length up front).
    let chunks = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 1000]))),
    );
    let resp = c
        .post(format!("{base}/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match resp {
        Ok(r) => assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "chunked body"),
        // The gateway may answer and close before the client finishes sending.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e}"),
    }
    // Oversized headers: over the limit → 431; far over hyper's buffer → 431 or closed.
    let resp = c
        .get(format!("{base}/echo"))
        .header("x-big", "b".repeat(8_000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let mut huge = b"GET /echo HTTP/1.1\r\nHost: x\r\nx-huge: ".to_vec();
    huge.extend(std::iter::repeat_n(b'h', 200_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let status = raw(addr, &huge).await;
    assert!(matches!(status, None | Some(431)), "{status:?}");
    // Deep JSON: an http route streams it through untouched (the gateway does not parse it);
    // routes that parse JSON refuse it while reading (`backend::read_json_body`; see
    // security_props and mcp.rs).
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let resp = c
        .post(format!("{base}/echo"))
        .body(deep)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "deep JSON passes through");
    // Invalid UTF-8 in the request line, and garbage instead of HTTP.
    assert_eq!(
        raw(addr, b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n").await,
        Some(400)
    );
    assert_eq!(raw(addr, b"\x00\x01GARBAGE\r\n\r\n").await, Some(400));
    // Invalid UTF-8 in a credential header: refused as an invalid token.
    assert_eq!(
        raw(
            addr,
            b"GET /secure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n"
        )
        .await,
        Some(401)
    );
    assert_eq!(
        raw(
            addr,
            b"GET /secure HTTP/1.1\r\nHost: x\r\nx-api-key: \xffgood-key\r\n\r\n"
        )
        .await,
        Some(401)
    );
    assert_eq!(
        raw(
            addr,
            b"GET /secure HTTP/1.1\r\nHost: x\r\nx-api-key: good-key\r\nConnection: close\r\n\r\n"
        )
        .await,
        Some(200)
    );
    // A truncated upstream SSE stream: the client gets what arrived, then the stream ends.
    let resp = c.get(format!("{base}/truncated")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut got = Vec::new();
    let mut stream = resp.bytes_stream();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => got.extend_from_slice(&b),
                Err(_) => break,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the truncated stream ended");
    assert!(String::from_utf8_lossy(&got).contains("event: message"));

    // Slow-loris and idle connections are cut by header_read_timeout (500ms).
    for l in loris {
        assert!(l.await.unwrap(), "a slow-loris connection was not closed");
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)).await,
        "an idle connection was not closed"
    );

    stop.cancel();
    good.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "the good client was refused"
    );
    assert!(ok.load(Ordering::SeqCst) > 5, "the good client was served");
    // Still up and serving.
    assert_eq!(
        c.get(format!("{base}/echo")).send().await.unwrap().status(),
        StatusCode::OK
    );
}

// Paused clock: the gateway's connection timers are tokio timers and everything
// is in-process, serving on this runtime (`gateway_here`), so waiting out a timeout is exact and
// takes no real time.
#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connection_is_closed() {
    let up = upstream().await;
    let gw = gateway_here(&config(up), up).await;
    let addr = gw.listener_addr("main").await.unwrap();
    // One complete request, then silence on the kept-alive connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "an idle keep-alive connection stays open"
    );
}

// Paused clock, as above. The header timeout (500ms) holds for the head of each request on a
// kept-alive connection, to the deadline: the connection is open just before it and closed just
// after it, without an answer. (The second request comes 100ms after the first, so the
// deadline for the third head falls between the watchdog's regular checks, every 250ms from the
// first.)
#[tokio::test(start_paused = true)]
async fn a_kept_alive_connection_dribbling_its_next_head_is_closed_at_the_header_timeout() {
    let up = upstream().await;
    let gw = gateway_here(&config(up), up).await;
    let addr = gw.listener_addr("main").await.unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut s, "/echo").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    get_ok(&mut s, "/echo").await;
    // Part of the next head, and then nothing.
    s.write_all(b"GET /echo HTTP/1.1\r\n").await.unwrap();
    assert!(
        !closed_within(&mut s, Duration::from_millis(450)).await,
        "closed before the header timeout"
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_millis(100), s.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(_)) | Ok(Err(_))),
        "still open 50ms after the header timeout"
    );
    assert!(
        rest.is_empty(),
        "answered: {}",
        String::from_utf8_lossy(&rest)
    );
}

// Paused clock, as above. A head's deadline ends when the head is in: an answer that takes
// longer than the header timeout (500ms) is not cut, and requests that each come within it keep
// a connection open for as long as they come.
#[tokio::test(start_paused = true)]
async fn the_header_timeout_ends_with_the_head() {
    let up = upstream().await;
    let gw = gateway_here(&config(up), up).await;
    let addr = gw.listener_addr("main").await.unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    get_ok(&mut s, "/echo").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    get_ok(&mut s, "/slow?ms=1000").await;
    // Six more 300ms apart: 1.8s more on the same connection.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        get_ok(&mut s, "/echo").await;
    }
}

/// A listener with these `limits` and one `http` route to the upstream.
fn with_limits(limits: &str) -> String {
    format!(
        r#"
listeners:
  - name: main
    bind: 127.0.0.1:0
    limits: {{{limits}}}
    routes:
      - name: all
        match: {{path_prefix: /}}
        http: {{url: "http://${{UPSTREAM}}"}}
"#
    )
}

/// Sends `GET path` on a kept-alive connection and checks that a 200 comes back (the head and a
/// short body, in one read).
async fn get_ok(s: &mut TcpStream, path: &str) {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 200"), "{path}: {head}");
}

// Paused clock, as above. The idle timeout (1s here) counts from a connection's last bytes either
// way: a request body that trickles in for 3s, a byte every 500ms, is read to its end, and a
// connection that then moves nothing is closed after the timeout and within two of the
// watchdog's checks (every 250ms), never before it.
#[tokio::test(start_paused = true)]
async fn the_idle_timeout_counts_from_the_last_bytes() {
    let up = upstream().await;
    let gw = gateway_here(
        &with_limits("header_read_timeout: 30s, idle_timeout: 1s"),
        up,
    )
    .await;
    let addr = gw.listener_addr("main").await.unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n")
        .await
        .unwrap();
    for b in b"abcdef" {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(&[*b]).await.unwrap();
    }
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"body_bytes\":6"), "{answer}");
    assert!(
        !closed_within(&mut s, Duration::from_millis(950)).await,
        "closed before the idle timeout"
    );
    assert!(
        closed_within(&mut s, Duration::from_millis(600)).await,
        "still open 1.55s after its last bytes"
    );
}

// Real time: `gateway` serves on its own threads, whose clocks a paused test clock does not
// drive.
#[tokio::test]
async fn idle_timeout_closes_quiet_connections_but_lets_requests_finish() {
    let up = upstream().await;
    let gw = gateway(
        &with_limits("header_read_timeout: 30s, idle_timeout: 300ms"),
        up,
    )
    .await;
    let addr = gw.listener_addr("main").await.unwrap();

    // A request whose upstream is silent for longer than idle_timeout still completes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /slow?ms=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Then the quiet keep-alive connection is closed long before header_read_timeout (30s).
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);

    // HTTP/2 (h2c): the idle connection is closed too, with GOAWAY; a new one works.
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let open = || metric(&gw, r#"switchboard_open_connections{listener="main"}"#);
    for _ in 0..2 {
        let r = c.get(format!("http://{addr}/echo")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(open().await, Some(1.0));
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            while open().await != Some(0.0) {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(closed.is_ok(), "the idle h2 connection stayed open");
    }
}
