//! stdio targets. In `shared` mode (the default), one child process per target, shared by all
//! downstream sessions and kept across config reloads while its config is unchanged
//! ([`StdioPool::get`]). In `per_session` mode, one child per downstream session, initialized
//! with that client's own parameters and owned by it: every message the child sends that no
//! in-flight request claims goes to its owner, and it is killed when the session ends
//! ([`StdioProcess::for_session`], [`StdioPool::keep`]). Either way a supervisor task spawns the
//! child, initializes it, logs its stderr and restarts it with backoff when it dies.

use crate::LockExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, BufReader};

use super::frames::{self, Read};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Pending, PendingMap, Recipient, Sink, await_reply};
use crate::config::StdioTarget;
use crate::error::{Error, ProtocolError, Result};
use crate::jsonrpc;
use switchboard_sessions::{ReleaseSubscription, SessionId, SessionManager};

/// Children by config, shared across backends and reloads. Kept by the gateway.
#[derive(Clone, Default)]
pub struct StdioPool {
    inner: Arc<DashMap<String, Weak<Handle>>>,
    /// `per_session` children of Streamable HTTP sessions, by session: held here (not only by
    /// the session's local state) so they outlive a config reload, which rebuilds the local
    /// state from the token, and end with the session however it ends.
    sessions: Arc<DashMap<SessionId, Vec<Kept>>>,
    /// Ends the children of released sessions; registered on first use.
    release: Arc<std::sync::OnceLock<ReleaseSubscription>>,
}

/// A `per_session` child kept for a session.
struct Kept {
    key: String,
    process: StdioProcess,
}

