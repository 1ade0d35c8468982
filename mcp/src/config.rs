//! The `mcp:` backend block of a route (see DESIGN.md), parsed then validated.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The default per-target timeout for one upstream request.
pub const DEFAULT_TARGET_TIMEOUT: Duration = Duration::from_secs(60);

/// Configuration of an `mcp` route backend: the targets it federates and how their
/// tools, prompts and resources are exposed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpConfig {
    /// How names are prefixed with their target: `conditional` (default: only with more than
    /// one target), `always` or `never`. Prefixed names are `{target}__{name}`.
    #[serde(default)]
    pub prefix: PrefixMode,
    /// The MCP servers federated behind this route.
    #[schemars(length(min = 1))]
    pub targets: Vec<TargetConfig>,
    /// What a fan-out (`tools/list`, ...) does when a target fails or times out:
    /// `fail_open` (default: skip the target) or `fail_closed` (fail the request).
    #[serde(default)]
    pub failure_mode: FailureMode,
    /// Tool filtering over the exposed (prefixed) names; default: everything allowed.
    #[serde(default)]
    pub tools: ToolFilter,
    /// Allowed `Origin` header values (DNS-rebinding protection). Empty (default): requests with
    /// an `Origin` are accepted only when it is a loopback origin; `"*"` allows all.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Allowed `Host` header values (host or host:port). Empty (default): any host.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// How long a call made for a stateless (2026-07-28) client waits for the client's
    /// `inputResponses` after the gateway answered `input_required` on behalf of a session-era
    /// target (default `5m`); a call never retried is then cancelled and forgotten.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub input_timeout: Option<Duration>,
    /// Largest single message a target may send, in bytes (default 8 MiB): a JSON reply body,
    /// one SSE line or event, one stdio line. Over it an HTTP or SSE reply fails with a
    /// JSON-RPC error naming the target, and a stdio line is dropped (the request then times
    /// out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub max_reply_bytes: Option<usize>,
    /// Most messages queued toward one client's SSE stream (default 1024). A client that
    /// lets more pile up (it reads too slowly, or not at all) has that stream closed; a
    /// session's client resumes it from the event log with `Last-Event-ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_queued_messages: Option<usize>,
}

/// Smallest accepted [`McpConfig::max_reply_bytes`].
pub const MIN_MAX_REPLY_BYTES: usize = 1024;

/// Default of `mcp.max_reply_bytes`: the largest single message a target may send.
pub const DEFAULT_MAX_REPLY_BYTES: usize = 8 * 1024 * 1024;

/// Default of [`McpConfig::input_timeout`].
pub const DEFAULT_INPUT_TIMEOUT: Duration = Duration::from_secs(300);

/// Name prefixing mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrefixMode {
    /// Prefix only when the route has more than one target.
    #[default]
    Conditional,
    /// Always prefix with `{target}__`.
    Always,
    /// Never prefix; on a name clash the first target (in config order) wins.
    Never,
}

/// What to do when a target fails during a fan-out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// Skip the failing target and answer with the others.
    #[default]
    FailOpen,
    /// Fail the whole request.
    FailClosed,
}

/// Allow and deny globs over exposed tool names (`{target}__{name}` when prefixed, before any
/// shortening to 64 characters). A tool is exposed when it matches `allow` (or `allow` is
/// empty) and does not match `deny`; a hidden tool cannot be called either.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolFilter {
    /// Globs of exposed names to allow (empty: all).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Globs of exposed names to hide and refuse.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// One federated MCP server. Exactly one of `stdio`, `http`, `sse`, `openapi` must be set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Target name, used as the name prefix; letters, digits, `-` and `_`, no `__`.
    pub name: String,
    /// A local server spawned as a child process speaking MCP over stdin/stdout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdio: Option<StdioTarget>,
    /// A Streamable HTTP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTarget>,
    /// A legacy HTTP+SSE server (the URL of its SSE endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sse: Option<HttpTarget>,
    /// A REST service described by an OpenAPI 3.0/3.1 document: each operation is a tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openapi: Option<OpenApiTarget>,
    /// Timeout of one request to this target (default `60s`): the longest wait for the reply
    /// or for the next message (progress, logging, ...) the target sends for the request.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(with = "Option<String>")]
    pub timeout: Option<Duration>,
    /// This target's upstream credential, replacing the route's `policies.upstream_auth` for
    /// it (http, sse and openapi targets): the policy's shape (`{header, prefix, value | env | file}`),
    /// or `none` to send this target no credential at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_auth: Option<TargetUpstreamAuth>,
}

