//! The upstream stage of one request: the session's connection to the target (connected
//! lazily when it has none), the request's id and progress token rewritten to the upstream's,
//! the client's cancellation honoured, and what the target sends while it works delivered to
//! the request's stream through a [`Sink`](crate::upstream::Sink).

use crate::LockExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::{McpBackend, RECONNECT_HOLDOFF, STATELESS_VERSION};
use crate::error::{Error, ProtocolError, Result};
use crate::jsonrpc;
use crate::session::{Inflight, Session};
use crate::upstream::{Recipient, Sink, Upstream, prepare};

impl McpBackend {
    pub(super) async fn upstream(&self, session: &Session, t: usize) -> Result<Upstream> {
        match session.upstream(t) {
            // A legacy SSE connection cannot resume: a dropped one is replaced by a new one.
            Some(Upstream::Sse(s)) if s.is_closed() => {}
            Some(u) => return Ok(u),
            None => {}
        }
        // Connected lazily: a stateless request, a target that failed at initialize, or a
        // legacy SSE target whose connection dropped.
        let target = &self.target(t);
        let now = tokio::time::Instant::now();
        if target.down_until.locked().is_some_and(|until| now < until) {
            return Err(Error::Unavailable {
                target: target.name.to_string(),
                reason: "failed recently".into(),
            });
        }
        let r = match tokio::time::timeout(target.cfg.timeout(), self.connect(session, t)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(target.name.to_string())),
        };
        *target.down_until.locked() = r.is_err().then(|| now + RECONNECT_HOLDOFF);
        r?;
        session.upstream(t).ok_or_else(|| Error::Unavailable {
            target: self.target(t).name.to_string(),
            reason: "not connected".into(),
        })
    }

    /// Forward a request to target `t` once (no input rounds, see `mrtr`); the reply comes
    /// back with the client's id.
    pub(super) async fn call_once(
        &self,
        session: &Session,
        t: usize,
        mut msg: Value,
        stream: Option<crate::outbox::Outbox<Value>>,
    ) -> Value {
        let down_id = jsonrpc::id(&msg);
        let method = jsonrpc::method(&msg).to_string();
        let target = &self.target(t);
        let up = match self.upstream(session, t).await {
            Ok(u) => u,
            Err(e) => {
                self.0
                    .shared
                    .metrics
                    .request(&method, &target.name, "error");
                return ProtocolError::from(e).reply(down_id);
            }
        };
        let uid = self.0.shared.ids.fetch_add(1, Ordering::Relaxed);
        let progress = prepare(&mut msg, uid);
        let key = jsonrpc::id_key(&down_id);
        let cancel = tokio_util::sync::CancellationToken::new();
        session.0.inflight.locked().insert(
            key.clone(),
            Inflight {
                target: t,
                upstream_id: uid,
                cancel: cancel.clone(),
            },
        );
        // Removes the entry however this future ends (also when the client goes away).
        let _inflight = InflightGuard(session, &key);
        let recipient = Recipient::new(Arc::new(RequestSink {
            session: session.clone(),
            target: t,
            stream,
        }));
        let span =
            crate::trace::current().map(|parent| target_span(&parent, &target.name, &up, &msg));
        if let (Some(span), Upstream::Stdio(_)) = (&span, &up) {
            // No headers on a pipe: the trace context rides in the request's `_meta`.
            crate::trace::inject_meta(&mut msg, span);
        }
        // A cancelled request may never be answered upstream; stop waiting for it.
        let r = crate::trace::scoped(span.clone(), async {
            tokio::select! {
                r = up.request(recipient, msg, progress, target.cfg.timeout(), &target.name) => r,
                _ = cancel.cancelled() => Err(Error::Cancelled),
            }
        })
        .await;
        if let Some(span) = span {
            match &r {
                Ok(resp) => {
                    if let Some(code) =
                        crate::jsonrpc::at(resp, &["error", "code"]).and_then(Value::as_i64)
                    {
                        span.set(opentelemetry::KeyValue::new(
                            "rpc.response.status_code",
                            code.to_string(),
                        ));
                        span.error(code.to_string());
                    }
                }
                Err(Error::Timeout(_)) => span.error("timeout"),
                Err(Error::Cancelled) => span.error("cancelled"),
                Err(_) => span.error("unavailable"),
            }
            span.end();
        }
        match r {
            Ok(mut resp) => {
                let result = if resp.get("error").is_some() {
                    "error"
                } else {
                    "ok"
                };
                self.0.shared.metrics.request(&method, &target.name, result);
                jsonrpc::set_id(&mut resp, down_id);
                resp
            }
            Err(e) => {
                tracing::warn!(target_name = %target.name, %method, error = %e, "upstream request failed");
                let result = if matches!(e, Error::Timeout(_)) {
                    "timeout"
                } else if matches!(e, Error::Cancelled) {
                    "cancelled"
                } else {
                    "error"
                };
                self.0.shared.metrics.request(&method, &target.name, result);
                ProtocolError::from(e).reply(down_id)
            }
        }
    }
}

