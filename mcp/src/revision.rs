//! The MCP protocol revisions the gateway speaks, and what differs between them that the
//! gateway must know: which have sessions, which have JSON-RPC batches.

/// Newest revision with sessions (what an unknown requested version negotiates to).
pub const LATEST_VERSION: &str = "2025-11-25";
/// The stateless revision: no `initialize`, version and client info in every request's `_meta`.
pub const STATELESS_VERSION: &str = "2026-07-28";
/// Revisions served with sessions.
pub const SESSION_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The newest protocol revision with JSON-RPC batches.
pub const LAST_BATCH_VERSION: &str = "2025-03-26";

/// Whether protocol revision `version` allows batches (revisions are dates, so they order as
/// strings).
pub fn batches_allowed(version: &str) -> bool {
    version <= LAST_BATCH_VERSION
}

/// Whether streams of revision `version` start with a priming event (SEP-1699, 2025-11-25 on).
pub fn primes_streams(version: &str) -> bool {
    version >= "2025-11-25"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_with_batches() {
        assert!(batches_allowed("2024-11-05"));
        assert!(batches_allowed("2025-03-26"));
        assert!(!batches_allowed("2025-06-18"));
        assert!(!batches_allowed("2025-11-25"));
        assert!(!batches_allowed(STATELESS_VERSION));
    }
}
