//! The peer listener (`sessions.peer.bind`): serves requests other replicas forwarded for
//! sessions pinned here (see [`crate::peer`]), and keeps this replica's address registered in
//! the sessions store while it runs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use http::{Request, Response, StatusCode};
use switchboard_core::{ApiFormat, RequestContext};
use switchboard_sessions::{PeerConfig, SessionManager};
use tokio_util::sync::CancellationToken;

use crate::auth::Principal;
use crate::backend::Backend;
use crate::peer::{HOP_HEADER, Hop};
use crate::pipeline::ListenerRuntime;

/// The serving listeners' runtimes by name, as the peer listener finds a hop's route.
pub type Runtimes = ArcSwap<std::collections::HashMap<String, Arc<ArcSwap<ListenerRuntime>>>>;

/// A bound peer listener.
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
    let Some(hop) = Hop::open(&st.sessions, sealed) else {
        return refused(StatusCode::FORBIDDEN, "forbidden");
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
        spend: None,
        max_batch: Some(rt.limits.json.max_batch),
        trace: None,
        team: principal.as_ref().and_then(|p| p.team.clone()),
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
