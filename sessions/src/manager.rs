//! [`SessionManager`]: the one handle the gateway and the MCP layer use.
//!
//! Resuming a token checks, in order: the seal (any configured key), the maximum lifetime, the
//! principal binding, then the store (revoked? idle-expired?), which also restarts the idle
//! timer. Every failure is the same [`Error::NotFound`]; the reason goes to the debug log and the
//! `switchboard_sessions_rejected_total` metric.
//!
//! The manager also keeps a small local table of the sessions this replica serves, which is how
//! it tells a local resume from a first sight (the MCP layer then rebuilds upstream clients from
//! the session's target entries), keeps sessions with open streams alive, and tells the MCP layer
//! when to let go of a session's upstream connections and stdio children ([`Release`]).

mod listing;
mod opened;
mod reaper;
mod release;
mod session;

pub use listing::LocalSession;
use release::Listener;
pub use release::{ActivityGuard, Release, ReleaseReason, ReleaseSubscription};
pub use session::{Resumed, Session};

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::config::{SessionsConfig, StoreKind};
use crate::events::{EventId, Replay, StreamKey};
use crate::metrics::{How, Metrics, Rejection};
use crate::store::{EndReason, Lookup, MemoryStore, RedisStore, SessionStore, StoreLimits};
use crate::token::{Claims, Keyring, SessionId, TargetEntry};
use crate::{Error, Result};

/// Wall-clock milliseconds that advance with tokio's clock, so paused-time tests drive token
/// lifetimes too. Drift from the system clock over a process lifetime is negligible next to
/// lifetimes of hours.
#[derive(Debug, Clone, Copy)]
struct Clock {
    base_unix_ms: u64,
    base: Instant,
}

impl Clock {
    fn new() -> Self {
        let base_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Clock {
            base_unix_ms,
            base: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.base_unix_ms + self.base.elapsed().as_millis() as u64
    }
}

/// What this replica remembers about a session it serves (tens of bytes plus the principal).
#[derive(Debug)]
struct Local {
    principal: Option<Arc<str>>,
    issued_at_ms: u64,
    last_seen_ms: AtomicU64,
    active: AtomicU32,
    /// Set by the first resume here: only sessions resumed again keep a [`Memo`], so a
    /// session that is opened and left idle costs no more memory than before.
    resumed: std::sync::atomic::AtomicBool,
    /// The session last resumed here, with the token and store metadata it was built from.
    memo: std::sync::Mutex<Option<Box<Memo>>>,
}

/// A resumed [`Session`] is a function of its token and the store's metadata blob: while
/// both are unchanged, the next resume clones it instead of parsing the blob again.
struct Memo {
    token: Arc<str>,
    meta: Bytes,
    session: Session,
}

impl std::fmt::Debug for Memo {
    // The token is a bearer credential: [`Session`]'s own `Debug` leaves it out, and so does this.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memo")
            .field("meta_len", &self.meta.len())
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// The metadata blob in the store: what was learned after the token was sealed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Meta {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    targets: Vec<TargetEntry>,
    /// The replica that adopted the session after its first owner was gone; overrides the
    /// token's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

struct Shared {
    /// The keys, with the tokens they opened lately.
    keyring: ArcSwap<opened::Ring>,
    store: Arc<dyn SessionStore>,
    /// The Redis link under a Redis store (the gateway's shared limits use it too).
    redis: Option<crate::link::RedisLink>,
    metrics: Metrics,
    clock: Clock,
    replica: Arc<str>,
    idle_timeout: Duration,
    max_lifetime: Duration,
    local: DashMap<SessionId, Arc<Local>>,
    listeners: DashMap<u64, Listener>,
    next_listener: AtomicU64,
    drain: watch::Sender<bool>,
    /// Nonces of peer hops accepted here, until they expire (replay protection).
    hops_seen: DashMap<[u8; 16], u64>,
    /// Streams this replica is still writing to the log (see [`SessionManager::producer`]).
    producers: watch::Sender<usize>,
}

/// The session layer's handle: cheap to clone, shared by all routes and kept by the gateway
/// across config reloads (rebuild it only when the `sessions:` block changes).
#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("replica", &self.shared.replica)
            .field("store", &self.shared.store)
            .field("local_sessions", &self.shared.local.len())
            .finish_non_exhaustive()
    }
}

