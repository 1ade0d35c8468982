//! JSON-RPC batches. Protocol revisions up to 2025-03-26 let a client POST an array of
//! requests, notifications and responses; 2025-06-18 removed batching. The revision that decides
//! is the session's negotiated one; without a session, the `MCP-Protocol-Version` header's, and
//! 2025-03-26 when the header is absent (what a server is told to assume then).
//!
//! A batch is taken apart, not forwarded: each request is answered as if it had been posted
//! alone (concurrently, routed to its owning targets), notifications and responses go where
//! they would alone, and the replies come back together — one JSON array, or one SSE stream
//! carrying each reply (and whatever travels with the requests, e.g. progress) as it is ready.
//! Invalid members and `initialize` (which must not be batched) get error objects of their own.

use axum::body::Body;
use http::{HeaderMap, Response, StatusCode};
use serde_json::Value;

use super::streamable::{accepted, rejected, rpc_response};
use super::{McpBackend, RequestContext, SESSION_VERSIONS, STATELESS_VERSION};
use crate::error::{ProtocolError, refuse};
use crate::request::{Invalid, Message, Method, Request};
use crate::revision::{LAST_BATCH_VERSION, batches_allowed};
use crate::session::Session;

/// Most messages in one batch when the gateway passes no limit
/// ([`RequestContext::max_batch`]); the gateway's own default (`listeners[].limits.json.max_batch`).
pub const DEFAULT_MAX_BATCH: usize = 64;

/// What becomes of one batch member.
enum Member {
    /// Answered by dispatching it.
    Request(Request),
    /// A notification or a response: no reply.
    Other(Message),
    /// Refused with this error response.
    Refused(Value),
}

/// Classify the members; `session_error` refuses every request (there is no session).
fn classify(items: Vec<Value>, session_error: Option<&str>) -> Vec<Member> {
    items
        .into_iter()
        .map(|m| match Message::parse(m) {
            Err(Invalid { id }) => Member::Refused(
                ProtocolError::InvalidRequest("invalid JSON-RPC message".into()).reply(id),
            ),
            Ok(Message::Request(r)) if matches!(r.method, Method::Initialize) => Member::Refused(
                ProtocolError::InvalidRequest(
                    "initialize must not be part of a JSON-RPC batch".into(),
                )
                .reply(r.id),
            ),
            Ok(Message::Request(r)) => match session_error {
                Some(e) => {
                    Member::Refused(ProtocolError::InvalidRequest(e.to_string().into()).reply(r.id))
                }
                None => Member::Request(r),
            },
            Ok(m) => Member::Other(m),
        })
        .collect()
}

/// Refuse a whole batch with one error (HTTP 400).
fn refuse_batch(message: &str) -> switchboard_core::Error {
    refuse::batch(message.to_string())
}

fn not_in_revision(version: &str) -> String {
    format!(
        "JSON-RPC batches are not supported in protocol revision {version} \
         (removed after {LAST_BATCH_VERSION}): send one message per request"
    )
}

/// The checks every batch passes before its members are looked at: not empty, within the
/// limit. Returns the refusal, if any.
fn check_size(items: &[Value], ctx: &RequestContext) -> switchboard_core::Result<()> {
    if items.is_empty() {
        return Err(refuse_batch("empty JSON-RPC batch"));
    }
    let max = ctx.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
    if items.len() > max {
        return Err(refuse_batch(&format!(
            "JSON-RPC batch has more than {max} entries"
        )));
    }
    Ok(())
}

