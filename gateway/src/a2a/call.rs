//! One JSON-RPC call: the body parsed and [`super::rpc::classify`]d, push-notification URLs
//! checked against the route's allow list, then sent to the replicas the [pinning](super::pinning)
//! plan names, in order, until one answers. A JSON answer is read (bounded) to learn the tasks
//! it reveals; an SSE answer streams through ([`super::exchange`]). Failures answering the
//! call carry its id ([`super::errors`]).

use std::time::Instant;

use axum::body::Body;
use http::header;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use super::errors::{self, Refusal};
use super::exchange::Exchange;
use super::pinning::Plan;
use super::replica::{unasked_switch, upstream_failed};
use super::{A2aBackend, card, rpc};
use crate::context::RequestCx;
use crate::error::RequestError;
use crate::forwarding::strip_response;
use switchboard_core::http::is_event_stream;

impl A2aBackend {
    pub(super) async fn rpc(
        &self,
        req: Request<Body>,
        cx: &RequestCx<'_>,
        rest: &str,
    ) -> Result<Response<Body>, RequestError> {
        let (parts, body) = req.into_parts();
        // Already read and bounded by the backend stage (`backend::read_json`); this is a no-copy
        // collect of that one buffer.
        let body = match Limited::new(
            body,
            usize::try_from(cx.max_body_bytes).unwrap_or(usize::MAX),
        )
        .collect()
        .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(crate::error::body_too_large(cx.max_body_bytes));
            }
            Err(_) => {
                return Err(crate::error::bad_request(
                    "the request body could not be read",
                ));
            }
        };
        let Ok(msg) = serde_json::from_slice::<Value>(&body) else {
            self.count("unknown", "refused");
            return Ok(errors::refused(Refusal::NotJson, &Value::Null));
        };
        let id = msg.get("id").cloned().unwrap_or(Value::Null);
        let Some(method) = msg.get("method").and_then(Value::as_str) else {
            self.count("unknown", "refused");
            return Ok(errors::refused(Refusal::NotARequest, &id));
        };
        let call = rpc::classify(method, msg.get("params").unwrap_or(&Value::Null));
        let mut ex = Exchange::new(self, call.method, call.task_id.clone());

        if let Some(bad) = call.push_urls.iter().find(|u| !self.push_allowed(u)) {
            tracing::warn!(
                route = %self.route,
                method = call.method,
                host = url::Url::parse(bad).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default(),
                "push notification URL refused: not in push_notifications.allowed_urls"
            );
            ex.outcome = "refused";
            return Ok(errors::refused(Refusal::PushUrlNotAllowed, &id));
        }

        let plan = if call.method == "ListTasks" && self.upstreams.len() > 1 {
            let pinned = match &call.context_id {
                Some(ctx) => self.pinned('c', ctx).await,
                None => None,
            };
            match pinned {
                // One conversation's tasks live on its replica.
                Some(i) => Plan {
                    order: vec![i],
                    probe: false,
                    failover: false,
                },
                None => return self.list_across(&parts, rest, msg, &id, cx, &mut ex).await,
            }
        } else {
            self.plan(&call).await
        };
        let query = parts.uri.query();
        let mut last: Option<Response<Body>> = None;
        for (n, &i) in plan.order.iter().enumerate() {
            let Some(up) = self.upstreams.get(i) else {
                continue;
            };
            let more = n + 1 < plan.order.len();
            ex.replica = up.url.clone();
            let mut upstream_req =
                self.upstream_request(up, &parts.headers, rest, query, body.clone())?;
            // Tracing on: a CLIENT span per replica tried, its `traceparent` sent upstream.
            let span = cx.context.trace.as_ref().map(|t| {
                use opentelemetry::KeyValue;
                let uri = upstream_req.uri();
                let span = t.child(
                    format!("a2a {}", call.method),
                    switchboard_core::trace::Kind::Client,
                    vec![
                        KeyValue::new("rpc.method", call.method),
                        KeyValue::new("server.address", uri.host().unwrap_or_default().to_owned()),
                        KeyValue::new("server.port", i64::from(uri.port_u16().unwrap_or(80))),
                        KeyValue::new("switchboard.attempt", n as i64 + 1),
                    ],
                );
                span.inject(upstream_req.headers_mut());
                span
            });
            let started = Instant::now();
            let result =
                tokio::time::timeout(cx.timeouts.request, self.client.request(upstream_req)).await;
            if let Some(span) = span {
                match &result {
                    Ok(Ok(r)) => {
                        let status = r.status().as_u16();
                        span.set(opentelemetry::KeyValue::new(
                            "http.response.status_code",
                            i64::from(status),
                        ));
                        if status >= 500 {
                            span.error(status.to_string());
                        }
                    }
                    Ok(Err(_)) => span.error("unavailable"),
                    Err(_) => span.error("timeout"),
                }
                span.end();
            }
            cx.upstream_duration
                .observe(started.elapsed().as_secs_f64());
            let resp = match result {
                Err(_) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(
                        crate::error::timeout(cx.timeouts.request),
                        &id,
                    ));
                }
                Ok(Err(e)) if e.is_connect() && more && (plan.failover || plan.probe) => {
                    tracing::warn!(route = %self.route, upstream = %up.url, error = %crate::upstream::DisplayChain(&e), "A2A replica unreachable; trying the next");
                    continue;
                }
                Ok(Err(e)) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(upstream_failed(e), &id));
                }
                Ok(Ok(r)) if r.status() == StatusCode::SWITCHING_PROTOCOLS => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(unasked_switch(&up.url), &id));
                }
                Ok(Ok(r)) => r,
            };
            let learner = self.learner(up);
            if is_event_stream(resp.headers()) {
                return Ok(self.stream_through(resp, learner, ex));
            }
            let (mut rparts, rbody) = resp.into_parts();
            let bytes = match self
                .read_reply(up, rbody, self.max_response_bytes, "answer")
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    ex.outcome = "upstream_error";
                    return Ok(errors::failed(e, &id));
                }
            };
            strip_response(&mut rparts.headers);
            rparts.headers.remove(header::CONTENT_LENGTH);
            let Ok(mut answer) = serde_json::from_slice::<Value>(&bytes) else {
                // Not JSON (an HTML error page, say): the caller gets a JSON-RPC error.
                tracing::warn!(route = %self.route, upstream = %up.url, status = rparts.status.as_u16(), "A2A agent answer is not JSON");
                ex.outcome = "upstream_error";
                return Ok(errors::failed(
                    crate::error::upstream("agent answer is not JSON"),
                    &id,
                ));
            };
            if let Some(code) = rpc::error_code(&answer) {
                ex.outcome = "error";
                if plan.probe && more && code == rpc::TASK_NOT_FOUND {
                    last = Some(Response::from_parts(rparts, Body::from(bytes)));
                    continue;
                }
                return Ok(Response::from_parts(rparts, Body::from(bytes)));
            }
            ex.outcome = "ok";
            let mut learner = learner;
            if let Some(result) = answer.get_mut("result") {
                let mut seen = Vec::new();
                rpc::observe(result, &mut seen);
                for s in &seen {
                    ex.saw(s);
                }
                learner.learn(&seen).await;
                if call.returns_card {
                    let public = self.public_base(
                        &parts.headers,
                        &parts.uri,
                        cx,
                        cx.prefix.unwrap_or("").trim_end_matches('/'),
                    )?;
                    let changed = card::rewrite(result, &public, &up.base_path, &self.security);
                    self.log_rewrite(&changed);
                    return Ok(Response::from_parts(rparts, Body::from(answer.to_string())));
                }
            }
            return Ok(Response::from_parts(rparts, Body::from(bytes)));
        }
        // Every replica said "task not found" (or the last one was unreachable).
        Ok(last.unwrap_or_else(|| {
            ex.outcome = "upstream_error";
            errors::failed(crate::error::upstream("no A2A replica reachable"), &id)
        }))
    }

    fn push_allowed(&self, raw: &str) -> bool {
        let Ok(u) = url::Url::parse(raw) else {
            return false;
        };
        if !matches!(u.scheme(), "http" | "https")
            || !u.username().is_empty()
            || u.password().is_some()
        {
            return false;
        }
        self.push_allow.iter().any(|a| {
            a.scheme() == u.scheme()
                && a.host_str() == u.host_str()
                && a.port_or_known_default() == u.port_or_known_default()
                && path_under(a.path(), u.path())
        })
    }
}

/// Whether `path` is `prefix` or below it, on whole segments.
fn path_under(prefix: &str, path: &str) -> bool {
    if prefix.ends_with('/') {
        return path.starts_with(prefix);
    }
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_paths_match_whole_segments() {
        assert!(path_under("/a2a/", "/a2a/x"));
        assert!(path_under("/a2a", "/a2a"));
        assert!(path_under("/a2a", "/a2a/x"));
        assert!(!path_under("/a2a", "/a2ax"));
        assert!(path_under("/", "/anything"));
    }
}
