//! Input rounds across protocol eras (2026-07-28, SEP-2322). In 2026-07-28 a server that needs
//! input (elicitation, sampling, roots) answers `tools/call`, `prompts/get` or
//! `resources/read` with `resultType: "input_required"`, `inputRequests` and an opaque
//! `requestState`; the client retries with `inputResponses` and the state echoed. Session-era
//! servers instead send server-to-client requests mid-call.
//!
//! Here: a session-era client calling a 2026-07-28 target ([`McpBackend::call`]). Each input
//! request goes to the client as a real server-to-client request on its session; the answers
//! are sent back in a retry, for at most [`MAX_INPUT_ROUNDS`] rounds. Kinds the client did not
//! declare are declined (elicitation) or fail the call (sampling, roots), never sent. The other
//! direction, a stateless client calling a session-era target, is `stateless`; when both speak
//! 2026-07-28, results and retries pass through (names still routed).

use serde_json::{Map, Value, json};

use super::stateless::has_retry_fields;
use super::{McpBackend, STATELESS_VERSION};
use crate::config::TransportKind;
use crate::error::ProtocolError;
use crate::jsonrpc;
use crate::session::Session;
use crate::upstream::Upstream;

/// Most input rounds the gateway runs for one session-era client call.
pub const MAX_INPUT_ROUNDS: usize = 8;

fn is_input_required(resp: &Value) -> bool {
    crate::jsonrpc::at(resp, &["result", "resultType"]).and_then(Value::as_str)
        == Some("input_required")
}

/// What a forwarded request is, as far as input rounds go.
#[derive(Clone, Copy)]
pub(super) enum Forward<'a> {
    /// It cannot need input (lists, subscriptions, completions, the gateway's own requests).
    Plain,
    /// `prompts/get` or `resources/read`.
    MayNeedInput,
    /// `tools/call` of the target's tool of this (upstream) name.
    Tool(&'a str),
}

impl McpBackend {
    /// Forward a request to target `t`, running input rounds when a 2026-07-28 target needs
    /// input from a session-era client (see the module docs); the reply carries the client's id.
    pub(super) async fn call(
        &self,
        session: &Session,
        t: usize,
        msg: Value,
        stream: Option<crate::outbox::Outbox<Value>>,
        forward: Forward<'_>,
    ) -> Value {
        if matches!(forward, Forward::Plain) {
            return self.call_once(session, t, msg, stream).await;
        }
        let stateless = session.0.version == STATELESS_VERSION;
        let modern = self.target(t).kind == TransportKind::Http
            && matches!(self.upstream(session, t).await, Ok(Upstream::Http(h)) if h.is_modern());
        if !modern {
            if stateless && has_retry_fields(&msg) {
                return ProtocolError::UnknownRequestState(
                    "it was not issued by this gateway replica, or the call it named has ended",
                )
                .reply(jsonrpc::id(&msg));
            }
            return self.call_once(session, t, msg, stream).await;
        }
        if let Forward::Tool(name) = forward {
            let epoch = self.epoch();
            if self.target(t).tool_headers.get(epoch, name).is_none() {
                self.learn_tools(session, t).await;
            }
        }
        if stateless {
            return self.call_once(session, t, msg, stream).await;
        }
        let orig = msg.clone();
        let mut resp = self.call_once(session, t, msg, stream.clone()).await;
        for _ in 0..MAX_INPUT_ROUNDS {
            if !is_input_required(&resp) {
                return resp;
            }
            let result = resp.get("result").unwrap_or(&Value::Null);
            let responses = match self.gather(session, t, result, stream.as_ref()).await {
                Ok(r) => r,
                Err(e) => return e.reply(jsonrpc::id(&orig)),
            };
            let mut retry = orig.clone();
            if let Some(params) = retry.get_mut("params").and_then(Value::as_object_mut) {
                params.remove("inputResponses");
                params.remove("requestState");
                if !responses.is_empty() {
                    params.insert("inputResponses".into(), Value::Object(responses));
                }
                if let Some(state) = result.get("requestState") {
                    params.insert("requestState".into(), state.clone());
                }
            }
            resp = self.call_once(session, t, retry, stream.clone()).await;
        }
        if is_input_required(&resp) {
            let target = &self.target(t).name;
            return ProtocolError::Internal(
                format!(
                    "target `{target}` still needed input after {MAX_INPUT_ROUNDS} rounds; giving up"
                )
                .into(),
            )
            .reply(jsonrpc::id(&orig));
        }
        resp
    }

    pub(super) fn epoch(&self) -> u64 {
        self.0
            .naming
            .epoch
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// List target `t`'s tools (every page) to learn their `x-mcp-header` bindings.
    pub(super) async fn learn_tools(&self, session: &Session, t: usize) {
        let epoch = self.epoch();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let msg = jsonrpc::request(Value::from(0), "tools/list", params);
            let page = self.call_once(session, t, msg, None).await;
            let Some(result) = page.get("result") else {
                return;
            };
            if let Some(tools) = result.get("tools").and_then(Value::as_array) {
                self.target(t).tool_headers.record(epoch, tools);
            }
            match result.get("nextCursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => return,
            }
        }
    }

    /// Ask the session-era client each input request of an `input_required` result; returns
    /// the `inputResponses`, or the JSON-RPC error that ends the call.
    async fn gather(
        &self,
        session: &Session,
        t: usize,
        result: &Value,
        stream: Option<&crate::outbox::Outbox<Value>>,
    ) -> Result<Map<String, Value>, ProtocolError> {
        let empty = Map::new();
        let requests = result
            .get("inputRequests")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let caps = session
            .0
            .init_params
            .get("capabilities")
            .unwrap_or(&Value::Null);
        let timeout = self.target(t).cfg.timeout();
        let answers = futures::future::join_all(requests.iter().map(|(key, req)| async move {
            let method = jsonrpc::method(req);
            let cap = match method {
                "elicitation/create" => "elicitation",
                "sampling/createMessage" => "sampling",
                "roots/list" => "roots",
                other => {
                    return Err(ProtocolError::Internal(
                        format!("the target asked for unsupported input `{other}`").into(),
                    ));
                }
            };
            if caps.get(cap).is_none() {
                // Never ask a client for what it did not declare; a form can be declined.
                if cap == "elicitation" {
                    return Ok((key.clone(), json!({"action": "decline"})));
                }
                return Err(ProtocolError::Internal(
                    format!("the target needs `{method}`, which this client does not support")
                        .into(),
                ));
            }
            let params = req.get("params").cloned().unwrap_or_else(|| json!({}));
            let Some((gid, rx)) = session.ask(method, params, stream) else {
                return Err(ProtocolError::Internal(
                    format!("the target needs `{method}`, but the client cannot be reached").into(),
                ));
            };
            let reply = tokio::time::timeout(timeout, rx).await;
            session.forget(&gid);
            match reply {
                Ok(Ok(r)) => match (r.get("result"), r.get("error")) {
                    (Some(res), _) => Ok((key.clone(), res.clone())),
                    (None, Some(e)) => Err(ProtocolError::Forwarded(e.clone())),
                    _ => Err(ProtocolError::Internal(
                        "invalid reply from the client".into(),
                    )),
                },
                _ => Err(ProtocolError::ClientTimeout(method.to_string())),
            }
        }))
        .await;
        answers.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_required_is_recognized() {
        assert!(is_input_required(
            &json!({"result": {"resultType": "input_required"}})
        ));
        assert!(!is_input_required(
            &json!({"result": {"resultType": "complete"}})
        ));
        assert!(!is_input_required(&json!({"error": {"code": 1}})));
    }
}
