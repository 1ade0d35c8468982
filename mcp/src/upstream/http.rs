//! Streamable HTTP upstream: one upstream MCP session per downstream session. Responses that
//! come as an SSE stream are read in the caller's task, so there is no task per session.

use crate::LockExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

use super::direct::{self, DirectTarget, Reply};
use super::{Recipient, frames};
use crate::credentials::UpstreamHeaders;
use crate::error::{Error, Result};
use crate::jsonrpc;
use crate::param_headers::{self, ToolHeaders};

/// A streamable HTTP upstream session.
pub(crate) struct HttpUpstream {
    target: Arc<str>,
    url: String,
    /// `url` parsed once (reqwest parses a string URL on every request); `None` when it does
    /// not parse, and every request then fails as reqwest fails it.
    parsed: Option<reqwest::Url>,
    /// Where POSTs go on hyper's client directly (`None`: through reqwest; see [`direct`]).
    direct: Option<DirectTarget>,
    headers: UpstreamHeaders,
    /// The target's clients: each request goes out on the calling thread's.
    client: super::Clients,
    ids: Arc<AtomicU64>,
    /// The downstream session's (one tree per session, however many targets).
    init_params: Arc<Value>,
    /// Largest message read from the target (`mcp.max_reply_bytes`).
    max_reply: usize,
    state: Mutex<State>,
    /// The target's `x-mcp-header` bindings (shared by every session of the backend), for the
    /// `Mcp-Param-*` headers of calls to a 2026-07-28 upstream.
    tool_headers: std::sync::OnceLock<ToolHeaders>,
}

#[derive(Default, Clone)]
struct State {
    session_id: Option<String>,
    version: Option<String>,
    /// The upstream speaks only 2026-07-28: no session, context in every request.
    modern: bool,
}

/// JSON-RPC error code of an `initialize` a 2026-07-28-only server refuses.
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
const MODERN: &str = "2026-07-28";
/// Longest upstream `Mcp-Session-Id` accepted (the spec's ids are UUIDs, JWTs or hashes).
const MAX_UPSTREAM_SESSION_ID: usize = 1024;

/// The `Mcp-Name` routing header of a 2026-07-28 request, when it has one (encoded with
/// [`param_headers::encode`] where it is not plain ASCII).
fn routing_name(msg: &Value) -> Option<&str> {
    let key = match jsonrpc::method(msg) {
        "tools/call" | "prompts/get" => "name",
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => "uri",
        _ => return None,
    };
    jsonrpc::param_str(msg, key).filter(|v| !v.is_empty())
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

/// How long the rest of an SSE response is read after its reply, for its connection's sake
/// (a target that keeps the stream open holds a connection no longer than this).
const DRAIN_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// What is left of an SSE response once its reply was read (the end of the stream; anything
/// else there belongs to no one and is dropped, as it was when the stream was dropped here):
/// read to its end so that the connection goes back to the pool, instead of being closed and
/// a new one opened for the next request. Usually the end has arrived with the reply; else a
/// task waits for it, at most [`DRAIN_WAIT`].
fn read_to_end<S>(mut events: S)
where
    S: futures::Stream + Send + Unpin + 'static,
{
    use futures::FutureExt;
    loop {
        match events.next().now_or_never() {
            Some(Some(_)) => continue,
            Some(None) => return,
            None => break,
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_WAIT, async { while events.next().await.is_some() {} })
            .await;
    });
}

impl HttpUpstream {
    /// Open an upstream session: `initialize` + `notifications/initialized`. Returns the
    /// upstream's initialize result.
    pub async fn connect(
        target: Arc<str>,
        url: String,
        headers: UpstreamHeaders,
        client: super::Clients,
        ids: Arc<AtomicU64>,
        init_params: Arc<Value>,
        max_reply: usize,
    ) -> Result<(Arc<Self>, Value)> {
        let parsed = reqwest::Url::parse(&url).ok();
        let this = Arc::new(Self {
            target,
            direct: parsed.as_ref().and_then(DirectTarget::new),
            parsed,
            url,
            headers,
            client,
            ids,
            init_params,
            max_reply,
            state: Mutex::new(State::default()),
            tool_headers: Default::default(),
        });
        let result = this.initialize().await?;
        Ok((this, result))
    }