/// Reconnect hint sent on drain when the caller has no better value.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(1);

impl SessionManager {
    /// Builds the manager and its store from the `sessions:` block (connecting to Redis when
    /// `store: redis`). Run [`SessionsConfig::validate`] first for messages with key paths.
    pub async fn from_config(cfg: &SessionsConfig, metrics: Metrics) -> Result<Self> {
        let limits = StoreLimits::from_config(cfg);
        match (cfg.store, &cfg.redis) {
            (StoreKind::Memory, _) => Self::new(cfg, Arc::new(MemoryStore::new(limits)), metrics),
            (StoreKind::Redis, None) => Err(crate::Error::Config(
                "redis: required when store is redis".to_owned(),
            )),
            (StoreKind::Redis, Some(redis)) => {
                let link = crate::link::RedisLink::connect(redis, metrics.clone()).await?;
                let store = RedisStore::with_link(link.clone(), &redis.prefix, limits);
                let mut manager = Self::new(cfg, Arc::new(store), metrics)?;
                if let Some(shared) = Arc::get_mut(&mut manager.shared) {
                    shared.redis = Some(link);
                }
                Ok(manager)
            }
        }
    }

    /// Builds the manager over an existing store (tests, or a store shared with something else).
    /// The store's own limits apply to what it enforces; `cfg` supplies keys, lifetimes and the
    /// replica id.
    pub fn new(
        cfg: &SessionsConfig,
        store: Arc<dyn SessionStore>,
        metrics: Metrics,
    ) -> Result<Self> {
        let keyring = keyring_of(cfg)?;
        let replica: Arc<str> = match &cfg.replica {
            Some(r) => r.as_str().into(),
            None => format!("replica-{}", SessionId::random()).into(),
        };
        Ok(SessionManager {
            shared: Arc::new(Shared {
                keyring: ArcSwap::from_pointee(opened::Ring::new(keyring)),
                store,
                redis: None,
                metrics,
                clock: Clock::new(),
                replica,
                idle_timeout: cfg.idle_timeout,
                max_lifetime: cfg.max_lifetime,
                local: DashMap::new(),
                listeners: DashMap::new(),
                next_listener: AtomicU64::new(0),
                drain: watch::Sender::new(false),
                hops_seen: DashMap::new(),
                producers: watch::Sender::new(0),
            }),
        })
    }

    /// Swaps in the keys of a reloaded `sessions:` block (rotation without a restart). Other
    /// changes of the block (store, timeouts) need a new manager.
    pub fn reload_keys(&self, cfg: &SessionsConfig) -> Result<()> {
        self.shared
            .keyring
            .store(Arc::new(opened::Ring::new(keyring_of(cfg)?)));
        Ok(())
    }

    /// This replica's id (what pinned tokens name).
    pub fn replica_id(&self) -> &str {
        &self.shared.replica
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.shared.store
    }

    /// The link to Redis when the store is Redis: its state (`/readyz`) and, for the gateway's
    /// shared rate limits, its connection, timeout and circuit breaker.
    pub fn redis_link(&self) -> Option<&crate::link::RedisLink> {
        self.shared.redis.as_ref()
    }

    /// Sessions this replica currently serves.
    pub fn local_sessions(&self) -> usize {
        self.shared.local.len()
    }

