//! The per-thread HTTP/1.1 pool against a real hyper server on a loopback socket: what it
//! sends, when it reuses a connection, when it opens or closes one.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use switchboard_core::h1pool::{H1Pool, H1Target, PoolOptions, SendError};
use tokio::sync::mpsc;

/// What the server saw: connections accepted, connections ended, and each request's target,
/// `Host` and connection number.
struct Server {
    addr: std::net::SocketAddr,
    accepted: Arc<AtomicUsize>,
    ended: Arc<AtomicUsize>,
    seen: mpsc::UnboundedReceiver<(String, String, usize)>,
    /// A request whose body is `held` is answered once this is notified.
    release: Arc<tokio::sync::Notify>,
}

async fn server() -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (tx, seen) = mpsc::unbounded_channel();
    let release = Arc::new(tokio::sync::Notify::new());
    let (a, e, r) = (accepted.clone(), ended.clone(), release.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let n = a.fetch_add(1, Ordering::SeqCst) + 1;
            let tx = tx.clone();
            let e = e.clone();
            let r = r.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let host = req
                        .headers()
                        .get(http::header::HOST)
                        .map(|h| h.to_str().unwrap().to_owned())
                        .unwrap_or_default();
                    let _ = tx.send((req.uri().to_string(), host, n));
                    let r = r.clone();
                    async move {
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        if body == "held" {
                            r.notified().await;
                        }
                        Ok::<_, Infallible>(Response::new(Full::new(body)))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                e.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    Server {
        addr,
        accepted,
        ended,
        seen,
        release,
    }
}

fn options(idle_timeout: Duration, max_per_upstream: usize) -> PoolOptions {
    PoolOptions {
        idle_timeout,
        max_per_upstream,
        ..PoolOptions::like_reqwest(Some(Duration::from_secs(10)))
    }
}

async fn post(pool: &H1Pool<Full<Bytes>>, target: &H1Target, body: &'static str) -> Bytes {
    let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
    *req.method_mut() = http::Method::POST;
    target.prepare(&mut req);
    let resp = pool.send(&target.authority, req).await.unwrap();
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// Waits (bounded) until `counter` reaches `n`: the server's side of a close comes a moment
/// after the client's.
async fn reaches(counter: &AtomicUsize, n: usize) -> bool {
    for _ in 0..500 {
        if counter.load(Ordering::SeqCst) >= n {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "current_thread")]
async fn a_thread_reuses_its_connection_and_sends_origin_form_with_host() {
    let mut s = server().await;
    let pool = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{}/mcp?x=1", s.addr).parse().unwrap()).unwrap();
    for body in ["one", "two", "three"] {
        assert_eq!(post(&pool, &target, body).await, body);
    }
    assert_eq!(
        s.accepted.load(Ordering::SeqCst),
        1,
        "one connection for three calls"
    );
    for _ in 0..3 {
        let (uri, host, conn) = s.seen.recv().await.unwrap();
        assert_eq!(uri, "/mcp?x=1");
        assert_eq!(host, s.addr.to_string());
        assert_eq!(conn, 1);
    }
    assert_eq!(s.ended.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "current_thread")]
async fn a_busy_connection_is_not_shared_and_the_bound_is_kept() {
    let mut s = server().await;
    let pool = H1Pool::new(options(Duration::from_secs(90), 1));
    let target = H1Target::new(&format!("http://{}/", s.addr).parse().unwrap()).unwrap();
    // The first call's answer is held back: its connection stays busy.
    let held = {
        let (pool, target) = (pool.clone(), target.clone());
        tokio::spawn(async move { post(&pool, &target, "held").await })
    };
    // Once the server has it, its connection is in the pool (busy).
    let (_, _, conn) = s.seen.recv().await.unwrap();
    assert_eq!(conn, 1);
    assert_eq!(post(&pool, &target, "second").await, "second");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    // The second connection was over the bound of one: closed after its response.
    assert!(
        reaches(&s.ended, 1).await,
        "the connection over the bound is closed"
    );
    s.release.notify_one();
    assert_eq!(held.await.unwrap(), "held");
    // The first is ready again and serves the next call.
    assert_eq!(post(&pool, &target, "third").await, "third");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
}

/// A server that answers each request on a connection with `reply` (the request's head and
/// its `content-length` body read first), then closes the connection when `close` is set, or
/// reads the next. Counts connections accepted and ended.
async fn raw_server(
    reply: &'static [u8],
    close: bool,
) -> (std::net::SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (a, e) = (accepted.clone(), ended.clone());
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            let e = e.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                'requests: loop {
                    // One request: its head, then as many bytes as it declares.
                    let need = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break end + 4 + len;
                        }
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break 'requests,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    while buf.len() < need {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break 'requests,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..need);
                    stream.write_all(reply).await.unwrap();
                    if close {
                        break;
                    }
                }
                drop(stream);
                e.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, accepted, ended)
}

