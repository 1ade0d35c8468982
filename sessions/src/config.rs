//! The `sessions:` block of the gateway configuration.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Length in bytes of a session key (AES-256).
pub const KEY_LEN: usize = 32;

/// Where session metadata, revocations and event logs live.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// In this process (the default): no setup, but event logs, revocations and upstream session
    /// ids learned after initialization are not shared with other replicas and do not survive a
    /// restart. Tokens still open on any replica holding the key.
    #[default]
    Memory,
    /// A Redis server shared by all replicas (`sessions.redis.url`); needed for `Last-Event-ID`
    /// resumption on another replica and fleet-wide revocation and idle expiry.
    Redis,
}

/// `sessions.redis`: the shared Redis store, in one of three topologies (exactly one of `url`,
/// `cluster`, `sentinel`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// One server: `redis://[user:password@]host:port[/db]`, `rediss://...` (TLS) or
    /// `unix:///path/to/redis.sock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Redis Cluster: seed node URLs (`redis://` or `rediss://`); the rest of the cluster is
    /// discovered from them. Keys of one session share a hash tag, so every script stays on
    /// one slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// Redis Sentinel: the master's name and the sentinels to ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    /// ACL user for every node (overrides one in the URLs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password for every node (overrides one in the URLs); use `${ENV}`. Never logged nor
    /// shown by `/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// With `rediss://` URLs: a PEM file of the CA certificates to trust instead of the
    /// system's (a private CA). A relative path is relative to the working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Prefix of every key Switchboard writes, so one Redis can serve several fleets.
    /// Default `switchboard:`. Must not contain `{` or `}` (hash tags).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Bound on every Redis call (connect included). Default `250ms`.
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// The circuit breaker: after `failures` consecutive failed calls, calls fail at once for
    /// `cool_down`, then one probe call decides whether Redis is back.
    #[serde(default)]
    pub breaker: BreakerConfig,
    /// `/readyz` answers 503 while the breaker is open. Default `false`: every replica shares
    /// the one Redis, so pulling replicas out of a load balancer would not help and would take
    /// routes that do not need Redis down with them.
    #[serde(default)]
    pub required_for_ready: bool,
}

/// `sessions.redis.sentinel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// The master's name as the sentinels know it (`sentinel monitor NAME ...`).
    pub master: String,
    /// Sentinel URLs, `redis://host:port` (`rediss://` for TLS to the sentinels and the master).
    pub nodes: Vec<String>,
}

/// `sessions.redis.breaker`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open the breaker. Default `3`.
    #[serde(default = "default_breaker_failures")]
    pub failures: u32,
    /// How long an open breaker fails calls at once before one probe. Default `2s`.
    #[serde(default = "default_cool_down", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: default_breaker_failures(),
            cool_down: default_cool_down(),
        }
    }
}

fn default_breaker_failures() -> u32 {
    3
}
fn default_cool_down() -> Duration {
    Duration::from_secs(2)
}
fn default_redis_timeout() -> Duration {
    Duration::from_millis(250)
}

impl RedisConfig {
    /// A standalone server at `url` with every other key at its default.
    pub fn standalone(url: impl Into<String>) -> Self {
        RedisConfig {
            url: Some(url.into()),
            ..RedisConfig::default()
        }
    }
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            cluster: Vec::new(),
            sentinel: None,
            username: None,
            password: None,
            tls_ca: None,
            prefix: default_prefix(),
            timeout: default_redis_timeout(),
            breaker: BreakerConfig::default(),
            required_for_ready: false,
        }
    }
}