    /// Creates a session for `principal` with what is known of its targets now.
    ///
    /// `pinned`: the session has stdio targets, which live on this replica; the token then
    /// names this replica ([`Session::owned_elsewhere`]).
    ///
    /// Fails with [`Error::TooManySessions`] over the principal's cap,
    /// [`Error::TokenTooLarge`] when the token would be longer than
    /// [`MAX_TOKEN_LEN`](crate::token::MAX_TOKEN_LEN), or a store error.
    pub async fn create(
        &self,
        principal: Option<&str>,
        targets: Vec<TargetEntry>,
        pinned: bool,
    ) -> Result<Session> {
        let s = &self.shared;
        let claims = Claims {
            session_id: SessionId::random(),
            issued_at_ms: s.clock.now_ms(),
            principal: principal.map(str::to_owned),
            replica: pinned.then(|| s.replica.to_string()),
            targets,
        };
        // Sealed first: a token too long to be opened again must not become a session.
        let token = s.keyring.load().keyring.seal(&claims);
        if token.len() > crate::token::MAX_TOKEN_LEN {
            return Err(Error::TokenTooLarge {
                len: token.len(),
                limit: crate::token::MAX_TOKEN_LEN,
            });
        }
        let meta = serde_json::to_vec(&Meta {
            targets: claims.targets.clone(),
            owner: None,
        })?;
        s.store
            .create(claims.session_id, principal, Bytes::from(meta))
            .await?;
        let session = session_from(claims, token.into(), None);
        self.insert_local(&session);
        s.metrics.created.inc();
        debug!(session = %session.id, "session created");
        Ok(session)
    }

    /// Opens a client's token (`Mcp-Session-Id`) for `principal` (the authenticated subject of
    /// this request, or none) and restarts the session's idle timer.
    ///
    /// [`Error::NotFound`] for anything that is not a live session of this principal; other
    /// errors are store failures (answer 503, do not drop the client's session).
    pub async fn resume(&self, token: &str, principal: Option<&str>) -> Result<Resumed> {
        let s = &self.shared;
        let claims = match s.keyring.load().open(token) {
            Ok(c) => c,
            Err(why) => {
                debug!(reason = ?why, "session token rejected");
                s.metrics.reject(Rejection::Invalid);
                return Err(Error::NotFound);
            }
        };
        let id = claims.session_id;
        let now = s.clock.now_ms();
        if now
            >= claims
                .issued_at_ms
                .saturating_add(s.max_lifetime.as_millis() as u64)
        {
            debug!(session = %id, "session token rejected: past max_lifetime");
            s.metrics.reject(Rejection::Expired);
            self.expire(id, claims.principal.as_deref()).await;
            return Err(Error::NotFound);
        }
        if claims.principal.as_deref() != principal {
            debug!(session = %id, "session token rejected: bound to another principal");
            s.metrics.reject(Rejection::Principal);
            return Err(Error::NotFound);
        }
        let blob = match s.store.touch(id, principal).await? {
            Lookup::Alive(blob) => Some(blob),
            Lookup::Ended(reason) => {
                debug!(session = %id, ?reason, "session token rejected: session ended");
                s.metrics.reject(match reason {
                    EndReason::Revoked => Rejection::Revoked,
                    EndReason::Expired => Rejection::Expired,
                });
                self.release_local(
                    id,
                    match reason {
                        EndReason::Revoked => ReleaseReason::Revoked,
                        EndReason::Expired => ReleaseReason::Expired,
                    },
                );
                return Err(Error::NotFound);
            }
            Lookup::Missing if s.store.is_shared() => {
                // A shared store saw every session created; gone means idle-expired.
                debug!(session = %id, "session token rejected: idle-expired");
                s.metrics.reject(Rejection::Expired);
                self.release_local(id, ReleaseReason::Expired);
                return Err(Error::NotFound);
            }
            Lookup::Missing => None,
        };
        if let Some(session) = blob.as_ref().and_then(|b| self.memoised(id, token, b)) {
            s.metrics.resume(How::Local);
            return Ok(Resumed {
                session,
                how: How::Local,
            });
        }
        let meta = match &blob {
            Some(blob) => Some(serde_json::from_slice::<Meta>(blob)?),
            None => {
                // A private store that never saw it: this process restarted, or the client came
                // from another replica. The token is authentic and within its lifetime, so the
                // session continues from what the token carries.
                let blob = serde_json::to_vec(&Meta {
                    targets: claims.targets.clone(),
                    owner: None,
                })?;
                s.store.create(id, principal, Bytes::from(blob)).await?;
                None
            }
        };
        let session = session_from(Claims::clone(&claims), token.into(), meta);
        let how = self.insert_local(&session);
        if let Some(blob) = blob {
            self.memoise(blob, &session);
        }
        s.metrics.resume(how);
        Ok(Resumed { session, how })
    }

