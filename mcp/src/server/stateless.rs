//! Stateless requests (2026-07-28): no session, no `initialize`; the client's version,
//! capabilities and info travel in every request's `_meta`, and its routing headers
//! (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) must agree with the body. Each request runs on a
//! throwaway session whose upstream connections close when it is answered.
//!
//! A session-era target may ask the client something mid-call. The call then runs in a task;
//! the client gets `input_required` with the target's request as an input request and a
//! `requestState` naming the parked call (a random token, bound to the principal, the method
//! and the name). The retry's `inputResponses` become the replies upstream and the gateway
//! waits on for the result (or the next round). Parked calls live on the replica that made
//! them: a retry elsewhere, after `input_timeout`, or with a foreign token gets a clear error,
//! and an unclaimed call is cancelled after `input_timeout`. While the target waits for the
//! client, its silence does not count against the target's `timeout` (`input_timeout` bounds
//! that wait instead).
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use dashmap::DashMap;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::streamable::rpc_response;
use super::{LATEST_VERSION, McpBackend, RequestContext, STATELESS_VERSION};
use crate::error::ProtocolError;
use crate::jsonrpc::{self, Kind};
use crate::param_headers;
use crate::request::{ListKind, Method, Request};
use crate::session::Session;
use crate::upstream::Upstream;

/// Most calls parked for stateless clients at once (per route); more are refused.
const MAX_PARKED: usize = 10_000;
/// Marks a `requestState` the gateway issued (anything else belongs to a target).
const TOKEN_PREFIX: &str = "sb-input.";
const INPUT_METHODS: [&str; 3] = ["elicitation/create", "sampling/createMessage", "roots/list"];

/// Calls of stateless clients waiting for their input responses, by `requestState` token.
#[derive(Clone, Default)]
pub(super) struct Parked(Arc<DashMap<String, ParkedCall>>);

/// The running call of a stateless client and what it waits for.
struct ParkedCall {
    principal: Option<Arc<str>>,
    method: String,
    name: Option<String>,
    session: Session,
    /// Gateway ids of the input requests the client must answer.
    keys: Vec<String>,
    call: Running,
}

/// A call dispatched in its own task: messages the target sends for it, and its reply.
struct Running {
    events: crate::outbox::Inbox<Value>,
    done: oneshot::Receiver<Value>,
    _task: AbortOnDrop,
}

/// Aborts the call's task when the parked call is dropped (expired, or the gateway went away).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Closes a stateless request's upstream connections however its task ends (done or aborted).
struct CloseOnDrop(Option<Session>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let Some(s) = &self.0 else { return };
        let ups = s.take_upstreams();
        if ups.is_empty() {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                for u in ups {
                    if !matches!(u, Upstream::Stdio(_)) {
                        u.close().await;
                    }
                }
            });
        }
    }
}

pub(super) fn has_retry_fields(msg: &Value) -> bool {
    msg.get("params")
        .is_some_and(|p| p.get("requestState").is_some() || p.get("inputResponses").is_some())
}

impl McpBackend {
    /// A stateless (2026-07-28) request: check its routing headers, resume a parked call when
    /// it retries one, else run it on a throwaway session.
    pub(super) async fn stateless(
        &self,
        req: Request,
        headers: &HeaderMap,
        ctx: &RequestContext,
    ) -> Response<Body> {
        if let Method::Listen(filter) = &req.method {
            return self.listen(filter.clone(), req, headers, ctx).await;
        }
        if let Err(m) = check_routing_headers(headers, &req.method) {
            let e = ProtocolError::HeaderMismatch(m);
            return rpc_response(e.status(), e.reply(req.id));
        }
        let session = self.stateless_session(&req.msg, ctx.principal.clone());
        // Closes what the header check below may have opened, unless the call takes it over.
        let mut guard = CloseOnDrop(Some(session.clone()));
        if let Method::CallTool { name } = &req.method
            && let Err(m) = self
                .check_param_headers(&session, headers, name, &req.msg)
                .await
        {
            let e = ProtocolError::HeaderMismatch(m);
            return rpc_response(e.status(), e.reply(req.id));
        }
        let cacheable = req.method.cacheable();
        if let Some(token) = req
            .msg
            .pointer("/params/requestState")
            .and_then(Value::as_str)
            .filter(|s| s.starts_with(TOKEN_PREFIX))
        {
            let token = token.to_string();
            let mut resp = self.resume_parked(&token, req, ctx).await;
            modernize_result(cacheable, &mut resp);
            return rpc_response(StatusCode::OK, resp);
        }
        guard.0 = None;
        let mut req = req;
        strip_modern_meta(&mut req.msg);
        if !req.method.may_need_input() {
            // Nothing else can need input: answered in this task, as a plain request.
            let _close = CloseOnDrop(Some(session.clone()));
            let mut resp = self.dispatch(&session, req, None, ctx.access.clone()).await;
            modernize_result(cacheable, &mut resp);
            return rpc_response(StatusCode::OK, resp);
        }
        let id = req.id.clone();
        let method = req.method.name().to_string();
        let name = req.method.item_name().map(str::to_string);
        // Read while the call runs here; while it is parked, messages pile up until the client
        // comes back: past the bound, the call's stream is cut and its further requests to the
        // client are refused to the target.
        let (tx, events) = crate::outbox::outbox(&self.bound(), crate::outbox::Mode::Cut, "input");
        let (done_tx, done) = oneshot::channel();
        let this = self.clone();
        let s = session.clone();
        let access = ctx.access.clone();
        let task = tokio::spawn(async move {
            let _close = CloseOnDrop(Some(s.clone()));
            let resp = this.dispatch(&s, req, Some(tx), access).await;
            let _ = done_tx.send(resp);
        });
        let call = Running {
            events,
            done,
            _task: AbortOnDrop(task),
        };
        let mut resp = self
            .wait_call(call, session, ctx.principal.clone(), method, name, id)
            .await;
        modernize_result(cacheable, &mut resp);
        rpc_response(StatusCode::OK, resp)
    }

