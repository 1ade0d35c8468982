//! Stateless requests (2026-07-28): no session, no `initialize`; the client's version,
//! capabilities and info travel in every request's `_meta`, and its routing headers
//! (`Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) must agree with the body. Each request runs on a
//! throwaway session whose upstream connections close when it is answered.
//!
//! Each call runs in a task of its own; what the target sends for it on the way (progress,
//! log messages at the level the request asked for, other notifications) goes to a client
//! that accepts SSE as it comes: the reply turns into an SSE stream at the first such message
//! and ends with the result. A client that accepts JSON alone gets the result only (what it
//! missed is logged at debug).
//!
//! A session-era target may ask the client something mid-call: the client gets
//! `input_required` with the target's request as an input request and a `requestState` naming
//! the parked call (a random token, bound to the principal, the method
//! and the name). The retry's `inputResponses` become the replies upstream and the gateway
//! waits on for the result (or the next round). Parked calls live on the replica that made
//! them: a retry elsewhere, after `input_timeout`, or with a foreign token gets a clear error,
//! and an unclaimed call is cancelled after `input_timeout`. While the target waits for the
//! client, its silence does not count against the target's `timeout` (`input_timeout` bounds
//! that wait instead).
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use dashmap::DashMap;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::streamable::{rpc_response, sse_response};
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

/// A parked call and the input requests the client must answer (gateway ids).
struct ParkedCall {
    keys: Vec<String>,
    live: Live,
}

/// The running call of a stateless client: what it is (a retry must name the same), and what
/// the target sent for it that the client has not had yet.
struct Live {
    principal: Option<Arc<str>>,
    method: String,
    name: Option<String>,
    session: Session,
    call: Running,
    /// Messages read ahead of the one in hand (a burst of the target's requests to the client
    /// is answered at once); at most one queue's worth.
    held: VecDeque<Value>,
    /// The call's reply, once it came (after what the target sent before it).
    reply: Option<Value>,
    /// The queue of the target's messages was cut (the client did not keep up, or it was
    /// parked too long): the rest of them are lost.
    cut: bool,
}

/// A call dispatched in its own task: messages the target sends for it, and its reply.
struct Running {
    events: crate::outbox::Inbox<Value>,
    /// Kept so that `events` outlives the call's task: their end then means they were cut.
    _events_tx: crate::outbox::Outbox<Value>,
    done: oneshot::Receiver<Value>,
    _task: AbortOnDrop,
}

/// What a running call gave next.
enum Next {
    /// A notification of the target for the client (progress, logging, …).
    Notify(Value),
    /// The target's requests to the client, as many as were queued together.
    Asked(Vec<Value>),
    /// The call's reply (its id not yet the client's).
    Done(Value),
    /// The target's further messages for the client are lost (see [`Live::cut`]).
    Cut,
}

/// What the client gets next: a notification, the final reply, or `input_required` for the
/// input requests (`requests` by gateway id; `keys`, those ids) the call now parks for.
enum Out {
    Notify(Value),
    Done(Value),
    Park(Map<String, Value>, Vec<String>),
    Cut,
}

/// How the answer to one stateless request travels and what it carries.
struct Answer {
    /// The request's id (a retry's own).
    id: Value,
    cacheable: bool,
    /// The client accepts `text/event-stream`: what the target sends for the call goes to it
    /// on the reply's stream. Otherwise it is dropped (and logged at debug).
    sse: bool,
    /// The least severe log level the client asked for (`io.modelcontextprotocol/logLevel`);
    /// `None`: no log messages.
    log_level: Option<usize>,
    /// The call may park for the client's input (`tools/call`, `prompts/get`,
    /// `resources/read`); any other's requests to the client are refused to the target.
    may_park: bool,
    /// The request's `progressToken`.
    progress_token: Option<Value>,
}

impl Answer {
    fn new(req: &Request, headers: &HeaderMap) -> Self {
        Answer {
            id: req.id.clone(),
            cacheable: req.method.cacheable(),
            sse: accepts_sse(headers),
            log_level: jsonrpc::at(&req.msg, &["params", "_meta", LOG_LEVEL_META])
                .and_then(Value::as_str)
                .and_then(log_rank),
            may_park: req.method.may_need_input(),
            progress_token: crate::jsonrpc::at(&req.msg, &["params", "_meta", "progressToken"])
                .cloned(),
        }
    }

