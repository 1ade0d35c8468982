//! Streamable HTTP sessions through the sessions crate: creating the token on `initialize`,
//! resuming it on every request (rebuilding the upstream clients on first sight, e.g. after the
//! client moved from another replica), keeping the token's target entries current, the
//! standalone GET stream with its event log (`Last-Event-ID` replay, drain), POST streams
//! logged to the end (handed to the log on drain) and followed from the log on any replica,
//! and ending sessions whose owner replica is gone.
//!
//! Besides one entry per target (upstream session id, upstream URL), the token carries one
//! reserved entry, [`CLIENT_ENTRY`]: the route it belongs to (in `endpoint`) and the client's
//! negotiated version, capabilities and info (compact JSON in `upstream_session`), which a
//! replica needs to re-initialize an upstream for the client.

use crate::LockExt;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;

use crate::outbox::{Inbox, Mode, outbox};
use axum::body::Body;
use bytes::Bytes;
use http::{Response, header};
use serde_json::{Value, json};
use switchboard_sessions::{EventId, StreamKey, TargetEntry, sse};

use super::streamable::pipe_upstream_streams;
use super::{McpBackend, RequestContext, SSE_RETRY_MS};
use crate::config::{StdioSessions, TransportKind};
use crate::error::{ProtocolError, Rejected, refuse};
use crate::session::{GET_STREAM, LiveEvent, Managed, PostSlot, Session};
use crate::upstream::Upstream;
use crate::upstream::http::HttpUpstream;

/// Name of the token's reserved entry (not a valid target name: targets cannot contain `@`).
pub(crate) const CLIENT_ENTRY: &str = "@client";

/// The client's part of `initialize` that upstream re-initialization needs.
fn client_entry(route: &str, version: &str, init: &Value) -> TargetEntry {
    let mut p = json!({"protocolVersion": version});
    for k in ["capabilities", "clientInfo"] {
        if let Some(v) = init.get(k)
            && let Some(p) = p.as_object_mut()
        {
            p.insert(k.into(), v.clone());
        }
    }
    TargetEntry {
        name: CLIENT_ENTRY.into(),
        upstream_session: Some(p.to_string()),
        endpoint: Some(route.into()),
    }
}

impl McpBackend {
    fn target_url(&self, t: usize) -> Option<&str> {
        let cfg = &self.target(t).cfg;
        cfg.http.as_ref().map(|h| h.url.as_str())
    }

    /// The token entries of a session's current upstream connections.
    fn entries_of(&self, session: &Session) -> Vec<TargetEntry> {
        (0..self.0.targets.len())
            .map(|t| {
                let mut e = TargetEntry::new(self.target(t).name.as_ref());
                if let Some(Upstream::Http(h)) = session.upstream(t) {
                    e.upstream_session = h.session_id();
                    e.endpoint = Some(h.url().to_string());
                }
                e
            })
            .collect()
    }

    /// Seal the session of a finished `initialize`; on failure the session's upstreams are
    /// closed and the error answering the `initialize` is returned.
    pub(super) async fn create_managed(
        &self,
        session: &Session,
        route: &str,
    ) -> Result<(), ProtocolError> {
        let manager = self.0.shared.sessions();
        let mut entries = self.entries_of(session);
        entries.push(client_entry(
            route,
            &session.0.version,
            &session.0.init_params,
        ));
        let pinned = self
            .0
            .targets
            .iter()
            .any(|t| t.kind == TransportKind::Stdio);
        match manager
            .create(session.0.principal.as_deref(), entries, pinned)
            .await
        {
            Ok(record) => {
                let _ = session.0.managed.set(Managed::new(
                    record,
                    manager.clone(),
                    self.0.shared.appender(),
                ));
                Ok(())
            }
            Err(e) => {
                for u in session.take_upstreams() {
                    u.close().await;
                }
                Err(match e {
                    switchboard_sessions::Error::TooManySessions { .. } => {
                        ProtocolError::InvalidRequest(e.to_string().into())
                    }
                    switchboard_sessions::Error::TokenTooLarge { .. } => {
                        tracing::warn!(error = %e, "session state too large for a session id");
                        ProtocolError::InvalidParams("session state too large".into())
                    }
                    e => {
                        tracing::warn!(error = %e, "session store: creating a session failed");
                        ProtocolError::Gateway(refuse::store_unavailable())
                    }
                })
            }
        }
    }

