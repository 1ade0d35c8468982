//! The A2A tasks this gateway has seen recently, for the admin UI: which agent replica holds
//! each (the one its answer came from, which pinning also records), its last state, and when it
//! was first and last seen. A bounded, in-memory view of this gateway replica only: the
//! pinnings in a shared store cannot be listed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// At most this many tasks are remembered; beyond it, expired ones are dropped and new ones
/// are not recorded until there is room.
const MAX_TASKS: usize = 1024;

/// Recently seen A2A tasks, shared by every A2A route and config generation (cheap clone).
#[derive(Clone, Default)]
pub struct TaskLog(Arc<DashMap<(Arc<str>, String), Seen>>);

struct Seen {
    first: Instant,
    last: Instant,
    state: Option<&'static str>,
    replica: Arc<str>,
    ttl: Duration,
}

/// One task, as the admin UI shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TaskView {
    /// Route name.
    pub route: String,
    /// The first characters of the task id.
    pub id_prefix: String,
    /// Its last state seen (`working`, `completed`, ...), if any.
    pub state: Option<&'static str>,
    /// Seconds since the gateway first saw it.
    pub age: u64,
    /// Seconds since it was last seen.
    pub idle: u64,
    /// The agent replica that holds it.
    pub replica: String,
}

impl TaskLog {
    /// Records that `task` on `route` was seen in an answer of `replica`.
    pub(super) fn saw(
        &self,
        route: &Arc<str>,
        task: &str,
        state: Option<&'static str>,
        replica: &Arc<str>,
        ttl: Duration,
    ) {
        let now = Instant::now();
        let key = (route.clone(), task.to_string());
        if let Some(mut s) = self.0.get_mut(&key) {
            s.last = now;
            s.state = state.or(s.state);
            s.replica = replica.clone();
            return;
        }
        if self.0.len() >= MAX_TASKS {
            self.0.retain(|_, s| now.duration_since(s.last) < s.ttl);
            if self.0.len() >= MAX_TASKS {
                return;
            }
        }
        self.0.insert(
            key,
            Seen {
                first: now,
                last: now,
                state,
                replica: replica.clone(),
                ttl,
            },
        );
    }

    /// The tasks seen within their route's `task_ttl`, most recent first.
    pub fn list(&self) -> Vec<TaskView> {
        let now = Instant::now();
        let mut out: Vec<(Instant, TaskView)> = self
            .0
            .iter()
            .filter(|e| now.duration_since(e.last) < e.ttl)
            .map(|e| {
                let ((route, id), s) = (e.key(), e.value());
                (
                    s.last,
                    TaskView {
                        route: route.to_string(),
                        id_prefix: id.chars().take(8).collect(),
                        state: s.state,
                        age: now.duration_since(s.first).as_secs(),
                        idle: now.duration_since(s.last).as_secs(),
                        replica: s.replica.to_string(),
                    },
                )
            })
            .collect();
        out.sort_by_key(|e| std::cmp::Reverse(e.0));
        out.into_iter().map(|(_, v)| v).collect()
    }
}