    /// The notification as this request's client gets it, if it asked for it: log messages
    /// only from its level up (as a 2026-07-28 server sends them; a session-era target sends
    /// every level), progress only with a progress token, its own (a retry's may differ from
    /// the one the call started with).
    fn relay(&self, mut m: Value) -> Option<Value> {
        match jsonrpc::method(&m) {
            "notifications/message" => {
                let level = jsonrpc::at(&m, &["params", "level"])
                    .and_then(Value::as_str)
                    .and_then(log_rank);
                let min = self.log_level?;
                level.is_none_or(|l| l >= min).then_some(m)
            }
            "notifications/progress" => {
                let token = self.progress_token.clone()?;
                jsonrpc::set_param(&mut m, "progressToken", token);
                Some(m)
            }
            _ => Some(m),
        }
    }

    /// The final reply as the client gets it: its id, and valid 2026-07-28.
    fn finish(&self, mut resp: Value) -> Value {
        jsonrpc::set_id(&mut resp, self.id.clone());
        modernize_result(self.cacheable, &mut resp);
        resp
    }
}

/// `notifications/message` levels, least severe first.
const LOG_LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];
/// Where a 2026-07-28 request opts in to log messages.
const LOG_LEVEL_META: &str = "io.modelcontextprotocol/logLevel";

fn log_rank(level: &str) -> Option<usize> {
    LOG_LEVELS.iter().position(|l| *l == level)
}