    /// The session memoised for `id` if it was built from this token and metadata blob; its
    /// local entry is then marked seen now, as [`Self::insert_local`] marks a known session,
    /// without a second lookup.
    fn memoised(&self, id: SessionId, token: &str, blob: &Bytes) -> Option<Session> {
        let local = self.shared.local.get(&id)?;
        let session = local
            .memo
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|m| &*m.token == token && m.meta == *blob)
            .map(|m| m.session.clone())?;
        local
            .last_seen_ms
            .store(self.shared.clock.now_ms(), Ordering::Release);
        Some(session)
    }

    /// Keeps `session`, built from `blob`, for the next resume on this replica (from the
    /// second resume here on).
    fn memoise(&self, blob: Bytes, session: &Session) {
        if let Some(local) = self.shared.local.get(&session.id)
            && local.resumed.swap(true, Ordering::AcqRel)
        {
            *local
                .memo
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Box::new(Memo {
                token: session.token.clone(),
                meta: blob,
                session: session.clone(),
            }));
        }
    }

    /// Restarts a session's idle timer without a full resume (e.g. on a stream heartbeat).
    pub async fn touch(&self, session: &Session) -> Result<()> {
        if let Some(local) = self.shared.local.get(&session.id) {
            local
                .last_seen_ms
                .store(self.shared.clock.now_ms(), Ordering::Release);
        }
        match self
            .shared
            .store
            .touch(session.id, session.principal.as_deref())
            .await?
        {
            Lookup::Alive(_) => Ok(()),
            _ => Err(Error::NotFound),
        }
    }

    /// Marks the session busy until the guard drops (hold it for the life of an open SSE
    /// stream), so an idle timeout cannot expire a session that is merely listening.
    pub fn activity(&self, session: &Session) -> ActivityGuard {
        let local = match self.shared.local.entry(session.id) {
            dashmap::Entry::Occupied(e) => e.get().clone(),
            dashmap::Entry::Vacant(e) => {
                // Normally resumed just before; a session reaped in between is held again.
                self.shared.metrics.open.inc();
                e.insert(Arc::new(self.local_of(session))).clone()
            }
        };
        local.active.fetch_add(1, Ordering::AcqRel);
        ActivityGuard {
            local,
            clock: self.shared.clock,
        }
    }

    /// Records what was learned about a target after the token was sealed (an upstream session
    /// id from a lazy or repeated initialize, a new pinned endpoint): updates `session` and the
    /// store, so later resumes (on any replica, with a shared store) see it. The token itself
    /// does not change: MCP clients keep the session id they were given.
    pub async fn update_target(&self, session: &mut Session, entry: TargetEntry) -> Result<()> {
        match session.targets.iter_mut().find(|t| t.name == entry.name) {
            Some(t) => *t = entry,
            None => session.targets.push(entry),
        }
        let blob = serde_json::to_vec(&Meta {
            targets: session.targets.clone(),
            owner: session.replica.as_deref().map(str::to_owned),
        })?;
        if self
            .shared
            .store
            .set_meta(session.id, Bytes::from(blob))
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Ends a session for good (the client's DELETE): its token stays dead until its maximum
    /// lifetime, on every replica sharing the store. Local resources are released.
    pub async fn revoke(&self, session: &Session) -> Result<()> {
        self.shared
            .store
            .end(session.id, session.principal.as_deref(), EndReason::Revoked)
            .await?;
        self.release_local(session.id, ReleaseReason::Revoked);
        debug!(session = %session.id, "session revoked");
        Ok(())
    }

    /// Appends an event to a session stream's log; send it with the returned id
    /// ([`sse::event`](crate::sse::event)) so the client's `Last-Event-ID` can resume after it.
    pub async fn append_event(&self, stream: &StreamKey, payload: Bytes) -> Result<EventId> {
        self.shared.store.append(stream, payload).await
    }

    /// The events `session` missed after `last_event_id` (the header's value), in order. Send
    /// them, then continue the live stream under the same stream key.
    ///
    /// [`Error::InvalidEventId`] when the id is not ours or names another session's stream.
    pub async fn replay(&self, session: &Session, last_event_id: &str) -> Result<Replay> {
        let last: EventId = last_event_id.trim().parse()?;
        if last.stream.session != session.id {
            return Err(Error::InvalidEventId);
        }
        let replay = self.shared.store.replay_after(&last).await?;
        self.shared
            .metrics
            .events_replayed
            .inc_by(replay.events.len() as u64);
        if !replay.complete {
            debug!(session = %session.id, stream = %last.stream.name, "replay incomplete: events dropped or stream unknown here");
        }
        Ok(replay)
    }

    /// Calls `f` for every session whose local resources must go (expired, revoked, moved).
    /// `f` runs on the reaper or request task: keep it short and non-blocking (remove from a
    /// map, send on a channel). Dropping the subscription unregisters it.
    pub fn on_release(&self, f: impl Fn(&Release) + Send + Sync + 'static) -> ReleaseSubscription {
        let id = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        self.shared.listeners.insert(id, Arc::new(f));
        ReleaseSubscription {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Starts draining: every [`draining`](Self::draining) receiver sees `true`; stream owners
    /// should send [`sse::retry`](crate::sse::retry) and close, so clients reconnect elsewhere
    /// and resume with `Last-Event-ID`.
    pub fn drain(&self) {
        self.shared.drain.send_replace(true);
    }

    /// True once [`drain`](Self::drain) was called.
    pub fn is_draining(&self) -> bool {
        *self.shared.drain.borrow()
    }

    /// A receiver that flips to `true` on [`drain`](Self::drain); `wait_for(|d| *d)` in a
    /// `select!` beside the stream.
    pub fn draining(&self) -> watch::Receiver<bool> {
        self.shared.drain.subscribe()
    }
}

/// How long a sealed peer hop may be used after it was sealed (replica clocks may differ by
/// a part of it).
pub const HOP_LIFETIME: Duration = Duration::from_secs(30);

/// The longest hop opened: it carries the principal's verified JWT claims, which can be
/// larger than a session token.
const MAX_HOP_LEN: usize = 64 * 1024;

/// Associated data that separates peer hops from session tokens under the same keys.
const HOP_DOMAIN: &[u8] = b"switchboard peer hop v1";

/// Most hop nonces remembered at once; beyond it new hops are refused until old ones expire
/// (a flood cannot grow memory without bound).
const MAX_HOPS_SEEN: usize = 100_000;

/// Why a peer hop was refused (every case answers 403; the reason goes to the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopError {
    /// Not sealed with a key of this fleet (or tampered, or no hop at all).
    Unauthentic,
    /// Sealed too long ago (or too far in the future).
    Expired,
    /// Seen before: a replayed hop.
    Replayed,
}

impl std::fmt::Display for HopError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HopError::Unauthentic => "unauthentic",
            HopError::Expired => "expired",
            HopError::Replayed => "replayed",
        })
    }
}

