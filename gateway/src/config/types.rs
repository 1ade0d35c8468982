//! The serde types of the configuration file. Doc comments here become the JSON Schema's
//! descriptions (`switchboard schema`), so they are written for users.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ListenerConfig, Policies};

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
    /// The access log: one line per request, written off the serving threads.
    #[serde(default, skip_serializing_if = "AccessLogConfig::is_default")]
    pub access_log: AccessLogConfig,
    /// OpenTelemetry traces exported over OTLP. Absent (and no `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// in the environment): tracing is off and costs nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingConfig>,
    /// The listeners that accept client traffic.
    #[serde(default)]
    pub listeners: Vec<ListenerConfig>,
}

/// `tracing:` — OpenTelemetry traces over OTLP. What the file sets wins; what it leaves out
/// comes from the standard `OTEL_*` environment variables, then the defaults. Read at start;
/// changes take effect at restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// Where spans are sent.
    #[serde(default)]
    pub otlp: OtlpConfig,
    /// The share of new traces recorded, 0 to 1 (parent-based: a request whose client sent a
    /// sampled `traceparent` is always recorded, an unsampled one never). Default:
    /// `OTEL_TRACES_SAMPLER`/`OTEL_TRACES_SAMPLER_ARG`, else 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampling: Option<f64>,
    /// Resource attributes added to every span (`service.name` defaults to
    /// `OTEL_SERVICE_NAME`, else `switchboard`); merged over `OTEL_RESOURCE_ATTRIBUTES`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<String, String>,
    /// Record prompt text and tool arguments on spans. Default false; credentials are never
    /// recorded.
    #[serde(default)]
    pub capture_content: bool,
}

/// `tracing.otlp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// The collector's URL (`http://` or `https://`). gRPC: used as is (default
    /// `http://localhost:4317`); HTTP: `/v1/traces` is appended to a URL without a path
    /// (default `http://localhost:4318/v1/traces`). Default: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
    /// then `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// `grpc` or `http/protobuf`. Default: `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// Headers sent with every export (an API key, a tenant); secrets, never logged or shown
    /// by `/config`. Merged over `OTEL_EXPORTER_OTLP_HEADERS`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Longest an export may take (default `OTEL_EXPORTER_OTLP_TIMEOUT` in ms, else `10s`).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
}

/// `tracing.otlp.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OtlpProtocol {
    /// OTLP/gRPC.
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// `access_log:` — one line per finished request (listener, route, client, method, path,
/// status, duration, bytes, upstream, outcome). Never headers, query strings or bodies, so no
/// credentials. Read at start; changes take effect at restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessLogConfig {
    /// `stderr` (with the other log lines; silenced by `RUST_LOG` that disables the `access`
    /// target, e.g. `RUST_LOG=warn` or `info,access=off`), `off`, or a file path (created or
    /// appended to; relative to the config file's directory), written whatever `RUST_LOG` says.
    #[serde(default = "default_access_log_to")]
    pub to: String,
    /// `text` (`key=value` pairs) or `json` (one object per line). Default: the process's
    /// `--log-format`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<AccessLogFormat>,
    /// The fields of a line, in order. Default: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<AccessLogField>>,
    /// Lines waiting for the writer. When it is full (the disk or pipe is slower than the
    /// traffic) lines are dropped and counted in `switchboard_access_log_dropped_total`;
    /// requests never wait for the log. 1 to 1048576.
    #[serde(default = "default_access_log_buffer")]
    pub buffer: usize,
    /// The longest a line waits in the writer's 64 KiB batch before it is written (a full
    /// batch is written at once; all of it at shutdown).
    #[serde(default = "default_access_log_flush", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub flush_interval: Duration,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        Self {
            to: default_access_log_to(),
            format: None,
            fields: None,
            buffer: default_access_log_buffer(),
            flush_interval: default_access_log_flush(),
        }
    }
}

