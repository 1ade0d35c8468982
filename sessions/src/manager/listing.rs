//! A read-only listing of the sessions this replica serves, for the admin UI. The store has no
//! listing (Redis keeps sessions by id only), so a fleet-wide view is the sum of each replica's.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::SessionManager;

/// One session this replica serves. Carries no token and no key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LocalSession {
    /// The first characters of the session id (enough to tell sessions apart; the id alone
    /// does not resume a session, the sealed token does).
    pub id_prefix: String,
    /// The principal it is bound to, if any (a subject or API key name).
    pub principal: Option<String>,
    /// Time since it was created.
    #[serde(serialize_with = "secs")]
    pub age: Duration,
    /// Time since its last request.
    #[serde(serialize_with = "secs")]
    pub idle: Duration,
    /// Requests and streams open on it now.
    pub active: u32,
    /// The replica serving it (this one).
    pub owner: String,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

impl SessionManager {
    /// The sessions this replica serves now, oldest first.
    pub fn list_local(&self) -> Vec<LocalSession> {
        let now = self.shared.clock.now_ms();
        let mut out: Vec<LocalSession> = self
            .shared
            .local
            .iter()
            .map(|e| {
                let l = e.value();
                LocalSession {
                    id_prefix: e.key().to_string().chars().take(8).collect(),
                    principal: l.principal.as_deref().map(str::to_string),
                    age: Duration::from_millis(now.saturating_sub(l.issued_at_ms)),
                    idle: Duration::from_millis(
                        now.saturating_sub(l.last_seen_ms.load(Ordering::Relaxed)),
                    ),
                    active: l.active.load(Ordering::Relaxed),
                    owner: self.shared.replica.to_string(),
                }
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.age));
        out
    }
}
