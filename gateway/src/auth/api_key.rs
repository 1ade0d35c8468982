//! API keys: stored as SHA-256 hashes, looked up by the hash of the presented key (so the
//! comparison time says nothing about the stored keys), each with an optional expiry, model
//! and MCP (tool, prompt, resource) allow lists and its own token-bucket rate limit.
//!
//! Buckets live with the compiled policy, so a config reload starts them afresh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::{Principal, PrincipalKind, Refusal};
use crate::config::ApiKeyConfig;
pub use crate::config::parse_sha256;

/// The lowercase hex SHA-256 of `key`: what `api_keys[].sha256` holds.
pub fn hash_key(key: &[u8]) -> String {
    hex::encode(Sha256::digest(key))
}

struct Key {
    principal: Principal,
    expires: Option<SystemTime>,
    bucket: Option<Mutex<Bucket>>,
}

/// A token bucket: `capacity` tokens, refilled continuously at `capacity / per`.
struct Bucket {
    capacity: f64,
    per: Duration,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    /// Takes one token, or says how many seconds until one is available.
    fn take(&mut self, now: Instant) -> Result<(), u64> {
        let rate = self.capacity / self.per.as_secs_f64();
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - self.tokens) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// The configured keys of one route, by hash.
pub struct ApiKeys {
    by_hash: HashMap<[u8; 32], Key>,
}

impl ApiKeys {
    /// Compiles validated key configs (invalid entries, already reported by validation, are
    /// skipped).
    pub fn new(cfg: &[ApiKeyConfig]) -> Self {
        let by_hash = cfg
            .iter()
            .filter_map(|k| {
                let hash = parse_sha256(&k.sha256)?;
                let name: Arc<str> = k.name.as_str().into();
                let key = Key {
                    principal: Principal {
                        kind: PrincipalKind::ApiKey,
                        subject: name.clone(),
                        claims: Arc::new(serde_json::Value::Null),
                        api_key: Some(name),
                        team: k.team.as_deref().map(Arc::from),
                        scopes: Arc::from([]),
                        allowed_models: k.models.as_deref().map(Arc::from),
                        allowed_tools: k.tools.as_deref().map(Arc::from),
                        allowed_prompts: k.prompts.as_deref().map(Arc::from),
                        allowed_resources: k.resources.as_deref().map(Arc::from),
                        // A budget is charged like a virtual key's, under the key's name.
                        virtual_key: k.budget.as_ref().map(|b| {
                            Arc::new(super::virtual_keys::VirtualKey {
                                id: format!("config:{}", k.name).into(),
                                budget: Some(b.clone()),
                            })
                        }),
                    },
                    expires: k
                        .expires
                        .as_deref()
                        .and_then(|e| humantime::parse_rfc3339_weak(e).ok()),
                    bucket: k.rate_limit.as_ref().map(|r| {
                        Mutex::new(Bucket {
                            capacity: f64::from(r.requests),
                            per: r.per,
                            tokens: f64::from(r.requests),
                            last: Instant::now(),
                        })
                    }),
                };
                Some((hash, key))
            })
            .collect();
        ApiKeys { by_hash }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Checks a presented key: known, not expired, within its rate limit.
    pub fn check(&self, presented: &[u8], now: SystemTime) -> Result<Principal, Refusal> {
        let digest: [u8; 32] = Sha256::digest(presented).into();
        let key = self.by_hash.get(&digest).ok_or(Refusal::Invalid)?;
        if key.expires.is_some_and(|e| now >= e) {
            return Err(Refusal::Invalid);
        }
        if let Some(b) = &key.bucket {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            b.take(Instant::now())
                .map_err(|retry_after| Refusal::RateLimited { retry_after })?;
        }
        Ok(key.principal.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeyRateLimit;

    fn cfg(name: &str, key: &str) -> ApiKeyConfig {
        ApiKeyConfig {
            name: name.into(),
            team: None,
            sha256: hash_key(key.as_bytes()),
            expires: None,
            models: None,
            tools: None,
            prompts: None,
            resources: None,
            rate_limit: None,
            budget: None,
        }
    }

    #[test]
    fn hash_matches_sha256sum() {
        // printf %s secret | sha256sum
        assert_eq!(
            hash_key(b"secret"),
            "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"
        );
        assert!(parse_sha256(&hash_key(b"x")).is_some());
        assert!(parse_sha256("abc").is_none());
        assert!(parse_sha256(&"g".repeat(64)).is_none());
    }

    #[test]
    fn lookup_expiry_and_allow_lists() {
        let mut a = cfg("a", "key-a");
        a.models = Some(vec!["small".into()]);
        let mut b = cfg("b", "key-b");
        b.expires = Some("2020-01-01T00:00:00Z".into());
        let keys = ApiKeys::new(&[a, b]);
        let p = keys.check(b"key-a", SystemTime::now()).unwrap();
        assert_eq!(&*p.subject, "a");
        assert_eq!(p.api_key.as_deref(), Some("a"));
        assert!(p.may_use_model("small") && !p.may_use_model("big"));
        assert!(p.may_use_tool("anything"));
        assert_eq!(
            keys.check(b"key-b", SystemTime::now()).unwrap_err(),
            Refusal::Invalid
        );
        assert_eq!(
            keys.check(b"key-c", SystemTime::now()).unwrap_err(),
            Refusal::Invalid
        );
        // The hash itself is not a key.
        assert_eq!(
            keys.check(hash_key(b"key-a").as_bytes(), SystemTime::now())
                .unwrap_err(),
            Refusal::Invalid
        );
    }

    #[test]
    fn mcp_allow_lists_restrict_as_a_group() {
        let mut a = cfg("a", "key-a");
        a.tools = Some(vec!["echo".into()]);
        let mut b = cfg("b", "key-b");
        b.resources = Some(vec!["file:///public/*".into()]);
        b.prompts = Some(vec!["greet".into()]);
        let keys = ApiKeys::new(&[a, b, cfg("c", "key-c")]);
        let now = SystemTime::now();
        let a = keys.check(b"key-a", now).unwrap();
        assert!(a.may_use_tool("echo") && !a.may_use_tool("echo2"));
        // Only tools listed: no prompt, no resource.
        assert!(!a.may_use_prompt("greet") && !a.may_use_resource("file:///x"));
        let b = keys.check(b"key-b", now).unwrap();
        assert!(!b.may_use_tool("echo"), "no tools list: no tools");
        assert!(b.may_use_prompt("greet") && !b.may_use_prompt("greet2"));
        assert!(b.may_use_resource("file:///public/a.txt"));
        assert!(!b.may_use_resource("file:///secret"));
        let c = keys.check(b"key-c", now).unwrap();
        assert!(c.may_use_tool("x") && c.may_use_prompt("y") && c.may_use_resource("z"));
    }

    #[test]
    fn rate_limit_is_per_key() {
        let mut a = cfg("a", "key-a");
        a.rate_limit = Some(KeyRateLimit {
            requests: 2,
            per: Duration::from_secs(60),
        });
        let keys = ApiKeys::new(&[a, cfg("b", "key-b")]);
        let now = SystemTime::now();
        assert!(keys.check(b"key-a", now).is_ok());
        assert!(keys.check(b"key-a", now).is_ok());
        match keys.check(b"key-a", now) {
            Err(Refusal::RateLimited { retry_after }) => assert!((1..=30).contains(&retry_after)),
            other => panic!("expected 429, got {other:?}"),
        }
        for _ in 0..10 {
            assert!(keys.check(b"key-b", now).is_ok());
        }
    }

    #[test]
    fn bucket_refills() {
        let start = Instant::now();
        let mut b = Bucket {
            capacity: 1.0,
            per: Duration::from_secs(10),
            tokens: 1.0,
            last: start,
        };
        assert!(b.take(start).is_ok());
        assert_eq!(b.take(start), Err(10));
        assert_eq!(b.take(start + Duration::from_secs(5)), Err(5));
        assert!(b.take(start + Duration::from_secs(10)).is_ok());
    }
}