impl fmt::Debug for RedisConfig {
    // URLs may embed a password; the password key is one.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_deref().map(redact_url))
            .field(
                "cluster",
                &self
                    .cluster
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field(
                "sentinel",
                &self.sentinel.as_ref().map(|s| {
                    (
                        &s.master,
                        s.nodes.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
                    )
                }),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("breaker", &self.breaker)
            .field("required_for_ready", &self.required_for_ready)
            .finish()
    }
}

/// The `sessions:` block: session tokens, the store and expiry.
#[derive(Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// `memory` (default) or `redis`.
    #[serde(default)]
    pub store: StoreKind,
    /// The Redis server; required when `store: redis`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisConfig>,
    /// Base64 32-byte keys for the session-token AEAD (AES-256-GCM). The first encrypts new
    /// tokens, all decrypt, so a key rotates by putting the new one first and dropping the old
    /// one after `max_lifetime`. Empty (default): a random key is generated at start, and
    /// sessions then do not survive a restart or span replicas.
    /// Generate one with `head -c 32 /dev/urandom | base64`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// A session with no request and no open stream for this long expires and its upstream
    /// connections and stdio children are released. Default `30m`.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub idle_timeout: Duration,
    /// A session expires this long after it was created, however active. Default `24h`.
    #[serde(default = "default_max_lifetime", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_lifetime: Duration,
    /// Live sessions one authenticated principal may hold; creating one more fails (HTTP 429).
    /// Anonymous sessions are bounded by `idle_timeout` and rate limits only. Default `1000`.
    #[serde(default = "default_max_per_principal")]
    pub max_per_principal: u32,
    /// Events kept per stream for `Last-Event-ID` resumption; older ones are dropped.
    /// Default `1024`.
    #[serde(default = "default_event_log_size")]
    pub event_log_size: u32,
    /// This replica's id, written into tokens of sessions with stdio targets (which live on one
    /// replica). Use an address other replicas can reach, e.g. `${POD_IP}:8080`. Default: a
    /// random id chosen at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
    /// The internal hop between replicas: a request for a session whose stdio targets run on
    /// another replica is forwarded there. Without it (default) such a request is answered
    /// with an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerConfig>,
}

/// `sessions.peer`: where this replica takes requests forwarded by other replicas, and the
/// address it registers for them in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// `host:port` of the internal listener (port 0: any free port). Keep it on a private
    /// network; every request on it must carry a hop sealed with `sessions.keys`.
    pub bind: String,
    /// The URL other replicas use to reach `bind`, e.g. `http://${POD_IP}:15010`. Default:
    /// `http://` and the bound address (right when `bind` names a reachable address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long a registration lives in the store without renewal; renewed every third of it.
    /// A replica that died stops being forwarded to after at most this long (sooner when its
    /// address refuses connections). Default `15s`.
    #[serde(default = "default_peer_ttl", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ttl: Duration,
}

fn default_peer_ttl() -> Duration {
    Duration::from_secs(15)
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            store: StoreKind::default(),
            redis: None,
            keys: Vec::new(),
            idle_timeout: default_idle_timeout(),
            max_lifetime: default_max_lifetime(),
            max_per_principal: default_max_per_principal(),
            event_log_size: default_event_log_size(),
            replica: None,
            peer: None,
        }
    }
}

impl fmt::Debug for SessionsConfig {
    // Keys are secrets and the Redis URL may hold a password: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionsConfig")
            .field("store", &self.store)
            .field("redis", &self.redis)
            .field("keys", &format_args!("[{} redacted]", self.keys.len()))
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("max_per_principal", &self.max_per_principal)
            .field("event_log_size", &self.event_log_size)
            .field("replica", &self.replica)
            .field("peer", &self.peer)
            .finish()
    }
}