    /// Open the client's `Mcp-Session-Id` and find (or rebuild) the session's local state.
    pub(super) async fn resume(
        &self,
        token: &str,
        ctx: &RequestContext,
    ) -> Result<Session, Rejected> {
        let manager = self.0.shared.sessions();
        let resumed = match manager.resume(token, ctx.principal.as_deref()).await {
            Ok(r) => r,
            Err(switchboard_sessions::Error::NotFound) => {
                return Err(refuse::session_not_found().into());
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store: resuming a session failed");
                return Err(refuse::store_unavailable().into());
            }
        };
        let record = resumed.session;
        if let Some(owner) = record.owned_elsewhere(manager.replica_id()) {
            // The stdio children this session talks to run on `owner`; a new child here would
            // not have the session's state. The client (or a sticky load balancer) must go back
            // there, or start a new session.
            tracing::debug!(session = %record.id, owner, "session pinned to another replica");
            return Err(ProtocolError::PinnedElsewhere(owner.to_string()).into());
        }
        let client = record.target(CLIENT_ENTRY);
        if client.and_then(|c| c.endpoint.as_deref()) != Some(&*ctx.route) {
            // A session of another route (tokens share the gateway's keys).
            return Err(refuse::session_not_found().into());
        }
        let key = record.id.to_string();
        if let Some(s) = self.0.sessions.get(&key, ctx.principal.as_deref()) {
            return Ok(s);
        }
        let init: Value = client
            .and_then(|c| c.upstream_session.as_deref())
            .and_then(|p| serde_json::from_str(p).ok())
            .unwrap_or_else(|| json!({}));
        let version = init
            .get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(super::LATEST_VERSION)
            .to_string();
        tracing::debug!(session = %record.id, how = ?resumed.how, "rebuilding session from its token");
        let targets: Vec<Option<TargetEntry>> = self
            .0
            .targets
            .iter()
            .map(|t| record.target(&t.name).cloned())
            .collect();
        let record_id = record.id;
        let session = Session::new(
            key,
            version,
            init,
            ctx.principal.clone(),
            self.0.naming.clone(),
            Some(Managed::new(
                record,
                manager.clone(),
                self.0.shared.appender(),
            )),
        );
        // Its client initialized long ago (on this replica or in an earlier backend).
        session.set_client_initialized();
        for (t, entry) in targets.into_iter().enumerate() {
            let target = &self.target(t);
            match target.kind {
                TransportKind::Stdio => {
                    if let Some(p) = &target.stdio {
                        session.set_upstream(t, Upstream::Stdio(p.clone()));
                    } else if let Some(cfg) = &target.cfg.stdio
                        && let Some(p) = self.0.shared.stdio.kept(record_id, &target.name, cfg)
                    {
                        // The session's own child, kept across the reload that dropped the
                        // old local state. Without one (gateway restarted, config changed), a
                        // new child starts on first use.
                        session.set_upstream(t, Upstream::Stdio(p));
                    }
                }
                TransportKind::Http => {
                    let url = self.target_url(t).unwrap_or_default();
                    // Reuse the upstream session unless the target's URL changed since.
                    if let Some(e) = entry
                        && let Some(sid) = e.upstream_session
                        && e.endpoint.as_deref() == Some(url)
                    {
                        let h = HttpUpstream::resume(
                            target.name.clone(),
                            url.to_string(),
                            target.headers.clone(),
                            self.0.shared.client.clone(),
                            self.0.shared.ids.clone(),
                            session.0.init_params.clone(),
                            sid,
                            self.0.cfg.max_reply_bytes(),
                        );
                        h.set_tool_headers(target.tool_headers.clone());
                        session.set_upstream(t, Upstream::Http(h));
                    }
                    // Otherwise connected on first use.
                }
                // A legacy SSE connection cannot be resumed: a new one opens on first use.
                TransportKind::Sse | TransportKind::OpenApi => {}
            }
        }
        let kept = self.0.sessions.insert_or_get(session.clone());
        if Arc::ptr_eq(&kept.0, &session.0) {
            // Adopted children report to this local state from now on (only the copy that won
            // the race to the registry may claim them).
            for t in 0..self.0.targets.len() {
                if let Some(Upstream::Stdio(p)) = kept.upstream(t)
                    && p.is_per_session()
                {
                    p.set_owner(kept.sink(t));
                }
            }
        }
        Ok(kept)
    }

