//! `listeners[]`: address, TLS, limits, trusted proxies and path normalization.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Policies, RouteConfig};

/// `listeners[]` — one address that accepts HTTP/1.1 and HTTP/2 (h2c, or TLS with ALPN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name, used in metrics and logs.
    pub name: String,
    /// `host:port` to bind, e.g. `127.0.0.1:8080` or `0.0.0.0:443`.
    pub bind: String,
    /// Serve TLS (rustls) with these PEM files; HTTP/2 is negotiated with ALPN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Expect a PROXY protocol header (HAProxy `send-proxy` / `send-proxy-v2`, AWS NLB) at the
    /// start of every connection, before TLS: `v1`, `v2` or `any`. Its source address becomes
    /// the connection's peer. Absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// Limits that protect the listener.
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Proxies in front of this listener whose forwarding headers (`X-Forwarded-*`,
    /// `Forwarded`, `X-Real-IP`) are believed. Default: none; every client's are replaced.
    #[serde(default, skip_serializing_if = "TrustedProxiesConfig::is_default")]
    pub trusted_proxies: TrustedProxiesConfig,
    /// How request paths are normalized before routing (every stage and the upstream see
    /// the normalized path).
    #[serde(default, skip_serializing_if = "PathsConfig::is_default")]
    pub paths: PathsConfig,
    /// Policies applied to every route of this listener; a route's own keys win.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
    /// Routes, tried in order; the first that matches serves the request.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// `listeners[].tls`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the certificate chain.
    pub cert: String,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// Further certificates chosen by the client's SNI server name; `cert`/`key` serve a
    /// client whose name matches none (or that sends none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sni: Vec<SniCertificate>,
}

/// `listeners[].tls.sni[]` — a certificate for some server names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SniCertificate {
    /// Server names (`api.example.com`) or one-label wildcards (`*.example.com`); an exact
    /// name wins over a wildcard.
    pub hostnames: Vec<String>,
    /// PEM file with the certificate chain.
    pub cert: String,
    /// PEM file with the private key.
    pub key: String,
}

/// `listeners[].proxy_protocol` — which PROXY protocol versions a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProxyProtocol {
    /// The text header (`PROXY TCP4 ...\r\n`, HAProxy `send-proxy`).
    V1,
    /// The binary header (HAProxy `send-proxy-v2`, AWS NLB).
    V2,
    /// Either.
    Any,
}

/// `listeners[].trusted_proxies` — which peers are proxies whose forwarding headers are kept
/// and from whose `X-Forwarded-For` the client address is taken (nginx's `set_real_ip_from`
/// with `real_ip_recursive on`; Envoy's `xff_num_trusted_hops`). With both keys a proxy must be
/// in `cidrs` and within `hops`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedProxiesConfig {
    /// Address blocks of trusted proxies (`10.0.0.0/8`, `2001:db8::/32`, or one address).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<String>,
    /// How many proxies in front of the gateway are trusted, counting the peer as the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hops: Option<u32>,
}

impl TrustedProxiesConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `listeners[].limits`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerLimits {
    /// Maximum open client connections; further connections get 503.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Maximum total size of request headers (names plus values) in bytes; larger gets 431.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// Maximum request body size in bytes; larger gets 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// Time a client has to send the request headers (slow-header protection).
    #[serde(default = "default_header_read_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub header_read_timeout: Duration,
    /// A client connection with no bytes moving either way for this long is closed
    /// gracefully (requests in flight finish first). Default 5m.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
    /// JSON limits for request bodies the gateway parses (MCP, A2A and LLM routes).
    #[serde(default)]
    pub json: JsonLimits,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_header_bytes: default_max_header_bytes(),
            max_body_bytes: default_max_body_bytes(),
            header_read_timeout: default_header_read_timeout(),
            idle_timeout: default_idle_timeout(),
            json: Default::default(),
        }
    }
}