    fn stateless_session(&self, msg: &Value, principal: Option<Arc<str>>) -> Session {
        let meta = msg.pointer("/params/_meta");
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
        let init = json!({
            "protocolVersion": LATEST_VERSION,
            "capabilities": get("io.modelcontextprotocol/clientCapabilities").unwrap_or(json!({})),
            "clientInfo": get("io.modelcontextprotocol/clientInfo").unwrap_or(json!({"name": "stateless-client", "version": "0"})),
        });
        Session::new(
            String::new(),
            STATELESS_VERSION.into(),
            init,
            principal,
            self.0.naming.clone(),
            None,
        )
    }

    /// `Mcp-Param-*` headers of a 2026-07-28 `tools/call` against its arguments, per the
    /// owning target's schema of the tool.
    async fn check_param_headers(
        &self,
        session: &Session,
        headers: &HeaderMap,
        name: &str,
        msg: &Value,
    ) -> Result<(), String> {
        let Some((t, upstream_name)) = self.resolve_name(session, ListKind::Tools, name).await
        else {
            return Ok(());
        };
        let cache = &self.target(t).tool_headers;
        let bindings = match cache.get(self.epoch(), &upstream_name) {
            Some(b) => b,
            None => {
                self.learn_tools(session, t).await;
                match cache.get(self.epoch(), &upstream_name) {
                    Some(b) => b,
                    None => return Ok(()),
                }
            }
        };
        param_headers::check(&bindings, msg.pointer("/params/arguments"), headers)
    }