impl AccessLogConfig {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn default_access_log_to() -> String {
    "stderr".into()
}

fn default_access_log_flush() -> Duration {
    Duration::from_secs(1)
}

fn default_access_log_buffer() -> usize {
    4096
}

/// `access_log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// `key=value` pairs separated by spaces.
    Text,
    /// One JSON object per line.
    Json,
}

/// `access_log.fields[]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogField {
    /// When the response ended (RFC 3339, UTC, milliseconds).
    Time,
    /// Listener name.
    Listener,
    /// Route name, or `none`.
    Route,
    /// Client IP (through trusted proxies).
    Client,
    /// Request method.
    Method,
    /// Request path, without the query string.
    Path,
    /// Response status.
    Status,
    /// Milliseconds from the request head to the end of the response body.
    DurationMs,
    /// Response body bytes sent.
    Bytes,
    /// The upstream that served it, or `none`.
    Upstream,
    /// `ok`, `aborted`, `upstream_error`, `shutdown` or `idle_timeout`.
    Outcome,
}

impl AccessLogField {
    /// Every field, in the default order.
    pub const ALL: [AccessLogField; 11] = [
        AccessLogField::Time,
        AccessLogField::Listener,
        AccessLogField::Route,
        AccessLogField::Client,
        AccessLogField::Method,
        AccessLogField::Path,
        AccessLogField::Status,
        AccessLogField::DurationMs,
        AccessLogField::Bytes,
        AccessLogField::Upstream,
        AccessLogField::Outcome,
    ];

    /// The field's name in config and in log lines.
    pub fn name(self) -> &'static str {
        match self {
            AccessLogField::Time => "time",
            AccessLogField::Listener => "listener",
            AccessLogField::Route => "route",
            AccessLogField::Client => "client",
            AccessLogField::Method => "method",
            AccessLogField::Path => "path",
            AccessLogField::Status => "status",
            AccessLogField::DurationMs => "duration_ms",
            AccessLogField::Bytes => "bytes",
            AccessLogField::Upstream => "upstream",
            AccessLogField::Outcome => "outcome",
        }
    }
}

/// `admin:` — the admin listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`, `/config`).
    /// Keep it on loopback or a private network: `/config` shows the (redacted) configuration.
    #[serde(default = "default_admin_bind")]
    pub bind: String,
    /// Bearer token for `/ui`, `/api/*`, `/config` and `/drain` (`/healthz`, `/readyz` and
    /// `/metrics` stay open). Without it, a listener bound beyond loopback refuses those with 403.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: default_admin_bind(),
            token: None,
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

/// `routes[]` — a matcher, policies and exactly one backend (or a redirect).
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
    /// Answer every matched request with a redirect (Gateway API `RequestRedirect`); such a
    /// route has no backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
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
    /// Regular expression (Rust `regex` syntax, at most 1 KiB) the whole normalized path must
    /// match (it is anchored: `^(?:…)$`). With `path_prefix`, both must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_regex: Option<String>,
    /// Headers whose value must match these regular expressions (anchored; any one value of a
    /// repeated header may match).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_regex: BTreeMap<String, String>,
    /// Query parameters that must be present with exactly these values (names case-sensitive,
    /// compared after percent-decoding; the first occurrence of a name counts).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Query parameters whose (decoded) value must match these regular expressions (anchored).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_regex: BTreeMap<String, String>,
}

impl RouteMatch {
    /// Whether the match has conditions `covers` cannot reason about (regular expressions and
    /// query parameters): such a match covers only an identical one.
    pub fn has_opaque_conditions(&self) -> bool {
        self.path_regex.is_some()
            || !self.headers_regex.is_empty()
            || !self.query.is_empty()
            || !self.query_regex.is_empty()
    }
}

