//! What the admin UI reads from the running gateway: where each listener is bound, the live
//! state of the MCP and LLM backends of the serving generation, and this replica's sessions.

use crate::admin::{BackendState, ListenerAddr, Snapshot};

use super::Gateway;

impl Gateway {
    /// The live state behind the admin UI's pages (no secrets: backends report names, health
    /// and counts, sessions an id prefix and their principal).
    pub async fn admin_snapshot(&self) -> Snapshot {
        let control = self.inner.control.lock().await;
        let generation = self.current();
        let listeners = generation
            .config
            .listeners
            .iter()
            .filter_map(|l| {
                let h = control.listeners.get(&l.name)?;
                Some(ListenerAddr {
                    name: l.name.clone(),
                    addr: h.local_addr,
                    tls: l.tls.is_some(),
                })
            })
            .collect();
        let mut mcp: Vec<BackendState> = control
            .carried
            .mcp
            .iter()
            .map(|((listener, route), (_, b))| BackendState {
                listener: listener.clone(),
                route: route.clone(),
                state: serde_json::json!({
                    "sessions": b.session_count(),
                    "stdio_pids": b.target_pids().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
                }),
            })
            .collect();
        let mut llm: Vec<BackendState> = control
            .carried
            .llm
            .iter()
            .map(|((listener, route), b)| BackendState {
                listener: listener.clone(),
                route: route.clone(),
                state: serde_json::to_value(b.status()).unwrap_or_default(),
            })
            .collect();
        drop(control);
        mcp.sort_by(|a, b| (&a.listener, &a.route).cmp(&(&b.listener, &b.route)));
        llm.sort_by(|a, b| (&a.listener, &a.route).cmp(&(&b.listener, &b.route)));
        let sessions = self.sessions();
        Snapshot {
            replica: sessions.replica_id().to_string(),
            shared_store: sessions.store().is_shared(),
            listeners,
            mcp,
            llm,
            sessions: serde_json::to_value(sessions.list_local()).unwrap_or_default(),
            a2a_tasks: serde_json::to_value(self.inner.a2a_metrics.tasks.list())
                .unwrap_or_default(),
        }
    }
}
