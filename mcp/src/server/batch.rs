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

use super::{
    McpBackend, RequestContext, SESSION_VERSIONS, STATELESS_VERSION, rpc_response, sse_response,
};
use crate::jsonrpc::{self, Kind};
use crate::session::Session;

/// Most messages in one batch when the gateway passes no limit
/// ([`RequestContext::max_batch`]); the gateway's own default (`listeners[].limits.json.max_batch`).
pub const DEFAULT_MAX_BATCH: usize = 64;

/// The newest protocol revision with JSON-RPC batches.
pub const LAST_BATCH_VERSION: &str = "2025-03-26";

/// Whether protocol revision `version` allows batches (revisions are dates, so they order as
/// strings).
pub fn batches_allowed(version: &str) -> bool {
    version <= LAST_BATCH_VERSION
}

/// What becomes of one batch member.
enum Member {
    /// Answered by dispatching it.
    Request(Value),
    /// A notification or a response: no reply.
    Other(Value),
    /// Refused with this error object.
    Refused(Value),
}

/// Classify the members; `session_error` refuses every request (there is no session).
fn classify(items: Vec<Value>, session_error: Option<&str>) -> Vec<Member> {
    items
        .into_iter()
        .map(|m| match jsonrpc::kind(&m) {
            Kind::Invalid => {
                let id = m
                    .get("id")
                    .filter(|id| id.is_string() || id.is_number())
                    .cloned()
                    .unwrap_or(Value::Null);
                Member::Refused(jsonrpc::error(
                    id,
                    jsonrpc::INVALID_REQUEST,
                    "invalid JSON-RPC message",
                ))
            }
            Kind::Request if jsonrpc::method(&m) == "initialize" => {
                Member::Refused(jsonrpc::error(
                    jsonrpc::id(&m),
                    jsonrpc::INVALID_REQUEST,
                    "initialize must not be part of a JSON-RPC batch",
                ))
            }
            Kind::Request => match session_error {
                Some(e) => {
                    Member::Refused(jsonrpc::error(jsonrpc::id(&m), jsonrpc::INVALID_REQUEST, e))
                }
                None => Member::Request(m),
            },
            _ => Member::Other(m),
        })
        .collect()
}

/// Refuse a whole batch with one error (HTTP 400).
fn refuse(message: &str) -> Response<Body> {
    rpc_response(
        StatusCode::BAD_REQUEST,
        jsonrpc::error(Value::Null, jsonrpc::INVALID_REQUEST, message),
    )
}

fn not_in_revision(version: &str) -> String {
    format!(
        "JSON-RPC batches are not supported in protocol revision {version} \
         (removed after {LAST_BATCH_VERSION}): send one message per request"
    )
}

/// The checks every batch passes before its members are looked at: not empty, within the
/// limit. Returns the refusal, if any.
fn check_size(items: &[Value], ctx: &RequestContext) -> Option<Response<Body>> {
    if items.is_empty() {
        return Some(refuse("empty JSON-RPC batch"));
    }
    let max = ctx.max_batch.unwrap_or(DEFAULT_MAX_BATCH);
    (items.len() > max).then(|| refuse(&format!("JSON-RPC batch has more than {max} entries")))
}

impl McpBackend {
    /// A Streamable HTTP POST whose body is an array.
    pub(super) async fn post_batch(
        &self,
        headers: &HeaderMap,
        items: Vec<Value>,
        accepts_sse: bool,
        ctx: &RequestContext,
    ) -> Response<Body> {
        if let Some(r) = check_size(&items, ctx) {
            return r;
        }
        let header_version = headers
            .get("mcp-protocol-version")
            .and_then(|v| v.to_str().ok());
        if let Some(v) = header_version
            && !SESSION_VERSIONS.contains(&v)
            && v != STATELESS_VERSION
        {
            return refuse("unsupported MCP-Protocol-Version");
        }
        let Some(sid) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
            let version = header_version.unwrap_or(LAST_BATCH_VERSION);
            if !batches_allowed(version) {
                return refuse(&not_in_revision(version));
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
                return refuse("missing Mcp-Session-Id header");
            }
            return rpc_response(StatusCode::BAD_REQUEST, Value::Array(replies));
        };
        let session = match self.resume(sid, ctx, &Value::Null).await {
            Ok(s) => s,
            Err(resp) => return resp,
        };
        if !batches_allowed(&session.0.version) {
            return refuse(&not_in_revision(&session.0.version));
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
                return Response::builder()
                    .status(StatusCode::ACCEPTED)
                    .body(Body::empty())
                    .unwrap_or_default();
            }
            return rpc_response(StatusCode::OK, Value::Array(replies));
        }
        let streams = accepts_sse && requests.iter().any(|(_, r)| jsonrpc::method(r) != "ping");
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
            return rpc_response(StatusCode::OK, Value::Array(replies));
        }
        let (tx, rx) = self.request_outbox(&session);
        let this = self.clone();
        let s2 = session.clone();
        tokio::spawn(async move {
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
        });
        let priming = session.0.version.as_str() >= "2025-11-25";
        let mut r = if session.0.managed.get().is_some() {
            self.logged_post_stream(session, rx, priming)
        } else {
            sse_response(session, rx, priming)
        };
        if let Ok(v) = http::HeaderValue::from_str(sid) {
            r.headers_mut().insert("mcp-session-id", v);
        }
        r
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
    ) -> Response<Body> {
        if let Some(r) = check_size(&items, ctx) {
            return r;
        }
        let session: Option<Session> = self.0.sessions.get(&legacy_id, ctx.principal.as_deref());
        if let Some(s) = &session
            && !batches_allowed(&s.0.version)
        {
            return refuse(&not_in_revision(&s.0.version));
        }
        let members = classify(items, session.is_none().then_some("not initialized"));
        let this = self.clone();
        let access = ctx.access.clone();
        tokio::spawn(async move {
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
        });
        Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::from("Accepted"))
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn revisions_with_batches() {
        assert!(batches_allowed("2024-11-05"));
        assert!(batches_allowed("2025-03-26"));
        assert!(!batches_allowed("2025-06-18"));
        assert!(!batches_allowed("2025-11-25"));
        assert!(!batches_allowed(STATELESS_VERSION));
    }

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
        assert!(matches!(&m[0], Member::Request(r) if r["id"] == 1));
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