impl std::fmt::Debug for StdioPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioPool")
            .field("children", &self.inner.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

fn pool_key(name: &str, cfg: &StdioTarget) -> String {
    format!("{name}\0{}", serde_json::to_string(cfg).unwrap_or_default())
}

impl StdioPool {
    /// The running child for this config, or a newly spawned one.
    pub(crate) fn get(
        &self,
        name: &str,
        cfg: &StdioTarget,
        ids: Arc<AtomicU64>,
        max_line: usize,
    ) -> StdioProcess {
        let mut slot = self.inner.entry(pool_key(name, cfg)).or_default();
        if let Some(handle) = slot.upgrade() {
            return StdioProcess(handle);
        }
        let p = StdioProcess::spawn(name, cfg.clone(), ids, None, max_line);
        *slot = Arc::downgrade(&p.0);
        p
    }

    /// Keep `process`, the `per_session` child of target `name` for `session`, until the
    /// session is released by `manager` (expired, revoked, or idle here while alive elsewhere).
    /// A child kept before for the same target name under another config is ended.
    pub(crate) fn keep(
        &self,
        manager: &SessionManager,
        session: SessionId,
        name: &str,
        cfg: &StdioTarget,
        process: StdioProcess,
    ) {
        self.release.get_or_init(|| {
            let sessions = Arc::downgrade(&self.sessions);
            manager.on_release(move |r| {
                if let Some(sessions) = sessions.upgrade() {
                    end_kept(&sessions, r.id);
                }
            })
        });
        let key = pool_key(name, cfg);
        let prefix = format!("{name}\0");
        let mut kept = self.sessions.entry(session).or_default();
        kept.retain(|k| {
            if Arc::ptr_eq(&k.process.0, &process.0) {
                return false;
            }
            if k.key.starts_with(&prefix) {
                k.process.close();
                return false;
            }
            true
        });
        kept.push(Kept { key, process });
    }

    /// The kept `per_session` child of target `name` for `session`, if it still runs.
    pub(crate) fn kept(
        &self,
        session: SessionId,
        name: &str,
        cfg: &StdioTarget,
    ) -> Option<StdioProcess> {
        let key = pool_key(name, cfg);
        let kept = self.sessions.get(&session)?;
        kept.iter()
            .find(|k| k.key == key && !k.process.is_closed())
            .map(|k| k.process.clone())
    }
}

fn end_kept(sessions: &DashMap<SessionId, Vec<Kept>>, session: SessionId) {
    if let Some((_, kept)) = sessions.remove(&session) {
        for k in kept {
            k.process.close();
        }
    }
}

/// Where a target's child is in its life.
#[derive(Clone)]
enum Phase {
    /// Being spawned and initialized (first start, or a restart after it worked).
    Starting,
    /// Up and initialized: the child's initialize result.
    Ready(Value),
    /// The last attempt never came up; retries go on with backoff.
    Failing,
    /// Closed for good (its session ended); never restarted.
    Stopped,
}

/// A handle to a supervised child; the child is killed when the last handle goes.
#[derive(Clone)]
pub(crate) struct StdioProcess(Arc<Handle>);

/// What the handles share. The supervisor holds the [`Inner`] only, so dropping the last
/// handle cancels it (and kills the child) even while the child runs.
pub(crate) struct Handle {
    inner: Arc<Inner>,
    _guard: DropGuard,
}

impl std::ops::Deref for Handle {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

pub(crate) struct Inner {
    /// Longest line read from the child (`mcp.max_reply_bytes`); longer ones are dropped.
    max_line: usize,
    name: Arc<str>,
    ids: Arc<AtomicU64>,
    pending: PendingMap,
    writer: Mutex<Option<mpsc::UnboundedSender<String>>>,
    ready: watch::Sender<Phase>,
    pid: Mutex<Option<u32>>,
    /// Receive what a shared child sends that no request claims (`list_changed`,
    /// `resources/updated`), held weakly.
    subscribers: Mutex<Vec<Weak<dyn Sink>>>,
    /// Set for a `per_session` child.
    owned: Option<Owned>,
    /// The running child was sent `notifications/initialized` (reset for each child).
    initialized_sent: AtomicBool,
    cancel: CancellationToken,
}

/// What a `per_session` child knows of its session.
struct Owned {
    /// The client's own `initialize` params, sent to the child as they are.
    init: Value,
    /// Receives every message no in-flight request claims (server requests included).
    owner: Mutex<Arc<dyn Sink>>,
    /// The client sent `notifications/initialized`; the child gets its own once it answered
    /// `initialize`, so it does not start talking (e.g. ask for roots) before the client is
    /// ready to listen.
    client_initialized: AtomicBool,
}

impl Inner {
    fn unavailable(&self, reason: &str) -> Error {
        Error::Unavailable {
            target: self.name.to_string(),
            reason: reason.into(),
        }
    }

    fn send(&self, msg: Value) -> Result<()> {
        let line = serde_json::to_string(&msg).unwrap_or_default();
        let w = self.writer.locked();
        match w.as_ref() {
            Some(w) if w.send(line).is_ok() => Ok(()),
            _ => Err(self.unavailable("not running")),
        }
    }

    /// Send `notifications/initialized` to the running child, once per child.
    fn send_initialized(&self) {
        if !self.initialized_sent.swap(true, Ordering::SeqCst) {
            let _ = self.send(jsonrpc::notification(
                "notifications/initialized",
                json!({}),
            ));
        }
    }
}

impl StdioProcess {
    fn spawn(
        name: &str,
        cfg: StdioTarget,
        ids: Arc<AtomicU64>,
        owned: Option<Owned>,
        max_line: usize,
    ) -> Self {
        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            max_line,
            name: name.into(),
            ids,
            pending: PendingMap::default(),
            writer: Mutex::new(None),
            ready: watch::channel(Phase::Starting).0,
            pid: Mutex::new(None),
            subscribers: Mutex::new(Vec::new()),
            owned,
            initialized_sent: AtomicBool::new(false),
            cancel: cancel.clone(),
        });
        tokio::spawn(supervise(inner.clone(), cfg, cancel.clone()));
        StdioProcess(Arc::new(Handle {
            inner,
            _guard: cancel.drop_guard(),
        }))
    }

    /// Spawn a `per_session` child: initialized with the client's `init` params, everything
    /// unclaimed goes to `owner`. `client_initialized`: the client already sent
    /// `notifications/initialized` (a session resumed or used later), so the child gets its
    /// own right after `initialize`. The child dies with the last handle or [`close`](Self::close).
    pub fn for_session(
        name: &str,
        cfg: &StdioTarget,
        ids: Arc<AtomicU64>,
        init: Value,
        owner: Arc<dyn Sink>,
        client_initialized: bool,
        max_line: usize,
    ) -> Self {
        Self::spawn(
            name,
            cfg.clone(),
            ids,
            Some(Owned {
                init,
                owner: Mutex::new(owner),
                client_initialized: AtomicBool::new(client_initialized),
            }),
            max_line,
        )
    }

    /// Whether this is a `per_session` child.
    pub fn is_per_session(&self) -> bool {
        self.0.owned.is_some()
    }

    /// Point a `per_session` child at its session's current local state (rebuilt after a
    /// config reload).
    pub fn set_owner(&self, owner: Arc<dyn Sink>) {
        if let Some(o) = &self.0.owned {
            *o.owner.locked() = owner;
        }
    }

    /// The client sent `notifications/initialized`: pass it on to a `per_session` child (now,
    /// or as soon as the child answered `initialize`).
    pub fn client_initialized(&self) {
        if let Some(o) = &self.0.owned {
            o.client_initialized.store(true, Ordering::SeqCst);
            if matches!(&*self.0.ready.borrow(), Phase::Ready(_)) {
                self.0.send_initialized();
            }
        }
    }

    /// Kill a `per_session` child for good (its session ended); a shared child stays.
    pub fn close(&self) {
        if self.is_per_session() {
            self.0.cancel.cancel();
            self.0.ready.send_replace(Phase::Stopped);
        }
    }

    /// Whether the child was closed for good.
    pub fn is_closed(&self) -> bool {
        self.0.cancel.is_cancelled()
    }

    /// Subscribe `sink` to the messages of a shared child that no request claims (held
    /// weakly: dropping it unsubscribes).
    pub fn subscribe(&self, sink: &Arc<dyn Sink>) {
        let mut subs = self.0.subscribers.locked();
        subs.retain(|w| w.strong_count() > 0);
        subs.push(Arc::downgrade(sink));
    }

    /// The OS pid of the current child, if one is running.
    pub fn pid(&self) -> Option<u32> {
        *self.0.pid.locked()
    }

    /// Wait until a child is up and initialized; returns its initialize result. Fails at once
    /// while the target cannot be started (bad command, failing handshake), so a broken target
    /// costs callers nothing; a child that crashed after working is waited for.
    pub async fn ready(&self) -> Result<Value> {
        let mut rx = self.0.ready.subscribe();
        loop {
            match &*rx.borrow_and_update() {
                Phase::Ready(v) => return Ok(v.clone()),
                Phase::Failing => return Err(self.0.unavailable("cannot be started")),
                Phase::Stopped => return Err(self.0.unavailable("stopped")),
                Phase::Starting => {}
            }
            if rx.changed().await.is_err() {
                return Err(self.0.unavailable("stopped"));
            }
        }
    }

    pub async fn request(
        &self,
        recipient: Recipient,
        msg: Value,
        progress: Option<Value>,
    ) -> Result<Value> {
        self.ready().await?;
        // A client that skipped `notifications/initialized` (or raced it) still gets a child
        // that was told before its first request.
        self.0.send_initialized();
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        self.0.pending.insert(
            id,
            Pending {
                reply: tx,
                progress,
                recipient,
            },
        );
        let _guard = self.0.pending.guard(id);
        self.send(msg)?;
        await_reply(rx, &self.0.name).await
    }

    pub fn send(&self, msg: Value) -> Result<()> {
        self.0.send(msg)
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that stayed up this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);

/// Runs children one after another until cancelled: by [`StdioProcess::close`] or by the last
/// handle going away.
async fn supervise(this: Arc<Inner>, cfg: StdioTarget, cancel: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let started = tokio::time::Instant::now();
        let worked = run_once(&this, &cfg, &cancel).await;
        // The child is gone: in-flight calls get an error; later calls wait for the next child
        // if this one had worked, and fail fast if it never came up.
        this.ready.send_replace(if cancel.is_cancelled() {
            Phase::Stopped
        } else if worked {
            Phase::Starting
        } else {
            Phase::Failing
        });
        *this.writer.locked() = None;
        *this.pid.locked() = None;
        this.pending.clear();
        let name = this.name.clone();
        if cancel.is_cancelled() {
            return;
        }
        if started.elapsed() >= STABLE {
            backoff = MIN_BACKOFF;
        }
        tracing::warn!(target_name = %name, ?backoff, "stdio target exited; restarting");
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Run one child until it exits; returns whether it completed the handshake.
async fn run_once(this: &Arc<Inner>, cfg: &StdioTarget, cancel: &CancellationToken) -> bool {
    let mut cmd = Command::new(&cfg.command);
    cmd.args(&cfg.args)
        .envs(&cfg.env)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(cwd) = &cfg.cwd {
        cmd.current_dir(cwd);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(target_name = %this.name, error = %e, "spawning stdio target failed");
            return false;
        }
    };
    *this.pid.locked() = child.id();
    this.initialized_sent.store(false, Ordering::SeqCst);
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return false;
    };
    let (wtx, mut wrx) = mpsc::unbounded_channel::<String>();
    *this.writer.locked() = Some(wtx);
    let writer = async move {
        while let Some(mut line) = wrx.recv().await {
            line.push('\n');
            if stdin.write_all(line.as_bytes()).await.is_err() || stdin.flush().await.is_err() {
                break;
            }
        }
    };
    let name = this.name.clone();
    let max_line = this.max_line;
    let stderr_log = async move {
        let mut r = BufReader::new(stderr);
        let mut buf = Vec::new();
        loop {
            match frames::read_line(&mut r, &mut buf, max_line).await {
                Ok(Read::Line) => {
                    let line = String::from_utf8_lossy(&buf);
                    tracing::info!(target_name = %name, "stderr: {line}");
                }
                Ok(Read::TooLarge) => {
                    tracing::warn!(target_name = %name, max_line, "stderr line over max_reply_bytes dropped");
                }
                Ok(Read::Eof) | Err(_) => break,
            }
        }
    };
    let weak = Arc::downgrade(this);
    let out_name = this.name.clone();
    let reader = async move {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        loop {
            match frames::read_line(&mut r, &mut buf, max_line).await {
                Ok(Read::Line) => {}
                Ok(Read::TooLarge) => {
                    tracing::warn!(target_name = %out_name, max_line, "stdio message over max_reply_bytes dropped");
                    continue;
                }
                Ok(Read::Eof) | Err(_) => break,
            }
            let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                tracing::warn!(target_name = %out_name, "non-JSON line from stdio target ignored");
                continue;
            };
            let Some(this) = weak.upgrade() else { return };
            let fallback = |m: Value| unclaimed(&this, m);
            this.pending.dispatch(msg, &fallback);
        }
    };
    let handshake = initialize(this.clone());
    tokio::pin!(handshake);
    let mut handshake_done = false;
    let mut stderr_done = false;
    tokio::pin!(reader);
    tokio::pin!(writer);
    tokio::pin!(stderr_log);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => { let _ = child.kill().await; return handshake_done; }
            _ = child.wait() => return handshake_done,
            _ = &mut reader => { let _ = child.kill().await; return handshake_done; }
            _ = &mut writer => { let _ = child.kill().await; return handshake_done; }
            _ = &mut stderr_log, if !stderr_done => stderr_done = true,
            r = &mut handshake, if !handshake_done => {
                match r {
                    Ok(result) => {
                        handshake_done = true;
                        this.ready.send_replace(Phase::Ready(result));
                        // Ready first, then the flag: a concurrent `client_initialized` then
                        // sees one or the other, and the notification goes out exactly once.
                        let client_ready = this
                            .owned
                            .as_ref()
                            .is_none_or(|o| o.client_initialized.load(Ordering::SeqCst));
                        if client_ready {
                            this.send_initialized();
                        }
                    }
                    Err(e) => {
                        tracing::error!(target_name = %this.name, error = %e, "stdio target initialize failed");
                        let _ = child.kill().await;
                        return false;
                    }
                }
            }
        }
    }
}

