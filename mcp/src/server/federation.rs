//! Federation: one session fans out to, merges from and routes to the targets.

use crate::LockExt;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::{Map, Value, json};

use super::mrtr::Forward;
use super::{
    Access, Item, LATEST_VERSION, McpBackend, RECONNECT_HOLDOFF, SESSION_VERSIONS,
    STATELESS_VERSION,
};
use crate::config::{FailureMode, TransportKind};
use crate::error::{Error, ItemKind, ProtocolError, Result};
use crate::jsonrpc;
use crate::metrics::ToolLabels;
use crate::names;
use crate::request::{ListKind, Message, Method, Notification, Reference, Request};
use crate::session::{Inflight, Session};
use crate::upstream::http::HttpUpstream;
use crate::upstream::sse::SseUpstream;
use crate::upstream::{Recipient, Sink, Upstream, prepare};

/// Most shortened tool names a backend remembers (see [`names::fit_tool_name`]).
const MAX_SHORTENED: usize = 65_536;

impl ListKind {
    fn key(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Prompts => "prompts",
            Self::Resources => "resources",
            Self::Templates => "resourceTemplates",
        }
    }
    fn field(self) -> &'static str {
        match self {
            Self::Tools | Self::Prompts => "name",
            Self::Resources => "uri",
            Self::Templates => "uriTemplate",
        }
    }
    /// The item an exposed name (or URI, or URI template) of this list stands for.
    fn item(self, exposed: &str) -> Item<'_> {
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
                    shared.client.clone(),
                    shared.ids.clone(),
                    session.0.init_params.clone(),
                    fallback,
                    self.0.cfg.max_reply_bytes(),
                )
                .await?;
                (Upstream::Sse(s), init)
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
            session.0.init_params.clone(),
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

    pub(super) async fn upstream(&self, session: &Session, t: usize) -> Result<Upstream> {
        match session.upstream(t) {
            // A legacy SSE connection cannot resume: a dropped one is replaced by a new one.
            Some(Upstream::Sse(s)) if s.is_closed() => {}
            Some(u) => return Ok(u),
            None => {}
        }
        // Connected lazily: a stateless request, a target that failed at initialize, or a
        // legacy SSE target whose connection dropped.
        let target = &self.target(t);
        let now = tokio::time::Instant::now();
        if target.down_until.locked().is_some_and(|until| now < until) {
            return Err(Error::Unavailable {
                target: target.name.to_string(),
                reason: "failed recently".into(),
            });
        }
        let r = match tokio::time::timeout(target.cfg.timeout(), self.connect(session, t)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(target.name.to_string())),
        };
        *target.down_until.locked() = r.is_err().then(|| now + RECONNECT_HOLDOFF);
        r?;
        session.upstream(t).ok_or_else(|| Error::Unavailable {
            target: self.target(t).name.to_string(),
            reason: "not connected".into(),
        })
    }

    /// The client's reply to a server-to-client request: to the gateway's own question, or
    /// passed to the target that asked, under its own id.
    pub(super) async fn client_reply(&self, session: &Session, reply: Value) {
        let Some(reply) = session.answer_asked(reply) else {
            return;
        };
        if let Some((t, reply)) = session.take_client_reply(reply)
            && let Some(u) = session.upstream(t)
            && let Err(e) = u.send(reply).await
        {
            tracing::debug!(error = %e, "forwarding a client reply failed");
        }
    }

    /// A notification from the client (`msg` as sent).
    pub(super) async fn client_notification(&self, session: &Session, n: Notification, msg: Value) {
        match n {
            Notification::Cancelled { request_id } => {
                let found = session
                    .0
                    .inflight
                    .locked()
                    .get(&jsonrpc::id_key(&request_id))
                    .map(|e| {
                        e.cancel.cancel();
                        (e.target, e.upstream_id)
                    });
                let Some((t, uid)) = found else {
                    return;
                };
                let mut fwd = msg;
                jsonrpc::set_param(&mut fwd, "requestId", Value::from(uid));
                if let Some(u) = session.upstream(t) {
                    let _ = u.send(fwd).await;
                }
            }
            Notification::RootsListChanged => {
                for t in 0..self.0.targets.len() {
                    match session.upstream(t) {
                        Some(u @ (Upstream::Http(_) | Upstream::Sse(_))) => {
                            let _ = u.send(msg.clone()).await;
                        }
                        Some(Upstream::Stdio(p)) if p.is_per_session() => {
                            let _ = p.send(msg.clone());
                        }
                        _ => {}
                    }
                }
            }
            Notification::Initialized => {
                session.set_client_initialized();
                for t in 0..self.0.targets.len() {
                    if let Some(Upstream::Stdio(p)) = session.upstream(t) {
                        p.client_initialized();
                    }
                }
            }
            Notification::Other => {}
        }
    }

    /// A notification or a response from the client.
    pub(super) async fn client_message(&self, session: &Session, msg: Message) {
        match msg {
            Message::Response(r) => self.client_reply(session, r).await,
            Message::Notification(n, msg) => self.client_notification(session, n, msg).await,
            // Requests are dispatched; callers never pass one here.
            Message::Request(_) => {}
        }
    }

    /// Answer one client request (the response carries the client's id). `access` is the
    /// gateway's say over items: what it refuses is left out of lists and answered exactly
    /// like an item that does not exist.
    pub(super) async fn dispatch(
        &self,
        session: &Session,
        req: Request,
        stream: Option<crate::outbox::Outbox<Value>>,
        access: Option<Access>,
    ) -> Value {
        let Request { id, method, msg } = req;
        let allows = |item: Item<'_>| access.as_ref().is_none_or(|a| a.allows(item));
        match method {
            Method::List { kind, cursor } => {
                let mut r = self.list(session, kind, cursor.as_deref()).await;
                if let (Some(access), Ok(page)) = (&access, &mut r)
                    && let Some(items) = page.get_mut(kind.key()).and_then(Value::as_array_mut)
                {
                    items.retain(|item| {
                        item.get(kind.field())
                            .and_then(Value::as_str)
                            .is_some_and(|n| access.allows(kind.item(n)))
                    });
                }
                self.0.shared.metrics.request(
                    kind.method(),
                    "",
                    if r.is_ok() { "ok" } else { "error" },
                );
                match r {
                    Ok(v) => jsonrpc::result(id, v),
                    Err(e) => e.reply(id),
                }
            }
            Method::Ping => jsonrpc::result(id, json!({})),
            Method::Initialize => {
                ProtocolError::InvalidRequest("session already initialized".into()).reply(id)
            }
            Method::Discover => jsonrpc::result(id, discover()),
            Method::SetLevel => {
                let all = futures::future::join_all((0..self.0.targets.len()).map(|t| {
                    let m = msg.clone();
                    async move { self.call(session, t, m, None, Forward::Plain).await }
                }))
                .await;
                let failed = all.iter().find_map(|r| r.get("error"));
                match (failed, self.0.cfg.failure_mode) {
                    (Some(f), FailureMode::FailClosed) => {
                        ProtocolError::Forwarded(f.clone()).reply(id)
                    }
                    _ => jsonrpc::result(id, json!({})),
                }
            }
            Method::CallTool { name } => {
                self.call_named(session, ListKind::Tools, name, (id, msg), stream, &access)
                    .await
            }
            Method::GetPrompt { name } => {
                self.call_named(session, ListKind::Prompts, name, (id, msg), stream, &access)
                    .await
            }
            Method::ReadResource { uri } => {
                let forward = Forward::MayNeedInput;
                self.call_resource(session, uri, (id, msg), stream, forward, &access)
                    .await
            }
            Method::Subscribe { uri } | Method::Unsubscribe { uri } => {
                let forward = Forward::Plain;
                self.call_resource(session, uri, (id, msg), stream, forward, &access)
                    .await
            }
            Method::Complete(reference) => {
                let routed = match &reference {
                    Reference::Prompt(n) if allows(Item::Prompt(n)) => self
                        .resolve_name(session, ListKind::Prompts, n)
                        .await
                        .map(|(t, n)| (t, "name", n)),
                    Reference::Resource(u) if allows(Item::Resource(u)) => {
                        self.resolve_uri(session, u).map(|(t, u)| (t, "uri", u))
                    }
                    _ => None,
                };
                let Some((t, key, value)) = routed else {
                    return ProtocolError::UnknownReference.reply(id);
                };
                let mut m = msg;
                if let Some(r) = m.pointer_mut("/params/ref").and_then(Value::as_object_mut) {
                    r.insert(key.into(), Value::String(value));
                }
                self.call(session, t, m, stream, Forward::Plain).await
            }
            Method::Invalid { error, .. } => error.reply(id),
            Method::Unknown(method) => {
                self.0.shared.metrics.request(&method, "", "not_found");
                ProtocolError::MethodNotFound(method).reply(id)
            }
        }
    }

    /// `tools/call` or `prompts/get` (`kind`) of the exposed `name`: routed to the owning
    /// target under its own name.
    async fn call_named(
        &self,
        session: &Session,
        kind: ListKind,
        name: String,
        (id, mut msg): (Value, Value),
        stream: Option<crate::outbox::Outbox<Value>>,
        access: &Option<Access>,
    ) -> Value {
        let what = match kind {
            ListKind::Tools => ItemKind::Tool,
            _ => ItemKind::Prompt,
        };
        if !access.as_ref().is_none_or(|a| a.allows(kind.item(&name))) {
            return ProtocolError::Unknown(what, name).reply(id);
        }
        let resolved = self.resolve_name(session, kind, &name).await;
        let Some((t, upstream_name)) = resolved
            .filter(|(t, n)| kind != ListKind::Tools || self.tool_allowed(&self.full_name(*t, n)))
        else {
            return ProtocolError::Unknown(what, name).reply(id);
        };
        jsonrpc::set_param(&mut msg, "name", Value::String(upstream_name.clone()));
        if kind != ListKind::Tools {
            return self
                .call(session, t, msg, stream, Forward::MayNeedInput)
                .await;
        }
        let started = Instant::now();
        let r = self
            .call(session, t, msg, stream, Forward::Tool(&upstream_name))
            .await;
        if let Some(target) = self.0.targets.get(t) {
            self.0
                .shared
                .metrics
                .tool_duration
                .get_or_create(&ToolLabels {
                    target: target.name.to_string(),
                })
                .observe(started.elapsed().as_secs_f64());
        }
        r
    }

    /// `resources/read`, `resources/subscribe` or `resources/unsubscribe` of the exposed
    /// `uri`: routed to the owning target under its own URI; read contents get namespaced.
    async fn call_resource(
        &self,
        session: &Session,
        uri: String,
        (id, mut msg): (Value, Value),
        stream: Option<crate::outbox::Outbox<Value>>,
        forward: Forward<'_>,
        access: &Option<Access>,
    ) -> Value {
        if !access
            .as_ref()
            .is_none_or(|a| a.allows(Item::Resource(&uri)))
        {
            return ProtocolError::Unknown(ItemKind::Resource, uri).reply(id);
        }
        let Some((t, upstream_uri)) = self.resolve_uri(session, &uri) else {
            return ProtocolError::Unknown(ItemKind::Resource, uri).reply(id);
        };
        jsonrpc::set_param(&mut msg, "uri", Value::String(upstream_uri));
        let mut r = self.call(session, t, msg, stream, forward).await;
        if self.0.naming.prefixed
            && let Some(target) = self.0.targets.get(t)
            && let Some(contents) = r
                .pointer_mut("/result/contents")
                .and_then(Value::as_array_mut)
        {
            for c in contents.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(u) = c.get("uri").and_then(Value::as_str) {
                    let u = names::namespace_uri(&target.name, u);
                    c.insert("uri".into(), Value::String(u));
                }
            }
        }
        r
    }

    /// Forward a request to target `t` once (no input rounds, see `mrtr`); the reply comes
    /// back with the client's id.
    pub(super) async fn call_once(
        &self,
        session: &Session,
        t: usize,
        mut msg: Value,
        stream: Option<crate::outbox::Outbox<Value>>,
    ) -> Value {
        let down_id = jsonrpc::id(&msg);
        let method = jsonrpc::method(&msg).to_string();
        let target = &self.target(t);
        let up = match self.upstream(session, t).await {
            Ok(u) => u,
            Err(e) => {
                self.0
                    .shared
                    .metrics
                    .request(&method, &target.name, "error");
                return ProtocolError::from(e).reply(down_id);
            }
        };
        let uid = self.0.shared.ids.fetch_add(1, Ordering::Relaxed);
        let progress = prepare(&mut msg, uid);
        let key = jsonrpc::id_key(&down_id);
        let cancel = tokio_util::sync::CancellationToken::new();
        session.0.inflight.locked().insert(
            key.clone(),
            Inflight {
                target: t,
                upstream_id: uid,
                cancel: cancel.clone(),
            },
        );
        // Removes the entry however this future ends (also when the client goes away).
        let _inflight = InflightGuard(session, &key);
        let recipient = Recipient::new(Arc::new(RequestSink {
            session: session.clone(),
            target: t,
            stream,
        }));
        // A cancelled request may never be answered upstream; stop waiting for it.
        let r = tokio::select! {
            r = up.request(recipient, msg, progress, target.cfg.timeout(), &target.name) => r,
            _ = cancel.cancelled() => Err(Error::Cancelled),
        };
        match r {
            Ok(mut resp) => {
                let result = if resp.get("error").is_some() {
                    "error"
                } else {
                    "ok"
                };
                self.0.shared.metrics.request(&method, &target.name, result);
                jsonrpc::set_id(&mut resp, down_id);
                resp
            }
            Err(e) => {
                tracing::warn!(target_name = %target.name, %method, error = %e, "upstream request failed");
                let result = if matches!(e, Error::Timeout(_)) {
                    "timeout"
                } else if matches!(e, Error::Cancelled) {
                    "cancelled"
                } else {
                    "error"
                };
                self.0.shared.metrics.request(&method, &target.name, result);
                ProtocolError::from(e).reply(down_id)
            }
        }
    }

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

    /// Fan a list request out to the targets the cursor names (all on the first page) and
    /// merge the pages; the composite cursor remembers each target's own cursor.
    async fn list(
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

/// The `server/discover` result (2026-07-28): what the gateway itself offers.
fn discover() -> Value {
    let versions: Vec<&str> = SESSION_VERSIONS
        .iter()
        .copied()
        .chain([STATELESS_VERSION])
        .collect();
    json!({
        "supportedVersions": versions,
        "resultType": "complete",
        "ttlMs": 0,
        "cacheScope": "private",
        "serverInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")},
        "capabilities": {
            "tools": {"listChanged": true},
            "prompts": {"listChanged": true},
            "resources": {"listChanged": true},
            "logging": {},
            "completions": {},
        },
    })
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

/// What target `target` sends while it serves one request of `session`: on the request's
/// stream when it has one, else on the session's standalone stream.
struct RequestSink {
    session: Session,
    target: usize,
    stream: Option<crate::outbox::Outbox<Value>>,
}

impl Sink for RequestSink {
    fn deliver(&self, msg: Value) {
        self.session
            .deliver_from_upstream(self.target, msg, self.stream.as_ref());
    }

    /// A stateless client's call parked for input (see `stateless`) is silent upstream while
    /// the client thinks; the parked call's own `input_timeout` bounds that wait instead.
    fn waiting_for_client(&self) -> bool {
        self.session.0.version == STATELESS_VERSION && self.session.awaiting_client(self.target)
    }
}

/// See [`McpBackend::call`].
struct InflightGuard<'a>(&'a Session, &'a str);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.0.inflight.locked().remove(self.1);
    }
}