/// A pool and target for a [`raw_server`], with its counts of connections accepted and ended.
async fn raw_upstream(
    reply: &'static [u8],
    close: bool,
) -> (
    H1Pool<Full<Bytes>>,
    H1Target,
    Arc<AtomicUsize>,
    Arc<AtomicUsize>,
) {
    let (addr, accepted, ended) = raw_server(reply, close).await;
    let pool = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{addr}/").parse().unwrap()).unwrap();
    (pool, target, accepted, ended)
}

#[tokio::test(flavor = "current_thread")]
async fn a_request_on_a_connection_the_upstream_closed_while_idle_goes_on_a_new_one() {
    // Keep-alive answers, after each of which the upstream closes without saying so.
    let (pool, target, accepted, ended) =
        raw_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", true).await;
    assert_eq!(post(&pool, &target, "one").await, "ok");
    assert!(reaches(&ended, 1).await);
    // The close reaches this side: the connection is dropped from the pool, or the request
    // it would have taken is sent again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(post(&pool, &target, "two").await, "ok");
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_response_dropped_before_its_end_closes_its_connection() {
    // 5 of the 100 bytes announced; the rest never comes.
    let (pool, target, accepted, ended) = raw_upstream(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nfirst",
        false,
    )
    .await;
    for n in 1..=2 {
        let mut req = Request::new(Full::new(Bytes::from_static(b"x")));
        target.prepare(&mut req);
        let mut body = pool.send(&target.authority, req).await.unwrap().into_body();
        let frame = body.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "first");
        drop(body);
        assert!(reaches(&ended, n).await, "closed when the body is dropped");
        assert_eq!(accepted.load(Ordering::SeqCst), n);
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_response_read_off_the_socket_returns_its_connection_unread() {
    let s = server().await;
    let pool = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{}/", s.addr).parse().unwrap()).unwrap();
    // An empty body (`content-length: 0`) is never polled: dropping it is its end. A short
    // one came with its head, so hyper has read it whole (a retried error answer is dropped
    // so).
    for body in ["", "", "unread", "unread"] {
        let mut req = Request::new(Full::new(Bytes::from_static(body.as_bytes())));
        target.prepare(&mut req);
        let resp = pool.send(&target.authority, req).await.unwrap();
        assert_eq!(
            hyper::body::Body::is_end_stream(resp.body()),
            body.is_empty()
        );
        drop(resp);
    }
    assert_eq!(post(&pool, &target, "then").await, "then");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_connection_the_upstream_closes_after_its_response_is_not_kept() {
    let (pool, target, accepted, ended) = raw_upstream(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        true,
    )
    .await;
    for n in 1..=3 {
        assert_eq!(post(&pool, &target, "x").await, "ok");
        assert!(reaches(&ended, n).await);
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "current_thread")]
async fn a_streamed_response_read_frame_by_frame_comes_whole_and_frees_its_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Three bursts of 400 chunks each, a moment apart: the body's frames are taken one by
    // one (hyper hands over one at a time), some already read off the socket, others only
    // after the connection is woken by the next burst.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                loop {
                    // A bodiless request, read whole in one go on loopback.
                    if matches!(stream.read(&mut buf).await, Ok(0) | Err(_)) {
                        return;
                    }
                    stream
                        .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                        .await
                        .unwrap();
                    for _ in 0..3 {
                        stream
                            .write_all("5\r\nhello\r\n".repeat(400).as_bytes())
                            .await
                            .unwrap();
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    stream.write_all(b"0\r\n\r\n").await.unwrap();
                }
            });
        }
    });
    let pool: H1Pool<Full<Bytes>> = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{addr}/").parse().unwrap()).unwrap();
    for _ in 0..3 {
        let mut req = Request::new(Full::new(Bytes::new()));
        target.prepare(&mut req);
        let mut body = pool.send(&target.authority, req).await.unwrap().into_body();
        let (mut frames, mut bytes) = (0, 0);
        while let Some(frame) = body.frame().await {
            bytes += frame.unwrap().into_data().unwrap().len();
            frames += 1;
        }
        assert_eq!(bytes, 3 * 400 * 5);
        assert!(frames > 3, "{frames} frames");
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the connection serves all three"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_idle_connection_past_the_idle_timeout_is_closed_not_reused() {
    let s = server().await;
    // Every idle connection is past a zero timeout when next looked at.
    let pool = H1Pool::new(options(Duration::ZERO, usize::MAX));
    let target = H1Target::new(&format!("http://{}/", s.addr).parse().unwrap()).unwrap();
    assert_eq!(post(&pool, &target, "one").await, "one");
    assert_eq!(post(&pool, &target, "two").await, "two");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    assert!(
        reaches(&s.ended, 1).await,
        "the idle connection is closed when dropped from the pool"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn each_thread_has_its_own_connections() {
    let s = server().await;
    let pool = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{}/", s.addr).parse().unwrap()).unwrap();
    assert_eq!(post(&pool, &target, "here").await, "here");
    let (p, t) = (pool.clone(), target.clone());
    // Another thread with a runtime of its own opens its own connection, and reuses it (this
    // runtime serves the upstream meanwhile).
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert_eq!(post(&p, &t, "there").await, "there");
            assert_eq!(post(&p, &t, "there again").await, "there again");
        });
    })
    .await
    .unwrap();
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(post(&pool, &target, "here again").await, "here again");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_closed_upstream_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let pool: H1Pool<Full<Bytes>> = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(&format!("http://{addr}/").parse().unwrap()).unwrap();
    let mut req = Request::new(Full::new(Bytes::new()));
    target.prepare(&mut req);
    let err = pool.send(&target.authority, req).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert!(matches!(err, SendError::Connect(_)));
}

