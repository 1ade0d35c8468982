//! The internal hop between replicas (`sessions.peer`): any replica serves any MCP session.
//!
//! A session whose route has stdio targets lives on the replica that runs the children (its
//! token names that replica). Another replica that gets one of its requests forwards it, body
//! and streamed answer alike, to the owner's peer listener, at the address the owner
//! registered in the sessions store ([`SessionManager::register_peer`], renewed while it
//! runs). The forwarded request carries a hop header sealed with `sessions.keys`
//! ([`SessionManager::seal_hop`]): the listener and route it was admitted on, its method and
//! path, and the authenticated principal, valid once and for
//! [`switchboard_sessions::HOP_LIFETIME`]. The owner serves it on that route's MCP backend
//! directly (the route's policies ran on the replica the client reached), so a forwarded
//! request is never forwarded again: one that reaches a replica that does not own the session
//! either is answered 421 / -32003.
//!
//! When the owner is gone (not registered, or refusing connections), the session's stdio state
//! is lost: the session ends and the client is told to initialize a new one (404).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use switchboard_core::{ApiFormat, RequestContext};
use switchboard_sessions::{PeerConfig, SessionManager};
use tokio_util::sync::CancellationToken;

use crate::auth::{Principal, PrincipalKind};
use crate::backend::Backend;
use crate::error::RequestError;
use crate::pipeline::ListenerRuntime;
use crate::upstream::HttpClient;

/// The header that carries the sealed hop.
pub const HOP_HEADER: &str = "x-switchboard-hop";

/// How long a replica waits to connect to a peer before it counts it as gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The serving listeners' runtimes by name, as the peer listener finds a hop's route.
pub type Runtimes = ArcSwap<std::collections::HashMap<String, Arc<ArcSwap<ListenerRuntime>>>>;

/// What a hop says about the request it carries (sealed, so the owner can trust it).
#[derive(Serialize, Deserialize)]
struct Hop {
    /// Listener name.
    l: String,
    /// Route name.
    r: String,
    /// Method.
    m: String,
    /// Path and query.
    u: String,
    /// The authenticated principal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    who: Option<HopPrincipal>,
}

/// A [`Principal`] in transit.
#[derive(Serialize, Deserialize)]
struct HopPrincipal {
    api_key: bool,
    subject: String,
    #[serde(default)]
    claims: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    models: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resources: Option<Vec<String>>,
}

impl From<&Principal> for HopPrincipal {
    fn from(p: &Principal) -> Self {
        let list = |l: &Option<Arc<[String]>>| l.as_ref().map(|l| l.to_vec());
        HopPrincipal {
            api_key: p.kind == PrincipalKind::ApiKey,
            subject: p.subject.to_string(),
            claims: (*p.claims).clone(),
            key_name: p.api_key.as_deref().map(str::to_owned),
            scopes: p.scopes.to_vec(),
            models: list(&p.allowed_models),
            tools: list(&p.allowed_tools),
            prompts: list(&p.allowed_prompts),
            resources: list(&p.allowed_resources),
        }
    }
}

impl From<HopPrincipal> for Principal {
    fn from(h: HopPrincipal) -> Self {
        let list = |l: Option<Vec<String>>| l.map(Arc::from);
        Principal {
            kind: if h.api_key {
                PrincipalKind::ApiKey
            } else {
                PrincipalKind::Jwt
            },
            subject: h.subject.into(),
            claims: Arc::new(h.claims),
            api_key: h.key_name.map(Arc::from),
            scopes: h.scopes.into(),
            allowed_models: list(h.models),
            allowed_tools: list(h.tools),
            allowed_prompts: list(h.prompts),
            allowed_resources: list(h.resources),
        }
    }
}

/// The client side of the hop: forwards requests of sessions owned by other replicas.
#[derive(Clone)]
pub struct Peers {
    sessions: SessionManager,
    client: HttpClient,
}

/// What became of a request for a session owned elsewhere.
pub enum Forwarded {
    /// The owner's answer (streamed through).
    Answer(Response<Body>),
    /// The owner is not registered or refuses connections.
    OwnerGone,
}

impl Peers {
    /// The hop client over `clients`.
    pub fn new(sessions: SessionManager, clients: &crate::upstream::HttpClients) -> Self {
        Peers {
            sessions,
            client: clients.get(CONNECT_TIMEOUT),
        }
    }