/// `targets[].upstream_auth`: `none`, or a credential of its own.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TargetUpstreamAuth {
    /// `none`: this target gets no upstream credential, whatever the route's policy says.
    Off(NoCredential),
    /// This target's own credential.
    Credential(UpstreamAuthSpec),
}

impl<'de> Deserialize<'de> for TargetUpstreamAuth {
    /// `none` or a credential map, with an error that says so (an untagged enum's would not).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) if s == "none" => Ok(Self::Off(NoCredential::None)),
            v @ serde_json::Value::Object(_) => serde_json::from_value(v)
                .map(Self::Credential)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "expected `none` or a credential `{header, prefix, value | env | file}`",
            )),
        }
    }
}

/// The word `none` of `targets[].upstream_auth: none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoCredential {
    /// Send no credential.
    None,
}

/// A credential the gateway sends to a target: the shape of `policies.upstream_auth` (the
/// gateway validates and compiles it; see its README section). Exactly one of `value`, `env`
/// or `file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamAuthSpec {
    /// Header to set. Default `authorization`.
    #[serde(default = "default_auth_header")]
    pub header: String,
    /// Text put before the secret, e.g. `"Bearer "`. Default empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
    /// The secret itself (prefer `${VAR}` expansion or `env`/`file`). Redacted in `/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Environment variable holding the secret, read when the config loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the secret (surrounding whitespace trimmed); re-read when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

fn default_auth_header() -> String {
    "authorization".into()
}

impl TargetConfig {
    /// The configured timeout or the default.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TARGET_TIMEOUT)
    }
}

/// A child process target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioTarget {
    /// Program to run (looked up on `PATH`).
    pub command: String,
    /// Arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (added to the gateway's environment).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: the gateway's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Which downstream sessions a child serves: `shared` (default) or `per_session`.
    #[serde(default)]
    pub sessions: StdioSessions,
}

/// How a stdio target's child processes map to downstream sessions.
///
/// `shared` (default): one child per target, started with the backend, shared by every session
/// of the route and kept across config reloads while unchanged. The child is initialized once by
/// the gateway, which offers it the `sampling` and `elicitation` client capabilities whatever the
/// clients have, and never `roots` (a shared child has no single client whose roots it could ask
/// for, so servers that offer tools only to roots-capable clients do not offer them here). Over
/// stdio a server request (`sampling/createMessage`, `elicitation/create`, `roots/list`) cannot
/// name the client request it belongs to, so the gateway attributes it to the session with the
/// newest request in flight on that child and sends it on that request's stream: with requests
/// of several sessions in flight at once it may reach the wrong session. With no request in
/// flight it is answered with an error (-32601). A session whose client did not declare the
/// capability a request needs is never sent it: the gateway answers the child with an error
/// (-32601) on the client's behalf, so the tool that asked fails. Progress is routed exactly (by
/// token); logging goes with the newest request in flight, else to every session of the route,
/// as do `list_changed` and `resources/updated`. Use `per_session` when a server depends on roots
/// or on exact sampling/elicitation ownership.
///
/// `per_session`: one child per downstream session, spawned when the session initializes (or,
/// for a session rebuilt from its token, e.g. after a gateway restart, on its first request to
/// the target) and initialized with that client's own `initialize` parameters, so it is offered
/// `roots`, `sampling` and `elicitation` exactly when the client has them; the client's own
/// `notifications/initialized` is passed on. Every server request and notification of the child
/// goes to its session only (ids rewritten, replies routed back). The child survives config
/// reloads with an unchanged target, is restarted with backoff if it dies while its session
/// lives, and is killed — never restarted — when the session ends (DELETE, idle expiry,
/// revocation, the legacy SSE stream closing, gateway shutdown). A stateless (2026-07-28)
/// request gets a child of its own for the duration of the request. Costs one process per
/// live session: bound sessions with authentication (`sessions.max_per_principal`), rate limits
/// and `sessions.idle_timeout`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StdioSessions {
    /// One child shared by all sessions of the route.
    #[default]
    Shared,
    /// One child per downstream session, owned by it.
    PerSession,
}

