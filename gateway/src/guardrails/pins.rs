//! Tool-poisoning defence: each tool definition (name, description, input schema) an `mcp`
//! route lists is pinned the first time it is seen, in the sessions store (memory or Redis),
//! keyed by route and the tool's name as the route exposes it (`{target}__{tool}` when
//! prefixed). A later definition that differs is a change, handled by
//! `policies.guardrails.tool_changes`: `block` hides the tool from `tools/list` and refuses
//! calls to it until an administrator approves the change (`POST /api/tool-pins/approve`),
//! `warn` logs and counts it, `allow` lets it through.
//!
//! The store holds the pins; which tools changed is known to the replica that listed them
//! (a replica that has not listed the tools since a change lets calls through until it does).

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_sessions::SessionStore;

use super::{Site, count};
use crate::config::ToolChanges;

/// How long a pin lives in the store (the store's keys all expire).
const PIN_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// What this replica knows about one tool.
#[derive(Debug, Clone)]
struct Entry {
    pinned_hash: String,
    pinned_description: String,
    current_hash: String,
    current_description: String,
    blocked: bool,
}

/// The pins, a cheap handle shared by the routes and the admin API.
#[derive(Clone, Debug)]
pub struct ToolPins {
    store: Arc<dyn SessionStore>,
    seen: Arc<DashMap<(String, String), Entry>>,
}

fn key(route: &str, tool: &str) -> String {
    format!("toolpin:{route}:{tool}")
}

/// The hash of a definition: its description and canonical input schema.
fn definition_hash(description: &str, schema: &Value) -> String {
    let mut h = Sha256::new();
    h.update(description.as_bytes());
    h.update([0]);
    h.update(schema.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl ToolPins {
    /// Pins kept in `store`.
    pub fn new(store: Arc<dyn SessionStore>) -> Self {
        ToolPins {
            store,
            seen: Arc::default(),
        }
    }

    /// Checks the tools of a `tools/list` result against their pins, pinning new ones; under
    /// `block` a changed tool is removed from `tools`.
    pub async fn observe(&self, at: Site<'_>, policy: ToolChanges, tools: &mut Vec<Value>) {
        let route = at.route;
        let mut keep = Vec::with_capacity(tools.len());
        for tool in tools.drain(..) {
            let Some(name) = tool.get("name").and_then(Value::as_str).map(str::to_owned) else {
                keep.push(tool);
                continue;
            };
            let description = tool
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let schema = tool.get("inputSchema").cloned().unwrap_or(Value::Null);
            let hash = definition_hash(&description, &schema);
            let k = key(route, &name);
            let pinned = match self.store.get_affinity(&k).await {
                Ok(p) => p.and_then(|p| serde_json::from_str::<Value>(&p).ok()),
                Err(e) => {
                    tracing::warn!(route, tool = %name, error = %e, "tool pin store unavailable");
                    keep.push(tool);
                    continue;
                }
            };
            let (pinned_hash, pinned_description) = match pinned {
                Some(p) => (
                    p.get("hash")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    p.get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
                None => {
                    let v = json!({"hash": hash, "description": description}).to_string();
                    if let Err(e) = self.store.put_affinity(&k, &v, PIN_TTL).await {
                        tracing::warn!(route, tool = %name, error = %e, "tool pin not stored");
                    }
                    (hash.clone(), description.clone())
                }
            };
            let changed = pinned_hash != hash;
            let blocked = changed && policy == ToolChanges::Block;
            let action = match policy {
                ToolChanges::Block => Some(("block", "; hidden and blocked")),
                ToolChanges::Warn => Some(("warn", "")),
                ToolChanges::Allow => None,
            };
            if let (true, Some((action, blocked_note))) = (changed, action) {
                tracing::warn!(route, tool = %name, "tool definition changed since pinned{blocked_note}");
                count(
                    at,
                    "tool_changes",
                    action,
                    crate::config::Direction::Response,
                );
            }
            self.seen.insert(
                (route.to_owned(), name),
                Entry {
                    pinned_hash,
                    pinned_description,
                    current_hash: hash,
                    current_description: description,
                    blocked,
                },
            );
            if !blocked {
                keep.push(tool);
            }
        }
        *tools = keep;
    }

    /// Whether calls to `tool` on `route` are refused (its definition changed under `block`).
    pub fn blocked(&self, route: &str, tool: &str) -> bool {
        self.seen
            .get(&(route.to_owned(), tool.to_owned()))
            .is_some_and(|e| e.blocked)
    }

    /// The tools this replica has seen, with their pinned and current definitions.
    pub fn list(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .seen
            .iter()
            .map(|e| {
                let ((route, tool), v) = (e.key(), e.value());
                json!({
                    "route": route, "tool": tool,
                    "pinned": {"hash": v.pinned_hash, "description": v.pinned_description},
                    "current": {"hash": v.current_hash, "description": v.current_description},
                    "changed": v.pinned_hash != v.current_hash,
                    "blocked": v.blocked,
                })
            })
            .collect();
        out.sort_by_key(|v| (v["route"].to_string(), v["tool"].to_string()));
        out
    }

    /// Pins the current definition of `tool` on `route`; false when it was never seen here.
    pub async fn approve(&self, route: &str, tool: &str) -> Result<bool, String> {
        let Some(current) = self
            .seen
            .get(&(route.to_owned(), tool.to_owned()))
            .map(|e| e.value().clone())
        else {
            return Ok(false);
        };
        let v = json!({"hash": current.current_hash, "description": current.current_description})
            .to_string();
        self.store
            .put_affinity(&key(route, tool), &v, PIN_TTL)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(mut e) = self.seen.get_mut(&(route.to_owned(), tool.to_owned())) {
            e.pinned_hash = current.current_hash.clone();
            e.pinned_description = current.current_description.clone();
            e.blocked = false;
        }
        Ok(true)
    }
}
