//! Raw-socket fixtures for the adversarial and edge tests (no library in between that could
//! normalize a path or a header): an upstream that records what it really received (every
//! byte, and each request as a strict HTTP/1.1 parser frames it), raw-socket clients, and just
//! enough HTTP/2 framing to send what well-behaved client libraries refuse to.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the upstream framed it.
#[derive(Debug, Clone)]
pub struct UpRequest {
    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub line: String,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The body after de-chunking.
    pub body: Vec<u8>,
}

impl UpRequest {
    /// The request target.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    /// Every value of header `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The request line, e.g. `GET /x HTTP/1.1`.
    pub fn request_line(&self) -> &str {
        &self.line
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn headers(&self, name: &str) -> Vec<&str> {
        self.all(&name.to_ascii_lowercase())
    }

    /// The only value of header `name` (panics on duplicates: each is a finding).
    pub fn get(&self, name: &str) -> Option<&str> {
        let all = self.all(name);
        assert!(all.len() <= 1, "duplicate {name} upstream: {all:?}");
        all.first().copied()
    }
}

/// What the upstream has seen.
#[derive(Debug, Default)]
pub struct Record {
    /// Raw bytes per connection.
    pub raw: Vec<Vec<u8>>,
    /// Complete requests, in arrival order.
    pub requests: Vec<UpRequest>,
    /// Framing the strict parser could not accept (malformed bytes).
    pub errors: Vec<String>,
    /// Requests cut off by the connection closing (a proxy aborting a request whose client
    /// body went bad): not ambiguous, just incomplete.
    pub aborted: Vec<String>,
}

/// How the upstream answers each complete request.
#[derive(Clone)]
pub enum Answer {
    /// `200 OK` with a 2-byte body, connection kept alive.
    Ok,
    /// These bytes, then the connection is closed.
    Raw(&'static [u8]),
}

/// A recording upstream on a raw socket.
#[derive(Clone)]
pub struct RawUpstream {
    /// Where it listens.
    pub addr: SocketAddr,
    record: Arc<Mutex<Record>>,
    /// How many complete requests arrived (for [`RawUpstream::next`] to wait on).
    arrived: tokio::sync::watch::Sender<usize>,
    /// How many of them [`RawUpstream::next`] handed out.
    taken: Arc<AtomicUsize>,
}

impl RawUpstream {
    /// Starts one on a free port.
    pub async fn start(answer: Answer) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Mutex::new(Record::default()));
        let (arrived, _) = tokio::sync::watch::channel(0);
        let (rec, count) = (record.clone(), arrived.clone());
        tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    return;
                };
                let (rec, count) = (rec.clone(), count.clone());
                let answer = answer.clone();
                tokio::spawn(serve(sock, rec, count, answer));
            }
        });
        RawUpstream {
            addr,
            record,
            arrived,
            taken: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The next request the upstream received that `next` has not returned yet (fails the
    /// test after 5 s).
    pub async fn next(&self) -> UpRequest {
        let i = self.taken.fetch_add(1, Ordering::SeqCst);
        let mut count = self.arrived.subscribe();
        let arrived =
            tokio::time::timeout(Duration::from_secs(5), count.wait_for(|n| *n > i)).await;
        assert!(
            matches!(arrived, Ok(Ok(_))),
            "the upstream received no request (framing errors: {:?})",
            self.errors()
        );
        self.record.lock().unwrap().requests[i].clone()
    }

    /// Fails the test if the upstream received a request that [`RawUpstream::next`] did not
    /// return. The gateway answers only after forwarding, so once a response is in, anything
    /// forwarded is here.
    pub async fn assert_nothing(&self) {
        let taken = self.taken.load(Ordering::SeqCst);
        let requests = self.requests();
        if let Some(r) = requests.get(taken) {
            panic!("the upstream received a request: {:?}", r.line);
        }
        let errors = self.errors();
        assert!(errors.is_empty(), "the upstream received bytes: {errors:?}");
    }

    /// Complete requests so far.
    pub fn requests(&self) -> Vec<UpRequest> {
        self.record.lock().unwrap().requests.clone()
    }

    /// Framing errors so far.
    pub fn errors(&self) -> Vec<String> {
        self.record.lock().unwrap().errors.clone()
    }

    /// Requests cut off so far (their first bytes).
    pub fn aborted(&self) -> Vec<String> {
        self.record.lock().unwrap().aborted.clone()
    }

    /// All raw bytes so far, connections concatenated.
    pub fn raw(&self) -> Vec<u8> {
        self.record.lock().unwrap().raw.concat()
    }
}

async fn serve(
    mut sock: TcpStream,
    rec: Arc<Mutex<Record>>,
    arrived: tokio::sync::watch::Sender<usize>,
    answer: Answer,
) {
    let conn = {
        let mut r = rec.lock().unwrap();
        r.raw.push(Vec::new());
        r.raw.len() - 1
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        // Frame as many complete requests as the buffer holds.
        loop {
            match parse(&buf) {
                Parse::Done(req, used) => {
                    buf.drain(..used);
                    rec.lock().unwrap().requests.push(req);
                    arrived.send_modify(|n| *n += 1);
                    match &answer {
                        Answer::Ok => {
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if sock.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                        Answer::Raw(bytes) => {
                            let _ = sock.write_all(bytes).await;
                            let _ = sock.shutdown().await;
                            // Keep reading so nothing is lost from the record.
                        }
                    }
                }
                Parse::Partial => break,
                Parse::Bad(why) => {
                    rec.lock().unwrap().errors.push(why);
                    return;
                }
            }
        }
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                if !buf.is_empty() {
                    let head = String::from_utf8_lossy(&buf[..buf.len().min(200)]).into_owned();
                    rec.lock().unwrap().aborted.push(head);
                }
                return;
            }
            Ok(n) => n,
        };
        rec.lock().unwrap().raw[conn].extend_from_slice(&chunk[..n]);
        buf.extend_from_slice(&chunk[..n]);
    }
}

