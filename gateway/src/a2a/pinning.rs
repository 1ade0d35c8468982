//! Task pinning: every task id and context id seen in a result or stream event is pinned to the
//! replica that produced it (`a2a:{route}:t:{id}` / `a2a:{route}:c:{id}` → replica URL, with
//! the route's `task_ttl`) in the sessions store, so a follow-up through any gateway sharing
//! the store lands on the right replica. [`A2aBackend::plan`] turns a call into the replicas to
//! try: the pinned one, else each in turn (probing for "task not found" when a task's pinning
//! is gone).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use switchboard_sessions::SessionStore;

use super::replica::Upstream;
use super::rpc::{Call, Seen};
use super::{A2aBackend, A2aPinLabels};

/// Which replicas a call goes to, in order, and when to move on to the next.
pub(super) struct Plan {
    pub(super) order: Vec<usize>,
    /// Try the next replica when one answers "task not found".
    pub(super) probe: bool,
    /// Try the next replica when one cannot be reached (nothing was sent to it).
    pub(super) failover: bool,
}

impl A2aBackend {
    /// Which replicas to try, in order.
    pub(super) async fn plan(&self, call: &Call) -> Plan {
        let n = self.upstreams.len();
        let start = if n > 1 {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        } else {
            0
        };
        let rotation: Vec<usize> = (start..n).chain(0..start).collect();
        if let Some(task) = &call.task_id {
            if let Some(i) = self.pinned('t', task).await {
                return Plan {
                    order: vec![i],
                    probe: false,
                    failover: false,
                };
            }
            // The pinning is gone (memory store, expiry): ask each replica until one knows it.
            return Plan {
                order: rotation,
                probe: true,
                failover: false,
            };
        }
        if let Some(ctx) = &call.context_id
            && let Some(i) = self.pinned('c', ctx).await
        {
            let mut order = vec![i];
            order.extend(rotation.into_iter().filter(|&j| j != i));
            return Plan {
                order,
                probe: false,
                failover: true,
            };
        }
        Plan {
            order: rotation,
            probe: false,
            failover: true,
        }
    }

    pub(super) async fn pinned(&self, kind: char, id: &str) -> Option<usize> {
        if self.upstreams.len() == 1 {
            return Some(0);
        }
        let key = format!("a2a:{}:{kind}:{id}", self.route);
        let found = match self.store.get_affinity(&key).await {
            Ok(Some(url)) => self.upstreams.iter().position(|u| *u.url == *url),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(route = %self.route, error = %e, "A2A task pinning lookup failed; trying replicas in turn");
                None
            }
        };
        self.metrics
            .pinning
            .get_or_create(&A2aPinLabels {
                route: self.route.clone(),
                result: if found.is_some() { "hit" } else { "miss" },
            })
            .inc();
        found
    }

    /// Pins what `up`'s answer reveals.
    pub(super) fn learner(&self, up: &Upstream) -> Learner {
        Learner {
            store: self.store.clone(),
            prefix: format!("a2a:{}:", self.route),
            replica: up.url.clone(),
            ttl: self.task_ttl,
            written: HashSet::new(),
            route: self.route.clone(),
            tasks: self.metrics.tasks.clone(),
        }
    }
}

/// Pins task and context ids to the replica that revealed them.
pub(super) struct Learner {
    store: Arc<dyn SessionStore>,
    prefix: String,
    replica: Arc<str>,
    ttl: Duration,
    /// Keys already written during this exchange (a stream names its task in every event).
    written: HashSet<String>,
    route: Arc<str>,
    /// Where the admin UI's task list is kept.
    tasks: super::tasks::TaskLog,
}

impl Learner {
    pub(super) async fn learn(&mut self, seen: &[Seen]) {
        for s in seen {
            if let Some(task) = &s.task_id {
                self.tasks
                    .saw(&self.route, task, s.state, &self.replica, self.ttl);
            }
            for (kind, id) in [('t', &s.task_id), ('c', &s.context_id)] {
                let Some(id) = id else { continue };
                let key = format!("{}{kind}:{id}", self.prefix);
                if self.written.contains(&key) {
                    continue;
                }
                match self.store.put_affinity(&key, &self.replica, self.ttl).await {
                    Ok(()) => {
                        self.written.insert(key);
                    }
                    Err(e) => tracing::warn!(error = %e, "A2A task pinning could not be stored"),
                }
            }
        }
    }
}
