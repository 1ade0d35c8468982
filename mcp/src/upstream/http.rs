//! Streamable HTTP upstream: one upstream MCP session per downstream session. Responses that
//! come as an SSE stream are read in the caller's task, so there is no task per session.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use super::Route;
use crate::error::{Error, Result};
use crate::jsonrpc;

/// A streamable HTTP upstream session.
pub(crate) struct HttpUpstream {
    target: Arc<str>,
    url: String,
    headers: HeaderMap,
    client: reqwest::Client,
    ids: Arc<AtomicU64>,
    init_params: Value,
    state: Mutex<State>,
}

#[derive(Default, Clone)]
struct State {
    session_id: Option<String>,
    version: Option<String>,
}

pub(crate) fn header_map(headers: &std::collections::BTreeMap<String, String>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.insert(k, v);
        }
    }
    map
}

impl HttpUpstream {
    /// Open an upstream session: `initialize` + `notifications/initialized`. Returns the
    /// upstream's initialize result.
    pub async fn connect(
        target: Arc<str>,
        url: String,
        headers: HeaderMap,
        client: reqwest::Client,
        ids: Arc<AtomicU64>,
        init_params: Value,
    ) -> Result<(Arc<Self>, Value)> {
        let this = Arc::new(Self {
            target,
            url,
            headers,
            client,
            ids,
            init_params,
            state: Mutex::new(State::default()),
        });
        let result = this.initialize().await?;
        Ok((this, result))
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            target: self.target.to_string(),
            reason: reason.into(),
        }
    }

    async fn initialize(&self) -> Result<Value> {
        *self.state.lock().unwrap() = State::default();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let msg = jsonrpc::request(Value::from(id), "initialize", self.init_params.clone());
        let resp = self.post_once(&msg, &State::default()).await?;
        if !resp.status().is_success() {
            return Err(self.unavailable(format!("initialize answered {}", resp.status())));
        }
        let session_id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = self.read_reply(resp, id, None, None).await?;
        let result = reply
            .get("result")
            .cloned()
            .ok_or_else(|| Error::Protocol {
                target: self.target.to_string(),
                reason: "initialize failed".into(),
            })?;
        let state = State {
            session_id,
            version: result
                .get("protocolVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        *self.state.lock().unwrap() = state.clone();
        let note = jsonrpc::notification(
            "notifications/initialized",
            Value::Object(Default::default()),
        );
        let _ = self.post_once(&note, &state).await?;
        Ok(result)
    }

    async fn post_once(&self, msg: &Value, state: &State) -> Result<reqwest::Response> {
        let mut req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json, text/event-stream")
            .body(serde_json::to_vec(msg).unwrap_or_default());
        if let Some(sid) = &state.session_id {
            req = req.header("mcp-session-id", sid);
        }
        if let Some(v) = &state.version {
            req = req.header("mcp-protocol-version", v);
        }
        req.send()
            .await
            .map_err(|e| self.unavailable(e.to_string()))
    }

    /// POST a message; an upstream that forgot our session (404, or 400 to a session id it
    /// issued) is re-initialized and the message sent once more.
    async fn post(&self, msg: &Value) -> Result<reqwest::Response> {
        let state = self.state.lock().unwrap().clone();
        let resp = self.post_once(msg, &state).await?;
        let forgot = state.session_id.is_some()
            && matches!(
                resp.status(),
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST
            );
        if !forgot {
            return Ok(resp);
        }
        tracing::info!(target_name = %self.target, status = %resp.status(), "upstream lost the session; re-initializing");
        self.initialize().await?;
        let state = self.state.lock().unwrap().clone();
        self.post_once(msg, &state).await
    }

    pub async fn request(
        &self,
        route: Route,
        msg: Value,
        progress: Option<Value>,
    ) -> Result<Value> {
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or_default();
        let resp = self.post(&msg).await?;
        if !resp.status().is_success() {
            return Err(self.unavailable(format!("answered {}", resp.status())));
        }
        self.read_reply(resp, id, Some(&route), progress).await
    }

    /// Read the reply to request `id` from a JSON or SSE response; other messages on the
    /// stream belong to that request and go to `route`.
    async fn read_reply(
        &self,
        resp: reqwest::Response,
        id: u64,
        route: Option<&Route>,
        progress: Option<Value>,
    ) -> Result<Value> {
        let is_sse = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            let body = resp
                .bytes()
                .await
                .map_err(|e| self.unavailable(e.to_string()))?;
            return serde_json::from_slice(&body).map_err(|_| Error::Protocol {
                target: self.target.to_string(),
                reason: "reply is not JSON".into(),
            });
        }
        let mut events = eventsource_stream::EventStream::new(resp.bytes_stream());
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| self.unavailable(e.to_string()))?;
            if ev.data.is_empty() {
                continue;
            }
            let Ok(mut msg) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if jsonrpc::kind(&msg) == jsonrpc::Kind::Response
                && msg.get("id").and_then(Value::as_u64) == Some(id)
            {
                return Ok(msg);
            }
            let Some(route) = route else { continue };
            if jsonrpc::method(&msg) == "notifications/progress" {
                match (&progress, msg.pointer_mut("/params/progressToken")) {
                    (Some(orig), Some(slot)) if slot.as_u64() == Some(id) => *slot = orig.clone(),
                    _ => continue,
                }
            }
            route.deliver(msg);
        }
        Err(self.unavailable("stream ended before the reply"))
    }

    pub async fn send(&self, msg: Value) -> Result<()> {
        let resp = self.post(&msg).await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.unavailable(format!("answered {}", resp.status())))
        }
    }

    /// Open the upstream's standalone GET stream (server-initiated messages outside requests).
    pub async fn open_stream(&self) -> Result<Option<reqwest::Response>> {
        let state = self.state.lock().unwrap().clone();
        let Some(sid) = state.session_id else {
            return Ok(None);
        };
        let mut req = self
            .client
            .get(&self.url)
            .headers(self.headers.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .header("mcp-session-id", sid);
        if let Some(v) = &state.version {
            req = req.header("mcp-protocol-version", v);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| self.unavailable(e.to_string()))?;
        Ok(resp.status().is_success().then_some(resp))
    }

    pub async fn close(&self) {
        let state = self.state.lock().unwrap().clone();
        if let Some(sid) = state.session_id {
            let _ = self
                .client
                .delete(&self.url)
                .headers(self.headers.clone())
                .header("mcp-session-id", sid)
                .send()
                .await;
        }
    }
}
