//! Downstream sessions: what the gateway remembers about one MCP client between requests.
//! Kept small (no task per session): the upstream connections, the open standalone stream,
//! and the id maps of requests crossing the gateway in both directions.
//!
//! Streamable HTTP sessions are [`Managed`] by the sessions crate: the client's `Mcp-Session-Id`
//! is a sealed token (see `switchboard_sessions::token`), the [`Registry`] keys the local state
//! by the token's `SessionId`, and every message on the standalone (GET) stream is appended to
//! the session's event log before it is sent, so a client can resume it with `Last-Event-ID`
//! here or on another replica. Legacy SSE sessions (random ids) and stateless requests' throwaway
//! sessions are not managed: they live exactly as long as their connection or request.

use crate::LockExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use switchboard_sessions::{SessionId, SessionManager, StreamKey, sse};
use tokio::sync::mpsc;

use crate::error::ProtocolError;
use crate::jsonrpc;
use crate::names;
use crate::upstream::{Sink, Upstream};

/// Exposed name (kind-prefixed) → (target, upstream name).
pub(crate) type Catalog = HashMap<String, (usize, String)>;

/// A client request being served by a target.
pub(crate) struct Inflight {
    pub target: usize,
    pub upstream_id: u64,
    /// Fired by the client's `notifications/cancelled`.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// Per-backend facts a session needs to rewrite upstream messages on its own.
pub(crate) struct Naming {
    pub targets: Vec<Arc<str>>,
    pub prefixed: bool,
    /// Bumped by any upstream `list_changed`; cached catalogues from older epochs are stale.
    pub epoch: AtomicU64,
}

/// Name of the standalone (GET) stream in the session's event log.
pub(crate) const GET_STREAM: &str = "get";

/// One logged event for a live standalone stream: its sequence number in the log (0 when the
/// store failed and the event went out unlogged) and the framed SSE bytes.
pub(crate) type LiveEvent = (u64, Bytes);

/// Orders appends to the event logs: one task per process appends standalone messages in the
/// order they were produced, then hands each (with its id) to the session's live stream if a
/// client is listening. One task instead of one per session keeps idle sessions task-free.
pub(crate) type Appender = mpsc::UnboundedSender<(Session, Value)>;

/// Spawns the appender task; it ends when every sender is gone.
pub(crate) fn spawn_appender() -> Appender {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Session, Value)>();
    tokio::spawn(async move {
        while let Some((session, msg)) = rx.recv().await {
            session.log_standalone(msg).await;
        }
    });
    tx
}

/// The sessions-crate side of a Streamable HTTP session.
pub(crate) struct Managed {
    pub key: SessionId,
    /// Token and per-target entries; the entries are updated when an upstream session id
    /// changes (never held across an await: cloned out, updated, stored back).
    pub record: Mutex<switchboard_sessions::Session>,
    pub manager: SessionManager,
    appender: Appender,
    /// The open GET stream, if any.
    live: Mutex<Option<crate::outbox::Outbox<LiveEvent>>>,
    /// POST response streams still being produced here, by log stream name: where their
    /// events go now (the POST's own response, or a GET that resumed it; `None` while nobody
    /// listens, the events are then only logged).
    pub posts: Mutex<HashMap<Arc<str>, PostSlot>>,
}

/// Where a POST response stream's events currently go.
pub(crate) type PostSlot = Arc<Mutex<Option<crate::outbox::Outbox<LiveEvent>>>>;

impl Managed {
    pub fn new(
        record: switchboard_sessions::Session,
        manager: SessionManager,
        appender: Appender,
    ) -> Self {
        Managed {
            key: record.id,
            record: Mutex::new(record),
            manager,
            appender,
            live: Mutex::new(None),
            posts: Mutex::default(),
        }
    }

    /// A copy of the sessions-crate record.
    pub fn record(&self) -> switchboard_sessions::Session {
        self.record.locked().clone()
    }

    /// The standalone stream's log key.
    pub fn get_stream(&self) -> StreamKey {
        StreamKey::new(self.key, GET_STREAM)
    }
}

/// Most server-to-client requests of the targets that may await the client's reply in one
/// session; more are refused (JSON-RPC error to the target).
pub(crate) const MAX_CLIENT_REQUESTS: usize = 1024;

/// A downstream session (cheap clone).
#[derive(Clone)]
pub(crate) struct Session(pub Arc<Inner>);

