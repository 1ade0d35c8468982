//! The tokens a replica opened lately, so a session's every request does not decode and
//! decrypt its token again (base64, AES-GCM and the claims' decoding were about 4% of an MCP
//! call's CPU). Only the opening is remembered: every resume still checks the lifetime, the
//! principal and the store (revoked, idle-expired) and counts in the metrics as before. The
//! cache belongs to one keyring: reloading the keys starts an empty one, so a token of a
//! removed key stops opening at once.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

use crate::token::{Claims, Keyring, TokenError};

/// How many opened tokens are kept (a few hundred bytes each).
pub(super) const CAPACITY: usize = 1024;

/// Opened tokens by their hash: the token itself (compared on a hit) and its claims.
type Opened = HashMap<u64, (Arc<str>, Arc<Claims>)>;

/// A keyring and the tokens it opened lately.
pub(super) struct Ring {
    pub keyring: Keyring,
    opened: Mutex<Opened>,
    hasher: std::hash::RandomState,
}

impl Ring {
    pub fn new(keyring: Keyring) -> Self {
        Ring {
            keyring,
            opened: Mutex::new(HashMap::new()),
            hasher: std::hash::RandomState::new(),
        }
    }

    /// [`Keyring::open`], from the cache when this token opened before. The cache is keyed by
    /// the token's hash and holds the token itself, so only the same token finds its claims.
    /// Tokens that do not open are not kept.
    pub fn open(&self, token: &str) -> Result<Arc<Claims>, TokenError> {
        let hash = self.hasher.hash_one(token);
        if let Some(claims) = self.lookup(hash, token) {
            return Ok(claims);
        }
        let claims = Arc::new(self.keyring.open(token)?);
        if let Ok(mut map) = self.opened.lock() {
            if map.len() >= CAPACITY
                && let Some(old) = map.keys().next().copied()
            {
                // Any entry: a session that comes back opens its token once more.
                map.remove(&old);
            }
            map.insert(hash, (token.into(), claims.clone()));
        }
        Ok(claims)
    }

    fn lookup(&self, hash: u64, token: &str) -> Option<Arc<Claims>> {
        let map = self.opened.lock().ok()?;
        let (t, claims) = map.get(&hash)?;
        (**t == *token).then(|| claims.clone())
    }

    /// How many tokens are kept (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.opened.lock().map_or(0, |m| m.len())
    }
}
