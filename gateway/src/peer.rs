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
//! When the owner is gone (not registered, or refusing connections), the replica that got the
//! request adopts the session when its route's stdio children are all `shared`, and serves it;
//! otherwise a `per_session` child's state is lost: the session ends and the client is told
//! to initialize a new one (404).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::Scheme;
use http::{Request, Response, Uri};
use serde::{Deserialize, Serialize};
use switchboard_sessions::SessionManager;

use crate::auth::{Principal, PrincipalKind};
use crate::error::RequestError;
use crate::upstream::HttpClient;

/// The header that carries the sealed hop.
pub const HOP_HEADER: &str = "x-switchboard-hop";

/// How long a replica waits to connect to a peer before it counts it as gone.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What a hop says about the request it carries (sealed, so the owner can trust it).
#[derive(Serialize, Deserialize)]
pub struct Hop {
    /// Listener name.
    pub l: String,
    /// Route name.
    pub r: String,
    /// Method.
    pub m: String,
    /// Path and query.
    pub u: String,
    /// The authenticated principal, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub who: Option<HopPrincipal>,
}

impl Hop {
    /// Opens the sealed `hop` header: authentic, unexpired, never seen here; `None`
    /// otherwise (the reason is logged at debug level).
    pub fn open(sessions: &SessionManager, sealed: &str) -> Option<Hop> {
        match sessions.open_hop(sealed) {
            Ok(p) => serde_json::from_slice(&p).ok(),
            Err(why) => {
                tracing::debug!(reason = %why, "peer hop refused");
                None
            }
        }
    }
}

/// A [`Principal`] in transit.
#[derive(Serialize, Deserialize)]
pub struct HopPrincipal {
    api_key: bool,
    subject: String,
    #[serde(default)]
    claims: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    team: Option<String>,
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
            team: p.team.as_deref().map(str::to_owned),
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
            team: h.team.map(Arc::from),
            scopes: h.scopes.into(),
            allowed_models: list(h.models),
            allowed_tools: list(h.tools),
            allowed_prompts: list(h.prompts),
            allowed_resources: list(h.resources),
            virtual_key: None,
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
    /// The owner is not registered or refuses connections; the request, to serve here.
    OwnerGone(Request<Body>),
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
    pub async fn owner_of<B>(&self, req: &Request<B>, prefix: Option<&str>) -> Option<String> {
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
        self.sessions.owner_elsewhere(token).await
    }

    /// Forwards `req` (admitted on `listener`/`route` for `principal`) to `owner`. Its body
    /// is a JSON-RPC message the gateway already read whole (or none), so it is kept for a
    /// request the owner never got.
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
                return Ok(Forwarded::OwnerGone(req));
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
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| crate::error::bad_request("the request body could not be read"))?;
        let kept = {
            let mut r = Request::new(Body::from(body.clone()));
            *r.method_mut() = parts.method.clone();
            *r.uri_mut() = parts.uri.clone();
            *r.version_mut() = parts.version;
            *r.headers_mut() = parts.headers.clone();
            r
        };
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
        let req = Request::from_parts(parts, Body::from(body));
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
                Ok(Forwarded::OwnerGone(kept))
            }
            Err(e) => {
                tracing::warn!(owner, peer = %authority, error = %crate::upstream::DisplayChain(&e), "forwarding to the session's owner replica failed");
                Err(crate::error::upstream(e))
            }
        }
    }
}
