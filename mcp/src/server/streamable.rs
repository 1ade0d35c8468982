//! The Streamable HTTP transport at the route's prefix: POST (one message or, up to
//! 2025-03-26, a batch; answered as JSON or as an SSE stream), GET (the session's standalone
//! stream) and DELETE (end the session). A POST's body is parsed here ([`Message::parse`]);
//! requests without a session that are not `initialize` go to `stateless`. Also the reply
//! helpers every transport shares.

use std::convert::Infallible;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use serde_json::Value;

use super::{
    MAX_BODY, META_VERSION, McpBackend, RequestContext, SESSION_VERSIONS, SSE_RETRY_MS,
    STATELESS_VERSION,
};
use crate::error::refuse;
use crate::outbox::{Inbox, Mode, Outbox, outbox};
use crate::request::{self as rpc, Message};
use crate::session::Session;
use crate::upstream::Upstream;

impl McpBackend {
    pub(super) async fn post(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let (parts, body) = req.into_parts();
        let accepts_sse = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return Err(refuse::body_too_large());
        };
        let msg: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) => {
                self.0.shared.metrics.request("", "", "parse_error");
                return Err(refuse::parse_error());
            }
        };
        let msg = match msg {
            Value::Array(items) => {
                return self
                    .post_batch(&parts.headers, items, accepts_sse, ctx)
                    .await;
            }
            msg => msg,
        };
        let header_version = parts
            .headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok());
        let session_id = parts
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok());
        let meta_version =
            crate::jsonrpc::at(&msg, &["params", "_meta", META_VERSION]).and_then(Value::as_str);
        let modern =
            header_version == Some(STATELESS_VERSION) || meta_version == Some(STATELESS_VERSION);
        let Ok(msg) = Message::parse(msg) else {
            return Err(refuse::invalid_message());
        };
        let req = match msg {
            Message::Request(req) => req,
            // Stateless clients' notifications and replies have no session to reach; the
            // requests they could refer to were answered within their own HTTP exchange.
            _ if session_id.is_none() && modern => return Ok(accepted()),
            msg => {
                if let Some(v) = header_version
                    && !SESSION_VERSIONS.contains(&v)
                    && v != STATELESS_VERSION
                {
                    return Err(refuse::unsupported_version());
                }
                let session_id = session_id.ok_or_else(refuse::no_session_id)?;
                let session = match self.resume(session_id, ctx).await {
                    Ok(s) => s,
                    Err(r) => return rejected(r, Value::Null),
                };
                self.client_message(&session, msg).await;
                return Ok(accepted());
            }
        };
        let is_initialize = matches!(req.method, rpc::Method::Initialize);
        if session_id.is_none()
            && !is_initialize
            && (matches!(req.method, rpc::Method::Discover) || modern)
        {
            return Ok(self.stateless(req, &parts.headers, ctx).await);
        }
        if let Some(v) = header_version
            && !SESSION_VERSIONS.contains(&v)
            && v != STATELESS_VERSION
        {
            return Err(refuse::unsupported_version());
        }
        if is_initialize {
            if session_id.is_some() {
                return Err(refuse::already_initialized());
            }
            return Ok(
                match self
                    .initialize(&req, None, ctx.principal.clone(), &ctx.route)
                    .await
                {
                    Ok((session, resp)) => {
                        let mut r = rpc_response(StatusCode::OK, resp);
                        if let Ok(v) = http::HeaderValue::from_str(&session.header_id()) {
                            r.headers_mut().insert("mcp-session-id", v);
                        }
                        r
                    }
                    Err(e) => rpc_response(StatusCode::OK, e.reply(req.id)),
                },
            );
        }
        let session_id = session_id.ok_or_else(refuse::no_session_id)?;
        let session = match self.resume(session_id, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, req.id),
        };
        Ok(self
            .respond(session, req, accepts_sse, Some(session_id), ctx)
            .await)
    }

    /// Answer one request as an SSE stream when the client accepts one (progress, logging and
    /// server requests travel with it; every event has an id, a priming event first from
    /// 2025-11-25 on), else as JSON. `ping` is always JSON: nothing can accompany it.
    async fn respond(
        &self,
        session: Session,
        req: rpc::Request,
        accepts_sse: bool,
        sid: Option<&str>,
        ctx: &RequestContext,
    ) -> Response<Body> {
        let streams = !matches!(req.method, rpc::Method::Ping);
        if !(streams && accepts_sse) {
            let resp = self.dispatch(&session, req, None, ctx.access.clone()).await;
            self.sync_targets(&session).await;
            return rpc_response(StatusCode::OK, resp);
        }
        let (tx, rx) = self.request_outbox(&session);
        let this = self.clone();
        let s2 = session.clone();
        let tx2 = tx.clone();
        let access = ctx.access.clone();
        // Boxed here, and the dispatch inside it boxed too: the dispatch future is some 15 KB,
        // and a future held by value is copied whole at every move (into the trace scope, into
        // `sse_answer`'s state, into `Held`); a pointer moves instead.
        let call: Call = Box::pin(crate::trace::carry(async move {
            let resp =
                switchboard_core::boxed(|| this.dispatch(&s2, req, Some(tx2.clone()), access))
                    .await;
            if tx2.send_last(resp).await.is_err() {
                tracing::debug!("reply not delivered: the request's stream was closed");
            }
            this.sync_targets(&s2).await;
        }));
        drop(tx);
        let mut r = self.sse_answer(session, rx, call).await;
        if let Some(sid) = sid.and_then(|s| http::HeaderValue::from_str(s).ok()) {
            r.headers_mut().insert("mcp-session-id", sid);
        }
        r
    }

    /// The SSE answer to a request (or batch) whose messages `call` queues into `rx`.
    ///
    /// The response head is held until the first message: most calls end without
    /// anything before their reply, and then the whole stream (logged first, for a managed
    /// session) goes out as one body with its head, in one write, and `call` ran here instead
    /// of in a task of its own. When a message comes first (progress, a server request) or
    /// the call outlasts [`HOLD`], `call` continues in a task and the stream is live, as it
    /// always was. A client gone while the head is held does not cancel the call either.
    pub(super) async fn sse_answer(
        &self,
        session: Session,
        mut rx: Inbox<Value>,
        call: Call,
    ) -> Response<Body> {
        let priming = crate::revision::primes_streams(&session.0.version);
        let mut held = Held(Some(call));
        hold_ticker::keep_armed();
        let first = match held.0.as_mut() {
            Some(call) => tokio::select! {
                biased;
                () = call => First::Done,
                m = rx.recv() => First::Message(m),
                () = tokio::time::sleep(HOLD) => First::Slow,
            },
            None => First::Slow,
        };
        let first = match first {
            First::Done => {
                held.0 = None;
                let mut msgs = Vec::new();
                while let Some(m) = rx.try_recv() {
                    msgs.push(m);
                }
                return if session.0.managed.get().is_some() {
                    self.logged_post_answer(session, msgs, priming).await
                } else {
                    sse_complete(&session, msgs, priming)
                };
            }
            First::Message(m) => m,
            First::Slow => None,
        };
        if let Some(call) = held.0.take() {
            tokio::spawn(call);
        }
        if session.0.managed.get().is_some() {
            self.logged_post_stream(session, first, rx, priming)
        } else {
            sse_response(session, first, rx, priming)
        }
    }

    /// The queue of a request answered as SSE: a managed session's is drained by the task
    /// that logs it (full: messages spill to the standalone stream, the reply waits for
    /// room); any other's by the client (full: the stream is cut).
    pub(crate) fn request_outbox(&self, session: &Session) -> (Outbox<Value>, Inbox<Value>) {
        let mode = if session.0.managed.get().is_some() {
            Mode::Spill
        } else {
            Mode::Cut
        };
        outbox(&self.bound(), mode, "request")
    }

    /// GET: the session's standalone stream for server-initiated messages.
    pub(super) async fn get_stream(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let accepts = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        if !accepts {
            return Err(refuse::not_event_stream());
        }
        let Some(sid) = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(refuse::no_session_id());
        };
        let last_event_id = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(answer) = self
            .resume_post_elsewhere(sid, last_event_id.as_deref(), ctx)
            .await
        {
            return answer;
        }
        let session = match self.resume(sid, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, Value::Null),
        };
        self.standalone_stream(session, last_event_id).await
    }

    pub(super) async fn delete(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let Some(sid) = req
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
        else {
            return Err(refuse::no_session_id());
        };
        let session = match self.resume(sid, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, Value::Null),
        };
        let Some(m) = session.0.managed.get() else {
            return Err(refuse::session_not_found());
        };
        // The manager's release callback drops the local state and closes the upstreams.
        if let Err(e) = m.manager.revoke(&m.record()).await {
            tracing::warn!(error = %e, "session store: revoking a session failed");
            return Err(refuse::store_unavailable());
        }
        Ok(Response::builder()
            .status(StatusCode::OK)
            .body(Body::empty())
            .unwrap_or_default())
    }
}

