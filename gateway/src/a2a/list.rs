//! `ListTasks` on a multi-replica route with no conversation to pin it: the gateway pages
//! through the replicas one after the other behind page tokens of its own.

use std::time::Instant;

use axum::body::Body;
use bytes::Bytes;
use http::header;
use http::{Response, StatusCode};
use serde_json::Value;

use super::errors::{self, Refusal};
use super::exchange::Exchange;
use super::replica::{unasked_switch, upstream_failed};
use super::{A2aBackend, rpc};
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::forwarding::strip_response;

impl A2aBackend {
    /// `ListTasks` on a multi-replica route: pages through the replicas one after the other.
    /// The client's `pageToken` is ours (`sb.{replica}.{replica's token}`), so each page is one
    /// replica's page (its `pageSize` holds) and paging continues on the next replica when one
    /// is exhausted. `totalSize` is that of the replica being paged.
    pub(super) async fn list_across(
        &self,
        parts: &http::request::Parts,
        rest: &str,
        mut msg: Value,
        id: &Value,
        cx: &RequestCx<'_>,
        ex: &mut Exchange,
    ) -> Result<Response<Body>, RequestError> {
        let token = msg
            .pointer("/params/pageToken")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some((mut i, mut inner)) = page_token::decode(token, self.upstreams.len()) else {
            ex.outcome = "refused";
            return Ok(errors::refused(Refusal::InvalidPageToken, id));
        };
        loop {
            let Some(up) = self.upstreams.get(i) else {
                ex.outcome = "refused";
                return Ok(errors::refused(Refusal::InvalidPageToken, id));
            };
            ex.replica = up.url.clone();
            // `msg` is an object (it has a method); its params become one if they are not.
            let params = msg.as_object_mut().map(|m| {
                let p = m
                    .entry("params")
                    .or_insert_with(|| Value::Object(Default::default()));
                if !p.is_object() {
                    *p = Value::Object(Default::default());
                }
                p
            });
            if let Some(params) = params.and_then(Value::as_object_mut) {
                if inner.is_empty() {
                    params.remove("pageToken");
                } else {
                    params.insert("pageToken".into(), Value::String(inner.clone()));
                }
            }
            // A `Value` always serializes; straight into a buffer, not through `Display`.
            let body = Bytes::from(serde_json::to_vec(&msg).unwrap_or_default());
            let mut req =
                self.upstream_request(up, &parts.headers, rest, parts.uri.query(), body)?;
            if let Some(t) = &cx.context.trace {
                t.inject(req.headers_mut());
            }
            let started = Instant::now();
            let result = tokio::time::timeout(cx.timeouts.request, self.client.request(req)).await;
            cx.upstream_duration
                .observe(started.elapsed().as_secs_f64());
            let resp = match result {
                Err(_) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(
                        crate::error::timeout(cx.timeouts.request),
                        id,
                    ));
                }
                Ok(Err(e)) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(upstream_failed(e), id));
                }
                Ok(Ok(r)) if r.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(unasked_switch(&up.url), id));
                }
                Ok(Ok(r)) => r,
            };
            let (mut rparts, rbody) = resp.into_parts();
            let bytes = match self
                .read_reply(up, rbody, self.max_response_bytes, "answer")
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(e, id));
                }
            };
            strip_response(&mut rparts.headers);
            rparts.headers.remove(header::CONTENT_LENGTH);
            let mut answer = match serde_json::from_slice::<Value>(&bytes) {
                Ok(v) if v.get("result").is_some_and(Value::is_object) => v,
                // An error (or not JSON-RPC): the client sees it as the replica sent it.
                _ => {
                    ex.outcome = "error";
                    return Ok(Response::from_parts(rparts, Body::from(bytes)));
                }
            };
            let Some(result) = answer.get_mut("result") else {
                ex.outcome = "error";
                return Ok(Response::from_parts(rparts, Body::from(bytes)));
            };
            let mut seen = Vec::new();
            rpc::observe(result, &mut seen);
            let mut learner = self.learner(up);
            learner.learn(&seen).await;
            let next_inner = result
                .get("nextPageToken")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let empty = result
                .get("tasks")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            let next = if !next_inner.is_empty() {
                Some((i, next_inner))
            } else if i + 1 < self.upstreams.len() {
                Some((i + 1, String::new()))
            } else {
                None
            };
            // An exhausted replica with nothing on this page: go straight on to the next.
            if empty
                && let Some((ni, ninner)) = &next
                && *ni != i
            {
                i = *ni;
                inner = ninner.clone();
                continue;
            }
            let token = next
                .map(|(ni, t)| page_token::encode(ni, &t))
                .unwrap_or_default();
            result["nextPageToken"] = Value::String(token);
            ex.outcome = "ok";
            return Ok(Response::from_parts(rparts, Body::from(answer.to_string())));
        }
    }
}

/// The gateway's `ListTasks` page tokens over several replicas: `sb.{replica index}.{the
/// replica's own token, base64url}`.
mod page_token {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    pub fn encode(replica: usize, inner: &str) -> String {
        format!("sb.{replica}.{}", URL_SAFE_NO_PAD.encode(inner))
    }

    /// `(replica, inner token)`; the empty token starts at the first replica.
    pub fn decode(token: &str, replicas: usize) -> Option<(usize, String)> {
        if token.is_empty() {
            return Some((0, String::new()));
        }
        let rest = token.strip_prefix("sb.")?;
        let (i, inner) = rest.split_once('.')?;
        let i: usize = i.parse().ok()?;
        let inner = String::from_utf8(URL_SAFE_NO_PAD.decode(inner).ok()?).ok()?;
        (i < replicas).then_some((i, inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_garbage() {
        assert_eq!(page_token::decode("", 2), Some((0, String::new())));
        let t = page_token::encode(1, "abc/+=");
        assert_eq!(page_token::decode(&t, 2), Some((1, "abc/+=".into())));
        assert_eq!(page_token::decode(&t, 1), None);
        assert_eq!(page_token::decode("replica-token", 2), None);
        assert_eq!(page_token::decode("sb.x.y", 2), None);
    }
}