    /// The replica owning the session of this request, when it is another one: a Streamable
    /// HTTP request at the route's endpoint with an `Mcp-Session-Id` of a pinned session. A GET
    /// that resumes a POST's answer (`Last-Event-ID` of a `post/…` stream) is not forwarded:
    /// the shared event log serves it on any replica, the owner's gone or not.
    pub fn owner_of<B>(&self, req: &Request<B>, prefix: Option<&str>) -> Option<String> {
        let path = req.uri().path();
        let rest = prefix
            .and_then(|p| path.strip_prefix(p.trim_end_matches('/')))
            .unwrap_or(path);
        if !rest.trim_end_matches('/').is_empty() {
            return None;
        }
        let token = req.headers().get("mcp-session-id")?.to_str().ok()?;
        if req.method() == http::Method::GET
            && let Some(lei) = req.headers().get("last-event-id")
            && lei
                .to_str()
                .ok()
                .and_then(|l| l.trim().parse::<switchboard_sessions::EventId>().ok())
                .is_some_and(|id| id.stream.name.starts_with("post/"))
        {
            return None;
        }
        self.sessions.owner_elsewhere(token)
    }

    /// Forwards `req` (admitted on `listener`/`route` for `principal`) to `owner`.
    pub async fn forward(
        &self,
        owner: &str,
        listener: &str,
        route: &str,
        principal: Option<&Principal>,
        req: Request<Body>,
    ) -> Result<Forwarded, RequestError> {
        let url = match self.sessions.peer_url(owner).await {
            Ok(Some(url)) => url,
            Ok(None) => {
                tracing::info!(owner, "the session's owner replica is not registered");
                return Ok(Forwarded::OwnerGone);
            }
            Err(e) => {
                tracing::warn!(error = %e, "session store: looking up a peer replica failed");
                return Err(crate::error::upstream("session store unavailable"));
            }
        };
        let base: Uri = url
            .parse()
            .map_err(|_| crate::error::upstream("a peer registered an invalid address"))?;
        let (Some(authority), scheme) = (base.authority().cloned(), base.scheme().cloned()) else {
            return Err(crate::error::upstream(
                "a peer registered an invalid address",
            ));
        };
        let (mut parts, body) = req.into_parts();
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let hop = Hop {
            l: listener.to_owned(),
            r: route.to_owned(),
            m: parts.method.as_str().to_owned(),
            u: pq.clone(),
            who: principal.map(HopPrincipal::from),
        };
        let sealed = serde_json::to_vec(&hop)
            .map(|p| self.sessions.seal_hop(&p))
            .map_err(crate::error::upstream)?;
        parts.uri = Uri::builder()
            .scheme(scheme.unwrap_or(Scheme::HTTP))
            .authority(authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|_| crate::error::bad_request("request path cannot be forwarded"))?;
        parts.version = http::Version::HTTP_11;
        crate::forwarding::strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        if let Ok(h) = HeaderValue::from_str(authority.as_str()) {
            parts.headers.insert(header::HOST, h);
        }
        let sealed = HeaderValue::from_str(&sealed)
            .map_err(|_| crate::error::upstream("hop header not encodable"))?;
        parts.headers.insert(HOP_HEADER, sealed);
        let req = Request::from_parts(parts, body);
        match self.client.here().request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                crate::forwarding::strip_response(&mut parts.headers);
                Ok(Forwarded::Answer(Response::from_parts(
                    parts,
                    Body::new(body),
                )))
            }
            Err(e) if e.is_connect() => {
                tracing::info!(owner, peer = %authority, error = %crate::upstream::DisplayChain(&e), "the session's owner replica is unreachable");
                Ok(Forwarded::OwnerGone)
            }
            Err(e) => {
                tracing::warn!(owner, peer = %authority, error = %crate::upstream::DisplayChain(&e), "forwarding to the session's owner replica failed");
                Err(crate::error::upstream(e))
            }
        }
    }
}

/// The server side: the peer listener.
pub struct PeerListener {
    /// Where it listens.
    pub local_addr: SocketAddr,
    /// The URL registered for other replicas.
    pub url: String,
}

#[derive(Clone)]
struct PeerState {
    sessions: SessionManager,
    runtimes: Arc<Runtimes>,
}