/// Pipe each HTTP upstream's own standalone stream (server requests such as `roots/list`,
/// `list_changed`, logging) into the session's standalone stream `tx`, for as long as `tx` is
/// open: a task per HTTP target while the client listens, none otherwise.
pub(super) fn pipe_upstream_streams(session: &Session, tx: &Outbox<Value>) {
    for t in 0..session.0.naming.targets.len() {
        if let Some(Upstream::Http(h)) = session.upstream(t) {
            let s = session.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(Some(resp)) = h.open_stream().await else {
                    return;
                };
                let mut events =
                    crate::upstream::frames::sse_events(resp.bytes_stream(), h.max_reply());
                loop {
                    tokio::select! {
                        _ = tx.closed() => break,
                        ev = events.next() => match ev {
                            Some(Ok(ev)) => {
                                if let Ok(m) = serde_json::from_str::<Value>(&ev.data) {
                                    s.deliver_from_upstream(t, m, Some(&tx));
                                }
                            }
                            Some(Err(e)) => {
                                tracing::warn!(target_name = %h.target(), error = ?e, "target's standalone stream dropped");
                                break;
                            }
                            None => break,
                        }
                    }
                }
            });
        }
    }
}

/// A rejected request as the answer to its POST (`id`: the request's, when it has one).
pub(super) fn rejected(
    r: crate::error::Rejected,
    id: Value,
) -> switchboard_core::Result<Response<Body>> {
    match r {
        crate::error::Rejected::Http(e) => Err(e),
        crate::error::Rejected::Rpc(e) => Ok(rpc_response(e.status(), e.reply(id))),
    }
}

