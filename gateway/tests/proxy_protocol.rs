//! Behind HAProxy (Debian `haproxy`): `listeners[].proxy_protocol` (`send-proxy-v2`,
//! `send-proxy`) and plain `option forwardfor` with `trusted_proxies`. Clients bind distinct
//! loopback addresses (127.0.0.2, 127.0.0.3) so the real client differs from HAProxy's own
//! address (127.0.0.1); the upstream's `X-Forwarded-For` / `X-Real-IP` and the per-client rate
//! limit (`rate_limit.by: client`) must both see the real client.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;

use common::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HAPROXY: &str = "/usr/sbin/haproxy";

/// A HAProxy child whose frontends listen on sockets this test bound on port 0 and handed
/// over (`bind fd@N`), so no port is guessed.
struct Haproxy {
    child: tokio::process::Child,
    fronts: Vec<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// One frontend: `mode`, the gateway address, and the server line's options.
struct Front<'a> {
    mode: &'a str,
    extra: &'a str,
    to: SocketAddr,
    server_opts: &'a str,
}

fn haproxy(fronts: &[Front<'_>]) -> Option<Haproxy> {
    let bin = if Path::new(HAPROXY).exists() {
        HAPROXY.to_string()
    } else {
        let found = std::process::Command::new("sh")
            .args(["-c", "command -v haproxy"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        match found {
            Some(b) if !b.is_empty() => b,
            _ => {
                switchboard_testing::peers::skip("haproxy not installed (run `make setup`)");
                return None;
            }
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = String::from(
        "global\n  log stderr format short local0 warning\n\
         defaults\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n",
    );
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    for (i, f) in fronts.iter().enumerate() {
        let sock = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Inherited by the child (std sets close-on-exec on every socket).
        rustix::io::fcntl_setfd(&sock, rustix::io::FdFlags::empty()).unwrap();
        addrs.push(sock.local_addr().unwrap());
        cfg.push_str(&format!(
            "frontend f{i}\n  mode {m}\n  bind fd@{fd}\n{extra}  default_backend b{i}\n\
             backend b{i}\n  mode {m}\n  server gw {to} {opts}\n",
            m = f.mode,
            fd = sock.as_raw_fd(),
            extra = f.extra,
            to = f.to,
            opts = f.server_opts,
        ));
        sockets.push(sock);
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, &cfg).unwrap();
    let child = tokio::process::Command::new(bin)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The sockets are already listening: connections queue until HAProxy accepts them.
    drop(sockets);
    Some(Haproxy {
        child,
        fronts: addrs,
        _dir: dir,
    })
}

/// A client whose connections come from `ip`.
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    switchboard_gateway::install_crypto_provider();
    reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

async fn echo(c: &reqwest::Client, front: SocketAddr, spoof: Option<&str>) -> (u16, Value) {
    let mut req = c.get(format!("http://{front}/echo"));
    if let Some(s) = spoof {
        req = req.header("x-forwarded-for", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

const GATEWAY: &str = "
listeners:
  - name: v2
    bind: 127.0.0.1:0
    proxy_protocol: v2
    policies: {rate_limit: {requests: 2, per: 1h, by: client}}
    routes: [{name: up, match: {path_prefix: /}, http: {url: 'http://${UPSTREAM}'}}]
  - name: v1
    bind: 127.0.0.1:0
    proxy_protocol: v1
    routes: [{name: up, match: {path_prefix: /}, http: {url: 'http://${UPSTREAM}'}}]
  - name: xff
    bind: 127.0.0.1:0
    trusted_proxies: {cidrs: [127.0.0.1/32]}
    policies: {rate_limit: {requests: 2, per: 1h, by: client}}
    routes: [{name: up, match: {path_prefix: /}, http: {url: 'http://${UPSTREAM}'}}]
";

#[tokio::test]
async fn haproxy_send_proxy_and_forwardfor_pass_the_real_client() {
    common::inside_one_window(std::time::Duration::from_secs(3600)).await;
    let up = upstream().await;
    let gw = gateway(GATEWAY, up).await;
    let v2 = gw.listener_addr("v2").await.unwrap();
    let v1 = gw.listener_addr("v1").await.unwrap();
    let xff = gw.listener_addr("xff").await.unwrap();
    let Some(hp) = haproxy(&[
        Front {
            mode: "tcp",
            extra: "",
            to: v2,
            server_opts: "send-proxy-v2",
        },
        Front {
            mode: "tcp",
            extra: "",
            to: v1,
            server_opts: "send-proxy",
        },
        Front {
            mode: "http",
            extra: "  option forwardfor\n",
            to: xff,
            server_opts: "",
        },
    ]) else {
        return;
    };
    let (f_v2, f_v1, f_xff) = (hp.fronts[0], hp.fronts[1], hp.fronts[2]);
    let a = client_from([127, 0, 0, 2]);
    let b = client_from([127, 0, 0, 3]);

    // send-proxy-v2: the upstream sees the client, not HAProxy (127.0.0.1); a spoofed
    // X-Forwarded-For from a client that is no trusted proxy is replaced.
    let (s, v) = echo(&a, f_v2, Some("6.6.6.6")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.2", "{v}");
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.2", "{v}");
    // The rate limit keys on the client: 127.0.0.2 has one request left, 127.0.0.3 two.
    assert_eq!(echo(&a, f_v2, None).await.0, 200);
    assert_eq!(
        echo(&a, f_v2, None).await.0,
        429,
        "127.0.0.2's budget spent"
    );
    let (s, v) = echo(&b, f_v2, None).await;
    assert_eq!(s, 200, "127.0.0.3 has its own budget: {v}");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.3");

    // send-proxy (v1).
    let (s, v) = echo(&b, f_v1, Some("6.6.6.6")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.3", "{v}");
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.3", "{v}");

    // option forwardfor + trusted_proxies (HAProxy at 127.0.0.1 is trusted): the client is
    // the first untrusted address from the right; a spoofed entry left of it is not believed.
    let (s, v) = echo(&a, f_xff, Some("6.6.6.6")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.2", "{v}");
    assert_eq!(
        v["headers"]["x-forwarded-for"], "6.6.6.6, 127.0.0.2, 127.0.0.1",
        "{v}"
    );
    assert_eq!(echo(&a, f_xff, Some("7.7.7.7")).await.0, 200);
    assert_eq!(
        echo(&a, f_xff, Some("8.8.8.8")).await.0,
        429,
        "spoofing X-Forwarded-For does not buy a fresh budget"
    );
    let (s, v) = echo(&b, f_xff, None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-real-ip"], "127.0.0.3", "{v}");

    // Straight to the gateway, without HAProxy: X-Forwarded-For from an untrusted peer on
    // the XFF listener is not believed either.
    let (s, v) = echo(&client_from([127, 0, 0, 3]), xff, Some("6.6.6.6")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.3", "{v}");
    drop(hp);
}

/// A connection without a valid header on a `proxy_protocol` listener is closed and counted;
/// a v2 `LOCAL` header (a balancer's health check) keeps the socket peer; bytes that arrive
/// with the header are served.
#[tokio::test]
async fn raw_headers_local_and_refusals() {
    let up = upstream().await;
    let gw = gateway(
        "listeners:
  - name: any
    bind: 127.0.0.1:0
    proxy_protocol: any
    routes: [{name: up, match: {path_prefix: /}, http: {url: 'http://${UPSTREAM}'}}]",
        up,
    )
    .await;
    let addr = gw.listener_addr("any").await.unwrap();
    let get = b"GET /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";

    async fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    // v1 header and request in one write.
    let mut msg = b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 80\r\n".to_vec();
    msg.extend_from_slice(get);
    let out = exchange(addr, &msg).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(r#""x-forwarded-for":"192.0.2.9""#), "{out}");

    // v2 LOCAL: the socket peer (127.0.0.1) is the client.
    let mut msg = vec![
        0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x20, 0x00, 0x00,
        0x00,
    ];
    msg.extend_from_slice(get);
    let out = exchange(addr, &msg).await;
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(r#""x-forwarded-for":"127.0.0.1""#), "{out}");

    // No header: closed without an answer, and counted.
    let out = exchange(addr, get).await;
    assert_eq!(out, "", "no answer without a PROXY header");
    let out = exchange(addr, b"PROXY TCP4 not-an-address\r\n\r\n").await;
    assert_eq!(out, "");
    // A header cut short by the client's end of the stream.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PROXY TCP4 192.0").await.unwrap();
    s.shutdown().await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    assert!(out.is_empty());
    assert_eq!(
        metric(
            &gw,
            r#"switchboard_proxy_protocol_rejected_total{listener="any"}"#
        )
        .await,
        Some(3.0)
    );
}

/// `tls.sni`: the certificate follows the client's server name (exact, then `*.` wildcard,
/// then `tls.cert`), here behind HAProxy `send-proxy-v2` in TCP mode, so the PROXY header
/// comes before the TLS handshake and the client address survives TLS termination.
#[tokio::test]
async fn tls_certificates_by_sni_behind_send_proxy_v2() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let mut ders = Vec::new();
    for (file, names) in [
        ("default", vec!["localhost".to_string()]),
        ("a", vec!["a.example.test".to_string()]),
        ("b", vec!["*.b.example.test".to_string()]),
    ] {
        let c = rcgen::generate_simple_self_signed(names).unwrap();
        std::fs::write(dir.path().join(format!("{file}.pem")), c.cert.pem()).unwrap();
        std::fs::write(
            dir.path().join(format!("{file}.key")),
            c.signing_key.serialize_pem(),
        )
        .unwrap();
        ders.push(c.cert.der().to_vec());
    }
    let yaml = format!(
        r#"
listeners:
  - name: tls
    bind: 127.0.0.1:0
    proxy_protocol: v2
    tls:
      cert: "{0}/default.pem"
      key: "{0}/default.key"
      sni:
        - {{hostnames: [a.example.test], cert: "{0}/a.pem", key: "{0}/a.key"}}
        - {{hostnames: ["*.b.example.test"], cert: "{0}/b.pem", key: "{0}/b.key"}}
    routes: [{{name: all, http: {{url: "http://${{UPSTREAM}}"}}}}]
"#,
        dir.path().display()
    );
    let gw = gateway(&yaml, up).await;
    let Some(hp) = haproxy(&[Front {
        mode: "tcp",
        extra: "",
        to: gw.listener_addr("tls").await.unwrap(),
        server_opts: "send-proxy-v2",
    }]) else {
        return;
    };
    let front = hp.fronts[0];
    for (name, want) in [
        ("a.example.test", &ders[1]),
        ("x.b.example.test", &ders[2]),
        ("b.example.test", &ders[0]),
        ("y.x.b.example.test", &ders[0]),
        ("other.example.test", &ders[0]),
    ] {
        let c = reqwest::Client::builder()
            .no_proxy()
            .local_address(IpAddr::from([127, 0, 0, 2]))
            .tls_danger_accept_invalid_certs(true)
            .tls_info(true)
            .resolve(name, front)
            .build()
            .unwrap();
        let resp = c
            .get(format!("https://{name}:{}/echo", front.port()))
            .send()
            .await
            .unwrap();
        let served = resp
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|t| t.peer_certificate())
            .unwrap()
            .to_vec();
        assert!(&served == want, "{name}: wrong certificate");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.2", "{v}");
        assert_eq!(v["headers"]["x-forwarded-proto"], "https", "{v}");
    }
}