    /// Adopt an upstream session opened earlier (by this or another replica) without a new
    /// `initialize`: the session continues under `session_id`. An upstream that no longer knows
    /// it answers 404 (or 400) and is re-initialized transparently on the first request.
    #[allow(clippy::too_many_arguments)]
    pub fn resume(
        target: Arc<str>,
        url: String,
        headers: UpstreamHeaders,
        client: super::Clients,
        ids: Arc<AtomicU64>,
        init_params: Arc<Value>,
        session_id: String,
        max_reply: usize,
    ) -> Arc<Self> {
        let version = init_params
            .get("protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_string);
        let parsed = reqwest::Url::parse(&url).ok();
        Arc::new(Self {
            target,
            direct: parsed.as_ref().and_then(DirectTarget::new),
            parsed,
            url,
            headers,
            client,
            ids,
            init_params,
            max_reply,
            state: Mutex::new(State {
                session_id: Some(session_id),
                version,
                modern: false,
            }),
            tool_headers: Default::default(),
        })
    }

    /// Share the target's tool-schema cache (set once, right after construction).
    pub fn set_tool_headers(&self, h: ToolHeaders) {
        let _ = self.tool_headers.set(h);
    }

    /// Whether the upstream speaks only 2026-07-28 (stateless; multi round-trip requests).
    pub fn is_modern(&self) -> bool {
        self.state.locked().modern
    }

    /// The upstream's current session id (changes when the upstream is re-initialized).
    pub fn session_id(&self) -> Option<String> {
        self.state.locked().session_id.clone()
    }

    /// The upstream URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The target's name.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The cap on one message from this target.
    pub fn max_reply(&self) -> usize {
        self.max_reply
    }

    /// A request to the target's URL on this thread's client.
    fn to_target(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let client = self.client.here();
        match &self.parsed {
            Some(url) => client.request(method, url.clone()),
            None => client.request(method, self.url.as_str()),
        }
    }

    fn frame_error(&self, e: frames::FrameError) -> Error {
        match e {
            frames::FrameError::TooLarge => Error::TooLarge {
                target: self.target.to_string(),
                limit: self.max_reply,
            },
            frames::FrameError::Io(e) => self.unavailable(e),
        }
    }

    fn unavailable(&self, reason: impl Into<String>) -> Error {
        Error::Unavailable {
            target: self.target.to_string(),
            reason: reason.into(),
        }
    }

    async fn initialize(&self) -> Result<Value> {
        *self.state.locked() = State::default();
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let msg = jsonrpc::request(
            Value::from(id),
            "initialize",
            Value::clone(&self.init_params),
        );
        let resp = self.post_once(&msg, &State::default()).await?;
        let status = resp.status();
        let session_id = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        // It travels in the downstream session's token: bounded, like everything sealed there.
        if session_id
            .as_ref()
            .is_some_and(|s| s.len() > MAX_UPSTREAM_SESSION_ID)
        {
            return Err(Error::Protocol {
                target: self.target.to_string(),
                reason: "Mcp-Session-Id too long".into(),
            });
        }
        let reply = if status.is_success() {
            self.read_reply(resp, id, None, None).await?
        } else {
            // A refusal may still explain itself in a JSON-RPC error.
            let body = frames::read_body(resp, self.max_reply)
                .await
                .unwrap_or_default();
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        if crate::jsonrpc::at(&reply, &["error", "code"]).and_then(Value::as_i64)
            == Some(UNSUPPORTED_PROTOCOL_VERSION)
        {
            return self.discover().await;
        }
        if !status.is_success() {
            return Err(self.unavailable(format!("initialize answered {status}")));
        }
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
            modern: false,
        };
        *self.state.locked() = state.clone();
        let note = jsonrpc::notification(
            "notifications/initialized",
            Value::Object(Default::default()),
        );
        let _ = self.post_once(&note, &state).await?;
        Ok(result)
    }

    /// A 2026-07-28-only upstream: learn its capabilities with `server/discover` and speak to
    /// it statelessly from now on. Returns an initialize-shaped result for the merge.
    async fn discover(&self) -> Result<Value> {
        let state = State {
            session_id: None,
            version: Some(MODERN.into()),
            modern: true,
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let msg = jsonrpc::request(Value::from(id), "server/discover", serde_json::json!({}));
        let resp = self.post_once(&msg, &state).await?;
        if !resp.status().is_success() {
            return Err(self.unavailable(format!("server/discover answered {}", resp.status())));
        }
        let reply = self.read_reply(resp, id, None, None).await?;
        let Some(result) = reply.get("result") else {
            return Err(Error::Protocol {
                target: self.target.to_string(),
                reason: "server/discover failed".into(),
            });
        };
        *self.state.locked() = state;
        let mut init = serde_json::json!({
            "protocolVersion": MODERN,
            "capabilities": result.get("capabilities").cloned().unwrap_or_default(),
            "serverInfo": result.get("serverInfo").cloned()
                .unwrap_or_else(|| serde_json::json!({"name": &*self.target, "version": ""})),
        });
        if let Some(i) = result.get("instructions")
            && let Some(o) = init.as_object_mut()
        {
            o.insert("instructions".into(), i.clone());
        }
        Ok(init)
    }

    async fn post_once(&self, msg: &Value, state: &State) -> Result<Reply> {
        let body = if state.modern {
            // 2026-07-28 carries the client context in every request instead of a session.
            let mut m = msg.clone();
            if let Some(params) = m.as_object_mut().map(|o| {
                o.entry("params")
                    .or_insert_with(|| Value::Object(Default::default()))
            }) && let Some(params) = params.as_object_mut()
            {
                let meta = params
                    .entry("_meta")
                    .or_insert_with(|| Value::Object(Default::default()));
                if let Some(meta) = meta.as_object_mut() {
                    meta.insert(
                        "io.modelcontextprotocol/protocolVersion".into(),
                        Value::from(MODERN),
                    );
                    meta.insert(
                        "io.modelcontextprotocol/clientCapabilities".into(),
                        self.init_params
                            .get("capabilities")
                            .cloned()
                            .unwrap_or_default(),
                    );
                    if let Some(ci) = self.init_params.get("clientInfo") {
                        meta.insert("io.modelcontextprotocol/clientInfo".into(), ci.clone());
                    }
                }
            }
            serde_json::to_vec(&m).unwrap_or_default()
        } else {
            serde_json::to_vec(msg).unwrap_or_default()
        };
        let body = bytes::Bytes::from(body);
        let mut headers = self.post_headers(msg, state)?;
        if let Some(target) = &self.direct {
            match target
                .post(self.client.direct_here(), headers, body.clone())
                .await
            {
                Ok(Some(resp)) => return Ok(resp),
                Err(e) => return Err(self.unavailable(e)),
                // A redirect: asked again through reqwest, which follows it.
                Ok(None) => headers = self.post_headers(msg, state)?,
            }
        }
        self.to_target(reqwest::Method::POST)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map(Reply::Reqwest)
            .map_err(|e| self.unavailable(e.to_string()))
    }

    /// The headers of a POST of `msg`, as reqwest's builder made them, in its order: the
    /// target's, content type, accept, trace context, the 2026-07-28 routing and parameter
    /// headers, session id, protocol version. A value that is not a header value fails the
    /// request as reqwest's builder failed it.
    fn post_headers(&self, msg: &Value, state: &State) -> Result<HeaderMap> {
        fn value<V>(v: V) -> Result<HeaderValue, ()>
        where
            HeaderValue: TryFrom<V>,
        {
            HeaderValue::try_from(v).map_err(|_| ())
        }
        let build = || -> Result<HeaderMap, ()> {
            let mut h = self.headers.current();
            h.append(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            h.append(
                http::header::ACCEPT,
                HeaderValue::from_static("application/json, text/event-stream"),
            );
            if let Some((parent, trace_state)) = crate::trace::header_values() {
                h.append(HeaderName::from_static("traceparent"), value(parent)?);
                if let Some(ts) = trace_state {
                    h.append(HeaderName::from_static("tracestate"), value(ts)?);
                }
            }
            if state.modern && !jsonrpc::method(msg).is_empty() {
                h.append(
                    HeaderName::from_static("mcp-method"),
                    value(jsonrpc::method(msg))?,
                );
                if let Some(name) = routing_name(msg) {
                    h.append(
                        HeaderName::from_static("mcp-name"),
                        value(param_headers::encode(name))?,
                    );
                }
                if jsonrpc::method(msg) == "tools/call"
                    && let (Some(cache), Some(name)) =
                        (self.tool_headers.get(), jsonrpc::param_str(msg, "name"))
                    && let Some(b) = cache.any(name)
                {
                    direct::replace_headers(
                        &mut h,
                        param_headers::headers_for(
                            &b,
                            crate::jsonrpc::at(msg, &["params", "arguments"]),
                        ),
                    );
                }
            }
            if let Some(sid) = &state.session_id {
                h.append(HeaderName::from_static("mcp-session-id"), value(sid)?);
            }
            if let Some(v) = &state.version {
                h.append(HeaderName::from_static("mcp-protocol-version"), value(v)?);
            }
            Ok(h)
        };
        // reqwest's `Kind::Builder` error, which carries no URL.
        build().map_err(|()| self.unavailable("builder error"))
    }

    /// POST a message; an upstream that forgot our session (404, or 400 to a session id it
    /// issued) is re-initialized and the message sent once more.
    async fn post(&self, msg: &Value) -> Result<Reply> {
        let state = self.state.locked().clone();
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
        let state = self.state.locked().clone();
        self.post_once(msg, &state).await
    }

    pub async fn request(
        &self,
        recipient: Recipient,
        msg: Value,
        progress: Option<Value>,
    ) -> Result<Value> {
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or_default();
        let resp = self.post(&msg).await?;
        if !resp.status().is_success() {
            return Err(self.unavailable(format!("answered {}", resp.status())));
        }
        self.read_reply(resp, id, Some(&recipient), progress).await
    }

    /// Read the reply to request `id` from a JSON or SSE response; other messages on the
    /// stream belong to that request and go to `recipient`.
    async fn read_reply(
        &self,
        resp: Reply,
        id: u64,
        recipient: Option<&Recipient>,
        progress: Option<Value>,
    ) -> Result<Value> {
        if !switchboard_core::http::is_event_stream(resp.headers()) {
            let body = frames::read_body(resp, self.max_reply)
                .await
                .map_err(|e| self.frame_error(e))?;
            return serde_json::from_slice(&body).map_err(|_| Error::Protocol {
                target: self.target.to_string(),
                reason: "reply is not JSON".into(),
            });
        }
        let mut events = frames::sse_events(resp.bytes_stream(), self.max_reply);
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| self.frame_error(e))?;
            if ev.data.is_empty() {
                continue;
            }
            let Ok(mut msg) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            if jsonrpc::kind(&msg) == jsonrpc::Kind::Response
                && msg.get("id").and_then(Value::as_u64) == Some(id)
            {
                read_to_end(events);
                return Ok(msg);
            }
            let Some(recipient) = recipient else {
                continue;
            };
            if jsonrpc::method(&msg) == "notifications/progress" {
                match (&progress, msg.pointer_mut("/params/progressToken")) {
                    (Some(orig), Some(slot)) if slot.as_u64() == Some(id) => *slot = orig.clone(),
                    _ => continue,
                }
            }
            recipient.deliver(msg);
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

    /// POST a request whose reply is a long-lived stream read by the caller
    /// (`subscriptions/listen`): the response as it comes, not awaited to its end.
    pub async fn post_stream(&self, msg: &Value) -> Result<Reply> {
        let resp = self.post(msg).await?;
        if resp.status().is_success() && switchboard_core::http::is_event_stream(resp.headers()) {
            Ok(resp)
        } else {
            Err(self.unavailable(format!("answered {} without a stream", resp.status())))
        }
    }

    /// Open the upstream's standalone GET stream (server-initiated messages outside requests).
    pub async fn open_stream(&self) -> Result<Option<reqwest::Response>> {
        let state = self.state.locked().clone();
        let Some(sid) = state.session_id else {
            return Ok(None);
        };
        let mut req = self
            .to_target(reqwest::Method::GET)
            .headers(self.headers.current())
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
        let state = self.state.locked().clone();
        if let Some(sid) = state.session_id {
            let _ = self
                .to_target(reqwest::Method::DELETE)
                .headers(self.headers.current())
                .header("mcp-session-id", sid)
                .send()
                .await;
        }
    }
}
