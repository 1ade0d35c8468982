//! Change notifications across protocol eras: `list_changed` and `resources/updated`.
//!
//! 2026-07-28 has no session and no standalone stream: a client sends `subscriptions/listen`
//! with a filter (`toolsListChanged`, `promptsListChanged`, `resourcesListChanged`,
//! `resourceSubscriptions`) and the reply is an SSE stream: the acknowledgment (what is
//! honored), then the notifications asked for, each stamped with the subscription id (the
//! request's id) in `_meta`. The gateway federates one such stream over every target of the
//! route ([`McpBackend::listen`]): a 2026-07-28 target gets a `subscriptions/listen` of its
//! own; a session-era target a session of the stream's own, whose standalone stream (GET, a
//! legacy SSE connection, a stdio child) carries its notifications, with `resources/subscribe`
//! for the URIs it owns. What reaches the client is rewritten to the exposed names and URIs and
//! filtered like list results: a URI the caller may not see is not honored (never subscribed
//! upstream), and a `list_changed` is passed on only when the list as the caller sees it
//! (`tools.allow`/`tools.deny`, authz) changed, so a change to hidden items does not show. The
//! upstream streams and sessions are released when the client's stream ends (a shared stdio
//! child keeps its resource subscriptions: others may have asked for the same), and the client's
//! stream ends (without a result: the client re-listens and refetches) when an upstream one
//! does.
//!
//! The other direction: a session-era client's `resources/subscribe` to a 2026-07-28 target
//! ([`McpBackend::subscribe`]). The gateway holds one `subscriptions/listen` upstream per
//! session and target with the session's URIs (re-opened when they change, dropped with the
//! last one or the session) and turns its events into `notifications/resources/updated` on the
//! session's standalone stream. Held on the replica that took the `resources/subscribe`.
//!
//! Bounds: at most [`MAX_SUBSCRIPTIONS`] resource URIs per listen stream (per session and
//! target for held subscriptions); at most `max_queued_messages` notifications queued toward a
//! listen stream, past which the stream is cut, as a slow client's SSE streams are elsewhere.

use std::collections::{BTreeSet, HashSet};
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use dashmap::DashMap;
use futures::StreamExt;
use http::{HeaderMap, Response, StatusCode, header};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::input_rounds::Forward;
use super::streamable::rpc_response;
use super::{Access, Item, LATEST_VERSION, McpBackend, RequestContext, STATELESS_VERSION};
use crate::config::{FailureMode, TransportKind};
use crate::error::{ItemKind, ProtocolError};
use crate::jsonrpc::{self, Kind};
use crate::outbox::{Inbox, Mode, Outbox, outbox};
use crate::request::{ListKind, ListenFilter, Request};
use crate::session::Session;
use crate::upstream::Upstream;
use crate::upstream::frames::{FrameError, sse_events};
use crate::upstream::http::HttpUpstream;

/// Most resource URIs one listen stream subscribes to (and one session on one 2026-07-28
/// target); more are refused with -32602.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// The `_meta` key stamped on every frame of a listen stream.
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
const UPDATED: &str = "notifications/resources/updated";
const LISTEN: &str = "subscriptions/listen";
/// Most pages read when listing for a visibility check or to learn who owns a URI.
const MAX_LIST_PAGES: usize = 20;
/// How often a quiet listen stream gets an SSE comment, so idle limits on the way (the
/// gateway's own `limits.idle_timeout` included) do not end it, and a client that stopped
/// reading is found out (the comments fill its queue).
const PING: Duration = Duration::from_secs(30);
/// How often a held subscription checks that its session still exists.
const HELD_CHECK: Duration = Duration::from_secs(30);

/// The backend's listen streams and held subscriptions.
#[derive(Default)]
pub(super) struct Subscriptions {
    /// The sessions of open listen streams: shared stdio children deliver to them too.
    listening: DashMap<u64, Session>,
    next: AtomicU64,
    /// Session-era sessions' subscriptions on 2026-07-28 targets, by (session key, target).
    held: DashMap<(String, usize), Held>,
}