/// An HTTP target (streamable HTTP or legacy SSE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpTarget {
    /// Endpoint URL (`http://` or `https://`).
    pub url: String,
    /// Headers sent with every upstream request (e.g. `authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// A REST service exposed as tools (see `upstream::openapi` for how operations become tools).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenApiTarget {
    /// The OpenAPI 3.0 or 3.1 document (JSON or YAML): a file path (a relative path resolves
    /// against the config file's folder), or an `http(s)://` URL fetched once when the route
    /// is built.
    pub spec: String,
    /// Base URL the operations' paths are appended to (default: the document's first
    /// `servers[].url`, which must then be absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Headers sent with every REST request (e.g. `authorization`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// Whether an OpenAPI `spec` is a URL (fetched) rather than a file path.
pub(crate) fn is_url(spec: &str) -> bool {
    spec.starts_with("http://") || spec.starts_with("https://")
}

impl OpenApiTarget {
    /// This target with a relative `spec` file path made relative to `base_dir` instead of the
    /// working directory (a URL stays as it is).
    pub fn resolved(&self, base_dir: &Path) -> OpenApiTarget {
        let mut o = self.clone();
        if !is_url(&o.spec) && !o.spec.trim().is_empty() {
            o.spec = base_dir.join(&o.spec).to_string_lossy().into_owned();
        }
        o
    }
}

/// The transport of a validated target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Child process.
    Stdio,
    /// Streamable HTTP.
    Http,
    /// Legacy HTTP+SSE.
    Sse,
    /// A REST service described by an OpenAPI document.
    OpenApi,
}

impl TargetConfig {
    /// Which transport this target uses (the first set; validation guarantees exactly one).
    pub fn kind(&self) -> Option<TransportKind> {
        match (&self.stdio, &self.http, &self.sse, &self.openapi) {
            (Some(_), None, None, None) => Some(TransportKind::Stdio),
            (None, Some(_), None, None) => Some(TransportKind::Http),
            (None, None, Some(_), None) => Some(TransportKind::Sse),
            (None, None, None, Some(_)) => Some(TransportKind::OpenApi),
            _ => None,
        }
    }
}

impl McpConfig {
    /// The configured input timeout or the default.
    pub fn input_timeout(&self) -> Duration {
        self.input_timeout.unwrap_or(DEFAULT_INPUT_TIMEOUT)
    }

    /// The configured reply cap or the default (8 MiB).
    pub fn max_reply_bytes(&self) -> usize {
        self.max_reply_bytes.unwrap_or(DEFAULT_MAX_REPLY_BYTES)
    }

    /// The configured per-stream queue bound or the default (1024).
    pub fn max_queued_messages(&self) -> usize {
        self.max_queued_messages
            .unwrap_or(crate::outbox::DEFAULT_MAX_QUEUED_MESSAGES)
    }

