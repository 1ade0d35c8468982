//! The forwarding stage: what of a client's request may cross the gateway at all, decided once
//! in the pipeline for every backend, before any header the gateway sets itself.
//!
//! In order: request targets and framings the gateway does not forward are refused
//! ([`check_request`]: `CONNECT`, asterisk-form, transfer codings other than plain `chunked`);
//! then [`prepare`] picks the one `Upgrade` the route allows (WebSocket by default; `h2c` never),
//! removes every hop-by-hop header (including those the client names in `Connection`), and
//! replaces the forwarding headers (`X-Forwarded-*`, `Forwarded`, `X-Real-IP`) unless the
//! connection comes from a trusted proxy ([`TrustedProxies`]). Configured request headers and
//! upstream credentials are set after this, so no client header can remove them.
//! Responses go through [`strip_response`] (framing made consistent, hop-by-hop removed).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request};

use crate::cidr::Cidr;
use crate::config::TrustedProxiesConfig;
use crate::error::RequestError;

/// Refuses what a reverse proxy must not pass on: `CONNECT` (405; the gateway is no tunnel),
/// targets that are not origin- or absolute-form such as `*` (400, as nginx answers), and a
/// `Transfer-Encoding` other than one plain `chunked` (501, as nginx answers: a coding the
/// gateway would silently drop or that two parsers could read differently).
pub fn check_request<B>(req: &Request<B>) -> Result<(), RequestError> {
    if req.method() == Method::CONNECT {
        return Err(crate::error::method_not_allowed(
            "CONNECT is not served: the gateway is not a forward proxy",
        ));
    }
    if !req.uri().path().starts_with('/') {
        return Err(crate::error::bad_request(
            "the request target must be a path (asterisk-form is not served)",
        ));
    }
    let mut te = req.headers().get_all(header::TRANSFER_ENCODING).iter();
    if let Some(first) = te.next() {
        let plain_chunked = te.next().is_none()
            && first
                .to_str()
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        if !plain_chunked {
            return Err(crate::error::not_implemented(
                "only the chunked transfer coding is supported",
            ));
        }
    }
    Ok(())
}

/// The protocol a request upgrades to, left in its extensions by [`prepare`] when the route
/// allows it; the backend sends it upstream as `Connection: upgrade` + `Upgrade`.
#[derive(Debug, Clone)]
pub struct Upgrade(pub HeaderValue);

/// The `Upgrade` protocols a route lets through (`http.upgrades`), lower-case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradePolicy {
    allowed: Vec<String>,
}

impl Default for UpgradePolicy {
    /// WebSocket only.
    fn default() -> Self {
        UpgradePolicy {
            allowed: vec!["websocket".into()],
        }
    }
}

impl UpgradePolicy {
    /// No upgrade at all (backends that answer themselves, such as A2A).
    pub fn none() -> Self {
        UpgradePolicy {
            allowed: Vec::new(),
        }
    }

    /// The configured list, or WebSocket only when the key is absent.
    pub fn new(configured: Option<&[String]>) -> Self {
        match configured {
            None => UpgradePolicy::default(),
            Some(list) => UpgradePolicy {
                allowed: list.iter().map(|p| p.to_ascii_lowercase()).collect(),
            },
        }
    }

    /// The protocol name of `value` (`websocket` of `WebSocket/13`), when it is allowed.
    /// `h2c` never is: a tunnel of HTTP/2 requests no route or policy would see.
    fn allows(&self, value: &HeaderValue) -> bool {
        let Ok(v) = value.to_str() else { return false };
        // One protocol per request: a list (`websocket, h2c`) is not forwarded.
        if v.contains(',') {
            return false;
        }
        let name = v.split('/').next().unwrap_or("").trim();
        !name.eq_ignore_ascii_case("h2c")
            && self.allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
    }
}

/// Who trusted proxies say the client is: the listener's `trusted_proxies`, compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    cidrs: Vec<Cidr>,
    hops: Option<u32>,
}

impl TrustedProxies {
    /// Compiles validated config (entries that do not parse were refused by `validate`).
    pub fn new(cfg: &TrustedProxiesConfig) -> Self {
        TrustedProxies {
            cidrs: cfg.cidrs.iter().filter_map(|c| Cidr::parse(c)).collect(),
            hops: cfg.hops,
        }
    }

