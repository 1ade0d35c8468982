//! Load generator for the benchmark harness, for what `wrk` cannot measure:
//!
//! - `rate`: open-loop requests at a fixed rate; latency is measured from each request's
//!   scheduled start, so a stalled server is not hidden (no coordinated omission).
//! - `stream`: concurrent SSE streams; time to first event, time to last event, and events
//!   lost against the expected count.
//! - `latency`: closed-loop requests on C connections for a duration (MCP calls use it, with
//!   `--mcp-init` opening one session per connection first).
//! - `mcp-sessions`: opens N idle MCP sessions and keeps the process alive until stdin closes.
//!
//! Prints one JSON object of results on stdout.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(clap::Args, Clone)]
struct Target {
    /// Request URL.
    #[arg(long)]
    url: String,
    /// HTTP method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// File whose content is the request body.
    #[arg(long)]
    body_file: Option<std::path::PathBuf>,
    /// Extra header, `name: value` (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
}

#[derive(Subcommand)]
enum Mode {
    /// Fixed-rate open-loop load.
    Rate {
        #[command(flatten)]
        target: Target,
        /// Requests per second.
        #[arg(long)]
        rps: u64,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Connections at most; a request whose time has come waits for one, and that wait
        /// counts in its latency (measured from its scheduled start). Without a cap an
        /// open-loop client opens a connection for every request in flight and a slow moment
        /// becomes a storm of new connections (and `limits.max_connections` 503s).
        #[arg(long, default_value_t = 256)]
        connections: usize,
    },
    /// Concurrent SSE streams.
    Stream {
        #[command(flatten)]
        target: Target,
        /// Streams open at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Streams in total.
        #[arg(long, default_value_t = 1)]
        requests: usize,
        /// Expected `data:` events per stream (excluding `[DONE]`).
        #[arg(long)]
        expect_events: Option<usize>,
    },
    /// Closed-loop latency on C connections.
    Latency {
        #[command(flatten)]
        target: Target,
        /// Connections.
        #[arg(long, default_value_t = 1)]
        connections: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Initialize an MCP session at this URL first, one per connection (as separate
        /// clients would), and send its `Mcp-Session-Id`.
        #[arg(long)]
        mcp_init: Option<String>,
    },
    /// Open N idle MCP sessions, print, and wait for stdin to close.
    McpSessions {
        /// MCP endpoint URL.
        #[arg(long)]
        url: String,
        /// Sessions to open.
        #[arg(long)]
        count: usize,
        /// Concurrent initializations.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
}

#[derive(Clone)]
struct Prepared {
    method: Method,
    url: http::Uri,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Prepared {
    fn new(t: &Target) -> anyhow::Result<Self> {
        let body = match &t.body_file {
            Some(p) => Bytes::from(std::fs::read(p)?),
            None => Bytes::new(),
        };
        let mut headers = Vec::new();
        for h in &t.headers {
            let (k, v) = h
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("header `{h}` is not `name: value`"))?;
            headers.push((
                HeaderName::from_bytes(k.trim().as_bytes())?,
                HeaderValue::from_str(v.trim())?,
            ));
        }
        Ok(Prepared {
            method: Method::from_bytes(t.method.as_bytes())?,
            url: t.url.parse()?,
            body,
            headers,
        })
    }

    fn request(&self) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.url.clone());
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body.clone())).expect("valid request")
    }

    /// The request for a connection of its own: origin-form target and a `Host` header.
    fn origin_request(&self) -> Request<Full<Bytes>> {
        let mut b = Request::builder().method(self.method.clone()).uri(
            self.url
                .path_and_query()
                .map_or("/", http::uri::PathAndQuery::as_str),
        );
        if let Some(a) = self.url.authority() {
            b = b.header(http::header::HOST, a.as_str());
        }
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        b.body(Full::new(self.body.clone())).expect("valid request")
    }
}

fn client(max_idle: usize) -> HttpClient {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(max_idle)
        .build(http)
}

fn percentiles(mut v: Vec<f64>) -> serde_json::Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    json!({"count": v.len(), "p50_us": p(0.5), "p90_us": p(0.9), "p99_us": p(0.99), "max_us": v[v.len() - 1]})
}