pub(crate) struct Inner {
    /// Empty for a stateless (2026-07-28) request's throwaway session.
    pub id: String,
    pub version: String,
    /// The client's `initialize` params, shared with the session's HTTP upstreams (which send
    /// them again when a target asks to re-initialize), so an idle session holds one tree.
    pub init_params: Arc<Value>,
    /// The authenticated subject that opened the session; only it may use the session.
    pub principal: Option<Arc<str>>,
    pub naming: Arc<Naming>,
    /// Set for Streamable HTTP sessions (token, event log) once the session manager created
    /// or resumed them; empty for legacy and stateless sessions.
    pub managed: std::sync::OnceLock<Managed>,
    pub upstreams: Mutex<Vec<Option<Upstream>>>,
    stream: Mutex<Option<crate::outbox::Outbox<Value>>>,
    /// Server-to-client requests awaiting the client's reply: gateway id → (target, upstream id).
    client_requests: Mutex<HashMap<String, (usize, Value)>>,
    /// Client requests in flight upstream: downstream id key → (target, upstream id).
    pub inflight: Mutex<HashMap<String, Inflight>>,
    /// Requests the gateway itself sent to the client (a 2026-07-28 target's input requests,
    /// see `server::input_rounds`), by gateway id, awaiting the client's reply.
    asked: Mutex<HashMap<String, tokio::sync::oneshot::Sender<Value>>>,
    next_id: AtomicU64,
    next_event: AtomicU64,
    /// Exposed name → (target, upstream name) of the last listing, with its epoch; used to
    /// route when names are not prefixed (or were shortened).
    pub catalog: Mutex<(u64, Catalog)>,
    /// See [`Session::client_initialized`].
    client_initialized: std::sync::atomic::AtomicBool,
}