fn accepts_sse(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"))
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

impl Live {
    /// The next thing the call gives: what the target sent for it, in order, then its reply.
    async fn next(&mut self) -> Next {
        loop {
            let m = if let Some(m) = self.held.pop_front() {
                m
            } else if let Some(r) = self.reply.take() {
                return Next::Done(r);
            } else {
                tokio::select! {
                    biased;
                    m = self.call.events.recv(), if !self.cut => match m {
                        Some(m) => m,
                        None => {
                            self.cut = true;
                            return Next::Cut;
                        }
                    },
                    r = &mut self.call.done => {
                        // What the target sent before its reply goes first.
                        while let Some(m) = self.call.events.try_recv() {
                            self.held.push_back(m);
                        }
                        self.reply = Some(r.unwrap_or_else(|_| {
                            ProtocolError::Internal("the call ended without a reply".into())
                                .reply(Value::Null)
                        }));
                        continue;
                    }
                }
            };
            match jsonrpc::kind(&m) {
                Kind::Notification => return Next::Notify(m),
                Kind::Request => {
                    // Requests sent together are asked together, in one `input_required`.
                    while let Some(m) = self.call.events.try_recv() {
                        self.held.push_back(m);
                    }
                    let mut asked = vec![m];
                    let mut rest = VecDeque::new();
                    for m in self.held.drain(..) {
                        if jsonrpc::kind(&m) == Kind::Request {
                            asked.push(m);
                        } else {
                            rest.push_back(m);
                        }
                    }
                    self.held = rest;
                    return Next::Asked(asked);
                }
                _ => {}
            }
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
        if let Err(m) = check_routing_headers(headers, &req.method) {
            let e = ProtocolError::HeaderMismatch(m);
            return rpc_response(e.status(), e.reply(req.id));
        }
        if let Method::Listen(filter) = &req.method {
            return self.listen(filter.clone(), req, headers, ctx).await;
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
        let answer = Answer::new(&req, headers);
        if let Some(token) = jsonrpc::at(&req.msg, &["params", "requestState"])
            .and_then(Value::as_str)
            .filter(|s| s.starts_with(TOKEN_PREFIX))
        {
            let token = token.to_string();
            return self.resume_parked(&token, req, answer, ctx).await;
        }
        guard.0 = None;
        let mut req = req;
        strip_modern_meta(&mut req.msg);
        let live = self.start(session, req, ctx);
        self.answer(live, answer).await
    }

    fn stateless_session(&self, msg: &Value, principal: Option<Arc<str>>) -> Session {
        let meta = crate::jsonrpc::at(msg, &["params", "_meta"]);
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
        param_headers::check(
            &bindings,
            crate::jsonrpc::at(msg, &["params", "arguments"]),
            headers,
        )
    }

    /// Run a stateless request in a task of its own, its target's messages for the client
    /// queued (bounded) toward [`answer`](Self::answer).
    fn start(&self, session: Session, req: Request, ctx: &RequestContext) -> Live {
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
        let events_tx = tx.clone();
        let task = tokio::spawn(crate::trace::carry(async move {
            let _close = CloseOnDrop(Some(s.clone()));
            let resp = this.dispatch(&s, req, Some(tx), access).await;
            let _ = done_tx.send(resp);
        }));
        Live {
            principal: ctx.principal.clone(),
            method,
            name,
            session,
            call: Running {
                events,
                _events_tx: events_tx,
                done,
                _task: AbortOnDrop(task),
            },
            held: VecDeque::new(),
            reply: None,
            cut: false,
        }
    }

    /// Answer a running call. Until the target sends the client something, nothing is sent;
    /// a call that only answers gets its reply as JSON. Once the target sends a notification
    /// the client asked for, a client that accepts SSE gets a stream: that notification, each
    /// further one as it comes, then the reply (or `input_required` when the call parks for
    /// input) as the last event. A client that accepts JSON alone gets the reply only.
    async fn answer(&self, mut live: Live, answer: Answer) -> Response<Body> {
        let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
        let first = loop {
            match self.step(&mut live, &answer).await {
                Out::Notify(m) if answer.sse => break m,
                Out::Notify(m) => *dropped.entry(jsonrpc::method(&m).to_string()).or_default() += 1,
                // Nothing went out yet: the reply alone still can.
                Out::Cut => {}
                Out::Done(resp) => return json_answer(&live.method, resp, &dropped),
                Out::Park(requests, keys) => {
                    let method = live.method.clone();
                    let resp = self.park(live, requests, keys, &answer).await;
                    return json_answer(&method, resp, &dropped);
                }
            }
        };
        // The client's stream. The relay waits for room in it, so a client that does not keep
        // up fills the call's own queue behind it, which is cut (`input`): the stream ends
        // after what was queued, and the call with it.
        let (tx, rx) = crate::outbox::outbox(&self.bound(), crate::outbox::Mode::Cut, "request");
        let session = live.session.clone();
        let _ = tx.send(first);
        let this = self.clone();
        tokio::spawn(async move {
            let last = loop {
                let out = tokio::select! {
                    // Gone or cut: dropping the call aborts it.
                    _ = tx.closed() => return,
                    out = this.step(&mut live, &answer) => out,
                };
                match out {
                    Out::Notify(m) => {
                        // Waits for room as a reply does (gives up when the client is gone).
                        if tx.send_last(m).await.is_err() {
                            return;
                        }
                    }
                    Out::Cut => return,
                    Out::Done(resp) => break resp,
                    Out::Park(requests, keys) => {
                        break this.park(live, requests, keys, &answer).await;
                    }
                }
            };
            if tx.send_last(last).await.is_err() {
                tracing::debug!("reply not delivered: the request's stream was closed");
            }
        });
        // A stateless stream cannot be resumed (no session): no priming event.
        sse_response(session, None, rx, false)
    }

    /// What the client gets next from a running call. The target's requests it cannot take
    /// (a `ping`, anything but an input request, or any when the call cannot park) are
    /// answered here; input requests park the call.
    async fn step(&self, live: &mut Live, answer: &Answer) -> Out {
        loop {
            match live.next().await {
                Next::Done(resp) => return Out::Done(answer.finish(resp)),
                Next::Cut => return Out::Cut,
                Next::Notify(m) => {
                    if let Some(m) = answer.relay(m) {
                        return Out::Notify(m);
                    }
                }
                Next::Asked(asked) => {
                    let mut requests = Map::new();
                    let mut keys = Vec::new();
                    for m in asked {
                        let gid = m
                            .get("id")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string();
                        let method = jsonrpc::method(&m);
                        if !(answer.may_park && INPUT_METHODS.contains(&method)) {
                            let reply = if method == "ping" {
                                jsonrpc::result(jsonrpc::id(&m), json!({}))
                            } else {
                                ProtocolError::NotSupported(
                                    "not supported by a stateless client".into(),
                                )
                                .reply(jsonrpc::id(&m))
                            };
                            self.client_reply(&live.session, reply).await;
                            continue;
                        }
                        requests.insert(gid.clone(), json!({"method": method, "params": m.get("params").cloned().unwrap_or_else(|| json!({}))}));
                        keys.push(gid);
                    }
                    if !keys.is_empty() {
                        return Out::Park(requests, keys);
                    }
                }
            }
        }
    }

    /// Park a call for the client's input: `input_required` with the input requests and a
    /// `requestState` naming the call (or an error when too many calls wait already).
    async fn park(
        &self,
        live: Live,
        requests: Map<String, Value>,
        keys: Vec<String>,
        answer: &Answer,
    ) -> Value {
        if self.0.inputs.0.len() >= MAX_PARKED {
            self.fail_asked(&live.session, &keys).await;
            return ProtocolError::Internal(
                "too many calls are waiting for input; try again later".into(),
            )
            .reply(answer.id.clone());
        }
        let token = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        self.0
            .inputs
            .0
            .insert(token.clone(), ParkedCall { keys, live });
        self.expire_later(token.clone());
        jsonrpc::result(
            answer.id.clone(),
            json!({
                "resultType": "input_required",
                "inputRequests": requests,
                "requestState": token,
            }),
        )
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
            this.fail_asked(&parked.live.session, &parked.keys).await;
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
    /// the target's requests, then the call is answered again.
    async fn resume_parked(
        &self,
        token: &str,
        req: Request,
        answer: Answer,
        ctx: &RequestContext,
    ) -> Response<Body> {
        let Request { id, method, msg } = req;
        let unknown = |id| {
            let e = ProtocolError::UnknownRequestState(
                "input responses must reach the gateway replica that asked, within the input \
                 timeout, from the same principal",
            );
            rpc_response(StatusCode::OK, e.reply(id))
        };
        let name = method.item_name();
        // Checked before removal, so a stranger's guess cannot cancel someone else's call.
        let matches = self.0.inputs.0.get(token).is_some_and(|p| {
            let l = &p.live;
            l.principal == ctx.principal && l.method == method.name() && l.name.as_deref() == name
        });
        if !matches {
            return unknown(id);
        }
        let Some((_, parked)) = self.0.inputs.0.remove(token) else {
            return unknown(id);
        };
        let responses = crate::jsonrpc::at(&msg, &["params", "inputResponses"]);
        for k in &parked.keys {
            let reply = match responses.and_then(|r| r.get(k)) {
                Some(result) => jsonrpc::result(Value::String(k.clone()), result.clone()),
                None => {
                    ProtocolError::Internal("the client sent no response for this request".into())
                        .reply(Value::String(k.clone()))
                }
            };
            self.client_reply(&parked.live.session, reply).await;
        }
        self.answer(parked.live, answer).await
    }

    /// Calls parked for stateless clients' input right now (tests, admin).
    pub fn parked_inputs(&self) -> usize {
        self.0.inputs.0.len()
    }
}

/// A stateless request's reply as JSON; what the target sent for the client could not go
/// with it (the client accepts JSON alone) and is logged at debug, by method.
fn json_answer(method: &str, resp: Value, dropped: &BTreeMap<String, usize>) -> Response<Body> {
    if !dropped.is_empty() {
        let dropped = dropped
            .iter()
            .map(|(m, n)| format!("{m} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::debug!(
            %method,
            %dropped,
            "stateless request answered as JSON (the client does not accept text/event-stream): the target's notifications for it were dropped"
        );
    }
    rpc_response(StatusCode::OK, resp)
}

/// Targets are spoken to in the session era: the per-request context keys of 2026-07-28
/// (`io.modelcontextprotocol/*` in `_meta`) were already used to open the upstream sessions.
/// The log level stays: a 2026-07-28 target sends log messages only to a request that asks.
fn strip_modern_meta(msg: &mut Value) {
    if let Some(meta) = msg
        .pointer_mut("/params/_meta")
        .and_then(Value::as_object_mut)
    {
        meta.retain(|k, _| {
            !k.starts_with("io.modelcontextprotocol/") || k == "io.modelcontextprotocol/logLevel"
        });
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
        let (events_tx, events) =
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
                keys: Vec::new(),
                live: Live {
                    principal: None,
                    method: "tools/call".into(),
                    name: Some("t".into()),
                    session,
                    call: Running {
                        events,
                        _events_tx: events_tx,
                        done,
                        _task: AbortOnDrop(task),
                    },
                    held: VecDeque::new(),
                    reply: None,
                    cut: false,
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
    fn notifications_follow_the_requests_log_level_and_progress_token() {
        let answer = |meta: Value| {
            let msg = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "t", "_meta": meta}});
            Answer::new(&Request::parse(msg), &HeaderMap::new())
        };
        let log = |level: &str| {
            json!({"jsonrpc": "2.0", "method": "notifications/message",
                "params": {"level": level, "data": "x"}})
        };
        let a = answer(json!({"io.modelcontextprotocol/logLevel": "warning"}));
        assert!(a.relay(log("info")).is_none());
        assert!(a.relay(log("warning")).is_some());
        assert!(a.relay(log("emergency")).is_some());
        assert!(
            a.relay(log("loud")).is_some(),
            "an unknown level is not filtered"
        );
        let quiet = answer(json!({}));
        assert!(quiet.relay(log("emergency")).is_none(), "no level, no logs");
        let bogus = answer(json!({"io.modelcontextprotocol/logLevel": "loud"}));
        assert!(
            bogus.relay(log("emergency")).is_none(),
            "an unknown level reads as absent"
        );
        let progress = json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": "first", "progress": 1}});
        assert!(
            quiet.relay(progress.clone()).is_none(),
            "no token, no progress"
        );
        let retry = answer(json!({"progressToken": 9}));
        assert_eq!(retry.relay(progress).unwrap()["params"]["progressToken"], 9);
        let other = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        assert_eq!(quiet.relay(other.clone()), Some(other));
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