    /// Wait for a running call's reply; when the target asks the client something first, park
    /// the call and answer `input_required`. The reply carries `id` (the current request's).
    async fn wait_call(
        &self,
        mut call: Running,
        session: Session,
        principal: Option<Arc<str>>,
        method: String,
        name: Option<String>,
        id: Value,
    ) -> Value {
        loop {
            tokio::select! {
                r = &mut call.done => {
                    return match r {
                        Ok(mut resp) => {
                            jsonrpc::set_id(&mut resp, id);
                            resp
                        }
                        Err(_) => ProtocolError::Internal("the call ended without a reply".into()).reply(id),
                    };
                }
                Some(m) = call.events.recv() => {
                    if jsonrpc::kind(&m) != Kind::Request {
                        // Progress and logging have nowhere to go in a single JSON reply.
                        continue;
                    }
                    let mut asked = vec![m];
                    while let Some(m) = call.events.try_recv() {
                        if jsonrpc::kind(&m) == Kind::Request {
                            asked.push(m);
                        }
                    }
                    let mut requests = Map::new();
                    let mut keys = Vec::new();
                    for m in asked {
                        let gid = m.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                        let method = jsonrpc::method(&m);
                        if !INPUT_METHODS.contains(&method) {
                            let reply = if method == "ping" {
                                jsonrpc::result(jsonrpc::id(&m), json!({}))
                            } else {
                                ProtocolError::NotSupported("not supported by a stateless client".into()).reply(jsonrpc::id(&m))
                            };
                            self.client_reply(&session, reply).await;
                            continue;
                        }
                        requests.insert(gid.clone(), json!({"method": method, "params": m.get("params").cloned().unwrap_or_else(|| json!({}))}));
                        keys.push(gid);
                    }
                    if keys.is_empty() {
                        continue;
                    }
                    if self.0.inputs.0.len() >= MAX_PARKED {
                        self.fail_asked(&session, &keys).await;
                        return ProtocolError::Internal("too many calls are waiting for input; try again later".into()).reply(id);
                    }
                    let token = format!(
                        "{TOKEN_PREFIX}{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    );
                    self.0.inputs.0.insert(token.clone(), ParkedCall { principal, method, name, session, keys, call });
                    self.expire_later(token.clone());
                    return jsonrpc::result(id, json!({
                        "resultType": "input_required",
                        "inputRequests": requests,
                        "requestState": token,
                    }));
                }
            }
        }
    }

    /// Forget a parked call after `input_timeout` unless a retry claimed it first (a retry
    /// removes the token; a further round parks under a new one).
    fn expire_later(&self, token: String) {
        let weak = Arc::downgrade(&self.0);
        let ttl: Duration = self.0.cfg.input_timeout();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            let Some(core) = weak.upgrade() else { return };
            let Some((_, parked)) = core.inputs.0.remove(&token) else {
                return;
            };
            tracing::debug!("a call waiting for input responses expired");
            let this = McpBackend(core);
            this.fail_asked(&parked.session, &parked.keys).await;
            // Dropping `parked` aborts the call and closes its upstream connections.
        });
    }

    /// Tell the target that its requests `keys` will not be answered.
    async fn fail_asked(&self, session: &Session, keys: &[String]) {
        for k in keys {
            let reply = ProtocolError::Internal("the client did not answer".into())
                .reply(Value::String(k.clone()));
            self.client_reply(session, reply).await;
        }
    }

    /// A stateless client's retry of a parked call: its `inputResponses` become the replies to
    /// the target's requests, then the call is awaited again.
    async fn resume_parked(&self, token: &str, req: Request, ctx: &RequestContext) -> Value {
        let Request { id, method, msg } = req;
        let unknown = |id| {
            ProtocolError::UnknownRequestState(
                "input responses must reach the gateway replica that asked, within the input \
                 timeout, from the same principal",
            )
            .reply(id)
        };
        let name = method.item_name();
        // Checked before removal, so a stranger's guess cannot cancel someone else's call.
        let matches = self.0.inputs.0.get(token).is_some_and(|p| {
            p.principal == ctx.principal && p.method == method.name() && p.name.as_deref() == name
        });
        if !matches {
            return unknown(id);
        }
        let Some((_, parked)) = self.0.inputs.0.remove(token) else {
            return unknown(id);
        };
        let responses = msg.pointer("/params/inputResponses");
        for k in &parked.keys {
            let reply = match responses.and_then(|r| r.get(k)) {
                Some(result) => jsonrpc::result(Value::String(k.clone()), result.clone()),
                None => {
                    ProtocolError::Internal("the client sent no response for this request".into())
                        .reply(Value::String(k.clone()))
                }
            };
            self.client_reply(&parked.session, reply).await;
        }
        let ParkedCall {
            principal,
            method,
            name,
            session,
            call,
            ..
        } = parked;
        self.wait_call(call, session, principal, method, name, id)
            .await
    }

    /// Calls parked for stateless clients' input right now (tests, admin).
    pub fn parked_inputs(&self) -> usize {
        self.0.inputs.0.len()
    }
}

/// Targets are spoken to in the session era: the per-request context keys of 2026-07-28
/// (`io.modelcontextprotocol/*` in `_meta`) were already used to open the upstream sessions.
fn strip_modern_meta(msg: &mut Value) {
    if let Some(meta) = msg
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
    {
        meta.retain(|k, _| !k.starts_with("io.modelcontextprotocol/"));
    }
}

/// A session-era result made a valid 2026-07-28 one: `resultType`, and the caching hints
/// (immediately stale, private) on the cacheable results.
fn modernize_result(cacheable: bool, resp: &mut Value) {
    let Some(result) = resp.get_mut("result").and_then(Value::as_object_mut) else {
        return;
    };
    result
        .entry("resultType")
        .or_insert_with(|| json!("complete"));
    if cacheable {
        result.entry("ttlMs").or_insert_with(|| json!(0));
        result
            .entry("cacheScope")
            .or_insert_with(|| json!("private"));
    }
}

