//! The route stage: a parsed client message is served here. A request is authorized per
//! item (the gateway's `access`: refused items are answered as unknown), routed to the target
//! that owns the tool, prompt, resource or completion reference it names (see `federation`)
//! and forwarded (see `forward`); lists fan out. Notifications and replies of the client go to
//! the targets they concern.

use crate::LockExt;
use std::time::Instant;

use serde_json::{Value, json};

use super::input_rounds::Forward;
use super::{Access, Item, McpBackend, SESSION_VERSIONS, STATELESS_VERSION};
use crate::config::FailureMode;
use crate::error::{ItemKind, ProtocolError};
use crate::jsonrpc;
use crate::metrics::ToolLabels;
use crate::names;
use crate::request::{ListKind, Message, Method, Notification, Reference, Request};
use crate::session::Session;
use crate::upstream::Upstream;

impl McpBackend {
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
        let Some(parent) = crate::trace::current() else {
            return self.dispatch_untraced(session, req, stream, access).await;
        };
        let span = request_span(&parent, session, &req, self.0.targets.len());
        // Boxed: the untraced request's future stays the size of `dispatch_untraced`'s.
        let reply = Box::pin(crate::trace::scoped(
            Some(span.clone()),
            self.dispatch_untraced(session, req, stream, access),
        ))
        .await;
        if let Some(code) = crate::jsonrpc::at(&reply, &["error", "code"]).and_then(Value::as_i64) {
            span.set(opentelemetry::KeyValue::new(
                "rpc.response.status_code",
                code.to_string(),
            ));
            span.error(code.to_string());
        }
        span.end();
        reply
    }

    /// [`Self::dispatch`] without its span.
    async fn dispatch_untraced(
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
            // A 2026-07-28 target has no `resources/subscribe`: see `subscriptions`.
            Method::Subscribe { uri } => {
                self.subscribe(session, uri, true, (id, msg), stream, &access)
                    .await
            }
            Method::Unsubscribe { uri } => {
                self.subscribe(session, uri, false, (id, msg), stream, &access)
                    .await
            }
            // A stream of its own: stateless requests only (see `subscriptions`).
            Method::Listen(_) => ProtocolError::InvalidRequest(
                "subscriptions/listen is a 2026-07-28 request without a session; \
                 session clients use resources/subscribe"
                    .into(),
            )
            .reply(id),
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
        let mut r = self
            .call(session, t, msg, stream, Forward::Tool(&upstream_name))
            .await;
        self.expose_tool_result(t, &mut r);
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
    pub(super) async fn call_resource(
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
            // `resourceSubscriptions` of `subscriptions/listen` (see `subscriptions`).
            "resources": {"listChanged": true, "subscribe": true},
            "logging": {},
            "completions": {},
        },
    })
}

/// The INTERNAL span of one client request (MCP semantic conventions): named
/// `{mcp.method.name} {tool or prompt}`; for a list, the fan-out whose children are the
/// per-target requests. The session id is exported as a hash, never as the token itself.
fn request_span(
    parent: &switchboard_core::Trace,
    session: &Session,
    req: &Request,
    targets: usize,
) -> switchboard_core::Trace {
    use opentelemetry::KeyValue;
    let method = jsonrpc::method(&req.msg).to_owned();
    let mut attrs = vec![
        KeyValue::new("mcp.method.name", method.clone()),
        KeyValue::new("jsonrpc.request.id", id_string(&req.id)),
    ];
    // A managed session's stable id (not the token, which changes on resumption); a legacy
    // session's own id. Hashed either way: both let a caller into the session.
    let id = match session.0.managed.get() {
        Some(m) => Some(hex::encode(m.key.0)),
        None => (!session.0.id.is_empty()).then(|| session.0.id.clone()),
    };
    if let Some(id) = id {
        attrs.push(KeyValue::new(
            "mcp.session.id",
            switchboard_core::trace::hash_id(&id),
        ));
    }
    if !session.0.version.is_empty() {
        attrs.push(KeyValue::new(
            "mcp.protocol.version",
            session.0.version.clone(),
        ));
    }
    let name = match &req.method {
        Method::CallTool { name } => {
            attrs.push(KeyValue::new("gen_ai.tool.name", name.clone()));
            attrs.push(KeyValue::new("gen_ai.operation.name", "execute_tool"));
            if parent.capture_content()
                && let Some(args) = crate::jsonrpc::at(&req.msg, &["params", "arguments"])
            {
                attrs.push(KeyValue::new(
                    "gen_ai.tool.call.arguments",
                    args.to_string(),
                ));
            }
            format!("{method} {name}")
        }
        Method::GetPrompt { name } => {
            attrs.push(KeyValue::new("gen_ai.prompt.name", name.clone()));
            format!("{method} {name}")
        }
        Method::List { .. } => {
            attrs.push(KeyValue::new("switchboard.mcp.targets", targets as i64));
            method
        }
        _ => method,
    };
    parent.child(name, switchboard_core::trace::Kind::Internal, attrs)
}

/// A JSON-RPC id as an attribute value.
pub(super) fn id_string(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