fn default_prefix() -> String {
    "switchboard:".to_owned()
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_max_lifetime() -> Duration {
    Duration::from_secs(24 * 60 * 60)
}
fn default_max_per_principal() -> u32 {
    1000
}
fn default_event_log_size() -> u32 {
    1024
}

impl SessionsConfig {
    /// Checks the semantic rules serde cannot express. `path` is this block's key path (usually
    /// `sessions`); each issue is `(key path, message)`.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            if let Err(msg) = decode_key(key) {
                issues.push((format!("{path}.keys[{i}]"), msg));
            }
        }
        match (&self.store, &self.redis) {
            (StoreKind::Redis, None) => issues.push((
                format!("{path}.redis"),
                "required when store is redis (e.g. {url: redis://127.0.0.1:6379})".to_owned(),
            )),
            (_, Some(redis)) => redis.validate(&format!("{path}.redis"), &mut issues),
            (StoreKind::Memory, None) => {}
        }
        if self.idle_timeout < Duration::from_secs(1) {
            issues.push((
                format!("{path}.idle_timeout"),
                "must be at least 1s".to_owned(),
            ));
        }
        if self.max_lifetime < self.idle_timeout {
            issues.push((
                format!("{path}.max_lifetime"),
                "must not be shorter than idle_timeout".to_owned(),
            ));
        }
        if self.max_per_principal == 0 {
            issues.push((
                format!("{path}.max_per_principal"),
                "must be at least 1".to_owned(),
            ));
        }
        if self.event_log_size == 0 {
            issues.push((
                format!("{path}.event_log_size"),
                "must be at least 1".to_owned(),
            ));
        }
        if let Some(replica) = &self.replica
            && (replica.is_empty() || replica.len() > 255)
        {
            issues.push((
                format!("{path}.replica"),
                "must be 1 to 255 characters".to_owned(),
            ));
        }
        if let Some(peer) = &self.peer {
            let port_ok = peer
                .bind
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !port_ok {
                issues.push((
                    format!("{path}.peer.bind"),
                    "expected host:port, e.g. 0.0.0.0:15010".to_owned(),
                ));
            }
            if let Some(url) = &peer.url
                && !(url.starts_with("http://") && url.len() > "http://".len())
            {
                issues.push((
                    format!("{path}.peer.url"),
                    "expected http://host:port (the hop is authenticated by sessions.keys; put TLS in the network if needed)".to_owned(),
                ));
            }
            if peer.ttl < Duration::from_secs(1) {
                issues.push((format!("{path}.peer.ttl"), "must be at least 1s".to_owned()));
            }
            if self.store != StoreKind::Redis {
                issues.push((
                    format!("{path}.peer"),
                    "requires store: redis (replicas find each other, and share event logs, there)"
                        .to_owned(),
                ));
            }
            if self.keys.is_empty() {
                issues.push((
                    format!("{path}.keys"),
                    "required with peer: every replica must share the keys that seal the hop"
                        .to_owned(),
                ));
            }
        }
        issues
    }

    /// The configured keys, decoded. Fails on the first bad key (run [`validate`] first for
    /// messages with key paths).
    ///
    /// [`validate`]: SessionsConfig::validate
    pub fn decoded_keys(&self) -> crate::Result<Vec<[u8; KEY_LEN]>> {
        self.keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                decode_key(k).map_err(|m| crate::Error::Config(format!("keys[{i}]: {m}")))
            })
            .collect()
    }
}

/// Decodes one `sessions.keys` entry: standard or URL-safe base64, padded or not, 32 bytes.
pub fn decode_key(key: &str) -> Result<[u8; KEY_LEN], String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key (is the environment variable set?)".to_owned());
    }
    let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(key).ok())
        .ok_or_else(|| "not valid base64".to_owned())?;
    <[u8; KEY_LEN]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "must decode to {KEY_LEN} bytes, got {} (generate one with `head -c 32 /dev/urandom | base64`)",
            bytes.len()
        )
    })
}