fn default_max_connections() -> usize {
    10_000
}
fn default_max_header_bytes() -> usize {
    64 * 1024
}
fn default_max_body_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `listeners[].limits.json` — limits on JSON bodies the gateway parses itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects allowed. Default 64.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most requests in one JSON-RPC batch. Default 64.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Largest JSON body the gateway reads (an MCP or A2A JSON-RPC message or batch, an LLM API
    /// request), in bytes. Default 4 MiB.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_batch: default_max_batch(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

fn default_max_depth() -> usize {
    64
}
fn default_max_batch() -> usize {
    64
}
fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

impl JsonLimits {
    /// Semantic checks for `validate`, as `(key path, message)` pairs.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("max_depth", self.max_depth),
            ("max_batch", self.max_batch),
            ("max_message_bytes", self.max_message_bytes),
        ] {
            if v == 0 {
                out.push((format!("{path}.{key}"), "must be at least 1".into()));
            }
        }
        if self.max_depth > 1024 {
            out.push((
                format!("{path}.max_depth"),
                "must be at most 1024 (deeper nesting only serves stack exhaustion)".into(),
            ));
        }
        out
    }
}

/// `listeners[].paths` — how request paths are normalized before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathsConfig {
    /// Merge repeated slashes (`//a///b` is `/a/b`), as nginx's `merge_slashes` does.
    /// Default true.
    #[serde(default = "yes")]
    pub merge_slashes: bool,
    /// What to do with an encoded slash or backslash (`%2F`, `%5C`) in the path: `reject`
    /// (default) answers 400; `keep` leaves it encoded inside its segment (never decoded, so
    /// it never splits a segment or forms a `..`).
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
}

fn yes() -> bool {
    true
}

impl Default for PathsConfig {
    fn default() -> Self {
        Self {
            merge_slashes: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

/// `listeners[].paths.escaped_slashes`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer 400.
    #[default]
    Reject,
    /// Keep them encoded (uppercased) as part of their segment.
    Keep,
}

impl PathsConfig {
    /// Whether these are the defaults (left out when a config is written back).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Semantic checks for `validate`: a route's `match.path` or `match.path_prefix` must be
    /// in the form this listener normalizes paths to, or it could never match.
    pub fn validate_routes(
        &self,
        routes: &[RouteConfig],
        listener_path: &str,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (j, r) in routes.iter().enumerate() {
            for (key, v) in [
                ("path_prefix", &r.matcher.path_prefix),
                ("path", &r.matcher.path),
            ] {
                let Some(v) = v else { continue };
                // Not starting with `/` is reported by the match rules.
                if !v.starts_with('/') || v.contains('?') {
                    continue;
                }
                match crate::head::path::normalize(v, self) {
                    Ok(n) if n == v.as_str() => {}
                    Ok(n) => out.push((
                        format!("{listener_path}.routes[{j}].match.{key}"),
                        format!(
                            "`{v}` can never match: request paths are normalized first (it would be `{n}`)"
                        ),
                    )),
                    Err(e) => out.push((
                        format!("{listener_path}.routes[{j}].match.{key}"),
                        format!("`{v}` can never match: {e}"),
                    )),
                }
            }
        }
        out
    }
}

impl From<&PathsConfig> for crate::head::path::Rules {
    fn from(c: &PathsConfig) -> Self {
        crate::head::path::Rules {
            merge_slashes: c.merge_slashes,
            keep_escaped_slashes: c.escaped_slashes == EscapedSlashes::Keep,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_must_be_normal() {
        let routes: Vec<RouteConfig> = yaml_serde::from_str(
            "[{name: a, match: {path_prefix: /a/../b}, http: {url: 'http://x'}},
              {name: b, match: {path: '//x'}, http: {url: 'http://x'}},
              {name: c, match: {path_prefix: '/c%2fd'}, http: {url: 'http://x'}},
              {name: d, match: {path_prefix: /ok/}, http: {url: 'http://x'}}]",
        )
        .unwrap();
        let issues = PathsConfig::default().validate_routes(&routes, "listeners[0]");
        let keys: Vec<&str> = issues.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listeners[0].routes[0].match.path_prefix",
                "listeners[0].routes[1].match.path",
                "listeners[0].routes[2].match.path_prefix"
            ]
        );
        let keep = PathsConfig {
            merge_slashes: false,
            escaped_slashes: EscapedSlashes::Keep,
        };
        assert_eq!(keep.validate_routes(&routes, "l").len(), 2);
    }
}
