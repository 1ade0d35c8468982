//! Upstream clients, one module per transport. All three speak raw JSON-RPC: the gateway
//! rewrites only request ids and progress tokens (both become the upstream request's own
//! numeric id, unique per backend) so replies and progress find their way back. `openapi` is
//! not an MCP transport: the gateway answers MCP itself and calls a REST service.

pub(crate) mod direct;
pub(crate) mod frames;
pub(crate) mod http;
pub(crate) mod openapi;
pub(crate) mod sse;
pub(crate) mod stdio;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::jsonrpc;

/// The targets' HTTP clients, one per thread that uses them (cheap clone). reqwest runs each
/// pooled connection as a task on the runtime that opened it; the gateway serves a client
/// connection on one thread (its serving threads are current-thread runtimes), and a pool of
/// that thread's own keeps a call and its upstream exchange there instead of waking another
/// core for every read and write, as the gateway's http and LLM clients do.
#[derive(Clone)]
pub(crate) struct Clients {
    per_thread: Arc<thread_local::ThreadLocal<reqwest::Client>>,
    /// The same threads' HTTP/1.1 connections, for the POSTs that need nothing of reqwest's
    /// layers ([`direct`]).
    direct: direct::DirectClient,
}

impl Clients {
    /// Clients made on first use per thread; fails only without a TLS backend, which is
    /// checked here once.
    pub fn new() -> Result<Self> {
        Self::build()?;
        Ok(Clients {
            per_thread: Arc::default(),
            direct: direct::DirectClient::new(),
        })
    }

    fn build() -> reqwest::Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .build()
    }

    /// This thread's client.
    pub fn here(&self) -> &reqwest::Client {
        #[allow(
            clippy::expect_used,
            reason = "the same builder succeeded in `new`; it depends on no input"
        )]
        self.per_thread
            .get_or(|| Self::build().expect("checked when the clients were made"))
    }

    /// The hyper client (its connections are this thread's).
    pub(crate) fn direct_here(&self) -> &direct::DirectClient {
        &self.direct
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

/// Where a target's messages that are not replies go: its server-to-client requests,
/// notifications and progress. The downstream side implements it (a session, a request's
/// stream, every session of a backend); transports know nothing else of it.
pub(crate) trait Sink: Send + Sync {
    /// Take one message the target sent.
    fn deliver(&self, msg: Value);

    /// Whether the target now waits for the client to answer one of its requests, so its
    /// silence does not count against its timeout.
    fn waiting_for_client(&self) -> bool {
        false
    }
}

/// Who gets what a target sends while it serves one request: that request's [`Sink`].
#[derive(Clone, Default)]
pub(crate) struct Recipient {
    /// `None` for the gateway's own requests (e.g. initializing a shared child): their
    /// messages are dropped.
    sink: Option<Arc<dyn Sink>>,
    /// Woken by every message the upstream sends for the request: it restarts the timeout.
    activity: Option<Arc<tokio::sync::Notify>>,
}

impl Recipient {
    /// Messages go to `sink`.
    pub fn new(sink: Arc<dyn Sink>) -> Self {
        Recipient {
            sink: Some(sink),
            activity: None,
        }
    }

    /// A recipient that drops everything.
    pub fn detached() -> Self {
        Recipient::default()
    }

    /// Hand a message of the target to the sink.
    pub fn deliver(&self, msg: Value) {
        if let Some(a) = &self.activity {
            a.notify_one();
        }
        if let Some(s) = &self.sink {
            s.deliver(msg);
        }
    }

    fn waiting_for_client(&self) -> bool {
        self.sink.as_ref().is_some_and(|s| s.waiting_for_client())
    }
}

/// An in-flight request on a multiplexed upstream (stdio, legacy SSE).
pub(crate) struct Pending {
    pub reply: oneshot::Sender<Value>,
    pub progress: Option<Value>,
    pub recipient: Recipient,
}

/// In-flight requests of one multiplexed upstream connection, keyed by upstream id.
#[derive(Clone, Default)]
pub(crate) struct PendingMap(Arc<DashMap<u64, Pending>>);

impl PendingMap {
    pub fn insert(&self, id: u64, p: Pending) {
        self.0.insert(id, p);
    }
    pub fn remove(&self, id: u64) {
        self.0.remove(&id);
    }
    /// Removes entry `id` when dropped, also when the waiting future is dropped (cancelled).
    pub fn guard(&self, id: u64) -> PendingGuard {
        PendingGuard(self.clone(), id)
    }
    /// Fail everything in flight (the connection died): dropping the senders wakes the callers.
    pub fn clear(&self) {
        self.0.clear();
    }
    /// The recipient of the newest in-flight request: the best owner guess for a
    /// server-initiated request that the transport does not tie to a request (stdio and legacy
    /// SSE cannot).
    fn newest_recipient(&self) -> Option<Recipient> {
        self.0
            .iter()
            // The gateway's own requests (a child's `initialize`) have no client to reach.
            .filter(|e| e.recipient.sink.is_some())
            .max_by_key(|e| *e.key())
            .map(|e| e.recipient.clone())
    }

    /// Dispatch one message read from the upstream. `fallback` handles messages that no
    /// in-flight request claims.
    pub fn dispatch(&self, mut msg: Value, fallback: &dyn Fn(Value)) {
        match jsonrpc::kind(&msg) {
            jsonrpc::Kind::Response => {
                let Some(id) = msg.get("id").and_then(Value::as_u64) else {
                    tracing::debug!("upstream response with a foreign id dropped");
                    return;
                };
                if let Some((_, p)) = self.0.remove(&id) {
                    let _ = p.reply.send(msg);
                }
            }
            jsonrpc::Kind::Notification if jsonrpc::method(&msg) == "notifications/progress" => {
                let token =
                    crate::jsonrpc::at(&msg, &["params", "progressToken"]).and_then(Value::as_u64);
                let Some(entry) = token.and_then(|t| self.0.get(&t)) else {
                    return;
                };
                if let (Some(orig), Some(slot)) = (
                    entry.progress.clone(),
                    msg.pointer_mut("/params/progressToken"),
                ) {
                    *slot = orig;
                    entry.recipient.deliver(msg);
                }
            }
            jsonrpc::Kind::Notification
                if jsonrpc::method(&msg).ends_with("/list_changed")
                    || jsonrpc::method(&msg) == "notifications/resources/updated" =>
            {
                fallback(msg)
            }
            jsonrpc::Kind::Request | jsonrpc::Kind::Notification => match self.newest_recipient() {
                Some(r) => r.deliver(msg),
                None => fallback(msg),
            },
            jsonrpc::Kind::Invalid => tracing::debug!("invalid message from upstream dropped"),
        }
    }
}

/// See [`PendingMap::guard`].
pub(crate) struct PendingGuard(PendingMap, u64);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.remove(self.1);
    }
}