enum Parse {
    Done(UpRequest, usize),
    Partial,
    Bad(String),
}

/// A strict HTTP/1.1 request parser: CRLF only, no obs-fold, one framing header, digits only.
fn parse(buf: &[u8]) -> Parse {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return Parse::Partial;
    };
    let Ok(head) = std::str::from_utf8(&buf[..end]) else {
        return Parse::Bad("head is not UTF-8".into());
    };
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("").to_string();
    if line.split(' ').count() != 3 || !line.ends_with(" HTTP/1.1") {
        return Parse::Bad(format!("bad request line {line:?}"));
    }
    let mut headers = Vec::new();
    for l in lines {
        let Some((k, v)) = l.split_once(':') else {
            return Parse::Bad(format!("bad header line {l:?}"));
        };
        if k.is_empty() || k.contains([' ', '\t', '\n', '\r']) || l.starts_with([' ', '\t']) {
            return Parse::Bad(format!("bad header line {l:?}"));
        }
        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
    }
    let te: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "transfer-encoding")
        .map(|(_, v)| v.as_str())
        .collect();
    let cl: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut at = end + 4;
    let body = match (te.as_slice(), cl.as_slice()) {
        ([], []) => Vec::new(),
        ([], [n]) => {
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Parse::Bad(format!("bad content-length {n:?}"));
            }
            let Ok(n) = n.parse::<usize>() else {
                return Parse::Bad(format!("bad content-length {n:?}"));
            };
            if buf.len() < at + n {
                return Parse::Partial;
            }
            at += n;
            buf[at - n..at].to_vec()
        }
        (["chunked"], []) => {
            let mut body = Vec::new();
            loop {
                let Some(eol) = find(&buf[at..], b"\r\n") else {
                    return Parse::Partial;
                };
                let size_line = String::from_utf8_lossy(&buf[at..at + eol]).to_string();
                let size = size_line.split(';').next().unwrap_or("");
                if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Parse::Bad(format!("bad chunk size {size_line:?}"));
                }
                let Ok(n) = usize::from_str_radix(size, 16) else {
                    return Parse::Bad(format!("bad chunk size {size_line:?}"));
                };
                at += eol + 2;
                if n == 0 {
                    // Trailers (none expected) end with an empty line.
                    let Some(t) = find(&buf[at..], b"\r\n") else {
                        return Parse::Partial;
                    };
                    if t != 0 {
                        return Parse::Bad("trailers upstream".into());
                    }
                    at += 2;
                    break;
                }
                if buf.len() < at + n + 2 {
                    return Parse::Partial;
                }
                body.extend_from_slice(&buf[at..at + n]);
                if &buf[at + n..at + n + 2] != b"\r\n" {
                    return Parse::Bad("chunk not followed by CRLF".into());
                }
                at += n + 2;
            }
            body
        }
        _ => return Parse::Bad(format!("ambiguous framing te={te:?} cl={cl:?}")),
    };
    Parse::Done(
        UpRequest {
            line,
            headers,
            body,
        },
        at,
    )
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Sends `bytes` on a fresh connection and returns everything the gateway answered until it
/// closed the connection (or `within` passed): requests end with `Connection: close`.
pub async fn exchange(addr: SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    write_and_read(addr, bytes, false, within).await
}

/// As [`exchange`], and half-closes after writing (the client is gone mid-body).
pub async fn exchange_then_eof(addr: SocketAddr, bytes: &[u8], within: Duration) -> Vec<u8> {
    write_and_read(addr, bytes, true, within).await
}

