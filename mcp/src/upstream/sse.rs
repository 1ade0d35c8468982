//! Legacy HTTP+SSE upstream (protocol 2024-11-05 transport): a GET event stream announces a
//! POST endpoint; every reply comes back on the stream. One connection per downstream session,
//! read by one task that ends with the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::frames::{self, FrameError};
use super::{Pending, PendingMap, Recipient, Sink, await_reply};
use crate::credentials::UpstreamHeaders;
use crate::error::{Error, Result};
use crate::jsonrpc;

/// A legacy SSE upstream connection.
pub(crate) struct SseUpstream {
    target: Arc<str>,
    endpoint: String,
    headers: UpstreamHeaders,
    client: reqwest::Client,
    pending: PendingMap,
    cancel: CancellationToken,
    _guard: DropGuard,
}

impl SseUpstream {
    /// Connect, wait for the endpoint event, initialize. `fallback` receives messages no
    /// request claims.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        target: Arc<str>,
        url: String,
        headers: UpstreamHeaders,
        client: reqwest::Client,
        ids: Arc<AtomicU64>,
        init_params: Value,
        fallback: Arc<dyn Sink>,
        max_reply: usize,
    ) -> Result<(Arc<Self>, Value)> {
        let unavailable = |reason: String| Error::Unavailable {
            target: target.to_string(),
            reason,
        };
        let resp = client
            .get(&url)
            .headers(headers.current())
            .header(http::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("answered {}", resp.status())));
        }
        let base = resp.url().clone();
        let too_large = |e: FrameError| match e {
            FrameError::TooLarge => Error::TooLarge {
                target: target.to_string(),
                limit: max_reply,
            },
            FrameError::Io(e) => unavailable(e),
        };
        let mut events = frames::sse_events(resp.bytes_stream(), max_reply);
        let endpoint = loop {
            match events.next().await {
                Some(Ok(ev)) if ev.event.as_deref() == Some("endpoint") => {
                    break base
                        .join(ev.data.trim())
                        .map_err(|e| unavailable(e.to_string()))?
                        .to_string();
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(too_large(e)),
                None => return Err(unavailable("stream ended before the endpoint event".into())),
            }
        };
        let cancel = CancellationToken::new();
        let pending = PendingMap::default();
        let reader_pending = pending.clone();
        let reader_cancel = cancel.clone();
        let name = target.clone();
        tokio::spawn(async move {
            let deliver = |m: Value| fallback.deliver(m);
            loop {
                tokio::select! {
                    _ = reader_cancel.cancelled() => break,
                    ev = events.next() => match ev {
                        Some(Ok(ev)) if matches!(ev.event.as_deref(), None | Some("message" | "")) => {
                            if let Ok(msg) = serde_json::from_str::<Value>(&ev.data) {
                                reader_pending.dispatch(msg, &deliver);
                            }
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            tracing::warn!(target_name = %name, error = ?e, "sse upstream stream failed");
                            break;
                        }
                        None => break,
                    }
                }
            }
            // The connection is gone for good: mark it closed so the session reconnects.
            reader_cancel.cancel();
            reader_pending.clear();
        });
        let this = Arc::new(Self {
            target,
            endpoint,
            headers,
            client,
            pending,
            _guard: cancel.clone().drop_guard(),
            cancel,
        });
        let id = ids.fetch_add(1, Ordering::Relaxed);
        let reply = this
            .request(
                Recipient::detached(),
                jsonrpc::request(Value::from(id), "initialize", init_params),
                None,
            )
            .await?;
        let result = reply
            .get("result")
            .cloned()
            .ok_or_else(|| Error::Protocol {
                target: this.target.to_string(),
                reason: "initialize failed".into(),
            })?;
        this.send(jsonrpc::notification(
            "notifications/initialized",
            json!({}),
        ))
        .await?;
        Ok((this, result))
    }

    pub async fn request(
        &self,
        recipient: Recipient,
        msg: Value,
        progress: Option<Value>,
    ) -> Result<Value> {
        let id = msg.get("id").and_then(Value::as_u64).unwrap_or_default();
        let (tx, rx) = oneshot::channel();
        self.pending.insert(
            id,
            Pending {
                reply: tx,
                progress,
                recipient,
            },
        );
        let _guard = self.pending.guard(id);
        self.send(msg).await?;
        await_reply(rx, &self.target).await
    }

    pub async fn send(&self, msg: Value) -> Result<()> {
        if self.cancel.is_cancelled() {
            return Err(Error::Unavailable {
                target: self.target.to_string(),
                reason: "closed".into(),
            });
        }
        let resp = crate::trace::headers(
            self.client
                .post(&self.endpoint)
                .headers(self.headers.current()),
        )
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&msg).unwrap_or_default())
        .send()
        .await
        .map_err(|e| Error::Unavailable {
            target: self.target.to_string(),
            reason: e.to_string(),
        })?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(Error::Unavailable {
                target: self.target.to_string(),
                reason: format!("answered {}", resp.status()),
            })
        }
    }

    pub fn close(&self) {
        self.cancel.cancel();
    }

    /// Whether the event stream has ended (the server went away or we closed it).
    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }
}
