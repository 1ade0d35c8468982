//! The streaming hand-off: a provider stream whose first bytes arrived goes to the client
//! through a [`StreamTranslator`], event by event, never buffered; and end-of-request
//! accounting ([`Completion`]: metrics, cost, the token reservation settled), also when the
//! client leaves mid-stream.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures::{FutureExt, StreamExt};
use switchboard_core::TokenReservation;
use tokio::time::Instant;

use super::execute::without_url;
use super::sse_headers;
use crate::config::ModelPrice;
use crate::format::Usage;
use crate::metrics::{Metrics, RequestLabels, cost};
use crate::provider::Member;
use crate::translate::stream::StreamTranslator;

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
        self.labels.gen_ai_provider_name = member.name.to_string();
        self.labels.gen_ai_response_model = member.model.to_string();
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
                span.error(self.labels.error_type.clone());
            }
            span.end();
        }
        self.metrics
            .record_duration(&self.labels, self.start.elapsed());
        if let Some(u) = usage.filter(|u| u.total() > 0) {
            let l = &self.labels;
            self.metrics.record_usage(
                l.gen_ai_operation_name,
                &l.gen_ai_provider_name,
                &l.gen_ai_request_model,
                &l.gen_ai_response_model,
                &u,
            );
            if let Some(p) = &self.price {
                self.metrics.record_cost(
                    &l.gen_ai_provider_name,
                    &l.gen_ai_response_model,
                    cost(p, &u),
                );
            }
        }
        if let Some(spend) = self.spend.take() {
            let l = &self.labels;
            let spent = usage.map(|u| switchboard_core::Spent {
                provider: l.gen_ai_provider_name.clone(),
                model: l.gen_ai_response_model.clone(),
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

struct StreamState {
    translator: StreamTranslator,
    first: Option<Bytes>,
    rest: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
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

pub(super) fn stream_response(
    translator: StreamTranslator,
    first: Bytes,
    rest: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    done: Completion,
    member: &Member,
) -> http::Response<Body> {
    let state = StreamState {
        translator,
        first: Some(first),
        rest,
        done,
        ttft_recorded: false,
        ended: false,
    };
    let body = futures::stream::unfold(state, |mut s| async move {
        loop {
            if s.ended {
                return None;
            }
            let mut out = BytesMut::new();
            let mut next = match s.first.take() {
                Some(b) => Some(Ok(b)),
                None => s.rest.next().await,
            };
            let content_before = s.translator.content_seen();
            loop {
                match next {
                    Some(Ok(chunk)) => s.translator.feed(&chunk, &mut out),
                    Some(Err(e)) => {
                        tracing::debug!(error = %without_url(e), "upstream stream failed");
                        s.translator.finish(&mut out);
                        s.ended = true;
                    }
                    None => {
                        s.translator.finish(&mut out);
                        s.ended = true;
                    }
                }
                // The first token leaves at once; before it (role and block preambles) and
                // after it, events the provider connection has already read are merged into
                // one write (one wake-up of the client instead of one per event). The
                // provider connection's task hands over one chunk at a time, so take the next
                // chunk only if it is there within two turns: never wait for the provider.
                let first_token = !content_before && s.translator.content_seen();
                if s.ended
                    || first_token
                    || s.translator.is_complete()
                    || s.translator.is_errored()
                    || out.len() >= MERGE_MAX
                {
                    break;
                }
                // The connection task needs a turn or two to decode the next chunk from
                // what it has read; if it is not there by then, the provider has not sent it.
                let mut more = s.rest.next().now_or_never();
                for _ in 0..2 {
                    if more.is_some() {
                        break;
                    }
                    tokio::task::yield_now().await;
                    more = s.rest.next().now_or_never();
                }
                match more {
                    Some(more) => next = more,
                    None => break,
                }
            }
            if !s.ttft_recorded && s.translator.content_seen() {
                s.ttft_recorded = true;
                s.done
                    .metrics
                    .record_ttft(&s.done.labels, s.done.start.elapsed());
            }
            if s.ended || s.translator.is_complete() || s.translator.is_errored() {
                s.ended = true;
                if s.translator.is_errored() && s.done.labels.error_type.is_empty() {
                    s.done.labels.error_type = "stream_error".into();
                }
                let usage = s.translator.usage();
                s.done.finish(usage);
            }
            if !out.is_empty() {
                return Some((Ok::<Bytes, std::io::Error>(out.freeze()), s));
            }
        }
    });
    let mut resp = http::Response::new(Body::from_stream(body));
    sse_headers(resp.headers_mut(), member);
    resp
}
