//! The streaming hand-off: a provider stream whose first bytes arrived goes to the client
//! through a [`StreamTranslator`], event by event, never buffered; and end-of-request
//! accounting ([`Completion`]: metrics, cost, the token reservation settled), also when the
//! client leaves mid-stream.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use switchboard_core::TokenReservation;
use tokio::time::Instant;

use super::sse_headers;
use crate::config::ModelPrice;
use crate::format::Usage;
use crate::metrics::{Metrics, RequestLabels, cost};
use crate::provider::Member;
use crate::translate::stream::StreamTranslator;

/// Why a provider's stream broke off: the error's kind (`body error`, `timeout`, ...), without
/// the URL. reqwest's and hyper's errors ([`super::direct`]) both come to this.
#[derive(Debug)]
pub(super) struct BodyError(pub(super) &'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

/// A provider's stream after its first bytes, from reqwest or from hyper's client.
pub(super) type ProviderStream = futures::stream::BoxStream<'static, Result<Bytes, BodyError>>;

/// End-of-request accounting: metrics, cost, token budget reconciliation. Runs once, also when
/// the client goes away mid-stream (on drop).
pub(super) struct Completion {
    pub(super) metrics: Metrics,
    pub(super) labels: RequestLabels,
    pub(super) start: Instant,
    pub(super) reservation: Option<Box<dyn TokenReservation>>,
    /// The caller's budget reservation (`RequestContext::spend`), settled with the cost.
    pub(super) spend: Option<Box<dyn switchboard_core::SpendReservation>>,
    pub(super) price: Option<ModelPrice>,
    pub(super) finished: bool,
    /// The served attempt's client span (tracing on): usage and response model are set on
    /// it, and it ends, here.
    pub(super) span: Option<switchboard_core::Trace>,
}

impl Completion {
    /// The pool gave up before any member answered: `timeout` or `unavailable`, at no cost.
    pub(super) fn unavailable(&mut self, e: &crate::Error) {
        self.labels.error_type = if matches!(e, crate::Error::Timeout) {
            "timeout".into()
        } else {
            "unavailable".into()
        };
        self.finish(Some(Usage::default()));
    }

    /// The member whose answer (or last failure) the request ends with, and its price.
    pub(super) fn served_by(&mut self, member: &Member, price: Option<ModelPrice>) {
        self.labels.gen_ai_provider_name = member.name.clone();
        self.labels.gen_ai_response_model = member.model.clone();
        self.price = price;
    }

    /// Records the request's end once: duration, usage and cost, and settles the token
    /// reservation with the usage (the estimate stands without one).
    pub(super) fn finish(&mut self, usage: Option<Usage>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if let Some(span) = self.span.take() {
            use opentelemetry::KeyValue;
            if let Some(u) = &usage {
                span.set(KeyValue::new("gen_ai.usage.input_tokens", u.input as i64));
                span.set(KeyValue::new("gen_ai.usage.output_tokens", u.output as i64));
            }
            if !self.labels.error_type.is_empty() {
                span.error(self.labels.error_type.to_string());
            }
            span.end();
        }
        self.metrics
            .record_duration(&self.labels, self.start.elapsed());
        if let Some(u) = usage.filter(|u| u.total() > 0) {
            self.metrics.record_usage(&self.labels, &u);
            if let Some(p) = &self.price {
                self.metrics.record_cost(&self.labels, cost(p, &u));
            }
        }
        if let Some(spend) = self.spend.take() {
            let l = &self.labels;
            let spent = usage.map(|u| switchboard_core::Spent {
                provider: l.gen_ai_provider_name.to_string(),
                model: l.gen_ai_response_model.to_string(),
                input: u.input,
                output: u.output,
                cache_read: u.cache_read,
                cache_write: u.cache_write,
                cost_usd: self.price.as_ref().map_or(0.0, |p| cost(p, &u)),
            });
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(spend.settle(spent));
            }
        }
        if let Some(reservation) = self.reservation.take() {
            // Without observed usage keep the estimate: under-charging is the worse error.
            let actual = usage.map_or(reservation.reserved(), |u| u.total());
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(reservation.settle(actual));
            }
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// The most bytes of provider events merged into one write to the client.
const MERGE_MAX: usize = 64 * 1024;

/// How many turns a merge gives the provider connection's task to hand over a chunk it has
/// read already before the bytes merged so far leave without it.
const MERGE_TURNS: usize = 2;

struct StreamState {
    translator: StreamTranslator,
    first: Option<Bytes>,
    rest: ProviderStream,
    /// Caller bytes translated before the response was returned: the body's first frame.
    ready: Option<Bytes>,
    done: Completion,
    ttft_recorded: bool,
    ended: bool,
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // The client went away mid-stream: account for what the provider reported so far.
        let usage = self.translator.usage();
        self.done.finish(usage);
    }
}

/// Yields once to the other tasks ready on this thread, and is woken again at once.
///
/// Not `tokio::task::yield_now`: tokio defers its wake-up until the IO driver has been polled,
/// one `epoll_wait` per call, and a merge calls it once per provider chunk (100 per stream in
/// the benchmark). The task it makes way for, the provider connection's, is already in the run
/// queue: the merge's poll of the provider body woke it.
async fn make_way() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if std::mem::replace(&mut yielded, true) {
            std::task::Poll::Ready(())
        } else {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

impl StreamState {
    /// One write's worth of caller bytes: the next provider chunk (awaited unless the first is
    /// still held), translated, plus the chunks the provider connection has read already
    /// (never waiting for the provider), up to the first token or [`MERGE_MAX`]. Empty when
    /// the chunks held no complete event.
    async fn turn(&mut self) -> BytesMut {
        let mut out = BytesMut::new();
        let mut next = match self.first.take() {
            Some(b) => Some(Ok(b)),
            None => self.rest.next().await,
        };
        let content_before = self.translator.content_seen();
        loop {
            match next {
                Some(Ok(chunk)) => self.translator.feed(&chunk, &mut out),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "upstream stream failed");
                    self.translator.finish(&mut out);
                    self.ended = true;
                }
                None => {
                    self.translator.finish(&mut out);
                    self.ended = true;
                }
            }
            // The first token leaves at once; before it (role and block preambles) and after
            // it, events the provider connection has already read are merged into one write
            // (one wake-up of the client instead of one per event). The provider connection's
            // task hands over one chunk at a time, so take the next chunk only if it is there
            // within [`MERGE_TURNS`] turns: never wait for the provider.
            let first_token = !content_before && self.translator.content_seen();
            if self.ended
                || first_token
                || self.translator.is_complete()
                || self.translator.is_errored()
                || out.len() >= MERGE_MAX
            {
                break;
            }
            let mut more = self.rest.next().now_or_never();
            for _ in 0..MERGE_TURNS {
                if more.is_some() {
                    break;
                }
                make_way().await;
                more = self.rest.next().now_or_never();
            }
            match more {
                Some(more) => next = more,
                None => break,
            }
        }
        if !self.ttft_recorded && self.translator.content_seen() {
            self.ttft_recorded = true;
            self.done
                .metrics
                .record_ttft(&self.done.labels, self.done.start.elapsed());
        }
        if self.ended || self.translator.is_complete() || self.translator.is_errored() {
            self.ended = true;
            if self.translator.is_errored() && self.done.labels.error_type.is_empty() {
                self.done.labels.error_type = "stream_error".into();
            }
            let usage = self.translator.usage();
            self.done.finish(usage);
        }
        out
    }
}

/// The streamed response. The first write's events (the provider's first chunk and what the
/// connection has read after it, up to the first token) are translated before the response is
/// returned, so the head leaves together with them in one write, as a provider that sent
/// them at once wrote them; nothing waits for the provider here beyond [`MERGE_TURNS`] turns.
pub(super) async fn stream_response(
    translator: StreamTranslator,
    first: Bytes,
    rest: ProviderStream,
    done: Completion,
    member: &Member,
) -> http::Response<Body> {
    let mut state = StreamState {
        translator,
        first: Some(first),
        rest,
        ready: None,
        done,
        ttft_recorded: false,
        ended: false,
    };
    let opening = state.turn().await;
    state.ready = (!opening.is_empty()).then(|| opening.freeze());
    let body = futures::stream::unfold(state, |mut s| async move {
        if let Some(ready) = s.ready.take() {
            return Some((Ok::<Bytes, std::io::Error>(ready), s));
        }
        while !s.ended {
            let out = s.turn().await;
            if !out.is_empty() {
                return Some((Ok(out.freeze()), s));
            }
        }
        None
    });
    let mut resp = http::Response::new(Body::from_stream(body));
    sse_headers(resp.headers_mut(), member);
    resp
}