    /// Whether nothing is trusted (the default).
    pub fn is_empty(&self) -> bool {
        self.cidrs.is_empty() && self.hops.is_none_or(|h| h == 0)
    }

    /// Whether the proxy at `ip`, `depth` hops from the gateway (0: the peer), is trusted.
    fn trusts(&self, ip: IpAddr, depth: usize) -> bool {
        if self.is_empty() {
            return false;
        }
        let within_hops = self.hops.is_none_or(|h| depth < h as usize);
        let in_cidrs = self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(ip));
        within_hops && in_cidrs
    }

    /// The client of a request from `peer`: the peer itself unless it is trusted; then, walking
    /// `X-Forwarded-For` from the right, the first address that is not a trusted proxy (the
    /// leftmost when all are). An entry that is not an IP address ends the walk: the proxy
    /// right of it is taken as the client.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer, 0) {
            return peer;
        }
        let mut client = peer;
        let mut depth = 0;
        for entry in forwarded_for(headers).rev() {
            let Some(ip) = parse_ip(entry) else {
                return client;
            };
            depth += 1;
            client = ip;
            if !self.trusts(ip, depth) {
                return ip;
            }
        }
        client
    }
}

/// The entries of every `X-Forwarded-For` line, left to right.
fn forwarded_for(headers: &HeaderMap) -> impl DoubleEndedIterator<Item = &str> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>()
        .into_iter()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `::1` or `[::1]:5678`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

/// The client as the gateway sees it for one request: derived through trusted proxies.
#[derive(Debug, Clone)]
pub struct Client {
    /// The TCP peer.
    pub peer: IpAddr,
    /// The client's address ([`TrustedProxies::client`]); the peer unless proxies are trusted.
    pub ip: IpAddr,
    /// `ip` as a header value.
    pub ip_header: HeaderValue,
    /// Whether the peer is a trusted proxy, so its forwarding headers are kept.
    pub via_trusted_proxy: bool,
}

impl Client {
    /// The client of a request from `peer` (whose header value is `peer_header`, formatted
    /// once per connection).
    pub fn of(
        trusted: &TrustedProxies,
        peer: IpAddr,
        peer_header: &HeaderValue,
        headers: &HeaderMap,
    ) -> Client {
        if trusted.is_empty() || !trusted.trusts(peer, 0) {
            return Client {
                peer,
                ip: peer,
                ip_header: peer_header.clone(),
                via_trusted_proxy: false,
            };
        }
        let ip = trusted.client(peer, headers);
        Client {
            peer,
            ip,
            ip_header: HeaderValue::try_from(ip.to_string())
                .unwrap_or_else(|_| peer_header.clone()),
            via_trusted_proxy: true,
        }
    }
}

/// The forwarding stage for a routed request: keeps the allowed upgrade (as an [`Upgrade`]
/// extension), removes hop-by-hop headers, and sets the forwarding headers for `client`.
/// `host` is the authority the client asked for, the value of `X-Forwarded-Host`.
pub fn prepare<B>(
    req: &mut Request<B>,
    upgrades: &UpgradePolicy,
    client: &Client,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    let upgrade = upgrade_protocol(req.headers()).filter(|p| upgrades.allows(p));
    strip_hop_by_hop(req.headers_mut());
    if let Some(p) = upgrade {
        req.extensions_mut().insert(Upgrade(p));
    }
    set_forwarding_headers(req.headers_mut(), client, scheme, host);
}

/// The `Upgrade` protocol, when the request asks for one with `Connection: upgrade`.
fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let wants = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let mut values = headers.get_all(header::UPGRADE).iter();
    match (wants, values.next(), values.next()) {
        (true, Some(v), None) => Some(v.clone()),
        _ => None,
    }
}

static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    // Connection-specific for an h2c upgrade (RFC 9113 §3.2.1, obsoleted with it).
    HeaderName::from_static("http2-settings"),
];

/// Above this many distinct names a header map is asked name by name instead of scanned.
const SCAN_KEYS: usize = 16;

/// Whether `headers` may hold one of `names`. A head bound up- or downstream holds a handful
/// of names and these are usually absent: one pass comparing its names costs less than a hash
/// and a probe per absent name, which was the largest part of the gateway's own work per
/// plain-HTTP request. Large maps answer `true`, leaving it to the lookups.
fn may_hold(headers: &HeaderMap, names: &[HeaderName]) -> bool {
    headers.keys_len() > SCAN_KEYS || headers.keys().any(|k| names.contains(k))
}

