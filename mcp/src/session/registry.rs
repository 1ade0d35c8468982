//! The sessions of one backend between requests, with their idle clocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;

use super::Session;

/// Where the sessions of one backend live between requests. Sessions
/// idle for longer than the idle timeout (and without an open stream) are swept out lazily,
/// when new sessions are created, so there is no timer task.
#[derive(Clone)]
pub(crate) struct Registry {
    map: Arc<DashMap<String, (Session, Arc<AtomicU64>)>>,
    start: tokio::time::Instant,
    idle: std::time::Duration,
    last_sweep: Arc<AtomicU64>,
    /// Open sessions, shared by every backend (hence inc/dec, never set).
    gauge: prometheus_client::metrics::gauge::Gauge,
}

impl Registry {
    pub fn new(idle: std::time::Duration, gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        Self {
            gauge,
            map: Arc::default(),
            start: tokio::time::Instant::now(),
            idle,
            last_sweep: Arc::default(),
        }
    }
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }
    pub fn new_id() -> String {
        uuid::Uuid::new_v4().simple().to_string()
    }
    pub fn insert(&self, s: Session) {
        self.insert_keyed(s.id().to_string(), s);
    }
    /// Insert under `key` (a managed session's token id).
    pub fn insert_keyed(&self, key: String, s: Session) {
        let seen = Arc::new(AtomicU64::new(self.now_ms()));
        if self.map.insert(key, (s, seen)).is_none() {
            self.gauge.inc();
        }
    }
    /// Insert `s` unless a session with its id is already there (two requests rebuilding the
    /// same session at once); returns the one that stays.
    pub fn insert_or_get(&self, s: Session) -> Session {
        match self.map.entry(s.id().to_string()) {
            dashmap::Entry::Occupied(e) => e.get().0.clone(),
            dashmap::Entry::Vacant(e) => {
                let seen = Arc::new(AtomicU64::new(self.now_ms()));
                e.insert((s.clone(), seen));
                self.gauge.inc();
                s
            }
        }
    }
    /// Look a session up for `principal` and mark it as used now. Another principal's session
    /// is as good as unknown.
    pub fn get(&self, id: &str, principal: Option<&str>) -> Option<Session> {
        let e = self.map.get(id)?;
        if e.0.0.principal.as_deref() != principal {
            return None;
        }
        e.1.store(self.now_ms(), Ordering::Relaxed);
        Some(e.0.clone())
    }
    pub fn remove(&self, id: &str) -> Option<Session> {
        let (_, (s, _)) = self.map.remove(id)?;
        self.gauge.dec();
        Some(s)
    }

    /// Forget every session (the backend is going away, e.g. replaced by a reload).
    pub fn clear(&self) {
        self.gauge.dec_by(self.map.len() as i64);
        self.map.clear();
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn all(&self) -> Vec<Session> {
        self.map.iter().map(|e| e.value().0.clone()).collect()
    }
    /// Remove and return the sessions idle for longer than the timeout; scans at most once
    /// per tenth of the timeout.
    pub fn sweep(&self) -> Vec<Session> {
        let now = self.now_ms();
        let idle = self.idle.as_millis() as u64;
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now.saturating_sub(last) < idle / 10
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return Vec::new();
        }
        let expired: Vec<String> = self
            .map
            .iter()
            .filter(|e| {
                // Managed sessions expire through the session manager (`on_release`).
                e.value().0.0.managed.get().is_none()
                    && now.saturating_sub(e.value().1.load(Ordering::Relaxed)) > idle
                    && !e.value().0.has_open_stream()
            })
            .map(|e| e.key().clone())
            .collect();
        expired.iter().filter_map(|id| self.remove(id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Naming;
    use serde_json::Value;
    use std::time::Duration;

    fn session(id: &str) -> Session {
        let naming = Arc::new(Naming {
            targets: vec![Arc::from("t")],
            prefixed: false,
            epoch: AtomicU64::new(0),
        });
        Session::new(
            id.into(),
            "2025-11-25".into(),
            Value::Null,
            None,
            naming,
            None,
        )
    }

    #[tokio::test(start_paused = true)]
    async fn idle_sessions_are_swept_and_used_ones_stay() {
        let gauge = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        let r = Registry::new(Duration::from_secs(600), gauge.clone());
        r.insert(session("idle"));
        r.insert(session("busy"));
        r.insert(session("listening"));
        let bound = crate::outbox::Bound {
            cap: 4,
            metrics: crate::Metrics::unregistered(),
        };
        let (tx, _rx) = crate::outbox::outbox(&bound, crate::outbox::Mode::Cut, "legacy");
        r.get("listening", None).unwrap().attach_stream(tx);
        tokio::time::advance(Duration::from_secs(400)).await;
        assert!(r.get("busy", None).is_some());
        assert!(
            r.get("busy", Some("mallory")).is_none(),
            "bound to its principal"
        );
        assert!(r.sweep().is_empty(), "nothing is idle for 10 minutes yet");
        tokio::time::advance(Duration::from_secs(300)).await;
        let swept: Vec<String> = r.sweep().iter().map(|s| s.id().to_string()).collect();
        assert_eq!(swept, vec!["idle".to_string()]);
        assert_eq!(r.len(), 2);
        assert_eq!(gauge.get(), 2);
        tokio::time::advance(Duration::from_secs(700)).await;
        let swept: Vec<String> = r.sweep().iter().map(|s| s.id().to_string()).collect();
        assert_eq!(
            swept,
            vec!["busy".to_string()],
            "a session with an open stream stays"
        );
    }
}
