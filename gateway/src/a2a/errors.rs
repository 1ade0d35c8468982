//! How an A2A route answers failures, in JSON-RPC. A failure answering a known call is
//! [`failed`]: the core error's JSON-RPC object ([`RequestError::jsonrpc_object`]) with the
//! call's id and the error's status. A call the protocol itself refuses is [`refused`], in-band
//! (HTTP 200) with the code the JSON-RPC and A2A specs give it: [`Refusal::error`] is the one
//! place those codes are written. Failures before any id is known are [`RequestError`]s the
//! gateway renders at its edge. Messages are fixed strings, never upstream details.

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::{Value, json};
use switchboard_core::Cause;

use crate::error::RequestError;

/// A call the gateway refuses on protocol grounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// The body is not JSON (JSON-RPC -32700).
    NotJson,
    /// Not one JSON-RPC request object with a method (JSON-RPC -32600).
    NotARequest,
    /// A push-notification URL outside `push_notifications.allowed_urls` (-32602).
    PushUrlNotAllowed,
    /// A `ListTasks` `pageToken` the gateway did not issue (-32602).
    InvalidPageToken,
}

impl Refusal {
    /// The JSON-RPC `error` member: causes core knows (not JSON, not a request) through core;
    /// invalid params (JSON-RPC's -32602, which A2A uses for refused parameters) here.
    pub(super) fn error(self) -> Value {
        let invalid_params = |message: &str, kind: &str| json!({"code": -32602, "message": message, "data": {"type": kind}});
        match self {
            Refusal::NotJson => {
                RequestError::new(Cause::InvalidJson, "parse error: the body is not JSON")
                    .jsonrpc_object()
            }
            Refusal::NotARequest => RequestError::new(
                Cause::BadRequest,
                "invalid request: a single JSON-RPC request object with a method is expected",
            )
            .jsonrpc_object(),
            Refusal::PushUrlNotAllowed => invalid_params(
                "push notification URL is not allowed by this gateway",
                "push_url_not_allowed",
            ),
            Refusal::InvalidPageToken => invalid_params("invalid pageToken", "invalid_params"),
        }
    }
}

/// A refused call, answering `id` in-band (HTTP 200, as JSON-RPC errors of the protocol are).
pub(super) fn refused(r: Refusal, id: &Value) -> Response<Body> {
    answer(StatusCode::OK, id, r.error())
}

/// A gateway failure (timeout, unreachable or misbehaving agent) answering call `id`, with the
/// error's status and headers.
pub(super) fn failed(e: RequestError, id: &Value) -> Response<Body> {
    let mut resp = answer(e.status(), id, e.jsonrpc_object());
    if let Some(h) = e.headers() {
        resp.headers_mut().extend(h.clone());
    }
    resp
}

/// The one writer of A2A JSON-RPC error responses.
fn answer(status: StatusCode, id: &Value, error: Value) -> Response<Body> {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": error});
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