impl RedisConfig {
    fn validate(&self, path: &str, issues: &mut Vec<(String, String)>) {
        let topologies = usize::from(self.url.is_some())
            + usize::from(!self.cluster.is_empty())
            + usize::from(self.sentinel.is_some());
        if topologies != 1 {
            issues.push((
                path.to_owned(),
                "set exactly one of url (one server), cluster (seed URLs) or sentinel ({master, nodes})"
                    .to_owned(),
            ));
        }
        if let Some(url) = &self.url
            && let Err(msg) = check_redis_url(url, true)
        {
            issues.push((format!("{path}.url"), msg));
        }
        for (i, url) in self.cluster.iter().enumerate() {
            if let Err(msg) = check_redis_url(url, false) {
                issues.push((format!("{path}.cluster[{i}]"), msg));
            }
        }
        if let Some(s) = &self.sentinel {
            if s.master.is_empty() {
                issues.push((
                    format!("{path}.sentinel.master"),
                    "must not be empty".to_owned(),
                ));
            }
            if s.nodes.is_empty() {
                issues.push((
                    format!("{path}.sentinel.nodes"),
                    "at least one sentinel URL".to_owned(),
                ));
            }
            for (i, url) in s.nodes.iter().enumerate() {
                if let Err(msg) = check_redis_url(url, false) {
                    issues.push((format!("{path}.sentinel.nodes[{i}]"), msg));
                }
            }
        }
        if self.prefix.is_empty() {
            issues.push((format!("{path}.prefix"), "must not be empty".to_owned()));
        }
        if self.prefix.contains(['{', '}']) {
            issues.push((
                format!("{path}.prefix"),
                "must not contain { or } (keys of one session share a {hash tag})".to_owned(),
            ));
        }
        if self.timeout < Duration::from_millis(1) {
            issues.push((format!("{path}.timeout"), "must be at least 1ms".to_owned()));
        }
        if self.breaker.failures == 0 {
            issues.push((
                format!("{path}.breaker.failures"),
                "must be at least 1".to_owned(),
            ));
        }
    }
}

fn check_redis_url(url: &str, unix_ok: bool) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(s, _)| s).unwrap_or("");
    match scheme {
        "redis" | "rediss" => {}
        "unix" | "redis+unix" if unix_ok => {}
        _ => {
            return Err(format!(
                "expected redis://host:port, rediss://host:port{}, got scheme {scheme:?}",
                if unix_ok { " or unix:///path" } else { "" }
            ));
        }
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|_| "not a valid Redis URL".to_owned())
}