/// 202 with no body: a notification or a response was taken.
pub(super) fn accepted() -> Response<Body> {
    switchboard_core::http::response()
        .status(StatusCode::ACCEPTED)
        .body(Body::empty())
        .unwrap_or_default()
}

pub(super) fn rpc_response(status: StatusCode, body: Value) -> Response<Body> {
    switchboard_core::http::response()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&body).unwrap_or_default()))
        .unwrap_or_default()
}

/// How long a request's SSE answer waits for its first message before its head goes out
/// (see [`McpBackend::sse_answer`]).
const HOLD: std::time::Duration = std::time::Duration::from_millis(50);

/// A timer kept armed on the serving thread while it holds answers, so that arming [`HOLD`]
/// never makes the runtime wake itself.
///
/// tokio writes its driver's eventfd whenever a timer is armed earlier than the driver's next
/// wake-up, so that a parked thread notices it. A held answer's `HOLD` sleep, armed at every
/// call, was that earliest timer: one `write` to the thread's own eventfd, and one more
/// `epoll_wait` that returns at once, per call (the same cost the gateway's connection
/// watchdog removed for hyper's head timer). While this thread holds answers, a task here
/// ticks every half `HOLD`: its next tick is always earlier than a new `HOLD` deadline, so
/// arming one wakes nothing. The ticker re-arms itself (one wake-up per tick, not per call),
/// and ends one `HOLD` after the thread last held an answer.
mod hold_ticker {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use tokio::time::{Instant, MissedTickBehavior};

    use super::HOLD;

    /// One thread's ticker.
    struct Ticker {
        /// Whether its task runs.
        running: AtomicBool,
        /// When the thread last held an answer, in milliseconds since `base`.
        held_at: AtomicU64,
        base: Instant,
    }

    impl Ticker {
        fn since_base(&self) -> u64 {
            u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
        }
    }

    thread_local! {
        static TICKER: Arc<Ticker> = Arc::new(Ticker {
            running: AtomicBool::new(false),
            held_at: AtomicU64::new(0),
            base: Instant::now(),
        });
    }

    /// Called as an answer is held: starts this thread's ticker unless it runs.
    pub(super) fn keep_armed() {
        let Ok(ticker) = TICKER.try_with(|t| {
            t.held_at.store(t.since_base(), Ordering::Relaxed);
            (!t.running.swap(true, Ordering::AcqRel)).then(|| t.clone())
        }) else {
            return;
        };
        if let Some(t) = ticker {
            tokio::spawn(tick(t));
        }
    }

