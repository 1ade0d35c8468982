//! Federation: what makes many targets look like one. List requests fan out to the targets
//! and their pages merge under one composite cursor; exposed names (prefixed, namespaced or
//! shortened, see [`crate::names`]) resolve back to the owning target and its own name, by
//! the session's catalogue when names are not prefixed; `tools.allow`/`tools.deny` apply.

use crate::LockExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::input_rounds::Forward;
use super::{Item, McpBackend};
use crate::config::FailureMode;
use crate::error::{ProtocolError, Result};
use crate::jsonrpc;
use crate::names;
use crate::request::ListKind;
use crate::session::Session;

/// Most shortened tool names a backend remembers (see [`names::fit_tool_name`]).
const MAX_SHORTENED: usize = 65_536;

impl ListKind {
    pub(super) fn key(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }
    pub(super) fn field(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::Templates => "uriTemplate",
        }
    }
    /// The item an exposed name (or URI, or URI template) of this list stands for.
    pub(super) fn item(self, exposed: &str) -> Item<'_> {
        match self {
            Self::Tools => Item::Tool(exposed),
            Self::Prompts => Item::Prompt(exposed),
            Self::Resources | Self::Templates => Item::Resource(exposed),
        }
    }
    fn catalog_prefix(self) -> &'static str {
        match self {
            Self::Tools => "t:",
            Self::Prompts => "p:",
            Self::Resources | Self::Templates => "r:",
        }
    }
}

impl McpBackend {
    /// The unshortened exposed name of a tool: what `tools.allow`/`tools.deny` match.
    pub(super) fn full_name(&self, t: usize, name: &str) -> String {
        if self.0.naming.prefixed {
            names::prefixed(&self.target(t).name, name)
        } else {
            name.to_string()
        }
    }

    pub(super) fn tool_allowed(&self, exposed: &str) -> bool {
        self.0.allow.as_ref().is_none_or(|a| a.is_match(exposed)) && !self.0.deny.is_match(exposed)
    }

    /// Target `t`. Every `t` in this crate is an index into this backend's targets: it comes
    /// from `0..targets.len()` or [`Self::target_index`], and a session or upstream holding one
    /// belongs to this backend (a reload builds new sessions), whose targets never change.
    #[allow(clippy::indexing_slicing)] // invariant: see above
    pub(super) fn target(&self, t: usize) -> &super::Target {
        &self.0.targets[t]
    }

    pub(super) fn target_index(&self, name: &str) -> Option<usize> {
        self.0.targets.iter().position(|t| &*t.name == name)
    }