#[tokio::test(flavor = "current_thread")]
async fn a_host_name_is_resolved_and_sent_as_host() {
    // The server listens on 127.0.0.1 only: where `localhost` also resolves to `::1` (first),
    // the refused address is passed over for the next.
    let mut s = server().await;
    let pool = H1Pool::new(options(Duration::from_secs(90), usize::MAX));
    let target = H1Target::new(
        &format!("http://localhost:{}/x", s.addr.port())
            .parse()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(post(&pool, &target, "named").await, "named");
    let (uri, host, _) = s.seen.recv().await.unwrap();
    assert_eq!(uri, "/x");
    assert_eq!(host, format!("localhost:{}", s.addr.port()));
}

/// A proxy from the environment sends the request to reqwest (`H1Target::direct` is `None`),
/// except for the hosts `NO_PROXY` names. The environment is the process's, so the test runs
/// itself again as a child process with the variables set.
#[test]
fn direct_targets_give_way_to_a_proxy_from_the_environment() {
    const CHILD: &str = "SB_H1POOL_PROXY_CHILD";
    if std::env::var_os(CHILD).is_some() {
        let proxied: http::Uri = "http://upstream.example:8080/v1".parse().unwrap();
        let exempt: http::Uri = "http://exempt.example:8080/v1".parse().unwrap();
        assert!(H1Target::direct(&proxied).is_none(), "HTTP_PROXY applies");
        assert!(H1Target::direct(&exempt).is_some(), "NO_PROXY exempts it");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "direct_targets_give_way_to_a_proxy_from_the_environment",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("NO_PROXY", "exempt.example")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("1 passed"),
        "child: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
