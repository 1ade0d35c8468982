//! Virtual keys: API keys created, changed and revoked at run time through the admin API
//! (`/api/keys`, [`crate::admin`]), accepted by routes whose `authn` sets `virtual_keys: true`
//! beside the keys of the config file.
//!
//! Keys live in the sessions store: in process with `sessions.store: memory` (one replica),
//! in one Redis hash (`{sessions.redis.prefix}vk`, field = the key's SHA-256) with
//! `store: redis`, so a key created on one replica works on every replica at once. Only the
//! SHA-256 of a secret is stored; the secret itself is shown once, in the answer to the create
//! call.
//!
//! Each replica caches what it read (found or not) for [`CACHE_TTL`], so a request costs at
//! most one Redis read per key and half-second; a key revoked on one replica stops on the
//! others within that TTL (the replica where it was revoked forgets it at once). A key's
//! `rate_limit` is counted through the same limiter as `policies.rate_limit` (in Redis for a
//! fleet); its `budget`, and its team's, are charged by the gateway's `spend` module.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Principal, PrincipalKind, Refusal};
use crate::config::KeyRateLimit;
pub use crate::config::{Budget, Period};
use crate::rate_limit::{LimitBy, Limiter, RateLimitPolicy};

/// How long a replica trusts what it read about a key: the longest a revocation (or change)
/// made elsewhere takes to reach it.
pub const CACHE_TTL: Duration = Duration::from_millis(500);

/// Cached lookups above which the cache is emptied (bounds memory under guessed keys).
const CACHE_MAX: usize = 50_000;

/// A stored virtual key. `sha256` never leaves the gateway (see [`KeyRecord::view`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// Stable id, used in admin paths (`vk_…`).
    pub id: String,
    /// Unique name: the principal's subject and API key name (spend, limits, logs).
    pub name: String,
    /// The team it belongs to (team budgets and spend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// Lowercase hex SHA-256 of the secret.
    pub sha256: String,
    /// The secret's first characters, to recognise it in lists.
    pub hint: String,
    /// Models the key may use; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
    /// MCP tools the key may use (same rules as `api_keys[].tools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// MCP prompts the key may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts: Option<Vec<String>>,
    /// MCP resources the key may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// Requests per period, shared by the fleet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<KeyRateLimit>,
    /// Spend budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// RFC 3339 expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Free-form metadata (owner, ticket, ...), returned as given.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds of the last change.
    pub updated_at: u64,
    /// Unix seconds of the revocation; a revoked key authenticates nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<u64>,
}

impl KeyRecord {
    /// What the admin API shows: everything but the hash.
    pub fn view(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.remove("sha256");
        }
        v
    }
}

/// The fields a create or update call may set (`null` in an update clears one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyInput {
    /// See [`KeyRecord`].
    #[serde(default)]
    pub name: Option<String>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub team: Option<Option<String>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub models: Option<Option<Vec<String>>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub tools: Option<Option<Vec<String>>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub prompts: Option<Option<Vec<String>>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub resources: Option<Option<Vec<String>>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub rate_limit: Option<Option<KeyRateLimit>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub budget: Option<Option<Budget>>,
    /// See [`KeyRecord`].
    #[serde(default, with = "double_option")]
    pub expires: Option<Option<String>>,
    /// See [`KeyRecord`]; replaces the whole map.
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `Some(None)` for an explicit `null`, `None` for an absent field.
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// Why an admin call on keys failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The input is not acceptable (names the field).
    #[error("{0}")]
    Invalid(String),
    /// Another live key has that name.
    #[error("a key named `{0}` exists")]
    Conflict(String),
    /// No key has that id.
    #[error("no such key")]
    NotFound,
    /// The sessions store could not be asked.
    #[error("the sessions store is unavailable: {0}")]
    Store(String),
}

/// What the request path needs of a virtual key beyond its [`Principal`]: carried in
/// [`Principal::virtual_key`].
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualKey {
    /// The key's id.
    pub id: Arc<str>,
    /// Its budget, if any.
    pub budget: Option<Budget>,
}

struct Entry {
    record: KeyRecord,
    principal: Principal,
    expires: Option<SystemTime>,
}

struct Cached {
    at: Instant,
    entry: Option<Arc<Entry>>,
}

enum Backend {
    Memory {
        keys: Mutex<HashMap<String, KeyRecord>>,
        teams: Mutex<HashMap<String, Budget>>,
    },
    Redis {
        link: switchboard_sessions::RedisLink,
        prefix: String,
    },
}

