//! Letting go of sessions: why the MCP layer should drop a session's upstream state
//! ([`Release`]), the subscription that tells it, and the guard that keeps a session with an
//! open stream alive.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use super::{Clock, Local, Shared};
use crate::token::SessionId;

/// Why the MCP layer should drop a session's upstream state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseReason {
    /// Idle too long or past its maximum lifetime; the session is over everywhere.
    Expired,
    /// Deleted (here or, with a shared store, on another replica).
    Revoked,
    /// Idle here but alive elsewhere (the client moved to another replica): release this
    /// replica's connections only.
    Moved,
}

/// One session whose local resources must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    /// Which session.
    pub id: SessionId,
    /// Why.
    pub reason: ReleaseReason,
}

pub(super) type Listener = Arc<dyn Fn(&Release) + Send + Sync>;

/// Keeps a [`SessionManager::on_release`] callback registered; dropping it unregisters.
#[must_use = "dropping the subscription unregisters the callback"]
pub struct ReleaseSubscription {
    pub(super) shared: Weak<Shared>,
    pub(super) id: u64,
}

impl Drop for ReleaseSubscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.listeners.remove(&self.id);
        }
    }
}

impl std::fmt::Debug for ReleaseSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseSubscription")
            .field("id", &self.id)
            .finish()
    }
}

/// Marks a session busy (an open stream) while alive: the reaper keeps busy sessions and their
/// store entries alive however long the stream stays open.
#[must_use = "the session counts as busy only while the guard lives"]
#[derive(Debug)]
pub struct ActivityGuard {
    pub(super) local: Arc<Local>,
    pub(super) clock: Clock,
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        self.local.active.fetch_sub(1, Ordering::AcqRel);
        // The idle timer starts when the stream closes, not when it opened.
        self.local
            .last_seen_ms
            .store(self.clock.now_ms(), Ordering::Release);
    }
}