/// A `subscriptions/listen` held upstream for a session-era session.
struct Held {
    /// The upstream URIs it asked for.
    uris: BTreeSet<String>,
    /// Tells this holding from the one that replaces it.
    generation: u64,
    _task: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Subscriptions {
    /// The sessions of the open listen streams.
    pub fn listening(&self) -> Vec<Session> {
        self.listening.iter().map(|e| e.value().clone()).collect()
    }

    /// A session ended: drop what is held for it.
    pub fn end_session(&self, key: &str) {
        self.held.retain(|(k, _), _| k != key);
    }
}

/// Which list a `list_changed` notification is about.
fn changed_list(method: &str) -> Option<ListKind> {
    match method {
        "notifications/tools/list_changed" => Some(ListKind::Tools),
        "notifications/prompts/list_changed" => Some(ListKind::Prompts),
        "notifications/resources/list_changed" => Some(ListKind::Resources),
        _ => None,
    }
}

fn stamp(msg: &mut Value, id: &Value) {
    if let Some(params) = msg.as_object_mut().map(|o| {
        o.entry("params")
            .or_insert_with(|| Value::Object(Map::new()))
    }) && let Some(params) = params.as_object_mut()
        && let Some(meta) = params
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
    {
        meta.insert(SUBSCRIPTION_ID.into(), id.clone());
    }
}

/// The upstream's own listen request for `uris` (and the list kinds of `filter`).
fn listen_request(id: u64, filter: Option<&ListenFilter>, uris: &[String]) -> Value {
    let mut n = Map::new();
    if let Some(f) = filter {
        for (on, key) in [
            (f.tools, "toolsListChanged"),
            (f.prompts, "promptsListChanged"),
            (f.resources, "resourcesListChanged"),
        ] {
            if on {
                n.insert(key.into(), Value::Bool(true));
            }
        }
    }
    if !uris.is_empty() {
        n.insert("resourceSubscriptions".into(), json!(uris));
    }
    jsonrpc::request(Value::from(id), LISTEN, json!({"notifications": n}))
}

type Events = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<switchboard_core::sse::Event, FrameError>> + Send>,
>;

/// Open a `subscriptions/listen` on a 2026-07-28 target and wait for its acknowledgment;
/// returns the rest of the stream and the URIs it honored.
async fn open_upstream_listen(
    h: &HttpUpstream,
    msg: &Value,
    timeout: Duration,
) -> crate::error::Result<(Events, HashSet<String>)> {
    let resp = h.post_stream(msg).await?;
    let mut events: Events = Box::pin(sse_events(resp.bytes_stream(), h.max_reply()));
    let lost = || crate::error::Error::Unavailable {
        target: h.target().to_string(),
        reason: "subscriptions/listen ended before it was acknowledged".into(),
    };
    let ack = tokio::time::timeout(timeout, async {
        while let Some(Ok(ev)) = events.next().await {
            let Ok(m) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if jsonrpc::method(&m) == ACKNOWLEDGED {
                return Some(m);
            }
            if jsonrpc::kind(&m) == Kind::Response {
                return None;
            }
        }
        None
    })
    .await
    .map_err(|_| crate::error::Error::Timeout(h.target().to_string()))?
    .ok_or_else(lost)?;
    let honored = crate::jsonrpc::at(&ack, &["params", "notifications", "resourceSubscriptions"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((events, honored))
}

/// What a listen stream's pump lets through to the client.
struct Admit {
    /// The listen request's id (the subscription id).
    id: Value,
    filter: ListenFilter,
    /// Exposed URIs honored.
    honored: HashSet<String>,
    access: Option<Access>,
    /// Fingerprints of the tools, prompts and resources lists as the caller sees them, where
    /// a check is needed (see [`McpBackend::needs_check`]).
    seen: [Option<u64>; 3],
}

fn slot(kind: ListKind) -> usize {
    match kind {
        ListKind::Tools => 0,
        ListKind::Prompts => 1,
        ListKind::Resources | ListKind::Templates => 2,
    }
}

impl Admit {
    fn asked(&self, kind: ListKind) -> bool {
        match kind {
            ListKind::Tools => self.filter.tools,
            ListKind::Prompts => self.filter.prompts,
            ListKind::Resources | ListKind::Templates => self.filter.resources,
        }
    }

    /// The notification as the client gets it, or `None` when it is not for this client.
    async fn admit(&mut self, b: &McpBackend, session: &Session, mut m: Value) -> Option<Value> {
        let method = jsonrpc::method(&m);
        if let Some(kind) = changed_list(method) {
            if !self.asked(kind) {
                return None;
            }
            if b.needs_check(kind, &self.access) {
                let now = b.visible(session, kind, &self.access).await;
                let slot = self.seen.get_mut(slot(kind))?;
                if now.is_some() && *slot == now {
                    tracing::debug!(
                        method,
                        "list_changed of items the caller cannot see dropped"
                    );
                    return None;
                }
                *slot = now;
            }
        } else if method == UPDATED {
            let uri = jsonrpc::param_str(&m, "uri")?;
            let allowed = self
                .access
                .as_ref()
                .is_none_or(|a| a.allows(Item::Resource(uri)));
            if !allowed || !self.honored.contains(uri) {
                return None;
            }
        } else {
            return None;
        }
        stamp(&mut m, &self.id);
        Some(m)
    }
}

/// Releases a listen stream's upstream side however it ends (the client went away, an
/// upstream stream ended, the stream was cut).
struct ListenGuard {
    backend: McpBackend,
    key: u64,
    session: Session,
    _readers: Vec<AbortOnDrop>,
}

impl Drop for ListenGuard {
    fn drop(&mut self) {
        self.backend.0.subs.listening.remove(&self.key);
        let ups = self.session.take_upstreams();
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // HTTP sessions are deleted, `per_session` children stopped. A shared child keeps
        // its subscriptions: it cannot tell whose they are (other listeners and sessions may
        // have asked for the same URI), and listeners only take what they asked for.
        rt.spawn(async move {
            for u in ups {
                u.close().await;
            }
        });
    }
}

/// What one target contributes to a listen stream.
#[derive(Default)]
struct Opened {
    /// Exposed URIs honored.
    honored: Vec<String>,
    reader: Option<AbortOnDrop>,
    /// Why the target could not be listened to (`failure_mode` decides).
    failed: Option<crate::error::Error>,
}

impl McpBackend {
    /// `subscriptions/listen` of a 2026-07-28 client: federated over every target (see the
    /// module docs); answered as an SSE stream.
    pub(super) async fn listen(
        &self,
        filter: ListenFilter,
        req: Request,
        headers: &HeaderMap,
        ctx: &RequestContext,
    ) -> Response<Body> {
        let id = req.id.clone();
        let accepts_sse = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/event-stream"));
        if !accepts_sse {
            let e = ProtocolError::InvalidRequest(
                "subscriptions/listen is answered with an SSE stream: accept text/event-stream"
                    .into(),
            );
            return rpc_response(StatusCode::NOT_ACCEPTABLE, e.reply(id));
        }
        if let Some(h) = headers.get("mcp-method").and_then(|v| v.to_str().ok())
            && h != LISTEN
        {
            let e = ProtocolError::HeaderMismatch(format!(
                "Mcp-Method header `{h}` does not match body method `{LISTEN}`"
            ));
            return rpc_response(e.status(), e.reply(id));
        }
        if filter.uris.len() > MAX_SUBSCRIPTIONS {
            let e = ProtocolError::InvalidParams(
                format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per stream").into(),
            );
            return rpc_response(StatusCode::OK, e.reply(id));
        }
        let session = self.listen_session(&req.msg, ctx.principal.clone());
        let (raw_tx, raw_rx) = outbox::<Value>(&self.bound(), Mode::Cut, "listen");
        // Stdio children and legacy SSE targets deliver to the session's standalone stream.
        session.attach_stream(raw_tx.clone());
        let key = self.0.subs.next.fetch_add(1, Ordering::Relaxed);
        self.0.subs.listening.insert(key, session.clone());
        let mut guard = ListenGuard {
            backend: self.clone(),
            key,
            session: session.clone(),
            _readers: Vec::new(),
        };
        let access = ctx.access.clone();
        let n = self.0.targets.len();
        if !self.0.naming.prefixed && n > 1 && !filter.uris.is_empty() {
            self.learn(&session, ListKind::Resources).await;
        }
        let mut per_target: Vec<Vec<(String, String)>> = vec![Vec::new(); n];
        let mut asked = HashSet::new();
        for uri in &filter.uris {
            if !asked.insert(uri.as_str())
                || !access
                    .as_ref()
                    .is_none_or(|a| a.allows(Item::Resource(uri)))
            {
                continue;
            }
            if let Some((t, up)) = self.resolve_uri(&session, uri)
                && let Some(v) = per_target.get_mut(t)
            {
                v.push((uri.clone(), up));
            }
        }
        let lost = CancellationToken::new();
        let opened = futures::future::join_all(
            per_target
                .into_iter()
                .enumerate()
                .map(|(t, uris)| self.listen_target(&session, t, &filter, uris, &raw_tx, &lost)),
        )
        .await;
        let mut honored = Vec::new();
        for o in opened {
            if let Some(e) = o.failed
                && self.0.cfg.failure_mode == FailureMode::FailClosed
            {
                let e = ProtocolError::from(e);
                return rpc_response(e.status(), e.reply(id));
            }
            honored.extend(o.honored);
            guard._readers.extend(o.reader);
        }
        let mut admit = Admit {
            id: id.clone(),
            filter: filter.clone(),
            honored: honored.iter().cloned().collect(),
            access,
            seen: [None; 3],
        };
        for kind in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
            if admit.asked(kind) && self.needs_check(kind, &admit.access) {
                let v = self.visible(&session, kind, &admit.access).await;
                if let Some(s) = admit.seen.get_mut(slot(kind)) {
                    *s = v;
                }
            }
        }
        let mut ack = Map::new();
        for (on, k) in [
            (filter.tools, "toolsListChanged"),
            (filter.prompts, "promptsListChanged"),
            (filter.resources, "resourcesListChanged"),
        ] {
            if on {
                ack.insert(k.into(), Value::Bool(true));
            }
        }
        if !honored.is_empty() {
            ack.insert("resourceSubscriptions".into(), json!(honored));
        }
        let mut ack = jsonrpc::notification(ACKNOWLEDGED, json!({"notifications": ack}));
        stamp(&mut ack, &id);
        let (client_tx, client_rx) = outbox::<Value>(&self.bound(), Mode::Cut, "listen");
        let _ = client_tx.send(ack);
        drop(raw_tx);
        let this = self.clone();
        tokio::spawn(async move {
            this.pump(guard, session, raw_rx, client_tx, lost, admit)
                .await;
        });
        // `Null` is the pump's keep-alive: an SSE comment.
        let frames = client_rx.into_stream().map(|m| {
            Ok::<_, Infallible>(match m {
                Value::Null => Bytes::from_static(b": ping\n\n"),
                m => Bytes::from(format!("event: message\ndata: {m}\n\n")),
            })
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(frames))
            .unwrap_or_default()
    }

    /// Pass what the targets send through [`Admit`] to the client until the client goes
    /// away, the stream is cut, or an upstream stream ends; `guard` then releases it all.
    async fn pump(
        &self,
        guard: ListenGuard,
        session: Session,
        mut raw: Inbox<Value>,
        client: Outbox<Value>,
        lost: CancellationToken,
        mut admit: Admit,
    ) {
        let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING, PING);
        loop {
            let m = tokio::select! {
                _ = client.closed() => break,
                _ = lost.cancelled() => break,
                _ = ping.tick() => {
                    if client.send(Value::Null).is_err() {
                        break;
                    }
                    continue;
                }
                m = raw.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            match jsonrpc::kind(&m) {
                Kind::Request => {
                    // A listen stream carries notifications only; the target is told at once.
                    let reply = ProtocolError::NotSupported(
                        "a subscriptions/listen stream does not carry requests".into(),
                    )
                    .reply(jsonrpc::id(&m));
                    self.client_reply(&session, reply).await;
                }
                Kind::Notification => {
                    if let Some(out) = admit.admit(self, &session, m).await
                        && client.send(out).is_err()
                    {
                        break;
                    }
                }
                _ => {}
            }
        }
        tracing::debug!("subscriptions/listen stream ended");
        drop(guard);
    }

    /// Open target `t`'s part of a listen stream: its notifications go to `raw`.
    async fn listen_target(
        &self,
        session: &Session,
        t: usize,
        filter: &ListenFilter,
        uris: Vec<(String, String)>,
        raw: &Outbox<Value>,
        lost: &CancellationToken,
    ) -> Opened {
        let target = self.target(t);
        let up = match self.upstream(session, t).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(target_name = %target.name, error = %e, "subscriptions/listen: target failed");
                return Opened {
                    failed: Some(e),
                    ..Opened::default()
                };
            }
        };
        let mut opened = Opened::default();
        let subscribe = |uris: Vec<(String, String)>| async move {
            let mut honored = Vec::new();
            for (exposed, up) in uris {
                let msg = jsonrpc::request(
                    Value::from(0),
                    "resources/subscribe",
                    json!({"uri": up.clone()}),
                );
                let r = self.call(session, t, msg, None, Forward::Plain).await;
                if r.get("result").is_some() {
                    honored.push((exposed, up));
                } else {
                    tracing::debug!(target_name = %target.name, "resources/subscribe refused upstream");
                }
            }
            honored
        };
        match &up {
            Upstream::Http(h) if h.is_modern() => {
                let ups: Vec<String> = uris.iter().map(|(_, u)| u.clone()).collect();
                let uid = self.0.shared.ids.fetch_add(1, Ordering::Relaxed);
                let msg = listen_request(uid, Some(filter), &ups);
                match open_upstream_listen(h, &msg, target.cfg.timeout()).await {
                    Ok((events, acked)) => {
                        opened.honored = uris
                            .into_iter()
                            .filter(|(_, u)| acked.contains(u))
                            .map(|(e, _)| e)
                            .collect();
                        opened.reader = Some(self.read_upstream(session, t, events, raw, lost));
                    }
                    Err(e) => {
                        tracing::warn!(target_name = %target.name, error = %e, "subscriptions/listen: target failed");
                        opened.failed = Some(e);
                    }
                }
            }
            Upstream::Http(h) => match h.open_stream().await {
                Ok(Some(resp)) => {
                    let events: Events = Box::pin(sse_events(resp.bytes_stream(), h.max_reply()));
                    opened.reader = Some(self.read_upstream(session, t, events, raw, lost));
                    opened.honored = subscribe(uris).await.into_iter().map(|(e, _)| e).collect();
                }
                _ => {
                    tracing::warn!(target_name = %target.name, "subscriptions/listen: the target has no standalone stream; skipped");
                }
            },
            Upstream::Sse(_) | Upstream::Stdio(_) => {
                opened.honored = subscribe(uris).await.into_iter().map(|(e, _)| e).collect();
            }
            // A REST service behind an OpenAPI document has no resources and its tool list
            // only changes with the document: nothing to listen to.
            Upstream::OpenApi(_) => {}
        }
        opened
    }

    /// Read an upstream stream of target `t` into `raw` (rewritten by the session); when it
    /// ends, so does the listen stream.
    fn read_upstream(
        &self,
        session: &Session,
        t: usize,
        mut events: Events,
        raw: &Outbox<Value>,
        lost: &CancellationToken,
    ) -> AbortOnDrop {
        let (session, raw, lost) = (session.clone(), raw.clone(), lost.clone());
        let name = self.target(t).name.clone();
        AbortOnDrop(tokio::spawn(async move {
            while let Some(ev) = events.next().await {
                let Ok(ev) = ev else {
                    break;
                };
                let Ok(m) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                match jsonrpc::kind(&m) {
                    // The upstream ended its listen stream.
                    Kind::Response => break,
                    _ if jsonrpc::method(&m) == ACKNOWLEDGED => {}
                    _ => session.deliver_from_upstream(t, m, Some(&raw)),
                }
            }
            tracing::info!(target_name = %name, "a target's stream under subscriptions/listen ended; ending the client's stream");
            lost.cancel();
        }))
    }

    /// The throwaway session of a listen stream (like a stateless request's).
    fn listen_session(&self, msg: &Value, principal: Option<Arc<str>>) -> Session {
        let meta = crate::jsonrpc::at(msg, &["params", "_meta"]);
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
        let init = json!({
            "protocolVersion": LATEST_VERSION,
            "capabilities": get("io.modelcontextprotocol/clientCapabilities").unwrap_or(json!({})),
            "clientInfo": get("io.modelcontextprotocol/clientInfo")
                .unwrap_or(json!({"name": "stateless-client", "version": "0"})),
        });
        let session = Session::new(
            String::new(),
            STATELESS_VERSION.into(),
            init,
            principal,
            self.0.naming.clone(),
            None,
        );
        // There is no `notifications/initialized` to wait for: a `per_session` child it spawns
        // is told at once, so it serves subscriptions and sends notifications.
        session.set_client_initialized();
        session
    }

    /// List `kind` through (every page) so the session's catalogue knows who owns what.
    async fn learn(&self, session: &Session, kind: ListKind) {
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let Ok(page) = self.list(session, kind, cursor.as_deref()).await else {
                return;
            };
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return,
            }
        }
    }

    /// Whether some items of `kind` may be hidden from the caller, so a `list_changed` must be
    /// checked against what the caller sees.
    fn needs_check(&self, kind: ListKind, access: &Option<Access>) -> bool {
        access.is_some()
            || (kind == ListKind::Tools && (self.0.allow.is_some() || !self.0.deny.is_empty()))
    }

    /// A fingerprint of list `kind` as the caller sees it (`None` when listing failed).
    async fn visible(
        &self,
        session: &Session,
        kind: ListKind,
        access: &Option<Access>,
    ) -> Option<u64> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let page = self.list(session, kind, cursor.as_deref()).await.ok()?;
            for item in page
                .get(kind.key())
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let seen = item
                    .get(kind.field())
                    .and_then(Value::as_str)
                    .is_some_and(|n| access.as_ref().is_none_or(|a| a.allows(kind.item(n))));
                if seen {
                    items.push(item.to_string());
                }
            }
            match page.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        items.sort();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        items.hash(&mut h);
        Some(h.finish())
    }

    /// `resources/subscribe` (`on`) or `resources/unsubscribe` of a session client: forwarded
    /// to a session-era target; held as a `subscriptions/listen` on a 2026-07-28 one.
    pub(super) async fn subscribe(
        &self,
        session: &Session,
        uri: String,
        on: bool,
        (id, msg): (Value, Value),
        stream: Option<Outbox<Value>>,
        access: &Option<Access>,
    ) -> Value {
        let allowed = access
            .as_ref()
            .is_none_or(|a| a.allows(Item::Resource(&uri)));
        let routed = if allowed {
            self.resolve_uri(session, &uri)
        } else {
            None
        };
        let Some((t, up_uri)) = routed else {
            return ProtocolError::Unknown(ItemKind::Resource, uri).reply(id);
        };
        let modern = match self.target(t).kind {
            TransportKind::Http => match self.upstream(session, t).await {
                Ok(Upstream::Http(h)) if h.is_modern() => Some(h),
                _ => None,
            },
            _ => None,
        };
        let Some(h) = modern else {
            return self
                .call_resource(session, uri, (id, msg), stream, Forward::Plain, access)
                .await;
        };
        let key = match session.0.managed.get() {
            Some(m) => m.key.to_string(),
            None if !session.id().is_empty() => session.id().to_string(),
            None => {
                return ProtocolError::InvalidRequest(
                    "a 2026-07-28 target takes resource subscriptions through subscriptions/listen"
                        .into(),
                )
                .reply(id);
            }
        };
        let held = (key, t);
        let mut uris = self
            .0
            .subs
            .held
            .get(&held)
            .map(|h| h.uris.clone())
            .unwrap_or_default();
        let changed = if on {
            if !uris.contains(&up_uri) && uris.len() >= MAX_SUBSCRIPTIONS {
                return ProtocolError::InvalidParams(
                    format!("at most {MAX_SUBSCRIPTIONS} resource subscriptions per target").into(),
                )
                .reply(id);
            }
            uris.insert(up_uri)
        } else {
            uris.remove(&up_uri)
        };
        if !changed {
            return jsonrpc::result(id, json!({}));
        }
        if uris.is_empty() {
            self.0.subs.held.remove(&held);
            return jsonrpc::result(id, json!({}));
        }
        // The new stream is open before the old one goes: an update in between may come
        // twice (a level trigger: harmless), none is lost.
        let generation = self.0.subs.next.fetch_add(1, Ordering::Relaxed);
        match self
            .hold(session, t, &h, &uris, (held.clone(), generation))
            .await
        {
            Ok(task) => {
                self.0.subs.held.insert(
                    held,
                    Held {
                        uris,
                        generation,
                        _task: task,
                    },
                );
                jsonrpc::result(id, json!({}))
            }
            Err(e) => ProtocolError::from(e).reply(id),
        }
    }

    /// Hold a `subscriptions/listen` for `uris` on 2026-07-28 target `t`; its updates go to
    /// the session's standalone stream while the session lives.
    async fn hold(
        &self,
        session: &Session,
        t: usize,
        h: &HttpUpstream,
        uris: &BTreeSet<String>,
        (key, generation): ((String, usize), u64),
    ) -> crate::error::Result<AbortOnDrop> {
        let uid = self.0.shared.ids.fetch_add(1, Ordering::Relaxed);
        let ups: Vec<String> = uris.iter().cloned().collect();
        let msg = listen_request(uid, None, &ups);
        let (mut events, _) = open_upstream_listen(h, &msg, self.target(t).cfg.timeout()).await?;
        let weak = Arc::downgrade(&session.0);
        let name = self.target(t).name.clone();
        let core = Arc::downgrade(&self.0);
        Ok(AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HELD_CHECK);
            loop {
                let ev = tokio::select! {
                    ev = events.next() => ev,
                    _ = tick.tick() => {
                        if weak.strong_count() == 0 {
                            break;
                        }
                        continue;
                    }
                };
                let Some(Ok(ev)) = ev else { break };
                let Ok(mut m) = serde_json::from_str::<Value>(&ev.data) else {
                    continue;
                };
                if jsonrpc::kind(&m) == Kind::Response {
                    break;
                }
                if jsonrpc::method(&m) != UPDATED {
                    continue;
                }
                if let Some(meta) = m
                    .pointer_mut("/params/_meta")
                    .and_then(Value::as_object_mut)
                {
                    meta.remove(SUBSCRIPTION_ID);
                }
                let Some(inner) = weak.upgrade() else { break };
                Session(inner).deliver_from_upstream(t, m, None);
            }
            // The session is gone or the target ended the stream: the holding goes (unless a
            // newer one replaced it). The client's next `resources/subscribe` opens a new one.
            tracing::debug!(target_name = %name, "held subscriptions/listen ended");
            if let Some(core) = core.upgrade() {
                core.subs
                    .held
                    .remove_if(&key, |_, h| h.generation == generation);
            }
        })))
    }

    /// Open `subscriptions/listen` streams of this backend (tests, admin).
    pub fn listen_streams(&self) -> usize {
        self.0.subs.listening.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{McpConfig, McpShared, Metrics};

    /// A quiet listen stream gets an SSE comment every 30 s (a target that cannot be reached
    /// is skipped; the stream is still acknowledged).
    #[tokio::test(start_paused = true)]
    async fn a_quiet_listen_stream_is_kept_alive() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg: McpConfig = serde_json::from_value(
            json!({"targets": [{"name": "a", "http": {"url": "http://127.0.0.1:9/mcp"}}]}),
        )
        .unwrap();
        let b = McpBackend::new(cfg, &McpShared::new(Metrics::unregistered()).unwrap()).unwrap();
        let msg = json!({"jsonrpc": "2.0", "id": 7, "method": LISTEN,
            "params": {"notifications": {"toolsListChanged": true}}});
        let req = Request::parse(msg);
        let crate::request::Method::Listen(filter) = &req.method else {
            panic!("not a listen request");
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        let resp = b
            .listen(filter.clone(), req, &headers, &RequestContext::default())
            .await;
        let mut body = resp.into_body().into_data_stream();
        let ack = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&ack).contains(ACKNOWLEDGED));
        let started = tokio::time::Instant::now();
        let ping = body.next().await.unwrap().unwrap();
        assert_eq!(&ping[..], b": ping\n\n");
        assert_eq!(started.elapsed().as_secs(), 30);
        assert_eq!(b.listen_streams(), 1);
        drop(body);
        tokio::time::sleep(PING).await;
        assert_eq!(b.listen_streams(), 0, "released when the client went away");
    }

    /// With `failure_mode: fail_closed`, a target that cannot be listened to fails the listen.
    #[tokio::test]
    async fn a_failed_target_fails_the_listen_when_fail_closed() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg: McpConfig = serde_json::from_value(json!({"failure_mode": "fail_closed",
            "targets": [{"name": "a", "http": {"url": "http://127.0.0.1:9/mcp"}}]}))
        .unwrap();
        let b = McpBackend::new(cfg, &McpShared::new(Metrics::unregistered()).unwrap()).unwrap();
        let msg = json!({"jsonrpc": "2.0", "id": 7, "method": LISTEN,
            "params": {"notifications": {"toolsListChanged": true}}});
        let req = Request::parse(msg);
        let crate::request::Method::Listen(filter) = &req.method else {
            panic!("not a listen request");
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, "text/event-stream".parse().unwrap());
        let resp = b
            .listen(filter.clone(), req, &headers, &RequestContext::default())
            .await;
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let reply: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["error"]["code"], -32002, "{reply}");
        assert_eq!(b.listen_streams(), 0);
    }
}