/// Held by a task that writes a stream's remaining events to the log after its client was
/// let go (drain); [`SessionManager::producers_done`] waits for all of them.
#[derive(Debug)]
pub struct ProducerGuard {
    producers: watch::Sender<usize>,
}

impl Drop for ProducerGuard {
    fn drop(&mut self) {
        self.producers.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// How long a stream's liveness mark lasts without renewal (its producer renews it every
/// third of this).
pub const STREAM_LIVE_TTL: Duration = Duration::from_secs(3);

impl SessionManager {
    /// Marks a stream as being produced (answered) here until the guard drops; shutdown waits
    /// for these (within its grace period), so a call's remaining events reach the log.
    pub fn producer(&self) -> ProducerGuard {
        self.shared.producers.send_modify(|n| *n += 1);
        ProducerGuard {
            producers: self.shared.producers.clone(),
        }
    }

    /// Resolves once no [`producer`](Self::producer) guard is held.
    pub async fn producers_done(&self) {
        let mut rx = self.shared.producers.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    fn live_key(stream: &StreamKey) -> String {
        format!("live:{}/{}", stream.session, stream.name)
    }

    /// Records that `stream` is still being produced (by this replica) for
    /// [`STREAM_LIVE_TTL`]; the producer renews it while it runs.
    pub async fn mark_stream_live(&self, stream: &StreamKey) -> Result<()> {
        self.shared
            .store
            .put_affinity(
                &Self::live_key(stream),
                &self.shared.replica,
                STREAM_LIVE_TTL,
            )
            .await
    }

    /// Whether some replica still produces `stream` (its liveness mark has not run out).
    pub async fn stream_live(&self, stream: &StreamKey) -> Result<bool> {
        Ok(self
            .shared
            .store
            .get_affinity(&Self::live_key(stream))
            .await?
            .is_some())
    }

    /// The store key under which `replica` registers its peer address.
    fn peer_key(replica: &str) -> String {
        format!("replica:{replica}")
    }

    /// Registers this replica's peer address (`sessions.peer`) for `ttl`; call again before
    /// it runs out (the gateway renews every third of it).
    pub async fn register_peer(&self, url: &str, ttl: Duration) -> Result<()> {
        self.shared
            .store
            .put_affinity(&Self::peer_key(&self.shared.replica), url, ttl)
            .await
    }

    /// Withdraws this replica's registration (at shutdown, once nothing is left to serve).
    pub async fn unregister_peer(&self) -> Result<()> {
        self.shared
            .store
            .put_affinity(
                &Self::peer_key(&self.shared.replica),
                "",
                Duration::from_millis(1),
            )
            .await
    }

    /// The peer address `replica` registered, if its registration is alive.
    pub async fn peer_url(&self, replica: &str) -> Result<Option<String>> {
        Ok(self
            .shared
            .store
            .get_affinity(&Self::peer_key(replica))
            .await?
            .filter(|u| !u.is_empty()))
    }

    /// The replica that owns the session of `token` when it is pinned to another one: the
    /// token's, unless another replica adopted the session since ([`adopt`](Self::adopt); one
    /// store lookup, for pinned sessions only). No principal check: the owner does that.
    /// `None` for a token that does not open, or a session this replica may serve.
    pub async fn owner_elsewhere(&self, token: &str) -> Option<String> {
        let claims = self.shared.keyring.load().open(token).ok()?;
        let pinned = claims.replica.clone()?;
        let owner = match self.shared.store.peek(claims.session_id).await {
            Ok(Lookup::Alive(blob)) => serde_json::from_slice::<Meta>(&blob)
                .ok()
                .and_then(|m| m.owner)
                .unwrap_or(pinned),
            // Ended, unknown here, or the store is away: resuming will tell.
            _ => pinned,
        };
        (*owner != *self.shared.replica).then_some(owner)
    }

    /// Makes this replica the owner of a pinned session whose owner is gone (its stdio
    /// targets then start here); every replica sees the new owner through the store.
    pub async fn adopt(&self, session: &mut Session) -> Result<()> {
        session.replica = Some(self.shared.replica.clone());
        let blob = serde_json::to_vec(&Meta {
            targets: session.targets.clone(),
            owner: Some(self.shared.replica.to_string()),
        })?;
        if self
            .shared
            .store
            .set_meta(session.id, Bytes::from(blob))
            .await?
        {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    /// Seals `payload` into a peer hop: usable once, by a replica holding this fleet's keys,
    /// within [`HOP_LIFETIME`].
    pub fn seal_hop(&self, payload: &[u8]) -> String {
        let expires = self
            .shared
            .clock
            .now_ms()
            .saturating_add(HOP_LIFETIME.as_millis() as u64);
        let nonce: [u8; 16] = rand::random();
        let mut plain = Vec::with_capacity(24 + payload.len());
        plain.extend_from_slice(&expires.to_be_bytes());
        plain.extend_from_slice(&nonce);
        plain.extend_from_slice(payload);
        self.shared
            .keyring
            .load()
            .keyring
            .seal_for(HOP_DOMAIN, &plain)
    }

    /// Opens a peer hop sealed by [`seal_hop`](Self::seal_hop) on any replica of the fleet:
    /// authentic, unexpired and never seen here before; returns its payload.
    pub fn open_hop(&self, hop: &str) -> std::result::Result<Vec<u8>, HopError> {
        let plain = self
            .shared
            .keyring
            .load()
            .keyring
            .open_for(HOP_DOMAIN, hop, MAX_HOP_LEN)
            .map_err(|_| HopError::Unauthentic)?;
        let (expires, rest) = plain.split_at_checked(8).ok_or(HopError::Unauthentic)?;
        let (nonce, payload) = rest.split_at_checked(16).ok_or(HopError::Unauthentic)?;
        let expires = u64::from_be_bytes(expires.try_into().map_err(|_| HopError::Unauthentic)?);
        let nonce: [u8; 16] = nonce.try_into().map_err(|_| HopError::Unauthentic)?;
        let now = self.shared.clock.now_ms();
        let lifetime = HOP_LIFETIME.as_millis() as u64;
        // Too far ahead would outlive its nonce in the replay cache.
        if expires < now || expires > now.saturating_add(2 * lifetime) {
            return Err(HopError::Expired);
        }
        let seen = &self.shared.hops_seen;
        if seen.len() >= MAX_HOPS_SEEN {
            seen.retain(|_, exp| *exp >= now);
            if seen.len() >= MAX_HOPS_SEEN {
                return Err(HopError::Replayed);
            }
        }
        match seen.entry(nonce) {
            dashmap::Entry::Occupied(_) => Err(HopError::Replayed),
            dashmap::Entry::Vacant(e) => {
                e.insert(expires);
                if seen.len().is_multiple_of(1024) {
                    seen.retain(|_, exp| *exp >= now);
                }
                Ok(payload.to_vec())
            }
        }
    }
}

fn keyring_of(cfg: &SessionsConfig) -> Result<Keyring> {
    let keys = cfg.decoded_keys()?;
    Ok(match Keyring::new(&keys) {
        Some(ring) => ring,
        None => {
            warn!(
                "sessions.keys is empty: using a random session key; sessions will not \
                 survive a restart or move between replicas"
            );
            Keyring::random()
        }
    })
}

fn session_from(claims: Claims, token: Arc<str>, meta: Option<Meta>) -> Session {
    let mut targets = claims.targets;
    let mut replica = claims.replica.map(Arc::from);
    if let Some(meta) = meta {
        if let Some(owner) = meta.owner {
            replica = Some(owner.into());
        }
        for learned in meta.targets {
            match targets.iter_mut().find(|t| t.name == learned.name) {
                Some(t) => *t = learned,
                None => targets.push(learned),
            }
        }
    }
    Session {
        id: claims.session_id,
        token,
        principal: claims.principal.map(Arc::from),
        issued_at_ms: claims.issued_at_ms,
        replica,
        targets,
    }
}

#[cfg(test)]
mod tests;