    /// A session whose owner replica is gone (not registered, unreachable). When every stdio
    /// target of the route is `shared`, nothing of the session was only there: this replica
    /// adopts it (`Ok`: serve the request here; HTTP targets resume their upstream sessions,
    /// stdio targets use this replica's children). A `per_session` child's state went with
    /// the owner: the session ends on every replica (revoked in the store) and the error tells
    /// the client to initialize a new one.
    pub async fn owner_gone(
        &self,
        token: &str,
        ctx: &RequestContext,
    ) -> Result<(), switchboard_core::Error> {
        let manager = self.0.shared.sessions();
        match manager.resume(token, ctx.principal.as_deref()).await {
            Ok(resumed) => {
                let record = resumed.session;
                let route = record
                    .target(CLIENT_ENTRY)
                    .and_then(|c| c.endpoint.as_deref());
                if route != Some(&*ctx.route) {
                    return Err(refuse::session_not_found());
                }
                let movable = self.0.targets.iter().all(|t| {
                    t.cfg
                        .stdio
                        .as_ref()
                        .is_none_or(|s| s.sessions == StdioSessions::Shared)
                });
                let mut record = record;
                if movable {
                    let gone = record.replica.clone();
                    return match manager.adopt(&mut record).await {
                        Ok(()) => {
                            tracing::info!(session = %record.id, owner = ?gone, "session adopted: the replica that owned it is gone");
                            Ok(())
                        }
                        Err(switchboard_sessions::Error::NotFound) => {
                            Err(refuse::session_not_found())
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "session store: adopting a session failed");
                            Err(refuse::store_unavailable())
                        }
                    };
                }
                if let Err(e) = manager.revoke(&record).await {
                    tracing::warn!(error = %e, "session store: ending a session failed");
                    return Err(refuse::store_unavailable());
                }
                tracing::info!(session = %record.id, owner = ?record.replica, "session ended: the replica running its stdio targets is gone");
                Err(refuse::owner_gone())
            }
            Err(switchboard_sessions::Error::NotFound) => Err(refuse::session_not_found()),
            Err(e) => {
                tracing::warn!(error = %e, "session store: resuming a session failed");
                Err(refuse::store_unavailable())
            }
        }
    }

    /// Record upstream session ids learned or changed since the token was sealed (a lazy
    /// connect, an upstream that forgot the session and was re-initialized), so that a replica
    /// rebuilding the session reuses the live upstream sessions.
    pub(super) async fn sync_targets(&self, session: &Session) {
        let Some(m) = session.0.managed.get() else {
            return;
        };
        // Most calls learn no new upstream session: look first, without copying the record
        // or building every target's entry (issue 19).
        let learned = (0..self.0.targets.len()).any(|t| {
            let Some(Upstream::Http(h)) = session.upstream(t) else {
                return false;
            };
            let Some(sid) = h.session_id() else {
                return false;
            };
            let record = m.record.locked();
            let known = record.target(self.target(t).name.as_ref());
            known.and_then(|k| k.upstream_session.as_deref()) != Some(sid.as_str())
        });
        if !learned {
            return;
        }
        let current = self.entries_of(session);
        let mut record = m.record();
        for e in current {
            if e.upstream_session.is_none() {
                continue;
            }
            let known = record.target(&e.name);
            if known.is_some_and(|k| k.upstream_session == e.upstream_session) {
                continue;
            }
            if let Err(err) = m.manager.update_target(&mut record, e).await {
                tracing::debug!(error = %err, "session store: recording an upstream session failed");
                return;
            }
        }
        *m.record.locked() = record;
    }

    /// The GET stream of a managed session: replay after `Last-Event-ID` (or a priming event
    /// with a resumable id), then live events as the appender logs them; on drain a `retry:`
    /// hint, then the end, so the client reconnects (elsewhere) and resumes. A `Last-Event-ID`
    /// of a POST response stream resumes that stream instead: its logged events after the id,
    /// then the rest of it: live when the request is being answered here, else by following
    /// the shared log to its end marker (`log_stream`).
    pub(super) async fn standalone_stream(
        &self,
        session: Session,
        last_event_id: Option<String>,
    ) -> switchboard_core::Result<Response<Body>> {
        let Some(m) = session.0.managed.get() else {
            return Err(refuse::session_not_found());
        };
        let manager = m.manager.clone();
        let record = m.record();
        let guard = manager.activity(&record);
        let last: Option<EventId> = last_event_id
            .as_deref()
            .and_then(|l| l.trim().parse().ok())
            .filter(|l: &EventId| l.stream.session == m.key);
        let post = last
            .as_ref()
            .filter(|l| &*l.stream.name != GET_STREAM)
            .map(|l| l.stream.name.clone());
        let kind = if post.is_some() {
            "request"
        } else {
            "standalone"
        };
        let (tx, rx) = outbox::<LiveEvent>(&self.bound(), Mode::Cut, kind);
        // Attach before reading the log: an event logged in between is then both replayed and
        // live, and the live copy is skipped by its sequence number; none is lost.
        match &post {
            None => session.attach_live(tx),
            Some(name) => {
                let slot = m.posts.locked().get(name).cloned();
                match slot {
                    Some(slot) => *slot.locked() = Some(tx),
                    // Answered already, or answered on another replica: the log is all there
                    // is, followed to its end.
                    None => {
                        drop(tx);
                        if let (Some(last), Some(lei)) = (last.clone(), last_event_id.as_deref()) {
                            return log_stream(manager, record, last, lei, guard).await;
                        }
                    }
                }
            }
        }
        let mut head: Vec<Bytes> = Vec::new();
        let mut replayed_to = 0u64;
        if let (Some(last), Some(lei)) = (&last, last_event_id.as_deref()) {
            replayed_to = last.seq;
            match manager.replay(&record, lei).await {
                Ok(replay) => {
                    for (id, data) in replay.events {
                        replayed_to = replayed_to.max(id.seq);
                        // Empty payloads are priming events: positions, not messages.
                        if !data.is_empty() && data != switchboard_sessions::END_MARKER {
                            let text = String::from_utf8_lossy(&data);
                            head.push(sse::event(Some(&id.to_string()), Some("message"), &text));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session store: replay failed");
                    return Err(refuse::store_unavailable());
                }
            }
        } else if crate::revision::primes_streams(&session.0.version) {
            // SEP-1699 priming event: an id to resume from even before the first message.
            match manager.append_event(&m.get_stream(), Bytes::new()).await {
                Ok(id) => head.push(Bytes::from(format!(
                    "id: {id}\nretry: {SSE_RETRY_MS}\ndata: \n\n"
                ))),
                Err(e) => tracing::warn!(error = %e, "session event log: priming failed"),
            }
        }
        let relay = if post.is_none() {
            // Drained by this stream's own loop: when the client does not read, it fills, and
            // the upstreams' messages go to the session's (logged) standalone path directly.
            let (up_tx, up_rx) = outbox::<Value>(&self.bound(), Mode::Spill, "relay");
            pipe_upstream_streams(&session, &up_tx);
            Some(RelayUpstream {
                session: session.clone(),
                rx: up_rx,
            })
        } else {
            None
        };
        let state = StreamState {
            rx,
            relay,
            draining: manager.draining(),
            replayed_to,
            _guard: guard,
            done: false,
        };
        let live = futures::stream::unfold(state, |mut st| async move {
            if st.done {
                return None;
            }
            loop {
                let relayed = async {
                    match &mut st.relay {
                        Some(r) => r.rx.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    drained = async { st.draining.wait_for(|d| *d).await.is_ok() } => {
                        st.done = true;
                        if drained {
                            let retry = sse::retry(std::time::Duration::from_millis(SSE_RETRY_MS));
                            return Some((Ok::<_, Infallible>(retry), st));
                        }
                        return None;
                    }
                    ev = st.rx.recv() => match ev {
                        Some((seq, frame)) => {
                            if seq != 0 && seq <= st.replayed_to {
                                continue;
                            }
                            return Some((Ok(frame), st));
                        }
                        // Replaced by a newer stream, or the POST was answered.
                        None => return None,
                    },
                    Some(msg) = relayed => {
                        // Messages of the upstreams' own GET streams take the logged path.
                        if let Some(r) = &st.relay {
                            r.session.send_standalone(msg);
                        }
                    }
                }
            }
        });
        let head = futures::stream::iter(head.into_iter().map(Ok::<_, Infallible>));
        let mut r = sse_body(head.chain(live));
        if let Ok(v) = http::HeaderValue::from_str(&record.token) {
            r.headers_mut().insert("mcp-session-id", v);
        }
        Ok(r)
    }

    /// A managed session's POST answer whose messages are all there (the call has ended):
    /// logged as [`logged_post_stream`](Self::logged_post_stream) logs them, priming event
    /// and end marker included, then sent as one body. No reader can be following the log
    /// before the client has an id from it, so there is no live slot or liveness mark.
    pub(super) async fn logged_post_answer(
        &self,
        session: Session,
        msgs: Vec<Value>,
        priming: bool,
    ) -> Response<Body> {
        let Some(m) = session.0.managed.get() else {
            return super::streamable::sse_response(
                session,
                None,
                {
                    let (tx, rx) = outbox::<Value>(&self.bound(), Mode::Cut, "request");
                    for msg in msgs {
                        let _ = tx.send(msg);
                    }
                    rx
                },
                priming,
            );
        };
        let id = rand::random::<u64>() & 0xffff_ffff_ffff;
        let key = StreamKey::new(m.key, post_stream(id));
        let manager = &m.manager;
        let _producing = manager.producer();
        let mut out = bytes::BytesMut::new();
        if priming {
            match manager.append_event(&key, Bytes::new()).await {
                Ok(id) => out.extend_from_slice(
                    format!("id: {id}\nretry: {SSE_RETRY_MS}\ndata: \n\n").as_bytes(),
                ),
                Err(e) => tracing::warn!(error = %e, "session event log: priming failed"),
            }
        }
        for msg in msgs {
            let (_, ev) = log(manager, &key, msg).await;
            out.extend_from_slice(&ev);
        }
        if let Err(e) = manager
            .append_event(&key, Bytes::from_static(switchboard_sessions::END_MARKER))
            .await
        {
            tracing::debug!(error = %e, "session event log: ending a stream failed");
        }
        super::streamable::sse_full(out.freeze())
    }

    /// A POST answered as SSE on a managed session: every event is appended to the request's
    /// own log stream (`post/…`) before it is sent, by a task that lives as long as the request
    /// is being answered, so a client whose POST stream broke can resume it with a GET and
    /// `Last-Event-ID` (here, or from the log on another replica). The log ends with
    /// [`END_MARKER`](switchboard_sessions::END_MARKER) once the answer is complete, and the
    /// task keeps a liveness mark while it runs, so a reader elsewhere follows it to the end.
    /// With a shared store, a drain lets the client go (a `retry:` hint, once it holds an id)
    /// while the task goes on logging: the call finishes into the log.
    pub(super) fn logged_post_stream(
        &self,
        session: Session,
        first: Option<Value>,
        mut rx: Inbox<Value>,
        priming: bool,
    ) -> Response<Body> {
        let Some(m) = session.0.managed.get() else {
            return super::streamable::sse_response(session, first, rx, priming);
        };
        // 48 random bits, as the first 12 hex digits of a v4 UUID were, from the thread's
        // generator (a UUID asked the kernel for every call).
        let id = rand::random::<u64>() & 0xffff_ffff_ffff;
        let name: Arc<str> = post_stream(id).into();
        let key = StreamKey::new(m.key, name.clone());
        let (out_tx, out_rx) = outbox::<LiveEvent>(&self.bound(), Mode::Cut, "request");
        let slot: PostSlot = Arc::new(Mutex::new(Some(out_tx)));
        m.posts.locked().insert(name.clone(), slot.clone());
        let manager = m.manager.clone();
        let s2 = session.clone();
        // With a shared store the rest of a call can be handed to the log on drain; with the
        // memory store nobody else could read it, so the stream runs to its end here.
        let handoff = manager.store().is_shared();
        let draining = manager.draining();
        tokio::spawn(async move {
            // Shutdown waits for this (within its grace period): after a drain it is the
            // only writer of the call's remaining events.
            let _producing = manager.producer();
            let send = |ev: LiveEvent| {
                let tx = slot.locked().clone();
                if let Some(tx) = tx {
                    let _ = tx.send(ev);
                }
            };
            // The liveness mark is for readers on other replicas; with a store of this
            // process alone, a reader here finds the stream's slot until the end marker is
            // logged, so nothing reads the mark and it is neither set nor renewed.
            if handoff && let Err(e) = manager.mark_stream_live(&key).await {
                tracing::debug!(error = %e, "session event log: marking a stream live failed");
            }
            if priming {
                match manager.append_event(&key, Bytes::new()).await {
                    Ok(id) => send((
                        id.seq,
                        Bytes::from(format!("id: {id}\nretry: {SSE_RETRY_MS}\ndata: \n\n")),
                    )),
                    Err(e) => tracing::warn!(error = %e, "session event log: priming failed"),
                }
            }
            let mut renew = handoff.then(|| {
                tokio::time::interval_at(
                    tokio::time::Instant::now()
                        + switchboard_sessions::manager::STREAM_LIVE_TTL / 3,
                    switchboard_sessions::manager::STREAM_LIVE_TTL / 3,
                )
            });
            let mut first = first;
            loop {
                if let Some(msg) = first.take() {
                    send(log(&manager, &key, msg).await);
                    continue;
                }
                let renewed = async {
                    match &mut renew {
                        Some(r) => {
                            r.tick().await;
                        }
                        None => std::future::pending().await,
                    }
                };
                let msg = tokio::select! {
                    msg = rx.recv() => msg,
                    () = renewed => {
                        if let Err(e) = manager.mark_stream_live(&key).await {
                            tracing::debug!(error = %e, "session event log: marking a stream live failed");
                        }
                        continue;
                    }
                };
                let Some(msg) = msg else { break };
                send(log(&manager, &key, msg).await);
            }
            // The end marker: a reader following this log elsewhere stops here.
            if let Err(e) = manager
                .append_event(&key, Bytes::from_static(switchboard_sessions::END_MARKER))
                .await
            {
                tracing::debug!(error = %e, "session event log: ending a stream failed");
            }
            if let Some(m) = s2.0.managed.get() {
                m.posts.locked().remove(&name);
            }
        });
        // (events, drain signal, ended, an event with an id was sent)
        let body = futures::stream::unfold(
            (out_rx, draining, false, false),
            move |(mut rx, mut draining, done, resumable)| async move {
                if done {
                    return None;
                }
                // Handed over only once the client holds an id to resume from.
                let drained = async {
                    if handoff && resumable {
                        let _ = draining.wait_for(|d| *d).await;
                    } else {
                        std::future::pending::<()>().await;
                    }
                };
                tokio::select! {
                    ev = rx.recv() => ev.map(|(seq, frame)| {
                        (Ok::<_, Infallible>(frame), (rx, draining, false, resumable || seq != 0))
                    }),
                    () = drained => {
                        // Handed to the log: the client resumes (anywhere) with a GET and
                        // the last id it saw; the task above keeps logging the rest.
                        let retry = sse::retry(std::time::Duration::from_millis(SSE_RETRY_MS));
                        Some((Ok(retry), (rx, draining, true, resumable)))
                    }
                }
            },
        );
        sse_body(body)
    }
}

impl McpBackend {
    /// A GET resuming a POST's answer (`Last-Event-ID` of a `post/…` stream) of a session
    /// whose stdio targets run on another replica: served from the shared log here, followed
    /// to its end, whether or not the owner is still there (it may be draining, or gone).
    /// `None` when the request is not such a resumption.
    pub(super) async fn resume_post_elsewhere(
        &self,
        token: &str,
        last_event_id: Option<&str>,
        ctx: &RequestContext,
    ) -> Option<switchboard_core::Result<Response<Body>>> {
        let lei = last_event_id?;
        let last: EventId = lei.trim().parse().ok()?;
        if &*last.stream.name == GET_STREAM {
            return None;
        }
        let manager = self.0.shared.sessions();
        manager.owner_elsewhere(token).await?;
        let record = match manager.resume(token, ctx.principal.as_deref()).await {
            Ok(r) => r.session,
            Err(switchboard_sessions::Error::NotFound) => {
                return Some(Err(refuse::session_not_found()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store: resuming a session failed");
                return Some(Err(refuse::store_unavailable()));
            }
        };
        let route = record
            .target(CLIENT_ENTRY)
            .and_then(|c| c.endpoint.as_deref());
        if route != Some(&*ctx.route) || last.stream.session != record.id {
            return Some(Err(refuse::session_not_found()));
        }
        let guard = manager.activity(&record);
        Some(log_stream(manager.clone(), record, last, lei, guard).await)
    }
}

/// Appends one message of a POST stream to its log: the event to send, with the id the log
/// gave it (or unlogged, seq 0, when the store failed).
/// The name of a POST's log stream: `post/` and 12 hex digits of `id` (what
/// `format!("post/{id:012x}")` gives for a 48-bit id, without the formatting machinery).
fn post_stream(id: u64) -> String {
    let mut name = String::with_capacity(17);
    name.push_str("post/");
    for shift in (0..12).rev() {
        let digit = ((id >> (shift * 4)) & 0xf) as u32;
        name.push(char::from_digit(digit, 16).unwrap_or('0'));
    }
    name
}

async fn log(
    manager: &switchboard_sessions::SessionManager,
    key: &StreamKey,
    msg: Value,
) -> LiveEvent {
    // Straight into a buffer: `Value`'s `Display` goes through the formatting machinery, at
    // twice the cost. A `Value` always serializes (its keys are strings).
    let data = Bytes::from(serde_json::to_vec(&msg).unwrap_or_default());
    let logged = manager.append_event(key, data.clone()).await;
    // Invariant: serde_json writes UTF-8.
    let text = std::str::from_utf8(&data).unwrap_or_default();
    match logged {
        Ok(id) => (id.seq, sse::event(Some(&id.text()), Some("message"), text)),
        Err(e) => {
            tracing::warn!(error = %e, "session event log: append failed; sending unlogged");
            (0, sse::event(None, Some("message"), text))
        }
    }
}

/// How often a reader following a log another replica produces looks for new events.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a followed log may stay quiet before the reader checks that its producer lives.
const FOLLOW_QUIET: std::time::Duration = std::time::Duration::from_secs(1);

/// The answer to a GET resuming a POST stream from its log alone: the events after `last`,
/// then each new one as its producer (on this replica or another) logs it, until the stream's
/// end marker. It ends early when the producer is gone without ending it (its liveness mark
/// ran out), and with a `retry:` hint when this replica drains.
async fn log_stream(
    manager: switchboard_sessions::SessionManager,
    record: switchboard_sessions::Session,
    last: EventId,
    lei: &str,
    guard: switchboard_sessions::ActivityGuard,
) -> switchboard_core::Result<Response<Body>> {
    // The first read answers now, so a store failure is a 503 rather than an empty stream.
    let first = match manager.replay(&record, lei).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "session store: replay failed");
            return Err(refuse::store_unavailable());
        }
    };
    struct Follow {
        manager: switchboard_sessions::SessionManager,
        record: switchboard_sessions::Session,
        last: EventId,
        pending: Option<switchboard_sessions::Replay>,
        quiet_since: tokio::time::Instant,
        draining: tokio::sync::watch::Receiver<bool>,
        done: bool,
        _guard: switchboard_sessions::ActivityGuard,
    }
    let token = record.token.clone();
    let st = Follow {
        draining: manager.draining(),
        manager,
        record,
        last,
        pending: Some(first),
        quiet_since: tokio::time::Instant::now(),
        done: false,
        _guard: guard,
    };
    let body = futures::stream::unfold(st, |mut st| async move {
        loop {
            if st.done {
                return None;
            }
            let replay = match st.pending.take() {
                Some(r) => r,
                None => {
                    let drained = tokio::select! {
                        _ = st.draining.wait_for(|d| *d) => true,
                        () = tokio::time::sleep(FOLLOW_POLL) => false,
                    };
                    if drained {
                        st.done = true;
                        let retry = sse::retry(std::time::Duration::from_millis(SSE_RETRY_MS));
                        return Some((Ok::<_, Infallible>(retry), st));
                    }
                    match st.manager.replay(&st.record, &st.last.to_string()).await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::warn!(error = %e, "session store: following a stream's log failed");
                            return None;
                        }
                    }
                }
            };
            let mut out = Vec::new();
            for (id, data) in replay.events {
                st.last.seq = st.last.seq.max(id.seq);
                if data == switchboard_sessions::END_MARKER {
                    st.done = true;
                    break;
                }
                if !data.is_empty() {
                    let text = String::from_utf8_lossy(&data);
                    out.extend_from_slice(&sse::event(
                        Some(&id.to_string()),
                        Some("message"),
                        &text,
                    ));
                }
            }
            if !out.is_empty() {
                st.quiet_since = tokio::time::Instant::now();
                return Some((Ok(Bytes::from(out)), st));
            }
            if st.done {
                return None;
            }
            if st.quiet_since.elapsed() >= FOLLOW_QUIET {
                st.quiet_since = tokio::time::Instant::now();
                let stream = st.last.stream.clone();
                match st.manager.stream_live(&stream).await {
                    Ok(true) => {}
                    Ok(false) => {
                        // One last look: the end marker is logged before the mark runs out.
                        st.pending = st
                            .manager
                            .replay(&st.record, &st.last.to_string())
                            .await
                            .ok();
                        if st.pending.as_ref().is_none_or(|r| r.events.is_empty()) {
                            tracing::debug!(stream = %stream.name, "followed stream's producer is gone");
                            return None;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "session store: following a stream's log failed");
                        return None;
                    }
                }
            }
        }
    });
    let mut r = sse_body(body);
    if let Ok(v) = http::HeaderValue::from_str(&token) {
        r.headers_mut().insert("mcp-session-id", v);
    }
    Ok(r)
}

fn sse_body<S>(stream: S) -> Response<Body>
where
    S: futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_default()
}

/// Messages of the upstreams' standalone streams, re-sent through the session's logged path.
struct RelayUpstream {
    session: Session,
    rx: Inbox<Value>,
}

struct StreamState {
    rx: Inbox<LiveEvent>,
    /// For the standalone stream: the upstreams' own GET streams.
    relay: Option<RelayUpstream>,
    draining: tokio::sync::watch::Receiver<bool>,
    replayed_to: u64,
    _guard: switchboard_sessions::ActivityGuard,
    done: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_post_stream_is_named_as_format_named_it() {
        for id in [
            0,
            1,
            0xabc,
            0xffff_ffff_ffff,
            rand::random::<u64>() & 0xffff_ffff_ffff,
        ] {
            assert_eq!(super::post_stream(id), format!("post/{id:012x}"));
        }
    }
}
