//! `initialize`: a new session connects every target concurrently (each within its
//! `timeout`; `failure_mode` decides whether one that fails fails the session) and answers
//! with what they offer, merged. Also how one target is connected for a session, lazily
//! later or when rebuilt, and what of the client's `initialize` params a session keeps.

use crate::LockExt;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{LATEST_VERSION, McpBackend, RECONNECT_HOLDOFF, SESSION_VERSIONS};
use crate::config::{FailureMode, TransportKind};
use crate::error::{Error, ProtocolError, Result};
use crate::jsonrpc;
use crate::request::Request;
use crate::session::Session;
use crate::upstream::Upstream;
use crate::upstream::http::HttpUpstream;
use crate::upstream::sse::SseUpstream;

impl McpBackend {
    /// Create a session: connect every target concurrently and merge what they offer.
    pub(super) async fn initialize(
        &self,
        req: &Request,
        legacy_id: Option<String>,
        principal: Option<Arc<str>>,
        route: &str,
    ) -> Result<(Session, Value), ProtocolError> {
        let rid = req.id.clone();
        let params = match client_params(req.msg.get("params")) {
            Ok(p) => p,
            Err(why) => return Err(ProtocolError::InvalidParams(why.into())),
        };
        let requested = params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(LATEST_VERSION);
        let version = if SESSION_VERSIONS.contains(&requested) {
            requested
        } else {
            LATEST_VERSION
        }
        .to_string();
        let managed = legacy_id.is_none();
        let session = Session::new(
            legacy_id.unwrap_or_default(),
            version.clone(),
            params,
            principal,
            self.0.naming.clone(),
            None,
        );
        let results = futures::future::join_all((0..self.0.targets.len()).map(|t| {
            let s = session.clone();
            async move {
                let timeout = self.target(t).cfg.timeout();
                match tokio::time::timeout(timeout, self.connect(&s, t)).await {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout(self.target(t).name.to_string())),
                }
            }
        }))
        .await;
        let mut caps = Map::new();
        let mut instructions = Vec::new();
        let mut server_info = None;
        let mut subscribe = false;
        for (t, r) in results.into_iter().enumerate() {
            let name = &self.target(t).name;
            match r {
                Ok(init) => {
                    self.0.shared.metrics.request("initialize", name, "ok");
                    let c = init.get("capabilities").unwrap_or(&Value::Null);
                    for k in ["tools", "prompts"] {
                        if c.get(k).is_some() {
                            caps.insert(k.into(), json!({"listChanged": true}));
                        }
                    }
                    if let Some(r) = c.get("resources") {
                        subscribe |= r.get("subscribe").and_then(Value::as_bool).unwrap_or(false);
                        caps.insert("resources".into(), json!({}));
                    }
                    for k in ["logging", "completions"] {
                        if c.get(k).is_some() {
                            caps.insert(k.into(), json!({}));
                        }
                    }
                    if let Some(i) = init.get("instructions").and_then(Value::as_str) {
                        instructions.push(if self.0.targets.len() > 1 {
                            format!("[{name}] {i}")
                        } else {
                            i.to_string()
                        });
                    }
                    server_info = init.get("serverInfo").cloned();
                }
                Err(e) => {
                    tracing::warn!(target_name = %name, error = %e, "target failed to initialize");
                    *self.target(t).down_until.locked() =
                        Some(tokio::time::Instant::now() + RECONNECT_HOLDOFF);
                    self.0.shared.metrics.request("initialize", name, "error");
                    if self.0.cfg.failure_mode == FailureMode::FailClosed {
                        for u in session.take_upstreams() {
                            u.close().await;
                        }
                        return Err(e.into());
                    }
                }
            }
        }
        if caps.contains_key("resources") {
            caps.insert(
                "resources".into(),
                json!({"subscribe": subscribe, "listChanged": true}),
            );
        }
        if caps.is_empty() {
            caps.insert("tools".into(), json!({"listChanged": true}));
        }
        let server_info = match server_info {
            Some(si) if self.0.targets.len() == 1 && si.is_object() => si,
            _ => json!({"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}),
        };
        let mut result = json!({
            "protocolVersion": version,
            "capabilities": caps,
            "serverInfo": server_info,
        });
        if !instructions.is_empty()
            && let Some(r) = result.as_object_mut()
        {
            r.insert(
                "instructions".into(),
                Value::String(instructions.join("\n\n")),
            );
        }
        for expired in self.0.sessions.sweep() {
            tracing::debug!(session = expired.id(), "idle session expired");
            for u in expired.take_upstreams() {
                u.close().await;
            }
        }
        if managed {
            self.create_managed(&session, route).await?;
            self.keep_children(&session);
            let key = session.0.managed.get().map(|m| m.key.to_string());
            // Keyed by the token's session id (Inner.id stays empty until rebuilt; the
            // registry key is what matters).
            self.0
                .sessions
                .insert_keyed(key.unwrap_or_default(), session.clone());
        } else {
            self.0.sessions.insert(session.clone());
        }
        Ok((session, jsonrpc::result(rid, result)))
    }

    /// Open target `t` for a session; returns the target's initialize result.
    pub(super) async fn connect(&self, session: &Session, t: usize) -> Result<Value> {
        let target = &self.target(t);
        let shared = &self.0.shared;
        let (up, init) = match target.kind {
            TransportKind::Stdio => {
                let p = match &target.stdio {
                    Some(shared) => shared.clone(),
                    None => self.spawn_session_child(session, t)?,
                };
                let init = p.ready().await?;
                (Upstream::Stdio(p), init)
            }
            TransportKind::Http => {
                let url = target
                    .cfg
                    .http
                    .as_ref()
                    .map(|h| h.url.clone())
                    .unwrap_or_default();
                let (h, init) = HttpUpstream::connect(
                    target.name.clone(),
                    url,
                    target.headers.clone(),
                    shared.client.clone(),
                    shared.ids.clone(),
                    session.0.init_params.clone(),
                    self.0.cfg.max_reply_bytes(),
                )
                .await?;
                h.set_tool_headers(target.tool_headers.clone());
                (Upstream::Http(h), init)
            }
            TransportKind::Sse => {
                let url = target
                    .cfg
                    .sse
                    .as_ref()
                    .map(|h| h.url.clone())
                    .unwrap_or_default();
                let fallback = session.sink(t);
                let (s, init) = SseUpstream::connect(
                    target.name.clone(),
                    url,
                    target.headers.clone(),
                    shared.client.here().clone(),
                    shared.ids.clone(),
                    Value::clone(&session.0.init_params),
                    fallback,
                    self.0.cfg.max_reply_bytes(),
                )
                .await?;
                (Upstream::Sse(s), init)
            }
            TransportKind::OpenApi => {
                let o = target
                    .openapi
                    .clone()
                    .ok_or_else(|| Error::Config("openapi".into()))?;
                let init = o.initialize(&session.0.init_params).await?;
                (Upstream::OpenApi(o), init)
            }
        };
        session.set_upstream(t, up);
        Ok(init)
    }

    /// Spawn target `t`'s `per_session` child for `session`, initialized with the client's own
    /// parameters; a managed session keeps it in the pool (see [`McpBackend::keep_children`]).
    fn spawn_session_child(
        &self,
        session: &Session,
        t: usize,
    ) -> Result<crate::upstream::stdio::StdioProcess> {
        let target = &self.target(t);
        let cfg = target
            .cfg
            .stdio
            .as_ref()
            .ok_or_else(|| Error::Config("stdio".into()))?;
        let p = crate::upstream::stdio::StdioProcess::for_session(
            &target.name,
            cfg,
            self.0.shared.ids.clone(),
            Value::clone(&session.0.init_params),
            session.sink(t),
            session.client_initialized(),
            self.0.cfg.max_reply_bytes(),
        );
        if let Some(m) = session.0.managed.get() {
            self.0
                .shared
                .stdio
                .keep(&m.manager, m.key, &target.name, cfg, p.clone());
        }
        Ok(p)
    }

    /// Keep the `per_session` children of a session that just became managed (they were
    /// spawned by `initialize` before the session had its token).
    pub(super) fn keep_children(&self, session: &Session) {
        let Some(m) = session.0.managed.get() else {
            return;
        };
        for (t, target) in self.0.targets.iter().enumerate() {
            if let (Some(cfg), Some(Upstream::Stdio(p))) = (&target.cfg.stdio, session.upstream(t))
                && p.is_per_session()
            {
                self.0
                    .shared
                    .stdio
                    .keep(&m.manager, m.key, &target.name, cfg, p);
            }
        }
    }
}

/// Longest `clientInfo` string kept (`name`, `version`, `title`, `websiteUrl`); longer ones
/// are cut at a character boundary.
pub(crate) const MAX_CLIENT_INFO_STRING: usize = 256;
/// Largest `capabilities` object (serialized) an `initialize` may carry.
pub(crate) const MAX_CAPABILITIES_BYTES: usize = 2048;

/// What a session keeps of the client's `initialize` params — it lives as long as the session,
/// goes into its `Mcp-Session-Id` and to every target's `initialize` — bounded whatever the
/// client sent: `protocolVersion`, `capabilities` (refused over [`MAX_CAPABILITIES_BYTES`])
/// and `clientInfo`'s `name`, `version`, `title` and `websiteUrl` (each cut to
/// [`MAX_CLIENT_INFO_STRING`] bytes). Everything else is dropped.
pub(crate) fn client_params(params: Option<&Value>) -> Result<Value, &'static str> {
    let mut out = Map::new();
    if let Some(v) = params
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str)
        .filter(|v| v.len() <= 32)
    {
        out.insert("protocolVersion".into(), json!(v));
    }
    match params.and_then(|p| p.get("capabilities")) {
        None => {}
        Some(c @ Value::Object(_)) => {
            if serde_json::to_vec(c).map_or(true, |b| b.len() > MAX_CAPABILITIES_BYTES) {
                return Err("initialize: capabilities too large");
            }
            out.insert("capabilities".into(), c.clone());
        }
        Some(_) => return Err("initialize: capabilities must be an object"),
    }
    if let Some(info) = params
        .and_then(|p| p.get("clientInfo"))
        .and_then(Value::as_object)
    {
        let mut kept = Map::new();
        for k in ["name", "version", "title", "websiteUrl"] {
            if let Some(v) = info.get(k).and_then(Value::as_str) {
                kept.insert(k.into(), json!(truncate(v, MAX_CLIENT_INFO_STRING)));
            }
        }
        out.insert("clientInfo".into(), Value::Object(kept));
    }
    Ok(Value::Object(out))
}

/// `s` cut to at most `max` bytes at a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    s.get(..end).unwrap_or_default()
}