/// The URL with any password replaced, for logs and debug output.
pub(crate) fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://<redacted>@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml_json: serde_json::Value) -> Result<SessionsConfig, serde_json::Error> {
        serde_json::from_value(yaml_json)
    }

    fn key_b64(len: usize) -> String {
        base64::engine::general_purpose::STANDARD.encode(vec![7u8; len])
    }

    #[test]
    fn defaults() {
        let c = parse(serde_json::json!({})).unwrap();
        assert_eq!(c, SessionsConfig::default());
        assert_eq!(c.store, StoreKind::Memory);
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.max_lifetime, Duration::from_secs(86400));
        assert_eq!(c.max_per_principal, 1000);
        assert_eq!(c.event_log_size, 1024);
        assert!(c.validate("sessions").is_empty());
    }

    #[test]
    fn full_block_parses() {
        let c = parse(serde_json::json!({
            "store": "redis",
            "redis": {"url": "redis://127.0.0.1:6379"},
            "keys": [key_b64(32)],
            "idle_timeout": "5m",
            "max_lifetime": "2h",
            "max_per_principal": 10,
            "event_log_size": 64,
            "replica": "10.0.0.7:8080",
        }))
        .unwrap();
        assert_eq!(c.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.redis.as_ref().unwrap().prefix, "switchboard:");
        assert!(
            c.validate("sessions").is_empty(),
            "{:?}",
            c.validate("sessions")
        );
        assert_eq!(c.decoded_keys().unwrap(), vec![[7u8; 32]]);
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(parse(serde_json::json!({"idle_timeut": "5m"})).is_err());
        assert!(parse(serde_json::json!({"redis": {"url": "redis://x", "tls": true}})).is_err());
        assert!(parse(serde_json::json!({"store": "postgres"})).is_err());
    }

    fn issues_of(c: &SessionsConfig) -> Vec<(String, String)> {
        c.validate("sessions")
    }

    #[test]
    fn bad_base64_key() {
        let c = SessionsConfig {
            keys: vec![key_b64(32), "not base64!!".into()],
            ..Default::default()
        };
        let issues = issues_of(&c);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].0, "sessions.keys[1]");
        assert!(issues[0].1.contains("base64"));
        assert!(c.decoded_keys().is_err());
    }

    #[test]
    fn wrong_key_length() {
        let c = SessionsConfig {
            keys: vec![key_b64(16)],
            ..Default::default()
        };
        let issues = issues_of(&c);
        assert_eq!(issues[0].0, "sessions.keys[0]");
        assert!(issues[0].1.contains("32 bytes, got 16"), "{}", issues[0].1);
    }

    #[test]
    fn empty_key_from_unset_env() {
        let c = SessionsConfig {
            keys: vec![String::new()],
            ..Default::default()
        };
        assert!(issues_of(&c)[0].1.contains("empty"));
    }

    #[test]
    fn url_safe_keys_accepted() {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]);
        assert_eq!(decode_key(&k).unwrap(), [0xfb; 32]);
    }

    #[test]
    fn redis_store_needs_url() {
        let c = SessionsConfig {
            store: StoreKind::Redis,
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.redis");
    }

    #[test]
    fn redis_url_checked() {
        for (url, ok) in [
            ("redis://127.0.0.1:6379/0", true),
            ("unix:///tmp/redis.sock", true),
            ("rediss://host:6380", true),
            ("redis://user:pw@host:6380", true),
            ("http://host", false),
            ("127.0.0.1:6379", false),
        ] {
            let c = SessionsConfig {
                store: StoreKind::Redis,
                redis: Some(RedisConfig {
                    prefix: "p:".into(),
                    ..RedisConfig::standalone(url)
                }),
                ..Default::default()
            };
            let issues = issues_of(&c);
            assert_eq!(issues.is_empty(), ok, "{url}: {issues:?}");
            if !ok {
                assert_eq!(issues[0].0, "sessions.redis.url");
            }
        }
    }

    #[test]
    fn empty_prefix_rejected() {
        let c = SessionsConfig {
            redis: Some(RedisConfig {
                prefix: String::new(),
                ..RedisConfig::standalone("redis://h")
            }),
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.redis.prefix");
        let c = SessionsConfig {
            redis: Some(RedisConfig {
                prefix: "a{b}:".into(),
                ..RedisConfig::standalone("redis://h")
            }),
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.redis.prefix");
    }

    #[test]
    fn topologies_parse_and_exactly_one_is_set() {
        let c = parse(serde_json::json!({"store": "redis", "redis": {
            "cluster": ["redis://10.0.0.1:7000", "rediss://10.0.0.2:7000"],
            "username": "sb", "password": "hunter2", "timeout": "100ms",
            "breaker": {"failures": 5, "cool_down": "1s"}}}))
        .unwrap();
        let r = c.redis.clone().unwrap();
        assert_eq!(r.cluster.len(), 2);
        assert_eq!(r.timeout, Duration::from_millis(100));
        assert_eq!(r.breaker.failures, 5);
        assert!(issues_of(&c).is_empty(), "{:?}", issues_of(&c));
        assert!(!format!("{c:?}").contains("hunter2"));

        let c = parse(serde_json::json!({"store": "redis", "redis": {
            "sentinel": {"master": "mymaster", "nodes": ["redis://10.0.0.1:26379"]}}}))
        .unwrap();
        assert!(issues_of(&c).is_empty(), "{:?}", issues_of(&c));
        assert_eq!(
            c.redis.as_ref().unwrap().timeout,
            Duration::from_millis(250)
        );
        // The breaker's defaults, as the README states them.
        let breaker = &c.redis.as_ref().unwrap().breaker;
        assert_eq!(
            (breaker.failures, breaker.cool_down),
            (3, Duration::from_secs(2))
        );

        // Two topologies, or none.
        let c = parse(
            serde_json::json!({"store": "redis", "redis": {"url": "redis://h",
            "cluster": ["redis://h:7000"]}}),
        )
        .unwrap();
        assert_eq!(issues_of(&c)[0].0, "sessions.redis");
        let c = parse(serde_json::json!({"store": "redis", "redis": {}})).unwrap();
        assert_eq!(issues_of(&c)[0].0, "sessions.redis");
        // A cluster seed cannot be a unix socket; sentinel needs a master and nodes.
        let c = parse(serde_json::json!({"store": "redis", "redis": {"cluster": ["unix:///x"]}}))
            .unwrap();
        assert_eq!(issues_of(&c)[0].0, "sessions.redis.cluster[0]");
        let c = parse(serde_json::json!({"store": "redis", "redis": {
            "sentinel": {"master": "", "nodes": []}}}))
        .unwrap();
        let paths: Vec<_> = issues_of(&c).into_iter().map(|i| i.0).collect();
        assert_eq!(
            paths,
            [
                "sessions.redis.sentinel.master",
                "sessions.redis.sentinel.nodes"
            ]
        );
        let c = parse(
            serde_json::json!({"store": "redis", "redis": {"url": "redis://h",
            "breaker": {"failures": 0}}}),
        )
        .unwrap();
        assert_eq!(issues_of(&c)[0].0, "sessions.redis.breaker.failures");
    }

    #[test]
    fn durations_and_limits() {
        let c = SessionsConfig {
            idle_timeout: Duration::from_millis(10),
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.idle_timeout");
        let c = SessionsConfig {
            idle_timeout: Duration::from_secs(3600),
            max_lifetime: Duration::from_secs(60),
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.max_lifetime");
        let c = SessionsConfig {
            max_per_principal: 0,
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.max_per_principal");
        let c = SessionsConfig {
            event_log_size: 0,
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.event_log_size");
        let c = SessionsConfig {
            replica: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(issues_of(&c)[0].0, "sessions.replica");
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = SessionsConfig {
            keys: vec![key_b64(32)],
            redis: Some(RedisConfig {
                prefix: "p:".into(),
                ..RedisConfig::standalone("redis://user:hunter2@db:6379")
            }),
            ..Default::default()
        };
        let s = format!("{c:?}");
        assert!(!s.contains(&key_b64(32)));
        assert!(!s.contains("hunter2"));
        assert!(s.contains("db:6379"));
    }

    #[test]
    fn schema_has_keys() {
        let schema = serde_json::to_value(schemars::schema_for!(SessionsConfig)).unwrap();
        let props = schema["properties"].as_object().unwrap();
        for k in [
            "store",
            "redis",
            "keys",
            "idle_timeout",
            "max_lifetime",
            "max_per_principal",
            "event_log_size",
            "replica",
        ] {
            assert!(props.contains_key(k), "{k}");
        }
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn peer_block_defaults_and_rules() {
        let c = parse(serde_json::json!({"keys": [key_b64(32)], "store": "redis",
            "redis": {"url": "redis://127.0.0.1:6379"}, "peer": {"bind": "0.0.0.0:15010"}}))
        .unwrap();
        let peer = c.peer.clone().unwrap();
        assert_eq!(peer.ttl, Duration::from_secs(15));
        assert_eq!(peer.url, None);
        assert!(issues_of(&c).is_empty());
        let bad = parse(serde_json::json!({"peer": {
            "bind": "nowhere", "url": "https://x:1", "ttl": "10ms"}}))
        .unwrap();
        let paths: Vec<String> = issues_of(&bad).into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "sessions.peer.bind",
                "sessions.peer.url",
                "sessions.peer.ttl",
                "sessions.peer",
                "sessions.keys"
            ]
        );
        assert!(parse(serde_json::json!({"peer": {"bind": "a:1", "port": 2}})).is_err());
    }
}