/// Binds `cfg.bind`, serves hops until `stop`, and keeps this replica registered.
pub async fn serve(
    cfg: &PeerConfig,
    sessions: SessionManager,
    runtimes: Arc<Runtimes>,
    stop: CancellationToken,
) -> std::io::Result<PeerListener> {
    let addr = crate::config::parse_bind(&cfg.bind)
        .ok_or_else(|| std::io::Error::other("sessions.peer.bind is not a socket address"))?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let url = cfg
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{local_addr}"));
    let state = PeerState {
        sessions: sessions.clone(),
        runtimes,
    };
    let app = axum::Router::new().fallback(serve_hop).with_state(state);
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(s.cancelled_owned())
            .await;
    });
    let ttl = cfg.ttl;
    let registered = url.clone();
    tokio::spawn(async move {
        let every = (ttl / 3).max(Duration::from_millis(300));
        loop {
            if let Err(e) = sessions.register_peer(&registered, ttl).await {
                tracing::warn!(error = %e, "session store: registering this replica's peer address failed");
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = sessions.unregister_peer().await {
            tracing::debug!(error = %e, "session store: withdrawing the peer registration failed");
        }
    });
    tracing::info!(addr = %local_addr, url = %url, "peer listening");
    Ok(PeerListener { local_addr, url })
}

fn refused(status: StatusCode, message: &str) -> Response<Body> {
    let e = switchboard_core::Error::new(
        if status == StatusCode::FORBIDDEN {
            switchboard_core::Cause::Forbidden
        } else {
            switchboard_core::Cause::NotFound
        },
        message.to_owned(),
    );
    crate::error::render(e, ApiFormat::JsonRpc)
}

async fn serve_hop(
    axum::extract::State(st): axum::extract::State<PeerState>,
    req: Request<Body>,
) -> Response<Body> {
    let Some(sealed) = req.headers().get(HOP_HEADER).and_then(|h| h.to_str().ok()) else {
        tracing::debug!("peer request without a hop refused");
        return refused(StatusCode::FORBIDDEN, "forbidden");
    };
    let hop: Hop = match st.sessions.open_hop(sealed) {
        Ok(p) => match serde_json::from_slice(&p) {
            Ok(h) => h,
            Err(_) => return refused(StatusCode::FORBIDDEN, "forbidden"),
        },
        Err(why) => {
            tracing::debug!(reason = %why, "peer hop refused");
            return refused(StatusCode::FORBIDDEN, "forbidden");
        }
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if hop.m != req.method().as_str() || hop.u != pq {
        tracing::debug!("peer hop refused: sealed for another request");
        return refused(StatusCode::FORBIDDEN, "forbidden");
    }
    let runtimes = st.runtimes.load();
    let Some(rt) = runtimes.get(&hop.l).map(|r| r.load_full()) else {
        return refused(StatusCode::NOT_FOUND, "no such route here");
    };
    let Some(route) = rt.routes.iter().find(|r| *r.name == *hop.r) else {
        return refused(StatusCode::NOT_FOUND, "no such route here");
    };
    let Backend::Mcp(mcp) = &route.backend else {
        return refused(StatusCode::NOT_FOUND, "no such route here");
    };
    let principal = hop.who.map(Principal::from);
    let path = req.uri().path().to_owned();
    let context = RequestContext {
        route: route.name.clone(),
        prefix: route.prefix.clone(),
        principal: principal.as_ref().map(|p| p.subject.clone()),
        api_key: principal.as_ref().and_then(|p| p.api_key.clone()),
        access: route
            .policies
            .authz
            .access(principal.as_ref(), req.method().as_str(), &path),
        tokens: None,
        max_batch: Some(rt.limits.json.max_batch),
    };
    let max = usize::try_from(rt.limits.max_body_bytes).unwrap_or(usize::MAX);
    let mut req = req.map(|b| {
        Body::new(http_body_util::BodyExt::map_err(
            http_body_util::Limited::new(b, max),
            |e| -> Box<dyn std::error::Error + Send + Sync> { e },
        ))
    });
    req.headers_mut().remove(HOP_HEADER);
    match mcp.handle(req, &context).await {
        Ok(resp) => resp,
        Err(e) => crate::error::render(e, ApiFormat::JsonRpc),
    }
}