async fn initialize(this: Arc<Inner>) -> Result<Value> {
    let id = this.ids.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    let recipient = Recipient::detached();
    this.pending.insert(
        id,
        Pending {
            reply: tx,
            progress: None,
            recipient,
        },
    );
    let params = match &this.owned {
        // A per-session child speaks for one client: it is offered exactly that client's
        // capabilities (roots included), as an HTTP target's upstream session is.
        Some(o) => o.init.clone(),
        // A shared child serves many clients, so it is told only about capabilities the gateway
        // can route to an owner; roots would be ambiguous.
        None => json!({
            "protocolVersion": crate::revision::LATEST_VERSION,
            "capabilities": {"sampling": {}, "elicitation": {}},
            "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")},
        }),
    };
    this.send(jsonrpc::request(Value::from(id), "initialize", params))?;
    let reply = await_reply(rx, &this.name).await?;
    reply.get("result").cloned().ok_or_else(|| Error::Protocol {
        target: this.name.to_string(),
        reason: "initialize failed".into(),
    })
}

fn unclaimed(this: &Arc<Inner>, msg: Value) {
    if let Some(o) = &this.owned {
        // Everything of a per-session child belongs to its one session, requests included.
        let owner = o.owner.locked().clone();
        owner.deliver(msg);
        return;
    }
    let subscribers: Vec<_> = this
        .subscribers
        .locked()
        .iter()
        .filter_map(|w| w.upgrade())
        .collect();
    if jsonrpc::kind(&msg) == jsonrpc::Kind::Request {
        // Nobody can answer it; tell the child rather than leave it waiting.
        if let Some(id) = msg.get("id").cloned() {
            let _ = this.send(
                ProtocolError::NotSupported("no client session to route this request to".into())
                    .reply(id),
            );
        }
        return;
    }
    for s in subscribers {
        s.deliver(msg.clone());
    }
}