    /// Exposed tool/prompt name → (target, upstream name).
    pub(super) async fn resolve_name(
        &self,
        session: &Session,
        kind: ListKind,
        exposed: &str,
    ) -> Option<(usize, String)> {
        if self.0.targets.len() == 1 && !self.0.naming.prefixed {
            return Some((0, exposed.to_string()));
        }
        if kind == ListKind::Tools
            && let Some(e) = self.0.shortened.get(exposed)
        {
            return Some(e.value().clone());
        }
        if self.0.naming.prefixed {
            let (target, name) = names::split(exposed)?;
            return Some((self.target_index(target)?, name.to_string()));
        }
        let key = format!("{}{exposed}", kind.catalog_prefix());
        let epoch = self.0.naming.epoch.load(Ordering::Relaxed);
        {
            let c = session.0.catalog.locked();
            if c.0 == epoch
                && let Some(v) = c.1.get(&key)
            {
                return Some(v.clone());
            }
        }
        // Unknown or stale: list everything once to learn who owns the name.
        let mut cursor = None;
        loop {
            let page = self.list(session, kind, cursor.as_deref()).await.ok()?;
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        session.0.catalog.locked().1.get(&key).cloned()
    }

    /// Exposed resource URI → (target, upstream URI).
    pub(super) fn resolve_uri(&self, session: &Session, uri: &str) -> Option<(usize, String)> {
        if self.0.naming.prefixed {
            let (target, orig) = names::split_uri(uri)?;
            return Some((self.target_index(target)?, orig));
        }
        if self.0.targets.len() == 1 {
            return Some((0, uri.to_string()));
        }
        let c = session.0.catalog.locked();
        Some(
            c.1.get(&format!("r:{uri}"))
                .cloned()
                .unwrap_or((0, uri.to_string())),
        )
    }

    /// A `tools/call` result of target `t` as the client sees it on a federated route: MCP Apps
    /// UI resource URIs (`_meta.ui.resourceUri`, `_meta["ui/resourceUri"]`) and the URIs of
    /// `resource_link` content are namespaced like the target's resources, so the client reads
    /// them back through this route.
    pub(super) fn expose_tool_result(&self, t: usize, reply: &mut Value) {
        if !self.0.naming.prefixed {
            return;
        }
        let Some(result) = reply.get_mut("result") else {
            return;
        };
        let tname = &self.target(t).name;
        let ns = |u: &str| names::namespace_uri(tname, u);
        if let Some(meta) = result.get_mut("_meta") {
            names::map_ui_meta(meta, &ns);
        }
        if let Some(content) = result.get_mut("content").and_then(Value::as_array_mut) {
            for c in content {
                if c.get("type").and_then(Value::as_str) == Some("resource_link")
                    && let Some(u) = c.get_mut("uri")
                    && let Some(s) = u.as_str()
                {
                    *u = Value::String(ns(s));
                }
            }
        }
    }

    /// Fan a list request out to the targets the cursor names (all on the first page) and
    /// merge the pages; the composite cursor remembers each target's own cursor.
    pub(super) async fn list(
        &self,
        session: &Session,
        kind: ListKind,
        cursor: Option<&str>,
    ) -> Result<Value, ProtocolError> {
        let plan: Vec<(usize, Option<String>)> = match cursor {
            None => (0..self.0.targets.len()).map(|t| (t, None)).collect(),
            Some(c) => {
                let map = names::decode_cursor(c)
                    .ok_or_else(|| ProtocolError::InvalidParams("invalid cursor".into()))?;
                map.into_iter()
                    .filter_map(|(n, c)| Some((self.target_index(&n)?, Some(c))))
                    .collect()
            }
        };
        let epoch = self.0.naming.epoch.load(Ordering::Relaxed);
        let pages = futures::future::join_all(plan.into_iter().map(|(t, c)| {
            let params = match c {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let msg = jsonrpc::request(Value::from(0), kind.method(), params);
            async move { (t, self.call(session, t, msg, None, Forward::Plain).await) }
        }))
        .await;
        let mut items = Vec::new();
        let mut next = BTreeMap::new();
        let mut learned: HashMap<String, (usize, String)> = HashMap::new();
        let prefixed = self.0.naming.prefixed;
        for (t, page) in pages {
            let tname = &self.target(t).name;
            if let Some(e) = page.get("error") {
                // A target without this capability is not a failure.
                if e.get("code").and_then(Value::as_i64) == Some(crate::error::METHOD_NOT_FOUND) {
                    continue;
                }
                if self.0.cfg.failure_mode == FailureMode::FailClosed {
                    return Err(ProtocolError::Forwarded(e.clone()));
                }
                tracing::warn!(target_name = %tname, method = kind.method(), "target skipped (fail_open)");
                continue;
            }
            let result = page.get("result").unwrap_or(&Value::Null);
            if let Some(c) = result.get("nextCursor").and_then(Value::as_str) {
                next.insert(tname.to_string(), c.to_string());
            }
            let Some(list) = result.get(kind.key()).and_then(Value::as_array) else {
                continue;
            };
            if kind == ListKind::Tools {
                self.target(t).tool_headers.record(epoch, list);
            }
            for item in list {
                let Some(orig) = item.get(kind.field()).and_then(Value::as_str) else {
                    continue;
                };
                let exposed = match kind {
                    ListKind::Tools | ListKind::Prompts if prefixed => {
                        let full = names::prefixed(tname, orig);
                        if kind == ListKind::Tools {
                            let (fit, short) = names::fit_tool_name(&full);
                            // Bounded: a target inventing ever new long names cannot grow it
                            // forever (past the cap, new shortened names do not resolve).
                            if short && self.0.shortened.len() < MAX_SHORTENED {
                                self.0.shortened.insert(fit.clone(), (t, orig.to_string()));
                            }
                            fit
                        } else {
                            full
                        }
                    }
                    ListKind::Resources | ListKind::Templates if prefixed => {
                        names::namespace_uri(tname, orig)
                    }
                    _ => orig.to_string(),
                };
                if kind == ListKind::Tools && !self.tool_allowed(&self.full_name(t, orig)) {
                    continue;
                }
                let key = format!("{}{exposed}", kind.catalog_prefix());
                if !prefixed && learned.contains_key(&key) {
                    // prefix: never — the first target in config order wins a clash.
                    continue;
                }
                learned.insert(key, (t, orig.to_string()));
                let mut item = item.clone();
                if let Some(o) = item.as_object_mut() {
                    o.insert(kind.field().into(), Value::String(exposed));
                }
                if kind == ListKind::Tools
                    && let Some(meta) = item.get_mut("_meta")
                {
                    // MCP Apps: the tool's UI resource must read back through this route.
                    if prefixed {
                        names::map_ui_meta(meta, &|u| names::namespace_uri(tname, u));
                    } else {
                        for u in names::ui_meta_uris(meta) {
                            // Routes `resources/read` of a UI resource that the target does
                            // not list (many do not) by the catalogue, unless listed already.
                            learned
                                .entry(format!("r:{u}"))
                                .or_insert_with(|| (t, u.to_string()));
                        }
                    }
                }
                items.push(item);
            }
        }
        // Only unprefixed names of several targets route by catalogue (`resolve_name`,
        // `resolve_uri`); otherwise keeping it would only cost per-session memory.
        if !prefixed && self.0.targets.len() > 1 {
            let mut c = session.0.catalog.locked();
            if c.0 != epoch {
                *c = (epoch, HashMap::new());
            }
            c.1.extend(learned);
        }
        let mut result = json!({ kind.key(): items });
        if !next.is_empty()
            && let Some(r) = result.as_object_mut()
        {
            r.insert(
                "nextCursor".into(),
                Value::String(names::encode_cursor(&next)),
            );
        }
        Ok(result)
    }
}