    /// Semantic checks; returns `(key_path, message)` pairs, empty when valid. `path` is the
    /// key path of this block (e.g. `listeners[0].routes[1].mcp`). Relative `openapi.spec`
    /// files are read from the working directory; see [`validate_in`](Self::validate_in).
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        self.validate_in(path, Path::new(""))
    }

    /// The checks of [`validate_in`](Self::validate_in) that need no OpenAPI document (those
    /// are in `crate::checks`, beside the code that reads documents).
    pub(crate) fn validate_static(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.targets.is_empty() {
            issues.push((
                format!("{path}.targets"),
                "at least one target is required".into(),
            ));
        }
        if self.input_timeout == Some(Duration::ZERO) {
            issues.push((
                format!("{path}.input_timeout"),
                "must be greater than zero".into(),
            ));
        }
        if self
            .max_reply_bytes
            .is_some_and(|n| n < MIN_MAX_REPLY_BYTES)
        {
            issues.push((
                format!("{path}.max_reply_bytes"),
                format!("must be at least {MIN_MAX_REPLY_BYTES}"),
            ));
        }
        if self.max_queued_messages == Some(0) {
            issues.push((
                format!("{path}.max_queued_messages"),
                "must be at least 1".into(),
            ));
        }
        let mut seen = HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let tp = format!("{path}.targets[{i}]");
            if t.name.is_empty() {
                issues.push((format!("{tp}.name"), "must not be empty".into()));
            } else if t.name.contains("__") || t.name.ends_with('_') {
                // `{target}__{name}` is split at the first `__`: a target `a_` would expose
                // `a___x`, which is also target `a`'s tool `_x`.
                issues.push((
                    format!("{tp}.name"),
                    format!(
                        "`{}` must not contain `__` or end with `_`: prefixed names \
                         (`{{target}}__{{name}}`) are split at the first `__`, so it could \
                         collide with another target's names",
                        t.name
                    ),
                ));
            } else if !t
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                issues.push((
                    format!("{tp}.name"),
                    "may contain only ASCII letters, digits, `-` and `_`".into(),
                ));
            }
            if !seen.insert(t.name.as_str()) {
                issues.push((
                    format!("{tp}.name"),
                    format!("duplicate target name `{}`", t.name),
                ));
            }
            let set = [
                t.stdio.is_some(),
                t.http.is_some(),
                t.sse.is_some(),
                t.openapi.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if set != 1 {
                issues.push((
                    tp.clone(),
                    "exactly one of `stdio`, `http`, `sse`, `openapi` must be set".into(),
                ));
            }
            if let Some(s) = &t.stdio
                && s.command.trim().is_empty()
            {
                issues.push((format!("{tp}.stdio.command"), "must not be empty".into()));
            }
            for (key, h) in [("http", &t.http), ("sse", &t.sse)] {
                if let Some(h) = h {
                    match url::Url::parse(&h.url) {
                        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => {}
                        Ok(_) => issues.push((
                            format!("{tp}.{key}.url"),
                            "scheme must be http or https".into(),
                        )),
                        Err(e) => {
                            issues.push((format!("{tp}.{key}.url"), format!("invalid URL: {e}")))
                        }
                    }
                    for name in h.headers.keys() {
                        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                            issues.push((
                                format!("{tp}.{key}.headers.{name}"),
                                "invalid header name".into(),
                            ));
                        }
                    }
                }
            }
            if let Some(TargetUpstreamAuth::Credential(a)) = &t.upstream_auth {
                if t.stdio.is_some() {
                    issues.push((
                        format!("{tp}.upstream_auth"),
                        "only http, sse and openapi targets are sent a credential".into(),
                    ));
                }
                let headers = t
                    .http
                    .as_ref()
                    .or(t.sse.as_ref())
                    .map(|h| &h.headers)
                    .or(t.openapi.as_ref().map(|o| &o.headers));
                if headers.is_some_and(|h| h.keys().any(|k| k.eq_ignore_ascii_case(&a.header))) {
                    issues.push((
                        format!("{tp}.upstream_auth.header"),
                        format!(
                            "`{}` is also in this target's `headers`: set it in one place",
                            a.header
                        ),
                    ));
                }
            }
            if t.timeout == Some(Duration::ZERO) {
                issues.push((format!("{tp}.timeout"), "must be greater than zero".into()));
            }
        }
        for (key, globs) in [("allow", &self.tools.allow), ("deny", &self.tools.deny)] {
            for (i, g) in globs.iter().enumerate() {
                if let Err(e) = globset::Glob::new(g) {
                    issues.push((
                        format!("{path}.tools.{key}[{i}]"),
                        format!("invalid glob: {e}"),
                    ));
                }
            }
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> McpConfig {
        serde_json::from_value(yaml_to_json(yaml)).unwrap()
    }

    // The crate does not depend on a YAML parser; JSON is YAML's subset we test with.
    fn yaml_to_json(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    fn issues(json: &str) -> Vec<(String, String)> {
        parse(json).validate("mcp")
    }

    #[test]
    fn target_upstream_auth_is_none_or_a_credential() {
        let c = parse(
            r#"{"targets":[
                {"name":"a","http":{"url":"http://x/mcp"},"upstream_auth":"none"},
                {"name":"b","sse":{"url":"http://x/sse"},"upstream_auth":{"header":"x-api-key","file":"k"}}]}"#,
        );
        assert_eq!(
            c.targets[0].upstream_auth,
            Some(TargetUpstreamAuth::Off(NoCredential::None))
        );
        let Some(TargetUpstreamAuth::Credential(b)) = &c.targets[1].upstream_auth else {
            panic!("{:?}", c.targets[1].upstream_auth)
        };
        assert_eq!(
            (b.header.as_str(), b.file.as_deref()),
            ("x-api-key", Some("k"))
        );
        assert!(c.validate("mcp").is_empty());
        let bad = serde_json::from_str::<McpConfig>(
            r#"{"targets":[{"name":"a","http":{"url":"http://x/mcp"},"upstream_auth":"nope"}]}"#,
        )
        .unwrap_err();
        assert!(
            bad.to_string().contains("expected `none` or a credential"),
            "{bad}"
        );
    }

    #[test]
    fn openapi_targets_take_upstream_auth_and_relative_specs_resolve_against_base_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("docs")).unwrap();
        std::fs::write(
            dir.path().join("docs/p.yaml"),
            "openapi: 3.0.3\ninfo: {title: t, version: '1'}\npaths:\n  /x:\n    get: {operationId: x}\n",
        )
        .unwrap();
        let c = parse(
            r#"{"targets":[
                {"name":"own","openapi":{"spec":"docs/p.yaml","base_url":"http://h"},"upstream_auth":{"value":"v"}},
                {"name":"dup","openapi":{"spec":"docs/p.yaml","base_url":"http://h","headers":{"Authorization":"x"}},"upstream_auth":{"value":"v"}},
                {"name":"off","openapi":{"spec":"docs/p.yaml","base_url":"http://h","headers":{"Authorization":"x"}},"upstream_auth":"none"}]}"#,
        );
        assert_eq!(
            c.validate_in("mcp", dir.path()),
            [(
                "mcp.targets[1].upstream_auth.header".to_string(),
                "`authorization` is also in this target's `headers`: set it in one place"
                    .to_string()
            )]
        );
        assert!(c.warnings("mcp", dir.path()).is_empty());
        // From the working directory, the relative spec is not there.
        let cwd = c.validate("mcp");
        assert!(
            cwd.iter()
                .any(|(k, m)| k == "mcp.targets[0].openapi.spec" && m.contains("cannot read")),
            "{cwd:?}"
        );
        let url = c.targets[0].openapi.clone().unwrap();
        let url = OpenApiTarget {
            spec: "http://h/doc.yaml".into(),
            ..url
        };
        assert_eq!(url.resolved(dir.path()).spec, "http://h/doc.yaml");
    }

    #[test]
    fn minimal_config_is_valid_with_defaults() {
        let c = parse(r#"{"targets":[{"name":"a","http":{"url":"http://x/mcp"}}]}"#);
        assert_eq!(c.prefix, PrefixMode::Conditional);
        assert_eq!(c.failure_mode, FailureMode::FailOpen);
        assert_eq!(c.targets[0].timeout(), DEFAULT_TARGET_TIMEOUT);
        assert!(c.validate("mcp").is_empty());
    }

    #[test]
    fn full_config_parses() {
        let c = parse(
            r#"{"prefix":"always","failure_mode":"fail_closed",
            "tools":{"allow":["a__*"],"deny":["*secret*"]},
            "allowed_origins":["https://app.example"],"allowed_hosts":["localhost:8080"],
            "targets":[
              {"name":"a","stdio":{"command":"npx","args":["-y","x"],"env":{"K":"V"},"cwd":"/tmp"},"timeout":"5s"},
              {"name":"b","http":{"url":"https://h/mcp","headers":{"authorization":"Bearer t"}}},
              {"name":"c","sse":{"url":"http://h/sse"}}]}"#,
        );
        assert_eq!(c.targets[0].timeout(), Duration::from_secs(5));
        assert_eq!(c.targets[2].kind(), Some(TransportKind::Sse));
        assert!(c.validate("mcp").is_empty(), "{:?}", c.validate("mcp"));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let r: Result<McpConfig, _> = serde_json::from_str(
            r#"{"targets":[{"name":"a","http":{"url":"http://x"},"bogus":1}]}"#,
        );
        assert!(r.is_err());
        let r: Result<McpConfig, _> = serde_json::from_str(r#"{"targets":[],"prefx":"always"}"#);
        assert!(r.is_err());
        let r: Result<McpConfig, _> =
            serde_json::from_str(r#"{"targets":[],"prefix":"sometimes"}"#);
        assert!(r.is_err());
    }

    #[test]
    fn duplicate_target_names() {
        let i = issues(
            r#"{"targets":[{"name":"a","http":{"url":"http://x"}},{"name":"a","http":{"url":"http://y"}}]}"#,
        );
        assert_eq!(
            i,
            vec![(
                "mcp.targets[1].name".into(),
                "duplicate target name `a`".into()
            )]
        );
    }

    #[test]
    fn exactly_one_transport() {
        let i = issues(
            r#"{"targets":[{"name":"a","http":{"url":"http://x"},"sse":{"url":"http://y"}},{"name":"b"}]}"#,
        );
        assert_eq!(i.len(), 2);
        assert_eq!(i[0].0, "mcp.targets[0]");
        assert_eq!(i[1].0, "mcp.targets[1]");
    }

    #[test]
    fn double_underscore_in_name() {
        let i = issues(r#"{"targets":[{"name":"a__b","http":{"url":"http://x"}}]}"#);
        assert_eq!(i[0].0, "mcp.targets[0].name");
        assert!(i[0].1.contains("__"));
    }

    #[test]
    fn max_reply_bytes_has_a_floor() {
        let i =
            issues(r#"{"max_reply_bytes":10,"targets":[{"name":"a","http":{"url":"http://x"}}]}"#);
        assert_eq!(i.len(), 1);
        assert_eq!(i[0].0, "mcp.max_reply_bytes");
        let c = parse(r#"{"targets":[{"name":"a","http":{"url":"http://x"}}]}"#);
        assert_eq!(c.max_reply_bytes(), 8 * 1024 * 1024);
    }

    #[test]
    fn names_that_collide_after_prefixing() {
        // `a` and `a_` would both expose `a___x` (`a`'s `_x`, `a_`'s `x`).
        let i = issues(
            r#"{"targets":[{"name":"a","http":{"url":"http://x"}},{"name":"a_","http":{"url":"http://y"}}]}"#,
        );
        assert_eq!(i.len(), 1, "{i:?}");
        assert_eq!(i[0].0, "mcp.targets[1].name");
        assert!(i[0].1.contains("end with `_`"), "{}", i[0].1);
        // A leading or inner single `_` is unambiguous.
        assert!(issues(r#"{"targets":[{"name":"_a_b","http":{"url":"http://x"}}]}"#).is_empty());
    }

    #[test]
    fn bad_characters_in_name() {
        let i = issues(r#"{"targets":[{"name":"a b","http":{"url":"http://x"}}]}"#);
        assert_eq!(i[0].0, "mcp.targets[0].name");
    }

    #[test]
    fn no_targets() {
        let i = issues(r#"{"targets":[]}"#);
        assert_eq!(i[0].0, "mcp.targets");
    }

    #[test]
    fn bad_url_and_scheme() {
        let i = issues(
            r#"{"targets":[{"name":"a","http":{"url":"not a url"}},{"name":"b","sse":{"url":"ftp://x"}}]}"#,
        );
        assert_eq!(i[0].0, "mcp.targets[0].http.url");
        assert_eq!(i[1].0, "mcp.targets[1].sse.url");
    }

    #[test]
    fn bad_glob_and_header_and_timeout() {
        let i = issues(
            r#"{"tools":{"deny":["a[" ]},"targets":[{"name":"a","timeout":"0s","http":{"url":"http://x","headers":{"bad header":"v"}}}]}"#,
        );
        let keys: Vec<_> = i.iter().map(|x| x.0.as_str()).collect();
        assert!(keys.contains(&"mcp.tools.deny[0]"), "{keys:?}");
        assert!(
            keys.contains(&"mcp.targets[0].http.headers.bad header"),
            "{keys:?}"
        );
        assert!(keys.contains(&"mcp.targets[0].timeout"), "{keys:?}");
        let c =
            parse(r#"{"input_timeout":"0s","targets":[{"name":"a","http":{"url":"http://x"}}]}"#);
        assert_eq!(c.validate("mcp")[0].0, "mcp.input_timeout");
        let c =
            parse(r#"{"input_timeout":"90s","targets":[{"name":"a","http":{"url":"http://x"}}]}"#);
        assert!(c.validate("mcp").is_empty());
        assert_eq!(c.input_timeout(), Duration::from_secs(90));
    }

    #[test]
    fn empty_stdio_command() {
        let i = issues(r#"{"targets":[{"name":"a","stdio":{"command":" "}}]}"#);
        assert_eq!(i[0].0, "mcp.targets[0].stdio.command");
    }

    #[test]
    fn stdio_sessions_default_to_shared_and_take_per_session() {
        let c = parse(r#"{"targets":[{"name":"a","stdio":{"command":"x"}}]}"#);
        assert_eq!(
            c.targets[0].stdio.as_ref().unwrap().sessions,
            StdioSessions::Shared
        );
        let c =
            parse(r#"{"targets":[{"name":"a","stdio":{"command":"x","sessions":"per_session"}}]}"#);
        assert_eq!(
            c.targets[0].stdio.as_ref().unwrap().sessions,
            StdioSessions::PerSession
        );
        let r: Result<McpConfig, _> = serde_json::from_str(
            r#"{"targets":[{"name":"a","stdio":{"command":"x","sessions":"per-session"}}]}"#,
        );
        assert!(r.is_err());
    }

    #[test]
    fn schema_generates() {
        let s = schemars::schema_for!(McpConfig);
        let j = serde_json::to_string(&s).unwrap();
        assert!(j.contains("failure_mode"));
        assert!(j.contains("per_session"));
    }
}