/// Rewrite a downstream request for an upstream: its id becomes `id` and its progress token
/// (if any) too; returns the original progress token.
pub(crate) fn prepare(msg: &mut Value, id: u64) -> Option<Value> {
    jsonrpc::set_id(msg, Value::from(id));
    let orig = jsonrpc::progress_token(msg).cloned();
    if orig.is_some() {
        jsonrpc::set_progress_token(msg, Value::from(id));
    }
    orig
}

/// One target's connection as seen by a downstream session.
#[derive(Clone)]
pub(crate) enum Upstream {
    /// A streamable HTTP upstream session owned by this downstream session.
    Http(Arc<http::HttpUpstream>),
    /// A legacy SSE connection owned by this downstream session.
    Sse(Arc<sse::SseUpstream>),
    /// The target's shared child process, or the session's own (`per_session`).
    Stdio(stdio::StdioProcess),
    /// A REST service described by an OpenAPI document (shared by every session).
    OpenApi(Arc<openapi::OpenApi>),
}

impl Upstream {
    /// Send a request (already `prepare`d) and wait for its response. `timeout` is the longest
    /// silence: progress or any other message for the request restarts it, so long-running
    /// tools that report progress are not cut off.
    pub async fn request(
        &self,
        mut recipient: Recipient,
        msg: Value,
        progress: Option<Value>,
        timeout: Duration,
        target: &str,
    ) -> Result<Value> {
        let activity = Arc::new(tokio::sync::Notify::new());
        recipient.activity = Some(activity.clone());
        let waiting = recipient.clone();
        let fut = async {
            match self {
                Upstream::Http(h) => h.request(recipient, msg, progress).await,
                Upstream::Sse(s) => s.request(recipient, msg, progress).await,
                Upstream::Stdio(s) => s.request(recipient, msg, progress).await,
                Upstream::OpenApi(o) => o.request(msg).await,
            }
        };
        tokio::pin!(fut);
        loop {
            tokio::select! {
                r = &mut fut => {
                    // A reply of the wrong shape never reaches the code that rewrites replies
                    // or the client: it becomes a JSON-RPC error naming the target.
                    let reply = r?;
                    return match jsonrpc::check_reply(&reply) {
                        Ok(()) => Ok(reply),
                        Err(reason) => Err(Error::Protocol {
                            target: target.to_string(),
                            reason: reason.into(),
                        }),
                    };
                }
                _ = activity.notified() => {}
                _ = tokio::time::sleep(timeout) => {
                    if !waiting.waiting_for_client() {
                        return Err(Error::Timeout(target.to_string()));
                    }
                }
            }
        }
    }

    /// Send a notification or a response (no reply expected).
    pub async fn send(&self, msg: Value) -> Result<()> {
        match self {
            Upstream::Http(h) => h.send(msg).await,
            Upstream::Sse(s) => s.send(msg).await,
            Upstream::Stdio(s) => s.send(msg),
            // Notifications and replies of the client mean nothing to a REST service.
            Upstream::OpenApi(_) => Ok(()),
        }
    }

    /// End the upstream session (HTTP DELETE; a `per_session` child is killed); shared stdio
    /// children stay.
    pub async fn close(&self) {
        match self {
            Upstream::Http(h) => h.close().await,
            Upstream::Sse(s) => s.close(),
            Upstream::Stdio(p) => p.close(),
            Upstream::OpenApi(_) => {}
        }
    }
}

/// Await a multiplexed reply, mapping a dropped sender to "unavailable".
pub(crate) async fn await_reply(rx: oneshot::Receiver<Value>, target: &str) -> Result<Value> {
    rx.await.map_err(|_| Error::Unavailable {
        target: target.to_string(),
        reason: "connection lost".into(),
    })
}
