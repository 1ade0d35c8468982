//! The reaper and the local table: which sessions this replica serves, when they expire or
//! move, and telling the MCP layer to release them.

use super::*;

impl SessionManager {
    /// Runs the reaper until `shutdown` completes (or every handle is dropped): every
    /// `idle_timeout / 4` (between 1 s and 60 s) it expires idle and over-age sessions,
    /// releases sessions that moved, and sweeps the store.
    pub fn spawn_reaper(
        &self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> JoinHandle<()> {
        let weak = Arc::downgrade(&self.shared);
        let period =
            (self.shared.idle_timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    () = &mut shutdown => break,
                    _ = tick.tick() => {}
                }
                let Some(shared) = weak.upgrade() else { break };
                let manager = SessionManager { shared };
                if let Err(e) = manager.reap().await {
                    warn!(error = %e, "session reaper: store error");
                }
            }
        })
    }

    /// One reaper pass; returns how many sessions expired. Public for tests and for callers
    /// that want to reap on their own schedule.
    pub async fn reap(&self) -> Result<usize> {
        let s = &self.shared;
        let now = s.clock.now_ms();
        let idle = s.idle_timeout.as_millis() as u64;
        let lifetime = s.max_lifetime.as_millis() as u64;
        let mut busy = Vec::new();
        let mut stale = Vec::new();
        // Collect first: no store call while holding a map shard.
        for e in s.local.iter() {
            let l = e.value();
            let over_age = now >= l.issued_at_ms.saturating_add(lifetime);
            let quiet = now.saturating_sub(l.last_seen_ms.load(Ordering::Acquire));
            if over_age {
                stale.push((*e.key(), l.principal.clone(), true));
            } else if l.active.load(Ordering::Acquire) > 0 {
                if quiet >= idle / 2 {
                    busy.push((*e.key(), l.principal.clone()));
                }
            } else if quiet >= idle {
                stale.push((*e.key(), l.principal.clone(), false));
            }
        }
        for (id, principal) in busy {
            match s.store.touch(id, principal.as_deref()).await? {
                Lookup::Alive(_) => {
                    if let Some(l) = s.local.get(&id) {
                        l.last_seen_ms.store(now, Ordering::Release);
                    }
                }
                Lookup::Ended(EndReason::Revoked) => self.release_local(id, ReleaseReason::Revoked),
                Lookup::Ended(EndReason::Expired) | Lookup::Missing => {
                    self.release_local(id, ReleaseReason::Expired)
                }
            }
        }
        let mut expired = 0;
        for (id, principal, over_age) in stale {
            if !over_age {
                match s.store.peek(id).await? {
                    Lookup::Alive(_) if s.store.is_shared() => {
                        if self.remove_local_if_quiet(id, now, idle) {
                            debug!(session = %id, "session idle here but alive elsewhere");
                            self.notify(Release {
                                id,
                                reason: ReleaseReason::Moved,
                            });
                        }
                        continue;
                    }
                    // Touched between our scan and the peek: not idle after all.
                    Lookup::Alive(_) => continue,
                    Lookup::Ended(EndReason::Revoked) => {
                        self.release_local(id, ReleaseReason::Revoked);
                        continue;
                    }
                    Lookup::Ended(EndReason::Expired) | Lookup::Missing => {}
                }
                if !self.remove_local_if_quiet(id, now, idle) {
                    continue;
                }
            } else if s.local.remove(&id).is_none() {
                continue;
            } else {
                s.metrics.open.dec();
            }
            s.store
                .end(id, principal.as_deref(), EndReason::Expired)
                .await?;
            s.metrics.expired.inc();
            expired += 1;
            debug!(session = %id, over_age, "session expired");
            self.notify(Release {
                id,
                reason: ReleaseReason::Expired,
            });
        }
        s.store.sweep().await?;
        Ok(expired)
    }

    // --- internals ---

    pub(super) fn local_of(&self, session: &Session) -> Local {
        Local {
            principal: session.principal.clone(),
            issued_at_ms: session.issued_at_ms,
            last_seen_ms: AtomicU64::new(self.shared.clock.now_ms()),
            active: AtomicU32::new(0),
            resumed: std::sync::atomic::AtomicBool::new(false),
            memo: std::sync::Mutex::new(None),
        }
    }

    pub(super) fn insert_local(&self, session: &Session) -> How {
        let now = self.shared.clock.now_ms();
        match self.shared.local.entry(session.id) {
            dashmap::Entry::Occupied(e) => {
                e.get().last_seen_ms.store(now, Ordering::Release);
                How::Local
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(Arc::new(self.local_of(session)));
                self.shared.metrics.open.inc();
                How::Token
            }
        }
    }

    /// Removes the local entry unless it was used since the reaper's scan.
    pub(super) fn remove_local_if_quiet(&self, id: SessionId, now: u64, idle: u64) -> bool {
        let removed = self
            .shared
            .local
            .remove_if(&id, |_, l| {
                l.active.load(Ordering::Acquire) == 0
                    && now.saturating_sub(l.last_seen_ms.load(Ordering::Acquire)) >= idle
            })
            .is_some();
        if removed {
            self.shared.metrics.open.dec();
        }
        removed
    }

    pub(super) fn release_local(&self, id: SessionId, reason: ReleaseReason) {
        if self.shared.local.remove(&id).is_some() {
            self.shared.metrics.open.dec();
            if reason == ReleaseReason::Expired {
                self.shared.metrics.expired.inc();
            }
            self.notify(Release { id, reason });
        }
    }

    /// Expires a session found over age on resume.
    pub(super) async fn expire(&self, id: SessionId, principal: Option<&str>) {
        if self.shared.local.contains_key(&id) {
            if let Err(e) = self
                .shared
                .store
                .end(id, principal, EndReason::Expired)
                .await
            {
                warn!(error = %e, "session store: ending an expired session failed");
            }
            self.release_local(id, ReleaseReason::Expired);
        }
    }

    pub(super) fn notify(&self, release: Release) {
        // Clone the callbacks out so none runs under a map shard lock.
        let listeners: Vec<Listener> = self
            .shared
            .listeners
            .iter()
            .map(|e| e.value().clone())
            .collect();
        for f in listeners {
            f(&release);
        }
    }
}