/// `routes[].http` — reverse proxy to an HTTP upstream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpBackendConfig {
    /// Upstream base URL (`http://` or `https://`). With a path other than `/`, the route's
    /// `path_prefix` is replaced by that path (as nginx's `proxy_pass` with a URI does). Set
    /// this or `upstreams`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    /// Several upstreams sharing the traffic by weight (Gateway API weighted `backendRefs`):
    /// each request goes to one, chosen at random in proportion to `weight`; weight 0 gets no
    /// traffic. Set this or `url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<WeightedUpstream>,
    /// Rewrite the path and/or the `Host` sent upstream (Gateway API `URLRewrite`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<RewriteConfig>,
    /// Send a copy of each request to another upstream, fire and forget (Gateway API
    /// `RequestMirror`); its answer is discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<MirrorConfig>,
    /// Retry a request that failed to connect or got one of the listed statuses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<RetryConfig>,
    /// Speak HTTP/2 to the upstream: h2c with prior knowledge on `http://`, ALPN `h2` only on
    /// `https://`. Needed for gRPC backends. Upgrades are not tunnelled then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// Send the client's `Host` header upstream instead of the upstream's own host.
    #[serde(default)]
    pub preserve_host: bool,
    /// `Upgrade` protocols passed to the upstream (case-insensitive names, e.g. `websocket`).
    /// Default: `[websocket]`; `[]` allows none. `h2c` is never allowed. Other upgrade
    /// requests are forwarded as plain HTTP/1.1 without their `Upgrade` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrades: Option<Vec<String>>,
}

/// `routes[].http.upstreams[]` — one upstream of a weighted split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WeightedUpstream {
    /// Upstream base URL, as `http.url`.
    pub url: String,
    /// Relative share of the requests (0 = none). Default 1. At most 1000000.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// A replacement path (Gateway API `HTTPPathModifier`): exactly one of `full`, `prefix`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathModifier {
    /// Replace the whole path (`ReplaceFullPath`); the query is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<String>,
    /// Replace the route's `match.path_prefix` (`ReplacePrefixMatch`; none counts as `/`):
    /// with prefix `/foo`, `{prefix: /bar}` turns `/foo/x` into `/bar/x` and `{prefix: /}`
    /// into `/x`. Not on a route matching `path` or `path_regex`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// `routes[].http.rewrite` — what the upstream sees instead of the client's request line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// The new path: `{full: /p}` or `{prefix: /p}`. The upstream URL must then have no path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// The `Host` header sent upstream (not together with `preserve_host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// `routes[].http.mirror` — a fire-and-forget copy of each request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// Base URL of the mirror (`http://` or `https://`); the request path is kept.
    pub url: String,
    /// Share of requests mirrored, 0–100. Default 100.
    #[serde(default = "default_percent")]
    pub percent: u8,
}

fn default_percent() -> u8 {
    100
}

/// `routes[].http.retries` — replaying failed requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts after the first, 1–10.
    pub attempts: u32,
    /// Upstream statuses that are retried. Default `[502, 503, 504]`. Connection failures are
    /// always retried.
    #[serde(default = "default_retry_on")]
    pub on: Vec<u16>,
    /// Pause before each retry. Default `25ms`; at most `10s`.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub backoff: Duration,
    /// Largest request body kept in memory so that it can be sent again; a request with a
    /// larger (or unannounced, chunked) body is sent once. Default 65536; at most 1 MiB.
    #[serde(default = "default_retry_body")]
    pub max_body_bytes: u32,
}

fn default_retry_on() -> Vec<u16> {
    vec![502, 503, 504]
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

fn default_retry_body() -> u32 {
    65536
}

/// `routes[].redirect` — answer with a redirect (Gateway API `RequestRedirect`). Keys not
/// given keep the request's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// Host name (without port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port; the scheme's default port is left out of `Location`. When not given, the
    /// request's port is kept unless `scheme` changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The new path: `{full: /p}` or `{prefix: /p}` (as `http.rewrite.path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// 301, 302, 303, 307 or 308. Default 302.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
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