impl McpBackend {
    /// A Streamable HTTP POST whose body is an array.
    pub(super) async fn post_batch(
        &self,
        headers: &HeaderMap,
        items: Vec<Value>,
        accepts_sse: bool,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        check_size(&items, ctx)?;
        let header_version = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok());
        if let Some(v) = header_version
            && !SESSION_VERSIONS.contains(&v)
            && v != STATELESS_VERSION
        {
            return Err(refuse::unsupported_version());
        }
        let Some(sid) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            let version = header_version.unwrap_or(LAST_BATCH_VERSION);
            if !batches_allowed(version) {
                return Err(refuse_batch(&not_in_revision(version)));
            }
            // Each member fares as it would alone: without a session, nothing but
            // `initialize` is served, and `initialize` cannot be batched.
            let replies: Vec<Value> = classify(items, Some("missing Mcp-Session-Id header"))
                .into_iter()
                .filter_map(|m| match m {
                    Member::Refused(e) => Some(e),
                    _ => None,
                })
                .collect();
            if replies.is_empty() {
                return Err(refuse::no_session_id());
            }
            return Ok(rpc_response(StatusCode::BAD_REQUEST, Value::Array(replies)));
        };
        let session = match self.resume(sid, ctx).await {
            Ok(s) => s,
            Err(r) => return rejected(r, Value::Null),
        };
        if !batches_allowed(&session.0.version) {
            return Err(refuse_batch(&not_in_revision(&session.0.version)));
        }
        let members = classify(items, None);
        let n = members.len();
        let mut replies: Vec<Option<Value>> = vec![None; n];
        let mut requests = Vec::new();
        for (i, m) in members.into_iter().enumerate() {
            match m {
                Member::Request(r) => requests.push((i, r)),
                Member::Other(m) => self.client_message(&session, m).await,
                Member::Refused(e) => {
                    if let Some(slot) = replies.get_mut(i) {
                        *slot = Some(e);
                    }
                }
            }
        }
        if requests.is_empty() {
            let replies: Vec<Value> = replies.into_iter().flatten().collect();
            if replies.is_empty() {
                return Ok(accepted());
            }
            return Ok(rpc_response(StatusCode::OK, Value::Array(replies)));
        }
        let streams = accepts_sse
            && requests
                .iter()
                .any(|(_, r)| !matches!(r.method, Method::Ping));
        let access = ctx.access.clone();
        if !streams {
            let answers = futures::future::join_all(requests.into_iter().map(|(i, r)| {
                let (session, access) = (&session, access.clone());
                async move { (i, self.dispatch(session, r, None, access).await) }
            }))
            .await;
            for (i, a) in answers {
                if let Some(slot) = replies.get_mut(i) {
                    *slot = Some(a);
                }
            }
            self.sync_targets(&session).await;
            let replies: Vec<Value> = replies.into_iter().flatten().collect();
            return Ok(rpc_response(StatusCode::OK, Value::Array(replies)));
        }
        let (tx, rx) = self.request_outbox(&session);
        let this = self.clone();
        let s2 = session.clone();
        let call: super::streamable::Call = Box::pin(crate::trace::carry(async move {
            for e in replies.into_iter().flatten() {
                let _ = tx.send_last(e).await;
            }
            // Each reply goes out when it is ready; the stream ends with the last one.
            futures::future::join_all(requests.into_iter().map(|(_, r)| {
                let (this, s2, tx, access) = (&this, &s2, tx.clone(), access.clone());
                async move {
                    let reply = this.dispatch(s2, r, Some(tx.clone()), access).await;
                    let _ = tx.send_last(reply).await;
                }
            }))
            .await;
            drop(tx);
            this.sync_targets(&s2).await;
        }));
        let mut r = self.sse_answer(session, rx, call).await;
        if let Ok(v) = http::HeaderValue::from_str(sid) {
            r.headers_mut().insert("mcp-session-id", v);
        }
        Ok(r)
    }

    /// A batch posted to the legacy transport's `{prefix}/message`: refused at once when it is
    /// empty, too long or the session's revision has no batches; otherwise accepted (202) and
    /// every reply sent as its own event on the session's SSE stream as it is ready.
    pub(super) fn legacy_batch(
        &self,
        legacy_id: String,
        tx: crate::outbox::Outbox<Value>,
        items: Vec<Value>,
        ctx: &RequestContext,
    ) -> switchboard_core::Result<Response<Body>> {
        check_size(&items, ctx)?;
        let session: Option<Session> = self.0.sessions.get(&legacy_id, ctx.principal.as_deref());
        if let Some(s) = &session
            && !batches_allowed(&s.0.version)
        {
            return Err(refuse_batch(&not_in_revision(&s.0.version)));
        }
        let members = classify(items, session.is_none().then_some("not initialized"));
        let this = self.clone();
        let access = ctx.access.clone();
        tokio::spawn(crate::trace::carry(async move {
            let mut requests = Vec::new();
            for m in members {
                match m {
                    Member::Refused(e) => {
                        let _ = tx.send_last(e).await;
                    }
                    Member::Other(m) => {
                        if let Some(s) = &session {
                            this.client_message(s, m).await;
                        }
                    }
                    Member::Request(r) => requests.push(r),
                }
            }
            let Some(session) = session else { return };
            futures::future::join_all(requests.into_iter().map(|r| {
                let (this, session, tx, access) = (&this, &session, &tx, access.clone());
                async move {
                    let reply = this.dispatch(session, r, None, access).await;
                    let _ = tx.send_last(reply).await;
                }
            }))
            .await;
        }));
        Ok(Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::from("Accepted"))
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_are_classified_one_by_one() {
        let items = vec![
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            json!({"jsonrpc": "2.0", "id": "x", "method": "initialize", "params": {}}),
            json!({"jsonrpc": "2.0", "id": 2}),
            json!(7),
            json!({"jsonrpc": "2.0", "id": "sb-1", "result": {}}),
        ];
        let m = classify(items.clone(), None);
        assert!(matches!(&m[0], Member::Request(r) if r.id == 1));
        assert!(matches!(&m[1], Member::Other(_)));
        assert!(
            matches!(&m[2], Member::Refused(e) if e["id"] == "x" && e["error"]["code"] == -32600)
        );
        assert!(matches!(&m[3], Member::Refused(e) if e["id"] == 2));
        assert!(matches!(&m[4], Member::Refused(e) if e["id"].is_null()));
        assert!(matches!(&m[5], Member::Other(_)));
        let m = classify(items, Some("no session"));
        assert!(
            matches!(&m[0], Member::Refused(e) if e["id"] == 1 && e["error"]["message"] == "no session")
        );
    }
}
