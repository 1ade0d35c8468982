//! What the MCP layer holds of a session: [`Session`] and the outcome of a resume.

use std::sync::Arc;

use crate::events::StreamKey;
use crate::metrics::How;
use crate::token::{SessionId, TargetEntry};

/// A resumed or new session, as the MCP layer sees it.
#[derive(Clone, PartialEq, Eq)]
pub struct Session {
    /// The session's id (stable for its lifetime; use it to key per-session state).
    pub id: SessionId,
    /// The token to send as `Mcp-Session-Id`; identical on every resume.
    pub token: Arc<str>,
    /// The principal it is bound to.
    pub principal: Option<Arc<str>>,
    /// Creation time, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// The replica that owns the session's stdio targets, if it was pinned at creation.
    pub replica: Option<Arc<str>>,
    /// What is known about each target: the token's entries, updated with what the store
    /// learned since ([`SessionManager::update_target`]).
    pub targets: Vec<TargetEntry>,
}

impl std::fmt::Debug for Session {
    // The token is a bearer credential for the session: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .field("token", &"<redacted>")
            .field("principal", &self.principal)
            .field("issued_at_ms", &self.issued_at_ms)
            .field("replica", &self.replica)
            .field("targets", &self.targets)
            .finish()
    }
}

impl Session {
    /// The entry of target `name`.
    pub fn target(&self, name: &str) -> Option<&TargetEntry> {
        self.targets.iter().find(|t| t.name == name)
    }

    /// The key of this session's stream `name` (for [`SessionManager::append_event`]).
    pub fn stream(&self, name: impl Into<Arc<str>>) -> StreamKey {
        StreamKey::new(self.id, name)
    }

    /// The owning replica when the session is pinned to a replica other than `me`.
    ///
    /// A session with stdio targets lives where its children run. When it lands on another
    /// replica, the gateway should answer with an error naming no internals (or forward to this
    /// replica's address): the stdio children cannot move.
    pub fn owned_elsewhere(&self, me: &str) -> Option<&str> {
        self.replica.as_deref().filter(|r| *r != me)
    }
}

/// A successful [`SessionManager::resume`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resumed {
    /// The session.
    pub session: Session,
    /// `Local` when this replica already serves it; `Token` on first sight here (after a
    /// restart, or when a client moves between replicas): rebuild upstream clients from
    /// `session.targets`.
    pub how: How,
}
