//! The legacy HTTP+SSE transport (2024-11-05): `{prefix}/sse` announces `{prefix}/message`;
//! every answer travels on the SSE stream.

use std::convert::Infallible;

use crate::outbox::{Mode, outbox};
use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use serde_json::Value;

use super::streamable::pipe_upstream_streams;
use super::{MAX_BODY, McpBackend, RequestContext};
use crate::error::{ProtocolError, refuse};
use crate::request::{Message, Method};
use crate::session::Registry;

impl McpBackend {
    /// Legacy transport: the SSE stream that announces the message endpoint.
    pub(super) fn legacy_sse(&self, prefix: &str, ctx: &RequestContext) -> Response<Body> {
        let id = Registry::new_id();
        // Everything travels on this stream, replies included: a client that lets
        // `max_queued_messages` pile up loses the stream, and with it the session.
        let (tx, rx) = outbox::<Value>(&self.bound(), Mode::Cut, "legacy");
        self.0
            .legacy
            .insert(id.clone(), (tx, ctx.principal.clone()));
        let endpoint = format!("{prefix}/message?sessionId={id}");
        let guard = LegacyGuard {
            core: self.clone(),
            id: id.clone(),
        };
        let first = futures::stream::once(async move {
            Ok::<_, Infallible>(Bytes::from(format!(
                "event: endpoint\ndata: {endpoint}\n\n"
            )))
        });
        let mut n = 0u64;
        let rest = rx.into_stream().map(move |msg| {
            let _keep = &guard;
            n += 1;
            Ok(Bytes::from(format!(
                "id: {n}\nevent: message\ndata: {msg}\n\n"
            )))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(first.chain(rest)))
            .unwrap_or_default()
    }

    pub(super) async fn legacy_message(
        &self,
        req: Request<Body>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        let id = req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "sessionId")
                .map(|(_, v)| v.into_owned())
        });
        let Some(tx) = id
            .as_deref()
            .and_then(|id| self.0.legacy.get(id).map(|e| e.value().clone()))
            .filter(|(_, p)| p.as_deref() == ctx.principal.as_deref())
            .map(|(tx, _)| tx)
        else {
            return Err(refuse::session_not_found());
        };
        let id = id.unwrap_or_default();
        let Ok(bytes) = axum::body::to_bytes(req.into_body(), MAX_BODY).await else {
            return Err(refuse::body_too_large());
        };
        let Ok(msg) = serde_json::from_slice::<Value>(&bytes) else {
            return Err(refuse::parse_error());
        };
        let msg = match msg {
            Value::Array(items) => return self.legacy_batch(id, tx, items, ctx),
            msg => msg,
        };
        let Ok(msg) = Message::parse(msg) else {
            return Err(refuse::invalid_message());
        };
        let this = self.clone();
        let principal = ctx.principal.clone();
        let access = ctx.access.clone();
        tokio::spawn(crate::trace::carry(async move {
            if let Message::Request(req) = &msg
                && matches!(req.method, Method::Initialize)
            {
                let resp = match this
                    .initialize(req, Some(id.clone()), principal.clone(), "")
                    .await
                {
                    Ok((session, resp)) => {
                        session.attach_stream(tx.clone());
                        pipe_upstream_streams(&session, &tx);
                        resp
                    }
                    Err(e) => e.reply(req.id.clone()),
                };
                let _ = tx.send_last(resp).await;
                return;
            }
            let Some(session) = this.0.sessions.get(&id, principal.as_deref()) else {
                if let Message::Request(req) = msg {
                    let _ = tx.send(
                        ProtocolError::InvalidRequest("not initialized".into()).reply(req.id),
                    );
                }
                return;
            };
            match msg {
                Message::Request(req) => {
                    let resp = this.dispatch(&session, req, None, access).await;
                    let _ = tx.send_last(resp).await;
                }
                msg => this.client_message(&session, msg).await,
            }
        }));
        Ok(Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::from("Accepted"))
            .unwrap_or_default())
    }
}

/// Ends a legacy session when its SSE stream goes away.
struct LegacyGuard {
    core: McpBackend,
    id: String,
}

impl Drop for LegacyGuard {
    fn drop(&mut self) {
        self.core.0.legacy.remove(&self.id);
        if let Some(s) = self.core.0.sessions.remove(&self.id)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                for u in s.take_upstreams() {
                    u.close().await;
                }
            });
        }
    }
}