impl Session {
    pub fn new(
        id: String,
        version: String,
        init_params: Value,
        principal: Option<Arc<str>>,
        naming: Arc<Naming>,
        managed: Option<Managed>,
    ) -> Self {
        let n = naming.targets.len();
        Session(Arc::new(Inner {
            id,
            version,
            init_params: Arc::new(init_params),
            principal,
            naming,
            managed: managed.map(std::sync::OnceLock::from).unwrap_or_default(),
            upstreams: Mutex::new(vec![None; n]),
            stream: Mutex::new(None),
            client_requests: Mutex::default(),
            inflight: Mutex::default(),
            asked: Mutex::default(),
            next_id: AtomicU64::new(1),
            next_event: AtomicU64::new(1),
            catalog: Mutex::new((u64::MAX, HashMap::new())),
            client_initialized: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// This session as the sink of what target `target` sends outside any request (held
    /// weakly: the session's upstream connection holds the sink).
    pub fn sink(&self, target: usize) -> Arc<dyn Sink> {
        Arc::new(SessionSink {
            session: Arc::downgrade(&self.0),
            target,
        })
    }

    /// What the client sends as `Mcp-Session-Id`: the token of a managed session, else the id.
    pub fn header_id(&self) -> String {
        match self.0.managed.get() {
            Some(m) => m.record.locked().token.to_string(),
            None => self.0.id.clone(),
        }
    }

    /// The next SSE event id of this session.
    pub fn event_id(&self) -> u64 {
        self.0.next_event.fetch_add(1, Ordering::Relaxed)
    }

    pub fn upstream(&self, target: usize) -> Option<Upstream> {
        self.0.upstreams.locked().get(target).cloned().flatten()
    }

    pub fn set_upstream(&self, target: usize, u: Upstream) {
        if let Some(slot) = self.0.upstreams.locked().get_mut(target) {
            *slot = Some(u);
        }
    }

    /// Attach the standalone stream (GET, or the legacy SSE connection); replaces any older.
    pub fn attach_stream(&self, tx: crate::outbox::Outbox<Value>) {
        *self.0.stream.locked() = Some(tx);
    }

    /// Attach a managed session's GET stream; replaces any older one (which then ends).
    pub fn attach_live(&self, tx: crate::outbox::Outbox<LiveEvent>) {
        if let Some(m) = self.0.managed.get() {
            *m.live.locked() = Some(tx);
        }
    }

    /// End the open GET stream, if any (the session is over here).
    pub fn close_live(&self) {
        if let Some(m) = self.0.managed.get() {
            m.live.locked().take();
        }
    }

    /// Whether a client is listening on the standalone stream.
    pub fn has_open_stream(&self) -> bool {
        if let Some(m) = self.0.managed.get() {
            return m.live.locked().as_ref().is_some_and(|t| !t.is_closed());
        }
        self.0
            .stream
            .locked()
            .as_ref()
            .is_some_and(|t| !t.is_closed())
    }

    /// Send on the standalone stream. A managed session logs the message first (in order, by
    /// the appender task), so a client that is not listening right now gets it on its next
    /// GET with `Last-Event-ID`; that counts as taken. Unmanaged sessions drop messages nobody
    /// listens to. Returns whether the message was taken.
    pub fn send_standalone(&self, msg: Value) -> bool {
        if let Some(m) = self.0.managed.get() {
            return m.appender.send((self.clone(), msg)).is_ok();
        }
        let tx = self.0.stream.locked().clone();
        tx.is_some_and(|tx| tx.send(msg).is_ok())
    }

    /// Appender side of [`send_standalone`](Self::send_standalone): log, then send live.
    async fn log_standalone(&self, msg: Value) {
        let Some(m) = self.0.managed.get() else {
            return;
        };
        let data = msg.to_string();
        let (seq, frame) = match m
            .manager
            .append_event(&m.get_stream(), Bytes::from(data.clone()))
            .await
        {
            Ok(id) => (
                id.seq,
                sse::event(Some(&id.to_string()), Some("message"), &data),
            ),
            Err(e) => {
                tracing::warn!(error = %e, "session event log: append failed; sending unlogged");
                (0, sse::event(None, Some("message"), &data))
            }
        };
        let live = m.live.locked().clone();
        if let Some(tx) = live {
            let _ = tx.send((seq, frame));
        }
    }

    /// Send on the request's stream, else the standalone one; returns whether one took it.
    fn send(&self, msg: Value, stream: Option<&crate::outbox::Outbox<Value>>) -> bool {
        let msg = match stream {
            Some(tx) => match tx.send(msg) {
                Ok(()) => return true,
                Err(e) => e.0,
            },
            None => msg,
        };
        self.send_standalone(msg)
    }

    /// A message an upstream sent to this session: ids of server-to-client requests become
    /// gateway ids, URIs get namespaced, `list_changed` invalidates the catalogue.
    pub fn deliver_from_upstream(
        &self,
        target: usize,
        mut msg: Value,
        stream: Option<&crate::outbox::Outbox<Value>>,
    ) {
        match jsonrpc::kind(&msg) {
            jsonrpc::Kind::Request => {
                if let Some(cap) = client_capability(jsonrpc::method(&msg))
                    && self
                        .0
                        .init_params
                        .get("capabilities")
                        .and_then(|c| c.get(cap))
                        .is_none()
                {
                    // A shared stdio child is offered sampling and elicitation on behalf of
                    // every session; one whose client lacks the capability answers for it.
                    self.refuse(
                        target,
                        msg.get_mut("id").map(Value::take).unwrap_or_default(),
                        &format!("the client does not support {cap}"),
                    );
                    return;
                }
                if self.0.client_requests.locked().len() >= MAX_CLIENT_REQUESTS {
                    // Targets are untrusted: one that asks and asks without the client ever
                    // answering must not grow the session without bound.
                    tracing::warn!(target_name = %self.0.naming.targets.get(target).map_or("?", |t| t), "too many server requests awaiting the client; refused");
                    self.refuse(
                        target,
                        msg.get_mut("id").map(Value::take).unwrap_or_default(),
                        "too many requests awaiting the client",
                    );
                    return;
                }
                let gid = format!("sb-{}", self.0.next_id.fetch_add(1, Ordering::Relaxed));
                let upstream_id = msg.get_mut("id").map(Value::take).unwrap_or_default();
                self.0
                    .client_requests
                    .locked()
                    .insert(gid.clone(), (target, upstream_id));
                jsonrpc::set_id(&mut msg, Value::String(gid.clone()));
                if !self.send(msg, stream) {
                    // No stream to the client (a stateless request, or nobody listening): tell
                    // the target now rather than let it wait for an answer that cannot come.
                    let taken = self.0.client_requests.locked().remove(&gid);
                    if let Some((_, uid)) = taken
                        && let Some(up) = self.upstream(target)
                    {
                        let reply = ProtocolError::Internal(
                            "the client cannot be reached for this request".into(),
                        )
                        .reply(uid);
                        tokio::spawn(async move {
                            let _ = up.send(reply).await;
                        });
                    }
                }
            }
            jsonrpc::Kind::Notification => {
                let method = jsonrpc::method(&msg);
                if method == "notifications/cancelled" {
                    let Some(uid) = crate::jsonrpc::at(&msg, &["params", "requestId"]).cloned()
                    else {
                        return;
                    };
                    let mut pending = self.0.client_requests.locked();
                    let gid = pending
                        .iter()
                        .find(|(_, v)| v.0 == target && v.1 == uid)
                        .map(|(k, _)| k.clone());
                    let Some(gid) = gid else { return };
                    pending.remove(&gid);
                    drop(pending);
                    jsonrpc::set_param(&mut msg, "requestId", Value::String(gid));
                } else if method.ends_with("/list_changed") {
                    self.0.naming.epoch.fetch_add(1, Ordering::Relaxed);
                } else if method == "notifications/resources/updated"
                    && self.0.naming.prefixed
                    && let Some(uri) = msg.pointer_mut("/params/uri")
                    && let Some(s) = uri.as_str()
                    && let Some(tname) = self.0.naming.targets.get(target)
                {
                    *uri = Value::String(names::namespace_uri(tname, s));
                }
                self.send(msg, stream);
            }
            _ => {}
        }
    }

    /// Send `method` to the client as a server-to-client request of the gateway's own (on the
    /// request's stream, else the standalone one); its reply arrives on the returned channel.
    /// `None`: no stream reaches the client. Returns the gateway id too, for [`forget`](Self::forget).
    pub fn ask(
        &self,
        method: &str,
        params: Value,
        stream: Option<&crate::outbox::Outbox<Value>>,
    ) -> Option<(String, tokio::sync::oneshot::Receiver<Value>)> {
        let gid = format!("sb-{}", self.0.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.0.asked.locked().insert(gid.clone(), tx);
        if self.send(
            jsonrpc::request(Value::String(gid.clone()), method, params),
            stream,
        ) {
            Some((gid, rx))
        } else {
            self.forget(&gid);
            None
        }
    }

    /// Whether target `target` waits for the client to answer one of its requests.
    pub fn awaiting_client(&self, target: usize) -> bool {
        self.0
            .client_requests
            .locked()
            .values()
            .any(|(t, _)| *t == target)
    }

    /// Stop waiting for the reply to an [`ask`](Self::ask).
    pub fn forget(&self, gid: &str) {
        self.0.asked.locked().remove(gid);
    }

    /// A client reply to one of the gateway's own requests is consumed here (`None`); any other
    /// message is handed back.
    pub fn answer_asked(&self, msg: Value) -> Option<Value> {
        let waiter = msg
            .get("id")
            .and_then(Value::as_str)
            .and_then(|gid| self.0.asked.locked().remove(gid));
        match waiter {
            Some(tx) => {
                let _ = tx.send(msg);
                None
            }
            None => Some(msg),
        }
    }

    /// Answer a server request of target `target` with -32601 on the client's behalf.
    fn refuse(&self, target: usize, id: Value, message: &str) {
        if let Some(up) = self.upstream(target) {
            let reply = ProtocolError::NotSupported(message.to_string().into()).reply(id);
            tokio::spawn(async move {
                let _ = up.send(reply).await;
            });
        }
    }

    /// Whether the client sent `notifications/initialized` (or the session was rebuilt from
    /// its token, so it did long ago).
    pub fn client_initialized(&self) -> bool {
        self.0.client_initialized.load(Ordering::Relaxed)
    }

    /// Record that the client sent `notifications/initialized`.
    pub fn set_client_initialized(&self) {
        self.0.client_initialized.store(true, Ordering::Relaxed);
    }

    /// The client answered a server-to-client request: `(target, reply with the upstream id)`.
    pub fn take_client_reply(&self, mut msg: Value) -> Option<(usize, Value)> {
        let gid = msg.get("id")?.as_str()?.to_string();
        let (target, uid) = self.0.client_requests.locked().remove(&gid)?;
        jsonrpc::set_id(&mut msg, uid);
        Some((target, msg))
    }

    /// All upstream connections (for closing).
    pub fn take_upstreams(&self) -> Vec<Upstream> {
        self.0
            .upstreams
            .locked()
            .iter_mut()
            .filter_map(Option::take)
            .collect()
    }
}

/// What target `target` sends outside any request, to a session held weakly (the session's
/// upstream connection holds this sink).
pub(crate) struct SessionSink {
    session: std::sync::Weak<Inner>,
    target: usize,
}

impl Sink for SessionSink {
    fn deliver(&self, msg: Value) {
        if let Some(s) = self.session.upgrade() {
            Session(s).deliver_from_upstream(self.target, msg, None);
        }
    }
}

/// The client capability a server-to-client request needs.
fn client_capability(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

mod registry;

pub(crate) use registry::Registry;