/// A request that takes longer than this counts as an error instead of stalling the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let out = match args.mode {
        Mode::Rate {
            target,
            rps,
            duration,
            connections,
        } => rate(Prepared::new(&target)?, rps, duration, connections).await,
        Mode::Stream {
            target,
            concurrency,
            requests,
            expect_events,
        } => {
            stream(
                Prepared::new(&target)?,
                concurrency,
                requests,
                expect_events,
            )
            .await
        }
        Mode::Latency {
            target,
            connections,
            duration,
            mcp_init,
        } => {
            let p = Prepared::new(&target)?;
            let mut per_connection = Vec::with_capacity(connections);
            for _ in 0..connections {
                let mut p = p.clone();
                if let Some(url) = &mcp_init {
                    let sid = mcp_initialize(&client(1), url).await?;
                    p.headers.push((
                        HeaderName::from_static("mcp-session-id"),
                        HeaderValue::from_str(&sid)?,
                    ));
                    p.headers.push((
                        HeaderName::from_static("mcp-protocol-version"),
                        HeaderValue::from_static("2025-06-18"),
                    ));
                }
                per_connection.push(Arc::new(p));
            }
            latency(per_connection, duration).await
        }
        Mode::McpSessions {
            url,
            count,
            concurrency,
        } => mcp_sessions(&url, count, concurrency).await?,
    };
    println!("{out}");
    Ok(())
}

async fn rate(p: Prepared, rps: u64, duration: f64, connections: usize) -> serde_json::Value {
    let p = Arc::new(p);
    let c = client(connections);
    let slots = Arc::new(tokio::sync::Semaphore::new(connections.max(1)));
    let interval = Duration::from_secs_f64(1.0 / rps as f64);
    let total = (rps as f64 * duration) as u64;
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (c, p, slots) = (c.clone(), p.clone(), slots.clone());
        tasks.push(tokio::spawn(async move {
            // At most `connections` requests in flight, so at most that many connections.
            let Ok(_slot) = slots.acquire_owned().await else {
                return (Err("no connection slot".to_string()), 0.0);
            };
            let r = send(&c, p.request()).await;
            let us = scheduled.elapsed().as_secs_f64() * 1e6;
            (r.map(|(s, _)| s), us)
        }));
    }
    let mut lat = Vec::with_capacity(tasks.len());
    let mut errors = 0;
    // What the errors were: status codes, timeouts, connection errors (hyper's message).
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for t in tasks {
        let kind = match t.await {
            Ok((Ok(s), us)) if s < 400 => {
                lat.push(us);
                continue;
            }
            Ok((Ok(s), _)) => format!("status {s}"),
            Ok((Err(e), _)) => e,
            Err(e) => e.to_string(),
        };
        errors += 1;
        *kinds.entry(kind).or_default() += 1;
    }
    json!({"mode": "rate", "rps": rps, "connections": connections, "sent": total, "errors": errors, "error_kinds": kinds, "latency": percentiles(lat)})
}