/// Removes every header named in `names`.
pub fn remove_all(headers: &mut HeaderMap, names: &[HeaderName]) {
    if may_hold(headers, names) {
        for n in names {
            headers.remove(n);
        }
    }
}

/// Removes hop-by-hop headers, including those named in `Connection`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // `Connection` is one of them: without any, nothing is named either.
    if !may_hold(headers, &HOP_BY_HOP) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
}

/// Makes an upstream response's head fit to forward: a `Content-Length` beside a
/// `Transfer-Encoding` is dropped (RFC 9112 §6.3: the coding wins, and the body is re-framed
/// on the client connection), then hop-by-hop headers go.
pub fn strip_response(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
    strip_hop_by_hop(headers);
}

/// Whether an upstream's `101` switches to `asked` (the protocol the gateway requested);
/// anything else, including a 101 to a request that asked for nothing, is the upstream's
/// error (502).
pub fn switch_matches(resp_headers: &HeaderMap, asked: Option<&HeaderValue>) -> bool {
    let Some(asked) = asked.and_then(|a| a.to_str().ok()) else {
        return false;
    };
    let name = |v: &str| {
        v.split('/')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    resp_headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| name(v) == name(asked))
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
/// What an untrusted peer sent of these is dropped, not replaced.
static REPLACED_FORWARDING: [HeaderName; 3] = [
    header::FORWARDED,
    HeaderName::from_static("x-forwarded-port"),
    HeaderName::from_static("x-forwarded-prefix"),
];

/// Sets the forwarding headers. From an untrusted peer every client-sent one is replaced:
/// `X-Forwarded-For` and `X-Real-IP` are the peer, `X-Forwarded-Proto` the scheme it
/// connected with, `X-Forwarded-Host` `host`; `Forwarded`, `X-Forwarded-Port` and
/// `X-Forwarded-Prefix` are removed. Through a trusted proxy its headers are kept, the peer is
/// appended to `X-Forwarded-For`, and `X-Real-IP` is the derived client.
pub fn set_forwarding_headers(
    headers: &mut HeaderMap,
    client: &Client,
    scheme: &'static str,
    host: Option<&HeaderValue>,
) {
    if client.via_trusted_proxy {
        let peer = client.peer.to_string();
        let prev: Vec<&str> = headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let xff = if prev.is_empty() {
            peer
        } else {
            format!("{}, {peer}", prev.join(", "))
        };
        if let Ok(v) = HeaderValue::try_from(xff) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        headers.insert(X_REAL_IP.clone(), client.ip_header.clone());
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
        }
        if let Some(h) = host
            && !headers.contains_key(&X_FORWARDED_HOST)
        {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        return;
    }
    remove_all(headers, &REPLACED_FORWARDING);
    headers.insert(X_FORWARDED_FOR.clone(), client.ip_header.clone());
    headers.insert(X_REAL_IP.clone(), client.ip_header.clone());
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
    match host {
        Some(h) => {
            headers.insert(X_FORWARDED_HOST.clone(), h.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The authority the client asked for: `Host`, or an HTTP/2 request's `:authority`.
pub fn requested_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    req.headers().get(header::HOST).cloned().or_else(|| {
        req.uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    })
}

/// An error the client's request body raised while it was forwarded (a malformed chunk, a
/// connection cut mid-body): the client's fault (400), not the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
pub struct ClientBodyError(#[source] pub hyper::Error);

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_parse_and_contain() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(Cidr::parse("127.0.0.1").unwrap().contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "::/129", "nope", "10.0.0.0/x", ""] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn client_is_derived_through_trusted_proxies_only() {
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.1"), &headers("1.1.1.1")),
            ip("10.0.0.1")
        );

        // nginx `set_real_ip_from 10.0.0.0/8; real_ip_recursive on;`
        let cidrs = TrustedProxies::new(&TrustedProxiesConfig {
            cidrs: vec!["10.0.0.0/8".into()],
            hops: None,
        });
        let h = headers("6.6.6.6, 1.1.1.1, 10.0.0.7");
        assert_eq!(cidrs.client(ip("10.0.0.1"), &h), ip("1.1.1.1"));
        assert_eq!(cidrs.client(ip("9.9.9.9"), &h), ip("9.9.9.9"));
        assert_eq!(
            cidrs.client(ip("10.0.0.1"), &headers("10.0.0.2")),
            ip("10.0.0.2")
        );
        assert_eq!(
            cidrs.client(ip("10.0.0.1"), &headers("junk, 10.0.0.2")),
            ip("10.0.0.2")
        );
        assert_eq!(
            cidrs.client(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );

        // Envoy `xff_num_trusted_hops: 1`: the rightmost entry, whatever it says.
        let hops = TrustedProxies::new(&TrustedProxiesConfig {
            cidrs: vec![],
            hops: Some(1),
        });
        assert_eq!(hops.client(ip("9.9.9.9"), &h), ip("10.0.0.7"));
        let two = TrustedProxies::new(&TrustedProxiesConfig {
            cidrs: vec![],
            hops: Some(2),
        });
        assert_eq!(two.client(ip("9.9.9.9"), &h), ip("1.1.1.1"));
        assert_eq!(two.client(ip("9.9.9.9"), &headers("[::1]:80")), ip("::1"));
    }

    #[test]
    fn targets_other_than_paths_are_refused() {
        let req = |m: &str, uri: &str| Request::builder().method(m).uri(uri).body(()).unwrap();
        assert!(check_request(&req("GET", "/x")).is_ok());
        assert!(check_request(&req("GET", "http://gw.test")).is_ok());
        assert!(check_request(&req("GET", "http://gw.test/x?y")).is_ok());
        let cause = |r| check_request(&r).err().map(|e| e.cause());
        assert_eq!(
            cause(req("OPTIONS", "*")),
            Some(switchboard_core::Cause::BadRequest)
        );
        assert_eq!(
            cause(req("CONNECT", "gw.test:443")),
            Some(switchboard_core::Cause::MethodNotAllowed)
        );
    }

    #[test]
    fn only_allowed_upgrades_and_never_h2c() {
        let ws = UpgradePolicy::default();
        let v = |s: &'static str| HeaderValue::from_static(s);
        assert!(ws.allows(&v("websocket")));
        assert!(ws.allows(&v("WebSocket")));
        assert!(!ws.allows(&v("h2c")));
        assert!(!ws.allows(&v("websocket, h2c")));
        assert!(!ws.allows(&v("foo")));
        let custom = UpgradePolicy::new(Some(&["foo".to_string(), "h2c".to_string()]));
        assert!(custom.allows(&v("foo/2")));
        assert!(!custom.allows(&v("h2c")));
        assert!(!custom.allows(&v("websocket")));
        assert!(!UpgradePolicy::none().allows(&v("websocket")));
    }

    /// A head with `extra` filler headers besides the ones under test: small heads are
    /// scanned, heads of more than `SCAN_KEYS` names are asked name by name.
    fn head(extra: usize, pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for i in 0..extra {
            h.insert(
                HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap(),
                HeaderValue::from_static("1"),
            );
        }
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn hop_by_hop_and_named_headers_go_from_small_and_large_heads() {
        for extra in [0, 3, SCAN_KEYS, SCAN_KEYS + 5] {
            let mut h = head(
                extra,
                &[
                    ("host", "a"),
                    ("connection", "keep-alive, X-Secret"),
                    ("x-secret", "s"),
                    ("te", "trailers"),
                    ("keep-alive", "timeout=5"),
                    ("transfer-encoding", "chunked"),
                    ("accept", "*/*"),
                ],
            );
            strip_hop_by_hop(&mut h);
            let mut left: Vec<&str> = h
                .keys()
                .map(HeaderName::as_str)
                .filter(|k| !k.starts_with("x-filler-"))
                .collect();
            left.sort_unstable();
            assert_eq!(left, ["accept", "host"], "{extra} filler headers");
            assert_eq!(h.keys_len(), extra + 2);

            // One hop-by-hop header alone is found too; none leaves the head as it was.
            let mut h = head(extra, &[("host", "a"), ("upgrade", "websocket")]);
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(header::UPGRADE));
            let mut h = head(extra, &[("host", "a"), ("accept", "*/*")]);
            let before = h.clone();
            strip_hop_by_hop(&mut h);
            assert_eq!(h, before);

            let mut h = head(
                extra,
                &[
                    ("authorization", "Bearer t"),
                    ("cookie", "c=1"),
                    ("x-api-key", "k"),
                ],
            );
            crate::auth::strip_client_credentials(&mut h);
            assert_eq!(h.keys_len(), extra, "{extra} filler headers");
        }
    }
}
