//! The serde types of the configuration file. Doc comments here become the JSON Schema's
//! descriptions (`switchboard schema`), so they are written for users.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The admin listener: health, readiness, metrics and the effective config.
    #[serde(default)]
    pub admin: AdminConfig,
    /// How the proxy stops on SIGTERM or SIGINT.
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    /// Session tokens, the session and event store, expiry.
    #[serde(default)]
    pub sessions: switchboard_sessions::SessionsConfig,
    /// The listeners that accept client traffic.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
}

/// `admin:` — the admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`, `/config`).
    /// Keep it on loopback or a private network: `/config` shows the (redacted) configuration.
    #[serde(default = "default_admin_bind")]
    pub bind: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: default_admin_bind(),
        }
    }
}

fn default_admin_bind() -> String {
    "127.0.0.1:15000".into()
}

/// `shutdown:` — graceful shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT before connections
    /// are closed. Open SSE streams are ended cleanly at the start of the grace period.
    #[serde(default = "default_grace", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub grace_period: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self {
            grace_period: default_grace(),
        }
    }
}

fn default_grace() -> Duration {
    Duration::from_secs(15)
}

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
    /// Limits that protect the listener.
    #[serde(default)]
    pub limits: ListenerLimits,
    /// Proxies in front of this listener whose forwarding headers (`X-Forwarded-*`,
    /// `Forwarded`, `X-Real-IP`) are believed. Default: none; every client's are replaced.
    #[serde(default, skip_serializing_if = "TrustedProxiesConfig::is_default")]
    pub trusted_proxies: TrustedProxiesConfig,
    /// How request paths are normalized before routing (every stage and the upstream see
    /// the normalized path).
    #[serde(default, skip_serializing_if = "crate::head::PathsConfig::is_default")]
    pub paths: crate::head::PathsConfig,
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
    pub json: crate::input::JsonLimits,
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

/// `routes[]` — a matcher, policies and exactly one backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Unique name within the listener, used in metrics and logs.
    pub name: String,
    /// What requests this route serves; all given conditions must hold. Empty matches all.
    #[serde(default, rename = "match")]
    pub matcher: RouteMatch,
    /// Policies for this route; each key given here replaces the listener's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Policies>,
    /// One MCP endpoint federating MCP servers (stdio, streamable HTTP, legacy SSE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<switchboard_mcp::McpConfig>,
    /// LLM providers behind OpenAI- and Anthropic-compatible APIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<switchboard_llm::LlmConfig>,
    /// Reverse-proxy to an HTTP upstream (streams, SSE and WebSocket included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpBackendConfig>,
    /// Proxy to an A2A agent (JSON-RPC, 0.3 and 1.0), its agent card rewritten to point here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a: Option<A2aBackendConfig>,
}

/// `routes[].match` — conditions on the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// Path prefix, matched on whole segments: `/mcp` matches `/mcp` and `/mcp/x`, not `/mcpx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// Exact path (without the query string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Host (port ignored, case-insensitive); `*.example.com` matches any subdomain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTP method, e.g. `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Headers that must be present with exactly these values (names are case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `policies` — on a listener (for all its routes) or a route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policies {
    /// Cross-origin resource sharing: answers preflights and adds the CORS response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<CorsPolicy>,
    /// Request and response header changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<HeadersPolicy>,
    /// Upstream timeouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<TimeoutsPolicy>,
    /// Request and (on `llm` routes) token limits per interval, by route, subject or API key.
    /// Local to each replica, or shared through Redis when `sessions.store` is `redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<crate::rate_limit::RateLimitPolicy>,
    /// Authentication: JWT bearer tokens and API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authn: Option<crate::auth::AuthnPolicy>,
    /// Authorization: CEL rules; any rule that is true allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authz: Option<crate::authz::AuthzPolicy>,
    /// A credential the gateway sends upstream instead of the client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<crate::auth::UpstreamAuth>,
    /// Forward the client's `Authorization`, `Cookie` and `x-api-key` headers upstream.
    /// Default false: they are removed. Turning this on hands the client's credential to the
    /// upstream (token passthrough): the upstream can replay it against anything else that
    /// accepts it, and a token minted for the gateway's audience reaches a service it was not
    /// meant for. Only enable it for an upstream that is itself the token's audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_client_credentials: Option<bool>,
}

/// `policies.cors`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Allowed origins (`https://app.example`), or `*` for any.
    #[serde(default)]
    pub allow_origins: Vec<String>,
    /// Allowed methods for preflights (default: GET, POST, PUT, PATCH, DELETE, OPTIONS).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Allowed request headers for preflights (default: echo the requested ones).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers the browser may read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Send `Access-Control-Allow-Credentials: true`.
    #[serde(default)]
    pub allow_credentials: bool,
    /// How long a browser may cache a preflight answer.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub max_age: Option<Duration>,
}

