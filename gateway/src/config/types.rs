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
