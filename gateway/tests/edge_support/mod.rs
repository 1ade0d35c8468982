//! Raw-socket fixtures for edge tests: an upstream that records the exact bytes of each
//! request it receives, and a client that sends bytes as written (no library in between that
//! could normalize a path or a header).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, mpsc};

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// The head (request line and headers, up to the blank line), as bytes on the wire.
    pub head: String,
}

impl Received {
    /// `GET /x HTTP/1.1`.
    pub fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    /// The request target of the request line.
    pub fn target(&self) -> &str {
        self.request_line().split(' ').nth(1).unwrap_or("")
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .collect()
    }
}

/// An HTTP/1.1 upstream on a free port that answers every request `200 upstream` and records
/// what it got. Keeps connections alive (the gateway pools them).
pub struct RawUpstream {
    /// Its address.
    pub addr: SocketAddr,
    rx: Mutex<mpsc::UnboundedReceiver<Received>>,
}

impl RawUpstream {
    /// Binds 127.0.0.1:0 and serves.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(serve(s, tx.clone()));
            }
        });
        RawUpstream {
            addr,
            rx: Mutex::new(rx),
        }
    }

    /// The next request the upstream received (fails the test after 5 s).
    pub async fn next(&self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.lock().await.recv())
            .await
            .expect("the upstream received no request")
            .expect("upstream stopped")
    }

    /// Fails the test if the upstream received a request it was not asked about. The gateway
    /// answers only after forwarding, so once a response is in, anything forwarded is here.
    pub async fn assert_nothing(&self) {
        if let Ok(r) = self.rx.lock().await.try_recv() {
            panic!("the upstream received a request: {:?}", r.head);
        }
    }
}

async fn serve(mut s: TcpStream, tx: mpsc::UnboundedSender<Received>) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let rec = Received { head };
        let len: usize = rec
            .headers("content-length")
            .first()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..len);
        let _ = tx.send(rec);
        let resp =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 8\r\n\r\nupstream";
        if s.write_all(resp).await.is_err() {
            return;
        }
    }
}

/// A response as the client read it.
#[derive(Debug)]
pub struct RawResponse {
    /// Status code.
    pub status: u16,
    /// Head and body as text.
    pub text: String,
}

impl RawResponse {
    /// The body (after the blank line).
    pub fn body(&self) -> &str {
        self.text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or("")
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.body())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }
}

/// Sends `raw` as is on a new connection to `addr` and reads until the server closes (send
/// `Connection: close` or HTTP/1.0).
pub async fn send(addr: SocketAddr, raw: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the gateway did not close the connection")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    RawResponse { status, text }
}

/// `GET {target} HTTP/1.1` with `Host: {host}`, `Connection: close` and `extra` header lines
/// (each ending in `\r\n`).
pub async fn get(addr: SocketAddr, target: &str, host: &str, extra: &str) -> RawResponse {
    let raw = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    send(addr, raw.as_bytes()).await
}