struct Shared {
    backend: Backend,
    cache: DashMap<[u8; 32], Cached>,
    teams: DashMap<String, (Instant, Option<Budget>)>,
    limiters: DashMap<Arc<str>, Limiter>,
}

/// The virtual keys of this gateway (cheap to clone).
#[derive(Clone)]
pub struct KeyStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("shared", &self.is_shared())
            .finish_non_exhaustive()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bad(msg: impl Into<String>) -> KeyError {
    KeyError::Invalid(msg.into())
}

fn store_err(e: impl std::fmt::Display) -> KeyError {
    KeyError::Store(e.to_string())
}

/// Checks a name (of a key or a team): 1–128 characters of letters, digits and `._-@:`.
pub fn valid_name(n: &str) -> bool {
    (1..=128).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@:".contains(c))
}

impl KeyStore {
    /// Keys kept in this process (`sessions.store: memory`).
    pub fn memory() -> Self {
        Self::with(Backend::Memory {
            keys: Mutex::default(),
            teams: Mutex::default(),
        })
    }

    /// Keys kept in Redis under `prefix` (`sessions.redis.prefix`), shared by the fleet.
    pub fn redis(link: switchboard_sessions::RedisLink, prefix: &str) -> Self {
        Self::with(Backend::Redis {
            link,
            prefix: prefix.to_string(),
        })
    }

    fn with(backend: Backend) -> Self {
        KeyStore {
            shared: Arc::new(Shared {
                backend,
                cache: DashMap::new(),
                teams: DashMap::new(),
                limiters: DashMap::new(),
            }),
        }
    }