async fn stream(
    p: Prepared,
    concurrency: usize,
    requests: usize,
    expect: Option<usize>,
) -> serde_json::Value {
    let p = Arc::new(p);
    let c = client(concurrency);
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::with_capacity(requests);
    for _ in 0..requests {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (c, p) = (c.clone(), p.clone());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let started = Instant::now();
            let resp = c.request(p.request()).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let mut body = resp.into_body();
            let mut first = None;
            let mut events = 0usize;
            let mut carry = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| e.to_string())?;
                if let Some(data) = frame.data_ref() {
                    carry.extend_from_slice(data);
                    // Count complete `data:` lines; keep a trailing partial line for later.
                    let last_nl = carry.iter().rposition(|b| *b == b'\n');
                    if let Some(i) = last_nl {
                        for line in carry[..=i].split(|b| *b == b'\n') {
                            if line.starts_with(b"data:") && !line.ends_with(b"[DONE]") {
                                events += 1;
                                if first.is_none() {
                                    first = Some(started.elapsed());
                                }
                            }
                        }
                        carry.drain(..=i);
                    }
                }
            }
            Ok::<_, String>((first.unwrap_or_default(), started.elapsed(), events))
        }));
    }
    let (mut ttft, mut ttlt, mut lost, mut errors) = (Vec::new(), Vec::new(), 0usize, Vec::new());
    for t in tasks {
        match t.await {
            Ok(Ok((f, l, n))) => {
                ttft.push(f.as_secs_f64() * 1e6);
                ttlt.push(l.as_secs_f64() * 1e6);
                if let Some(e) = expect {
                    lost += e.saturating_sub(n);
                }
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    errors.truncate(5);
    json!({"mode": "stream", "streams": requests, "concurrency": concurrency, "lost_events": lost,
           "errors": errors, "ttft": percentiles(ttft), "ttlt": percentiles(ttlt)})
}

/// One closed loop per entry of `per_connection`, each on one HTTP/1.1 connection of its own
/// that it keeps: the next request waits until that connection is ready again. (A pooled
/// client often had not taken the connection back when the next request started and opened
/// another: 681 connections for 2,800 calls at one connection, so the figures included
/// connection setup on both ends.) A new connection opens only when the server closed the
/// last one; `connects` counts them.
async fn latency(per_connection: Vec<Arc<Prepared>>, duration: f64) -> serde_json::Value {
    let connections = per_connection.len();
    let deadline = Instant::now() + Duration::from_secs_f64(duration);
    let mut tasks = Vec::new();
    for p in per_connection {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut connects = 0u64;
            let mut conn: Option<SendRequest<Full<Bytes>>> = None;
            while Instant::now() < deadline {
                let sender = match conn.as_mut() {
                    Some(s) if !s.is_closed() => s,
                    _ => {
                        connects += 1;
                        match connect(&p.url).await {
                            Ok(s) => conn.insert(s),
                            Err(_) => {
                                errors += 1;
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                continue;
                            }
                        }
                    }
                };
                if sender.ready().await.is_err() {
                    conn = None;
                    continue;
                }
                let t = Instant::now();
                match send_on(sender, p.origin_request()).await {
                    Ok((s, _)) if s < 400 => lat.push(t.elapsed().as_secs_f64() * 1e6),
                    Ok(_) => errors += 1,
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (lat, errors, connects)
        }));
    }
    let (mut lat, mut errors, mut connects) = (Vec::new(), 0, 0);
    for t in tasks {
        let (l, e, c) = t.await.expect("task");
        lat.extend(l);
        errors += e;
        connects += c;
    }
    let rps = lat.len() as f64 / duration;
    json!({"mode": "latency", "connections": connections, "connects": connects, "rps": rps,
           "errors": errors, "latency": percentiles(lat)})
}

/// A new HTTP/1.1 connection to `url`'s authority (TCP_NODELAY, like wrk).
async fn connect(url: &http::Uri) -> Result<SendRequest<Full<Bytes>>, String> {
    let host = url.host().ok_or("no host in the URL")?;
    let port = url.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send_on(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(u16, Bytes), String> {
    let exchange = async {
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

async fn mcp_initialize(c: &HttpClient, url: &str) -> anyhow::Result<String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "switchboard-loadgen", "version": "0"}}});
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))?;
    let resp = c.request(req).await?;
    let sid = resp
        .headers()
        .get("mcp-session-id")
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no Mcp-Session-Id in the initialize response ({})",
                resp.status()
            )
        })?
        .to_str()?
        .to_string();
    resp.into_body().collect().await?;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &sid)
        .header("mcp-protocol-version", "2025-06-18")
        .body(Full::new(Bytes::from(note.to_string())))?;
    c.request(req).await?.into_body().collect().await?;
    Ok(sid)
}

async fn mcp_sessions(
    url: &str,
    count: usize,
    concurrency: usize,
) -> anyhow::Result<serde_json::Value> {
    let c = client(concurrency);
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = sem.clone().acquire_owned().await?;
        let (c, url) = (c.clone(), url.to_string());
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            mcp_initialize(&c, &url).await.map_err(|e| e.to_string())
        }));
    }
    let mut opened = 0;
    let mut errors = Vec::new();
    for t in tasks {
        match t.await? {
            Ok(_) => opened += 1,
            Err(e) => errors.push(e),
        }
    }
    errors.truncate(5);
    let out = json!({"mode": "mcp-sessions", "opened": opened, "errors": errors, "seconds": started.elapsed().as_secs_f64()});
    println!("{out}");
    // Hold until the harness is done measuring.
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    Ok(json!({"mode": "mcp-sessions", "closed": true}))
}