/// What target `target` sends while it serves one request of `session`: on the request's
/// stream when it has one, else on the session's standalone stream.
struct RequestSink {
    session: Session,
    target: usize,
    stream: Option<crate::outbox::Outbox<Value>>,
}

impl Sink for RequestSink {
    fn deliver(&self, msg: Value) {
        self.session
            .deliver_from_upstream(self.target, msg, self.stream.as_ref());
    }

    /// A stateless client's call parked for input (see `stateless`) is silent upstream while
    /// the client thinks; the parked call's own `input_timeout` bounds that wait instead.
    fn waiting_for_client(&self) -> bool {
        self.session.0.version == STATELESS_VERSION && self.session.awaiting_client(self.target)
    }
}

/// See [`McpBackend::call`].
struct InflightGuard<'a>(&'a Session, &'a str);

impl Drop for InflightGuard<'_> {
    fn drop(&mut self) {
        self.0.0.inflight.locked().remove(self.1);
    }
}

/// The CLIENT span of one request to one target: `{mcp.method.name} {tool}` (the target's
/// own tool or prompt name), with the target, its transport and, over HTTP, its address.
fn target_span(
    parent: &switchboard_core::Trace,
    target: &str,
    up: &Upstream,
    msg: &Value,
) -> switchboard_core::Trace {
    use opentelemetry::KeyValue;
    let method = jsonrpc::method(msg).to_owned();
    let mut attrs = vec![
        KeyValue::new("mcp.method.name", method.clone()),
        KeyValue::new("switchboard.mcp.target", target.to_owned()),
    ];
    let url = match up {
        Upstream::Http(h) => Some(h.url()),
        Upstream::Sse(_) | Upstream::OpenApi(_) => None,
        Upstream::Stdio(_) => {
            attrs.push(KeyValue::new("network.transport", "pipe"));
            None
        }
    };
    if let Some(u) = url.and_then(|u| url::Url::parse(u).ok()) {
        attrs.push(KeyValue::new("network.transport", "tcp"));
        if let Some(h) = u.host_str() {
            attrs.push(KeyValue::new("server.address", h.to_owned()));
        }
        if let Some(p) = u.port_or_known_default() {
            attrs.push(KeyValue::new("server.port", i64::from(p)));
        }
    }
    let name = match crate::jsonrpc::at(msg, &["params", "name"]).and_then(Value::as_str) {
        Some(n) if method == "tools/call" => {
            attrs.push(KeyValue::new("gen_ai.tool.name", n.to_owned()));
            format!("{method} {n}")
        }
        Some(n) if method == "prompts/get" => format!("{method} {n}"),
        _ => method,
    };
    parent.child(name, switchboard_core::trace::Kind::Client, attrs)
}