async fn write_and_read(addr: SocketAddr, bytes: &[u8], eof: bool, within: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The gateway may answer and close before everything is written.
    let _ = s.write_all(bytes).await;
    if eof {
        let _ = s.shutdown().await;
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    out
}

/// The status codes of the HTTP/1.1 responses in `bytes`.
pub fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.1 ")
        .filter(|(i, _)| text.get(i + 12..i + 13) == Some(" "))
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// The head of the first response in `bytes`, lower-cased.
pub fn first_head(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes).to_ascii_lowercase();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
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

// ---- HTTP/2 frames, by hand ----

/// The client connection preface and an empty SETTINGS frame.
pub const H2_PREFACE: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Frame types.
pub const DATA: u8 = 0;
/// HEADERS.
pub const HEADERS: u8 = 1;
/// RST_STREAM.
pub const RST_STREAM: u8 = 3;
/// SETTINGS.
pub const SETTINGS: u8 = 4;
/// GOAWAY.
pub const GOAWAY: u8 = 7;
/// CONTINUATION.
pub const CONTINUATION: u8 = 9;
/// END_STREAM flag.
pub const END_STREAM: u8 = 0x1;
/// END_HEADERS flag.
pub const END_HEADERS: u8 = 0x4;

/// One frame.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal (no Huffman).
pub fn hpack_str(s: &[u8]) -> Vec<u8> {
    let mut out = hpack_int(s.len(), 7, 0);
    out.extend_from_slice(s);
    out
}

/// An HPACK integer with an `n`-bit prefix under `first` (the pattern bits).
pub fn hpack_int(mut v: usize, n: u32, first: u8) -> Vec<u8> {
    let max = (1usize << n) - 1;
    if v < max {
        return vec![first | v as u8];
    }
    let mut out = vec![first | max as u8];
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
    out
}

/// A request header block from the static table: `:method` (GET or POST), `:scheme http`,
/// `:path` and `:authority` literal, plus literal headers without indexing.
pub fn request_block(post: bool, path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut b = vec![if post { 0x83 } else { 0x82 }, 0x86];
    b.push(0x04); // :path, literal without indexing, indexed name 4
    b.extend(hpack_str(path.as_bytes()));
    b.push(0x01); // :authority
    b.extend(hpack_str(b"gw.test"));
    for (k, v) in extra {
        b.push(0x00);
        b.extend(hpack_str(k.as_bytes()));
        b.extend(hpack_str(v.as_bytes()));
    }
    b
}

/// A frame read from the server.
#[derive(Debug)]
pub struct Frame {
    /// Type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream id.
    pub stream: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Reads frames until EOF, error, GOAWAY or `within`; SETTINGS from the server are
/// acknowledged.
pub async fn read_frames(s: &mut TcpStream, within: Duration) -> Vec<Frame> {
    read_frames_until(s, within, |_| false).await
}

/// Reads frames until stream `id` ends (RST_STREAM, or END_STREAM from the server), or as
/// [`read_frames`].
pub async fn read_stream(s: &mut TcpStream, id: u32, within: Duration) -> Vec<Frame> {
    read_frames_until(s, within, |f| {
        f.stream == id && (f.kind == RST_STREAM || f.flags & END_STREAM != 0 && f.kind != SETTINGS)
    })
    .await
}

async fn read_frames_until(
    s: &mut TcpStream,
    within: Duration,
    done: impl Fn(&Frame) -> bool,
) -> Vec<Frame> {
    let mut frames = Vec::new();
    let _ = tokio::time::timeout(within, async {
        loop {
            let mut head = [0u8; 9];
            if s.read_exact(&mut head).await.is_err() {
                return;
            }
            let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
            let mut payload = vec![0u8; len];
            if s.read_exact(&mut payload).await.is_err() {
                return;
            }
            let f = Frame {
                kind: head[3],
                flags: head[4],
                stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
                payload,
            };
            if f.kind == SETTINGS && f.flags & 1 == 0 {
                let _ = s.write_all(&frame(SETTINGS, 1, 0, &[])).await;
            }
            let end = f.kind == GOAWAY || done(&f);
            frames.push(f);
            if end {
                return;
            }
        }
    })
    .await;
    frames
}

/// The `:status` of a HEADERS frame the server sent (it answers with static-table indexes or
/// a literal `:status`).
pub fn h2_status(f: &Frame) -> Option<u16> {
    match f.payload.first()? {
        0x88 => Some(200),
        0x89 => Some(204),
        0x8a => Some(206),
        0x8b => Some(304),
        0x8c => Some(400),
        0x8d => Some(404),
        0x8e => Some(500),
        // Literal with an indexed :status name: the value is three ASCII digits.
        b if b & 0xf0 == 0x00 || b & 0xc0 == 0x40 || b & 0xf0 == 0x10 => {
            let digits = f.payload.get(2..5)?;
            std::str::from_utf8(digits).ok()?.parse().ok()
        }
        _ => None,
    }
}