    async fn tick(t: Arc<Ticker>) {
        /// Marks the ticker stopped however its task ends (the runtime may drop it).
        struct Stopped(Arc<Ticker>);
        impl Drop for Stopped {
            fn drop(&mut self) {
                self.0.running.store(false, Ordering::Release);
            }
        }
        let t = Stopped(t);
        let mut every = tokio::time::interval(HOLD / 2);
        every.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let hold = u64::try_from(HOLD.as_millis()).unwrap_or(u64::MAX);
        loop {
            every.tick().await;
            let idle =
                t.0.since_base()
                    .saturating_sub(t.0.held_at.load(Ordering::Relaxed));
            if idle >= hold {
                return;
            }
        }
    }
}

/// What came first while the head was held.
enum First {
    /// The call ended: everything it sent is queued.
    Done,
    /// A message (or, `None`, the end of the queue) before the call ended.
    Message(Option<Value>),
    /// Nothing within [`HOLD`].
    Slow,
}

/// A request's call, boxed (see [`McpBackend::sse_answer`]).
pub(super) type Call = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// A call being run by the request's handler; dropped unfinished (the client went away while
/// the head was held), it finishes in a task of its own, as if it had been spawned at once.
struct Held(Option<Call>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(call) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(call);
        }
    }
}

/// An SSE body from a channel, after `first` (a message already taken from it); every event
/// has an id. A request's stream ends when its last sender (the task answering it) is gone,
/// right after the response.
pub(super) fn sse_response(
    session: Session,
    first: Option<Value>,
    rx: Inbox<Value>,
    priming: bool,
) -> Response<Body> {
    let s2 = session.clone();
    let primer = futures::stream::iter(priming.then(|| {
        Ok::<_, Infallible>(Bytes::from(format!(
            "id: {}\nretry: {SSE_RETRY_MS}\ndata: \n\n",
            s2.event_id()
        )))
    }));
    let events = futures::stream::iter(first)
        .chain(rx.into_stream())
        .map(move |msg| {
            let mut out = Vec::new();
            message_event(&mut out, session.event_id(), &msg);
            Ok(Bytes::from(out))
        });
    switchboard_core::http::response()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(primer.chain(events)))
        .unwrap_or_default()
}

/// The same stream as [`sse_response`], of messages that are all there: one body.
fn sse_complete(session: &Session, msgs: Vec<Value>, priming: bool) -> Response<Body> {
    use std::io::Write as _;
    let mut out = Vec::new();
    if priming {
        let _ = write!(
            out,
            "id: {}\nretry: {SSE_RETRY_MS}\ndata: \n\n",
            session.event_id()
        );
    }
    for msg in msgs {
        message_event(&mut out, session.event_id(), &msg);
    }
    sse_full(Bytes::from(out))
}

/// Appends one `message` event carrying `msg`. The JSON is written straight into `out`
/// (`Value`'s `Display` goes through the formatting machinery, at twice the cost); compact
/// JSON escapes every line break, so it is one `data:` line.
fn message_event(out: &mut Vec<u8>, id: impl std::fmt::Display, msg: &Value) {
    use std::io::Write as _;
    let _ = write!(out, "id: {id}\nevent: message\ndata: ");
    // Writing a `Value` into a `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, msg);
    out.extend_from_slice(b"\n\n");
}

/// An SSE response whose whole body is `body`.
pub(super) fn sse_full(body: Bytes) -> Response<Body> {
    switchboard_core::http::response()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from(body))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// The event is what `format!` with `Value`'s `Display` gave: compact JSON, line breaks in
    /// strings escaped, one `data:` line.
    #[test]
    fn a_message_event_is_one_data_line_of_compact_json() {
        let msg = json!({"jsonrpc": "2.0", "id": 7, "result": {"text": "a\nb\r\nc — ✓", "n": [1, 2.5, null]}});
        let mut out = Vec::new();
        super::message_event(&mut out, "s1_3", &msg);
        super::message_event(&mut out, 4, &json!("x"));
        let want = format!(
            "id: s1_3\nevent: message\ndata: {msg}\n\nid: 4\nevent: message\ndata: \"x\"\n\n"
        );
        assert_eq!(String::from_utf8(out).unwrap(), want);
        assert_eq!(want.matches("data: ").count(), 2);
        assert_eq!(want.lines().count(), 8);
    }
}