/// `Mcp-Method` / `Mcp-Name` routing headers (2026-07-28) must agree with the body.
fn check_routing_headers(headers: &HeaderMap, method: &Method) -> Result<(), String> {
    let body = method.item_name();
    let method = method.name();
    if let Some(h) = headers.get("mcp-method").and_then(|v| v.to_str().ok())
        && h != method
    {
        return Err(format!(
            "Mcp-Method header `{h}` does not match body method `{method}`"
        ));
    }
    if let Some(h) = headers.get("mcp-name").and_then(|v| v.to_str().ok()) {
        // Names that are not plain ASCII arrive as `=?base64?…?=`.
        let h = crate::param_headers::decode(h);
        if h.is_none() || body != h.as_deref() {
            return Err("Mcp-Name header does not match the body".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{McpConfig, McpShared, Metrics};

    fn backend(timeout: &str) -> McpBackend {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg: McpConfig = serde_json::from_value(json!({"input_timeout": timeout,
            "targets": [{"name": "a", "http": {"url": "http://127.0.0.1:9/mcp"}}]}))
        .unwrap();
        McpBackend::new(cfg, &McpShared::new(Metrics::unregistered()).unwrap()).unwrap()
    }

    /// Parks a call whose task runs until aborted; the receiver fails once the task is gone.
    fn park(b: &McpBackend, token: &str) -> oneshot::Receiver<()> {
        let session = b.stateless_session(&json!({}), None);
        let (_tx, events) =
            crate::outbox::outbox::<Value>(&b.bound(), crate::outbox::Mode::Cut, "input");
        let (_done_tx, done) = oneshot::channel();
        let (alive_tx, alive) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _alive = alive_tx;
            std::future::pending::<()>().await
        });
        b.0.inputs.0.insert(
            token.into(),
            ParkedCall {
                principal: None,
                method: "tools/call".into(),
                name: Some("t".into()),
                session,
                keys: Vec::new(),
                call: Running {
                    events,
                    done,
                    _task: AbortOnDrop(task),
                },
            },
        );
        b.expire_later(token.into());
        alive
    }

    #[tokio::test(start_paused = true)]
    async fn unclaimed_calls_expire_and_are_cancelled() {
        let b = backend("1m");
        let mut alive = park(&b, "sb-input.a");
        tokio::time::sleep(Duration::from_secs(59)).await;
        assert_eq!(b.parked_inputs(), 1);
        assert!(
            alive
                .try_recv()
                .is_err_and(|e| e == oneshot::error::TryRecvError::Empty)
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(b.parked_inputs(), 0, "expired");
        assert!(alive.await.is_err(), "the call's task was aborted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_claimed_call_is_not_expired_by_its_old_timer() {
        let b = backend("1m");
        let _alive = park(&b, "sb-input.a");
        // Claimed by a retry (removed), then parked again under a new token 30 s later.
        b.0.inputs.0.remove("sb-input.a");
        tokio::time::sleep(Duration::from_secs(30)).await;
        let _alive = park(&b, "sb-input.b");
        tokio::time::sleep(Duration::from_secs(45)).await;
        assert_eq!(
            b.parked_inputs(),
            1,
            "the first timer found nothing to expire"
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(b.parked_inputs(), 0);
    }

    #[test]
    fn retries_are_recognized() {
        assert!(has_retry_fields(&json!({"params": {"requestState": "x"}})));
        assert!(has_retry_fields(&json!({"params": {"inputResponses": {}}})));
        assert!(!has_retry_fields(&json!({"params": {"name": "t"}})));
    }

    #[test]
    fn routing_headers_must_match_the_body() {
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t"}});
        let mut h = HeaderMap::new();
        let msg = Request::parse(msg).method;
        assert!(check_routing_headers(&h, &msg).is_ok());
        h.insert("mcp-method", "tools/call".parse().unwrap());
        h.insert("mcp-name", "t".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_ok());
        h.insert("mcp-name", "u".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
        h.insert("mcp-name", "t".parse().unwrap());
        h.insert("mcp-method", "tools/list".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
        let msg =
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "日本"}});
        let msg = Request::parse(msg).method;
        let mut h = HeaderMap::new();
        h.insert("mcp-name", "=?base64?5pel5pys?=".parse().unwrap());
        assert!(
            check_routing_headers(&h, &msg).is_ok(),
            "encoded names are decoded"
        );
        h.insert("mcp-name", "=?base64?!!?=".parse().unwrap());
        assert!(check_routing_headers(&h, &msg).is_err());
    }

    #[test]
    fn modern_results_get_result_type_and_caching_hints() {
        let mut r = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}});
        modernize_result(true, &mut r);
        assert_eq!(
            r["result"],
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "private"})
        );
        let mut r = json!({"jsonrpc": "2.0", "id": 1, "result": {"content": []}});
        modernize_result(false, &mut r);
        assert_eq!(
            r["result"],
            json!({"content": [], "resultType": "complete"})
        );
        let mut m = json!({"params": {"_meta": {"progressToken": 1, "io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
        strip_modern_meta(&mut m);
        assert_eq!(m["params"]["_meta"], json!({"progressToken": 1}));
    }
}
