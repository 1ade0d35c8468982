//! The response body every client gets: the backend's body passed through frame by frame,
//! counted for the access log and metrics, ended after an idle pause or when the gateway shuts
//! down (for streams), and reported once when it finishes or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body::Body as _;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::metrics::{Metrics, RequestLabels};

/// What the access log line and metrics need about a request, filled in as it is served.
pub struct Completion {
    /// Gateway metrics.
    pub metrics: Metrics,
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name, or `none`.
    pub route: Arc<str>,
    /// The route's duration histogram.
    pub duration: Option<Histogram>,
    /// Request method.
    pub method: Method,
    /// Request path (no query: queries may carry secrets).
    pub path: String,
    /// Response status.
    pub status: StatusCode,
    /// Upstream description.
    pub upstream: Arc<str>,
    /// Request start.
    pub started: Instant,
    /// Decremented when a stream ends.
    pub stream_gauge: Option<Gauge>,
}

impl Completion {
    fn finish(&self, bytes: u64, outcome: &'static str) {
        let elapsed = self.started.elapsed();
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                listener: self.listener.clone(),
                route: self.route.clone(),
                status: self.status.as_u16(),
            })
            .inc();
        if let Some(h) = &self.duration {
            h.observe(elapsed.as_secs_f64());
        }
        if let Some(g) = &self.stream_gauge {
            g.dec();
        }
        tracing::info!(
            target: "access",
            listener = %self.listener,
            route = %self.route,
            method = %self.method,
            path = %self.path,
            status = self.status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            bytes,
            upstream = %self.upstream,
            outcome,
        );
    }
}

pin_project_lite::pin_project! {
    /// A response body with accounting, idle timeout and shutdown cut-off.
    pub struct ObservedBody {
        #[pin]
        inner: Body,
        bytes: u64,
        idle: Option<(Duration, Pin<Box<Sleep>>)>,
        cut: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        completion: Option<Box<Completion>>,
    }

    impl PinnedDrop for ObservedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(c) = this.completion.take() {
                let outcome = if this.inner.is_end_stream() { "ok" } else { "aborted" };
                c.finish(*this.bytes, outcome);
            }
        }
    }
}

impl ObservedBody {
    /// Wraps `inner`. `idle` ends the body after that long without a frame; `cut` ends it
    /// cleanly when the token is cancelled (used for streams at shutdown).
    pub fn new(
        inner: Body,
        idle: Option<Duration>,
        cut: Option<WaitForCancellationFutureOwned>,
        completion: Completion,
    ) -> Self {
        ObservedBody {
            inner,
            bytes: 0,
            idle: idle.map(|d| (d, Box::pin(tokio::time::sleep(d)))),
            cut: cut.map(Box::pin),
            completion: Some(Box::new(completion)),
        }
    }
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.completion.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                if let Some((d, sleep)) = this.idle.as_mut() {
                    sleep.as_mut().reset(tokio::time::Instant::now() + *d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(c) = this.completion.take() {
                    c.finish(*this.bytes, "upstream_error");
                }
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let Some(c) = this.completion.take() {
                    c.finish(*this.bytes, "ok");
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if let Some(cut) = this.cut.as_mut()
                    && cut.as_mut().poll(cx).is_ready()
                {
                    if let Some(c) = this.completion.take() {
                        c.finish(*this.bytes, "shutdown");
                    }
                    return Poll::Ready(None);
                }
                if let Some((_, sleep)) = this.idle.as_mut()
                    && sleep.as_mut().poll(cx).is_ready()
                {
                    if let Some(c) = this.completion.take() {
                        c.finish(*this.bytes, "idle_timeout");
                    }
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.completion.is_none() || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
