//! What a request reserves before the provider is called: the caller's token budget
//! (`policies.rate_limit.tokens`) and its spend budgets (virtual keys, teams), for chat and for
//! the priced pass-through operations (embeddings, Responses). Both are settled with the real
//! usage by [`super::stream::Completion`]; for streamed pass-through answers the usage is read
//! from the events as they pass ([`UsageTap`]), never buffered.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use serde::Deserialize;
use switchboard_core::{RequestContext, SpendReservation, TokenReservation};

use super::LlmBackend;
use super::stream::Completion;
use crate::format::Usage;
use crate::format::openai as o;
use crate::provider::Operation;

/// The reservations one request holds until it is settled.
pub(super) struct Reserved {
    pub(super) tokens: Option<Box<dyn TokenReservation>>,
    pub(super) spend: Option<Box<dyn SpendReservation>>,
}

impl LlmBackend {
    /// Reserves `input` prompt tokens plus at most `output` generated ones (capped by
    /// `max_tokens_estimate`; `None`: the cap) against the caller's token budget, and their
    /// price at the dearest member of `model`'s pool against its spend budgets. A refusal
    /// releases what was reserved already.
    pub(super) async fn reserve(
        &self,
        ctx: &RequestContext,
        model: &super::Model,
        input: u64,
        output: Option<u64>,
    ) -> switchboard_core::Result<Reserved> {
        let output = output
            .unwrap_or(self.shared.estimate_cap)
            .min(self.shared.estimate_cap);
        let tokens = match &ctx.tokens {
            Some(meter) => Some(meter.reserve(input + output).await?),
            None => None,
        };
        let spend = match &ctx.spend {
            Some(meter) => {
                let guess = Usage {
                    input,
                    output,
                    ..Usage::default()
                };
                let estimate_usd = model
                    .members
                    .iter()
                    .filter_map(|m| self.shared.prices.get(&*m.model))
                    .map(|p| crate::metrics::cost(p, &guess))
                    .fold(0.0, f64::max);
                match meter.reserve(estimate_usd).await {
                    Ok(r) => Some(r),
                    Err(e) => {
                        if let Some(r) = tokens
                            && let Ok(rt) = tokio::runtime::Handle::try_current()
                        {
                            rt.spawn(r.settle(0));
                        }
                        return Err(e);
                    }
                }
            }
            None => None,
        };
        Ok(Reserved { tokens, spend })
    }
}

/// `usage` of an OpenAI Responses answer (`input_tokens`, `output_tokens`,
/// `input_tokens_details.cached_tokens`).
#[derive(Deserialize, Default)]
struct ResponsesUsage {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<CachedTokens>,
}

#[derive(Deserialize, Default)]
struct CachedTokens {
    #[serde(default)]
    cached_tokens: u64,
}

impl ResponsesUsage {
    fn normalize(&self) -> Usage {
        Usage {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self
                .input_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens),
            cache_write: 0,
        }
    }
}

#[derive(Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

/// A streamed Responses event that may carry the final usage (`response.completed`,
/// `response.incomplete`, `response.failed`: `{"response": {"usage": …}}`).
#[derive(Deserialize)]
struct ResponsesEvent {
    #[serde(default)]
    response: Option<WithUsage>,
}

/// The usage a pass-through operation's (non-streamed) answer reports, if any.
pub(super) fn body_usage(op: Operation, body: &[u8]) -> Option<Usage> {
    match op {
        Operation::Embeddings => serde_json::from_slice::<o::EmbeddingsResponse>(body)
            .ok()?
            .usage
            .map(|u| u.normalize()),
        Operation::Responses => serde_json::from_slice::<WithUsage>(body)
            .ok()?
            .usage
            .map(|u| u.normalize()),
        _ => None,
    }
}

/// Passes a streamed Responses answer through unchanged while reading the usage from its
/// final event; settles the request ([`Completion::finish`]) when the stream ends or is
/// dropped (the client left). Only the current line is held, at most `max_line` bytes; a
/// longer line is skipped (it cannot be the usage-bearing event of a sane provider).
pub(super) struct UsageTap<S> {
    inner: S,
    done: Completion,
    line: Vec<u8>,
    skipping: bool,
    max_line: usize,
    usage: Option<Usage>,
}

impl<S> UsageTap<S> {
    pub(super) fn new(inner: S, done: Completion, max_line: usize) -> Self {
        UsageTap {
            inner,
            done,
            line: Vec::new(),
            skipping: false,
            max_line,
            usage: None,
        }
    }

    fn scan(&mut self, chunk: &[u8]) {
        for part in chunk.split_inclusive(|b| *b == b'\n') {
            let complete = part.last() == Some(&b'\n');
            if !self.skipping {
                if self.line.len() + part.len() > self.max_line {
                    self.line.clear();
                    self.skipping = true;
                } else {
                    self.line.extend_from_slice(part);
                }
            }
            if complete {
                if !self.skipping {
                    self.line_done();
                }
                self.line.clear();
                self.skipping = false;
            }
        }
    }

    fn line_done(&mut self) {
        let line = self.line.trim_ascii_end();
        let Some(data) = line.strip_prefix(b"data:") else {
            return;
        };
        // Cheap test first: only the final events carry a `usage`.
        if !data.windows(7).any(|w| w == b"\"usage\"") {
            return;
        }
        if let Ok(ResponsesEvent {
            response: Some(WithUsage { usage: Some(u) }),
        }) = serde_json::from_slice::<ResponsesEvent>(data.trim_ascii())
        {
            self.usage = Some(u.normalize());
        }
    }
}

impl<S, E> Stream for UsageTap<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, E>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.scan(&chunk);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) => {
                if this.line.len() > 5 && !this.skipping {
                    this.line_done();
                }
                let usage = this.usage.take();
                this.done.finish(usage);
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

impl<S> Drop for UsageTap<S> {
    fn drop(&mut self) {
        // The client left, or the stream failed: account for what was seen.
        let usage = self.usage.take();
        self.done.finish(usage);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_and_embeddings_usage_is_read_from_their_bodies() {
        let r = br#"{"id":"r","usage":{"input_tokens":12,"output_tokens":5,"input_tokens_details":{"cached_tokens":2}}}"#;
        assert_eq!(
            body_usage(Operation::Responses, r),
            Some(Usage {
                input: 12,
                output: 5,
                cache_read: 2,
                cache_write: 0
            })
        );
        let e = br#"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#;
        assert_eq!(
            body_usage(Operation::Embeddings, e).map(|u| (u.input, u.output)),
            Some((7, 0))
        );
        assert_eq!(body_usage(Operation::Responses, b"not json"), None);
        assert_eq!(body_usage(Operation::Responses, b"{}"), None);
    }
}