/// `policies.headers`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadersPolicy {
    /// Changes to the request before it goes upstream.
    #[serde(default)]
    pub request: HeaderOps,
    /// Changes to the response before it goes to the client.
    #[serde(default)]
    pub response: HeaderOps,
}

/// Header changes, applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    /// Headers to append (existing values are kept).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Headers to set (existing values are replaced).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// `policies.timeouts`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsPolicy {
    /// Time to open a TCP (and TLS) connection to the upstream. Default 5s.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub connect: Option<Duration>,
    /// Time from sending the request until the upstream's response headers arrive. Default 60s.
    /// Streaming bodies are not cut by it (see `idle`).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub request: Option<Duration>,
    /// Longest pause in the response body stream before it is ended. Default: none.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub idle: Option<Duration>,
}

/// `routes[].http` — reverse proxy to an HTTP upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpBackendConfig {
    /// Upstream base URL (`http://` or `https://`). With a path other than `/`, the route's
    /// `path_prefix` is replaced by that path (as nginx's `proxy_pass` with a URI does).
    pub url: String,
    /// Send the client's `Host` header upstream instead of the upstream's own host.
    #[serde(default)]
    pub preserve_host: bool,
    /// `Upgrade` protocols passed to the upstream (case-insensitive names, e.g. `websocket`).
    /// Default: `[websocket]`; `[]` allows none. `h2c` is never allowed. Other upgrade
    /// requests are forwarded as plain HTTP/1.1 without their `Upgrade` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades: Option<Vec<String>>,
}

/// `routes[].a2a` — proxy to an A2A agent: JSON-RPC (A2A 0.3 and 1.0) with SSE streams passed
/// through event by event, the agent card served at `{path_prefix}/.well-known/agent-card.json`
/// rewritten to point at the gateway, and tasks kept on the replica that created them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct A2aBackendConfig {
    /// Base URL of the agent (`http://` or `https://`): where its agent card is served under
    /// `/.well-known/`. The route's `path_prefix` is replaced by this URL's path. Set this or
    /// `upstreams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Base URLs of several replicas of one agent. New tasks go to them in turn; a task (and a
    /// conversation's `contextId`) stays on the replica that created it, remembered in the
    /// sessions store so every gateway replica honours it when that store is Redis.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<String>,
    /// The URL clients reach this route at (e.g. `https://gw.example/agents/helper`), written
    /// into the agent card's interface URLs. Default: the request's scheme and `Host` plus the
    /// route's `path_prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Which push-notification (webhook) URLs clients may register with the agent.
    #[serde(default)]
    pub push_notifications: A2aPushConfig,
    /// How long the task → replica pinning is kept after the task was last seen in a response
    /// or stream event. Default `24h`.
    #[serde(
        default = "default_task_ttl",
        with = "humantime_serde",
        skip_serializing_if = "is_default_task_ttl"
    )]
    #[schemars(with = "String")]
    pub task_ttl: Duration,
    /// Largest JSON answer the gateway reads from the agent to inspect it (a JSON-RPC result);
    /// a larger one is a JSON-RPC error for the caller. Default 16 MiB. Stream events pass
    /// through unbuffered.
    #[serde(
        default = "default_a2a_max_response_bytes",
        skip_serializing_if = "is_default_a2a_max_response_bytes"
    )]
    pub max_response_bytes: usize,
    /// Largest agent card the gateway fetches and rewrites; a larger one is a 502. Default
    /// 1 MiB.
    #[serde(
        default = "default_a2a_max_card_bytes",
        skip_serializing_if = "is_default_a2a_max_card_bytes"
    )]
    pub max_card_bytes: usize,
}

fn default_a2a_max_response_bytes() -> usize {
    16 << 20
}

fn is_default_a2a_max_response_bytes(n: &usize) -> bool {
    *n == default_a2a_max_response_bytes()
}

fn default_a2a_max_card_bytes() -> usize {
    1 << 20
}

fn is_default_a2a_max_card_bytes(n: &usize) -> bool {
    *n == default_a2a_max_card_bytes()
}

fn default_task_ttl() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}

fn is_default_task_ttl(d: &Duration) -> bool {
    *d == default_task_ttl()
}

/// `routes[].a2a.push_notifications` — the allow list that keeps clients from making the
/// agent call into the gateway's network (SSRF).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct A2aPushConfig {
    /// URL prefixes a push-notification URL must start with: same scheme, host and port, and a
    /// path under the listed one (whole segments), e.g. `https://hooks.example/a2a/`. A URL
    /// with credentials (`user@`) is never allowed. Empty (default): every registration is
    /// refused with a JSON-RPC error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_urls: Vec<String>,
}
