//! The response body every client gets: the backend's body passed through frame by frame,
//! counted for the access log and metrics, ended after an idle pause or when the gateway shuts
//! down (for streams), and reported once when it finishes or is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{Method, StatusCode, Uri};
use http_body::Body as _;
use http_body::{Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::metrics::RequestLabels;

pub mod access_log;

/// What the access log line and metrics need about a request, filled in as it is served.
pub struct Completion {
    /// The request counter family (one handle, not all of [`crate::metrics::Metrics`]: this
    /// is built for every request).
    pub requests: Family<RequestLabels, Counter>,
    /// This request's counter in `requests` when the route has it at hand already (a 200),
    /// so finishing does not look its labels up.
    pub counted: Option<Counter>,
    /// Listener name.
    pub listener: Arc<str>,
    /// Route name, or `none`.
    pub route: Arc<str>,
    /// The route's duration histogram.
    pub duration: Option<Histogram>,
    /// The client's address (through trusted proxies, see [`crate::forwarding::Client`]).
    pub client: std::net::IpAddr,
    /// Request method.
    pub method: Method,
    /// Request URI; only its path is logged (queries may carry secrets).
    pub uri: Uri,
    /// Response status.
    pub status: StatusCode,
    /// Upstream description.
    pub upstream: Arc<str>,
    /// Request start.
    pub started: Instant,
    /// Decremented when a stream ends.
    pub stream_gauge: Option<Gauge>,
    /// Where the access log line goes; `None` when the access log is off.
    pub access_log: Option<crate::body::access_log::AccessLog>,
    /// The request's server span, when tracing is on; ends with the body.
    pub trace: Option<switchboard_core::Trace>,
}

impl Completion {
    fn finish(mut self: Box<Self>, bytes: u64, outcome: &'static str) {
        let elapsed = self.started.elapsed();
        match &self.counted {
            Some(c) => {
                c.inc();
            }
            None => {
                self.requests
                    .get_or_create(&RequestLabels {
                        listener: self.listener.clone(),
                        route: self.route.clone(),
                        status: self.status.as_u16(),
                    })
                    .inc();
            }
        }
        if let Some(h) = &self.duration {
            h.observe(elapsed.as_secs_f64());
        }
        if let Some(g) = &self.stream_gauge {
            g.dec();
        }
        if let Some(t) = self.trace.take() {
            let status = self.status.as_u16();
            t.set(opentelemetry::KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if status >= 500 {
                t.error(status.to_string());
            } else if outcome == "aborted" {
                t.error("aborted");
            }
            t.end();
        }
        if let Some(log) = self.access_log.take() {
            log.send(crate::body::access_log::Entry {
                completion: self,
                time: std::time::SystemTime::now(),
                elapsed,
                bytes,
                outcome,
            });
        }
    }
}

/// The most bytes [`ObservedBody`] merges into one frame.
const COALESCE_MAX: usize = 64 * 1024;

pin_project_lite::pin_project! {
    /// A response body with accounting, idle timeout and shutdown cut-off.
    ///
    /// Data frames the inner body already has ready are merged into one frame (up to
    /// [`COALESCE_MAX`]), never waiting for more: an upstream that sends a stream as many
    /// small chunks (SSE events in chunked encoding) is read in one go and written to the
    /// client in one write, instead of one write, and one wake-up of the client, per event.
    pub struct ObservedBody {
        #[pin]
        inner: Body,
        bytes: u64,
        // A frame read while merging that is not data (trailers) or an error, returned next.
        stash: Option<Result<Frame<Bytes>, axum::Error>>,
        // The inner body returned its end while merging.
        inner_done: bool,
        // The inner body's error was held back for one turn (see `poll_frame`).
        error_held: bool,
        idle: Option<(Duration, Pin<Box<Sleep>>)>,
        cut: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
        completion: Option<Box<Completion>>,
    }

    impl PinnedDrop for ObservedBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(c) = this.completion.take() {
                let ended = *this.inner_done || this.inner.is_end_stream();
                let outcome = if ended { "ok" } else { "aborted" };
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
            stash: None,
            inner_done: false,
            error_held: false,
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
        let mut this = self.project();
        if this.completion.is_none() {
            return Poll::Ready(None);
        }
        let polled = match this.stash.take() {
            Some(stashed) => Poll::Ready(Some(stashed)),
            None if *this.inner_done => Poll::Ready(None),
            None => this.inner.as_mut().poll_frame(cx),
        };
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(first) => Frame::data(merge_ready(
                        this.inner.as_mut(),
                        cx,
                        first,
                        this.stash,
                        this.inner_done,
                    )),
                    Err(other) => other,
                };
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                if let Some((d, sleep)) = this.idle.as_mut() {
                    sleep.as_mut().reset(tokio::time::Instant::now() + *d);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                // hyper's server drops what it has not written yet when a body fails, and an
                // error can come in the same poll as the head and the data before it (hyper's
                // client hands over a chunk and the error after it together; merging takes
                // both): one turn first, the task woken at once, lets them go out.
                if !*this.error_held {
                    *this.error_held = true;
                    *this.stash = Some(Err(e));
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
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
        self.completion.is_none()
            || (self.stash.is_none() && (self.inner_done || self.inner.is_end_stream()))
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `first` plus the data frames `inner` has ready now (up to [`COALESCE_MAX`] bytes), as one
/// buffer. A non-data frame or an error is stashed for the next poll, the end is noted in
/// `done`; nothing here waits.
fn merge_ready(
    mut inner: Pin<&mut Body>,
    cx: &mut Context<'_>,
    first: Bytes,
    stash: &mut Option<Result<Frame<Bytes>, axum::Error>>,
    done: &mut bool,
) -> Bytes {
    let mut merged: Option<BytesMut> = None;
    while merged.as_ref().map_or(first.len(), BytesMut::len) < COALESCE_MAX {
        match inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(more) => merged
                    .get_or_insert_with(|| {
                        let mut b = BytesMut::with_capacity(first.len() + more.len());
                        b.extend_from_slice(&first);
                        b
                    })
                    .extend_from_slice(&more),
                Err(other) => {
                    *stash = Some(Ok(other));
                    break;
                }
            },
            Poll::Ready(Some(Err(e))) => {
                *stash = Some(Err(e));
                break;
            }
            Poll::Ready(None) => {
                *done = true;
                break;
            }
            Poll::Pending => break,
        }
    }
    merged.map_or(first, BytesMut::freeze)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn observed(inner: Body) -> ObservedBody {
        let completion = Completion {
            requests: Family::default(),
            counted: None,
            listener: "l".into(),
            route: "r".into(),
            duration: None,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
            method: Method::GET,
            uri: Uri::from_static("/"),
            status: StatusCode::OK,
            upstream: "u".into(),
            started: Instant::now(),
            stream_gauge: None,
            access_log: None,
            trace: None,
        };
        ObservedBody::new(inner, None, None, completion)
    }

    fn chunk(s: &'static str) -> Result<Bytes, std::io::Error> {
        Ok(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn ready_chunks_leave_as_one_frame_and_nothing_waits_for_more() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = Body::from_stream(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        let mut body = observed(inner);
        tx.send(chunk("data: 1\n\n")).unwrap();
        tx.send(chunk("data: 2\n\n")).unwrap();
        tx.send(chunk("data: 3\n\n")).unwrap();
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"data: 1\n\ndata: 2\n\ndata: 3\n\n");
        // Nothing more is ready: the body waits (and does not hold what came before).
        let pending =
            tokio::time::timeout(std::time::Duration::from_millis(50), body.frame()).await;
        assert!(pending.is_err(), "a frame appeared from nowhere");
        tx.send(chunk("data: 4\n\n")).unwrap();
        drop(tx);
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"data: 4\n\n");
        assert!(body.frame().await.is_none());
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn an_error_after_ready_data_comes_after_that_data() {
        let items: Vec<Result<Bytes, std::io::Error>> = vec![
            chunk("a"),
            chunk("b"),
            Err(std::io::Error::other("upstream reset")),
        ];
        let mut body = observed(Body::from_stream(futures::stream::iter(items)));
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&f[..], b"ab");
        // One turn, the task woken at once, in which a server writes out "ab" (and the head)
        // before it meets the error.
        struct Woken(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Woken {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let woken = std::sync::Arc::new(Woken(std::sync::atomic::AtomicBool::new(false)));
        let waker = std::task::Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert!(woken.0.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!body.is_end_stream());
        assert!(body.frame().await.unwrap().is_err());
        assert!(body.frame().await.is_none());
    }

    #[tokio::test]
    async fn merging_stops_at_the_cap() {
        let big = Bytes::from(vec![b'x'; COALESCE_MAX]);
        let items: Vec<Result<Bytes, std::io::Error>> =
            vec![chunk("a"), Ok(big.clone()), Ok(big), chunk("tail")];
        let mut body = observed(Body::from_stream(futures::stream::iter(items)));
        let mut sizes = Vec::new();
        while let Some(f) = body.frame().await {
            sizes.push(f.unwrap().into_data().unwrap().len());
        }
        // Merging stops once a frame reaches the cap.
        assert_eq!(sizes, vec![COALESCE_MAX + 1, COALESCE_MAX, 4]);
    }
}