    /// Whether keys are shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.shared.backend, Backend::Redis { .. })
    }

    /// The Redis link and key prefix, when shared (for the spend counters).
    pub fn redis_link(&self) -> Option<(&switchboard_sessions::RedisLink, &str)> {
        match &self.shared.backend {
            Backend::Redis { link, prefix } => Some((link, prefix)),
            Backend::Memory { .. } => None,
        }
    }

    /// Authenticates a presented secret. `Ok(None)`: not a virtual key (the caller answers
    /// 401); `Err`: a known key that is revoked or expired (401) or over its rate limit (429).
    pub async fn authenticate(&self, presented: &[u8]) -> Result<Option<Principal>, Refusal> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let entry = match self.cached(&digest) {
            Some(e) => e,
            None => {
                let e = self
                    .fetch(&hex::encode(digest))
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "virtual key lookup failed");
                        Refusal::Invalid
                    })?
                    .map(|r| Arc::new(entry_of(r)));
                if self.shared.cache.len() >= CACHE_MAX {
                    self.shared.cache.clear();
                }
                self.shared.cache.insert(
                    digest,
                    Cached {
                        at: Instant::now(),
                        entry: e.clone(),
                    },
                );
                e
            }
        };
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.record.revoked_at.is_some()
            || entry.expires.is_some_and(|e| SystemTime::now() >= e)
        {
            return Err(Refusal::Invalid);
        }
        if let Some(rl) = &entry.record.rate_limit {
            let limiter = self.limiter(&entry.record.id, rl);
            let d = limiter.check_request(&entry.record.id).await;
            if !d.allowed {
                return Err(Refusal::RateLimited {
                    retry_after: d.reset.as_secs_f64().ceil().max(1.0) as u64,
                });
            }
        }
        Ok(Some(entry.principal.clone()))
    }

    fn cached(&self, digest: &[u8; 32]) -> Option<Option<Arc<Entry>>> {
        let c = self.shared.cache.get(digest)?;
        (c.at.elapsed() < CACHE_TTL).then(|| c.entry.clone())
    }

    fn limiter(&self, id: &str, rl: &KeyRateLimit) -> Limiter {
        let policy = RateLimitPolicy {
            requests: Some(u64::from(rl.requests)),
            tokens: None,
            per: rl.per,
            by: LimitBy::Route,
            fail_open: true,
        };
        if let Some(l) = self.shared.limiters.get(id)
            && *l.policy() == policy
        {
            return l.clone();
        }
        let l = match &self.shared.backend {
            Backend::Redis { link, prefix } => {
                Limiter::redis(policy, link.clone(), &format!("{prefix}vk-ratelimit:"))
            }
            Backend::Memory { .. } => Limiter::local(policy),
        };
        self.shared.limiters.insert(id.into(), l.clone());
        l
    }

    async fn fetch(&self, hash: &str) -> Result<Option<KeyRecord>, KeyError> {
        match &self.shared.backend {
            Backend::Memory { keys, .. } => Ok(lock(keys).get(hash).cloned()),
            Backend::Redis { link, prefix } => {
                let k = format!("{prefix}vk");
                let h = hash.to_string();
                let raw: Option<String> = link
                    .run(|mut conn| {
                        let mut cmd = redis::cmd("HGET");
                        cmd.arg(&k).arg(&h);
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await
                    .map_err(store_err)?;
                Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
            }
        }
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        let mut all: Vec<KeyRecord> = match &self.shared.backend {
            Backend::Memory { keys, .. } => lock(keys).values().cloned().collect(),
            Backend::Redis { link, prefix } => {
                let k = format!("{prefix}vk");
                let raw: HashMap<String, String> = link
                    .run(|mut conn| {
                        let mut cmd = redis::cmd("HGETALL");
                        cmd.arg(&k);
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await
                    .map_err(store_err)?;
                raw.values()
                    .filter_map(|r| serde_json::from_str(r).ok())
                    .collect()
            }
        };
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    /// The key with `id`.
    pub async fn get(&self, id: &str) -> Result<KeyRecord, KeyError> {
        self.list()
            .await?
            .into_iter()
            .find(|k| k.id == id)
            .ok_or(KeyError::NotFound)
    }

    async fn put(&self, r: &KeyRecord) -> Result<(), KeyError> {
        // This replica sees its own change at once; others within CACHE_TTL.
        if let Some(d) = crate::config::parse_sha256(&r.sha256) {
            self.shared.cache.remove(&d);
        }
        match &self.shared.backend {
            Backend::Memory { keys, .. } => {
                lock(keys).insert(r.sha256.clone(), r.clone());
                Ok(())
            }
            Backend::Redis { link, prefix } => {
                let k = format!("{prefix}vk");
                let json = serde_json::to_string(r).map_err(store_err)?;
                let h = r.sha256.clone();
                link.run(|mut conn| {
                    let mut cmd = redis::cmd("HSET");
                    cmd.arg(&k).arg(&h).arg(&json);
                    async move { cmd.query_async::<i64>(&mut conn).await }
                })
                .await
                .map_err(store_err)?;
                Ok(())
            }
        }
    }

    /// Creates a key; returns the secret (shown once) and the stored record.
    pub async fn create(&self, input: KeyInput) -> Result<(String, KeyRecord), KeyError> {
        let name = input
            .name
            .clone()
            .ok_or_else(|| bad("`name` is required"))?;
        if !valid_name(&name) {
            return Err(bad(
                "`name` must be 1-128 letters, digits or `._-@:` characters",
            ));
        }
        if self
            .list()
            .await?
            .iter()
            .any(|k| k.name == name && k.revoked_at.is_none())
        {
            return Err(KeyError::Conflict(name));
        }
        let secret = format!("sk-sb-{}", hex::encode(rand::random::<[u8; 24]>()));
        let now = unix_now();
        let mut r = KeyRecord {
            id: format!("vk_{}", hex::encode(rand::random::<[u8; 8]>())),
            name,
            team: None,
            sha256: super::api_key::hash_key(secret.as_bytes()),
            hint: secret.chars().take(10).collect(),
            models: None,
            tools: None,
            prompts: None,
            resources: None,
            rate_limit: None,
            budget: None,
            expires: None,
            metadata: serde_json::Map::new(),
            created_at: now,
            updated_at: now,
            revoked_at: None,
        };
        apply(&mut r, input)?;
        self.put(&r).await?;
        Ok((secret, r))
    }

    /// Changes the fields `input` sets (the name included).
    pub async fn update(&self, id: &str, input: KeyInput) -> Result<KeyRecord, KeyError> {
        let all = self.list().await?;
        let mut r = all
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .ok_or(KeyError::NotFound)?;
        if let Some(n) = &input.name {
            if !valid_name(n) {
                return Err(bad(
                    "`name` must be 1-128 letters, digits or `._-@:` characters",
                ));
            }
            if all
                .iter()
                .any(|k| &k.name == n && k.id != id && k.revoked_at.is_none())
            {
                return Err(KeyError::Conflict(n.clone()));
            }
            r.name = n.clone();
        }
        apply(&mut r, input)?;
        r.updated_at = unix_now();
        self.put(&r).await?;
        Ok(r)
    }

    /// Revokes a key: it stops authenticating at once on this replica, within
    /// [`CACHE_TTL`] on the others. The record stays (listed with `revoked_at`).
    pub async fn revoke(&self, id: &str) -> Result<KeyRecord, KeyError> {
        let mut r = self.get(id).await?;
        if r.revoked_at.is_none() {
            r.revoked_at = Some(unix_now());
            r.updated_at = unix_now();
            self.put(&r).await?;
        }
        Ok(r)
    }

    /// The budget of `team`, if one is set (read through a [`CACHE_TTL`] cache; `None` when
    /// the store cannot be asked).
    pub async fn team_budget(&self, team: &str) -> Option<Budget> {
        if let Some(c) = self.shared.teams.get(team)
            && c.0.elapsed() < CACHE_TTL
        {
            return c.1.clone();
        }
        let b = match self.teams().await {
            Ok(all) => all.get(team).cloned(),
            Err(e) => {
                tracing::warn!(error = %e, "team budget lookup failed");
                return None;
            }
        };
        if self.shared.teams.len() >= CACHE_MAX {
            self.shared.teams.clear();
        }
        self.shared
            .teams
            .insert(team.to_string(), (Instant::now(), b.clone()));
        b
    }

    /// Every team budget.
    pub async fn teams(&self) -> Result<HashMap<String, Budget>, KeyError> {
        match &self.shared.backend {
            Backend::Memory { teams, .. } => Ok(lock(teams).clone()),
            Backend::Redis { link, prefix } => {
                let k = format!("{prefix}vk-teams");
                let raw: HashMap<String, String> = link
                    .run(|mut conn| {
                        let mut cmd = redis::cmd("HGETALL");
                        cmd.arg(&k);
                        async move { cmd.query_async(&mut conn).await }
                    })
                    .await
                    .map_err(store_err)?;
                Ok(raw
                    .into_iter()
                    .filter_map(|(t, r)| Some((t, serde_json::from_str(&r).ok()?)))
                    .collect())
            }
        }
    }

    /// Sets (or with `None` removes) a team's budget.
    pub async fn set_team_budget(&self, team: &str, b: Option<Budget>) -> Result<(), KeyError> {
        if !valid_name(team) {
            return Err(bad(
                "team names are 1-128 letters, digits or `._-@:` characters",
            ));
        }
        if let Some(b) = &b {
            b.check().map_err(bad)?;
        }
        self.shared.teams.remove(team);
        match &self.shared.backend {
            Backend::Memory { teams, .. } => {
                let mut t = lock(teams);
                match b {
                    Some(b) => t.insert(team.to_string(), b),
                    None => t.remove(team),
                };
                Ok(())
            }
            Backend::Redis { link, prefix } => {
                let k = format!("{prefix}vk-teams");
                let json = b
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(store_err)?;
                let cmd = match &json {
                    Some(j) => {
                        let mut c = redis::cmd("HSET");
                        c.arg(&k).arg(team).arg(j);
                        c
                    }
                    None => {
                        let mut c = redis::cmd("HDEL");
                        c.arg(&k).arg(team);
                        c
                    }
                };
                link.run(|mut conn| {
                    let cmd = cmd.clone();
                    async move { cmd.query_async::<i64>(&mut conn).await }
                })
                .await
                .map_err(store_err)?;
                Ok(())
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn apply(r: &mut KeyRecord, i: KeyInput) -> Result<(), KeyError> {
    if let Some(t) = i.team {
        if let Some(t) = &t
            && !valid_name(t)
        {
            return Err(bad(
                "`team` must be 1-128 letters, digits or `._-@:` characters",
            ));
        }
        r.team = t;
    }
    if let Some(v) = i.models {
        r.models = v;
    }
    if let Some(v) = i.tools {
        r.tools = v;
    }
    if let Some(v) = i.prompts {
        r.prompts = v;
    }
    if let Some(v) = i.resources {
        r.resources = v;
    }
    if let Some(v) = i.rate_limit {
        if let Some(rl) = &v
            && (rl.requests == 0 || rl.per < Duration::from_millis(100))
        {
            return Err(bad("`rate_limit` needs requests >= 1 and per >= 100ms"));
        }
        r.rate_limit = v;
    }
    if let Some(v) = i.budget {
        if let Some(b) = &v {
            b.check().map_err(bad)?;
        }
        r.budget = v;
    }
    if let Some(v) = i.expires {
        if let Some(e) = &v
            && humantime::parse_rfc3339_weak(e).is_err()
        {
            return Err(bad(
                "`expires` must be an RFC 3339 time (2027-01-31T00:00:00Z)",
            ));
        }
        r.expires = v;
    }
    if let Some(m) = i.metadata {
        if serde_json::to_vec(&m).map_or(0, |v| v.len()) > 16 * 1024 {
            return Err(bad("`metadata` is limited to 16 KiB of JSON"));
        }
        r.metadata = m;
    }
    Ok(())
}

fn entry_of(record: KeyRecord) -> Entry {
    let name: Arc<str> = record.name.as_str().into();
    let principal = Principal {
        kind: PrincipalKind::ApiKey,
        subject: name.clone(),
        claims: Arc::new(serde_json::Value::Null),
        api_key: Some(name),
        team: record.team.as_deref().map(Arc::from),
        scopes: Arc::from([]),
        allowed_models: record.models.as_deref().map(Arc::from),
        allowed_tools: record.tools.as_deref().map(Arc::from),
        allowed_prompts: record.prompts.as_deref().map(Arc::from),
        allowed_resources: record.resources.as_deref().map(Arc::from),
        virtual_key: Some(Arc::new(VirtualKey {
            id: record.id.as_str().into(),
            budget: record.budget.clone(),
        })),
    };
    Entry {
        expires: record
            .expires
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339_weak(e).ok()),
        principal,
        record,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(v: serde_json::Value) -> KeyInput {
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn create_authenticate_update_revoke_in_memory() {
        let s = KeyStore::memory();
        let (secret, r) = s
            .create(input(
                serde_json::json!({"name": "ci", "team": "ml", "models": ["fast"]}),
            ))
            .await
            .unwrap();
        assert!(secret.starts_with("sk-sb-") && r.id.starts_with("vk_"));
        assert!(r.view().get("sha256").is_none());
        let p = s.authenticate(secret.as_bytes()).await.unwrap().unwrap();
        assert_eq!(p.api_key.as_deref(), Some("ci"));
        assert_eq!(p.virtual_key.as_ref().map(|v| &*v.id), Some(r.id.as_str()));
        assert_eq!(p.team.as_deref(), Some("ml"));
        assert!(p.may_use_model("fast") && !p.may_use_model("smart"));
        assert!(s.authenticate(b"sk-sb-nope").await.unwrap().is_none());
        // The hash is not a key.
        assert!(s.authenticate(r.sha256.as_bytes()).await.unwrap().is_none());
        // Names are unique among live keys.
        assert!(matches!(
            s.create(input(serde_json::json!({"name": "ci"}))).await,
            Err(KeyError::Conflict(_))
        ));
        let u = s
            .update(
                &r.id,
                input(serde_json::json!({"models": null, "team": null})),
            )
            .await
            .unwrap();
        assert!(u.models.is_none() && u.team.is_none());
        let p = s.authenticate(secret.as_bytes()).await.unwrap().unwrap();
        assert!(p.may_use_model("smart"));
        // The MCP allow lists restrict as a group, as for config keys.
        s.update(&r.id, input(serde_json::json!({"tools": ["search__*"]})))
            .await
            .unwrap();
        let p = s.authenticate(secret.as_bytes()).await.unwrap().unwrap();
        assert!(p.may_use_tool("search__web") && !p.may_use_tool("echo"));
        assert!(!p.may_use_prompt("greet"));
        s.revoke(&r.id).await.unwrap();
        assert_eq!(
            s.authenticate(secret.as_bytes()).await.unwrap_err(),
            Refusal::Invalid
        );
        assert_eq!(s.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn expiry_rate_limit_and_input_checks() {
        let s = KeyStore::memory();
        let (old, _) = s
            .create(input(
                serde_json::json!({"name": "old", "expires": "2020-01-01T00:00:00Z"}),
            ))
            .await
            .unwrap();
        assert_eq!(
            s.authenticate(old.as_bytes()).await.unwrap_err(),
            Refusal::Invalid
        );
        let (k, _) = s
            .create(input(
                serde_json::json!({"name": "rl", "rate_limit": {"requests": 1, "per": "1m"}}),
            ))
            .await
            .unwrap();
        assert!(s.authenticate(k.as_bytes()).await.is_ok());
        assert!(matches!(
            s.authenticate(k.as_bytes()).await,
            Err(Refusal::RateLimited { .. })
        ));
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"name": "a b"}),
            serde_json::json!({"name": "x", "expires": "soon"}),
            serde_json::json!({"name": "x", "budget": {"usd": -1, "period": "day"}}),
            serde_json::json!({"name": "x", "rate_limit": {"requests": 0, "per": "1m"}}),
            serde_json::json!({"name": "x", "metadata": {"blob": "x".repeat(17 * 1024)}}),
        ] {
            assert!(
                matches!(
                    s.create(input(bad.clone())).await,
                    Err(KeyError::Invalid(_))
                ),
                "{bad}"
            );
        }
        assert!(serde_json::from_value::<KeyInput>(serde_json::json!({"nmae": "x"})).is_err());
    }
}
