//! The response cache in the request path ([`crate::cache`]): a hit answered as JSON or
//! replayed as SSE in the caller's format, a miss's answer kept (a stream's as it passes to the
//! client), `x-switchboard-cache` on both.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures::Stream;
use http::{HeaderValue, StatusCode, header};

use super::{LlmBackend, identity_headers_of, json_response};
use crate::cache::{Assembler, CACHE_HEADER, CacheStore, Cached, ResponseCache, replay_sse};
use crate::format::ApiFormat;

impl LlmBackend {
    /// The route's response cache, when `llm.cache` is on and its store is ready.
    pub(super) fn cache(&self) -> Option<&ResponseCache> {
        self.shared.cache.get()
    }

    /// Supplies the store of a `cache: {store: redis}` route (the gateway's Redis link). The
    /// first store supplied stays; without `llm.cache` or with a memory store this does
    /// nothing.
    pub fn use_cache_store(&self, store: Arc<dyn CacheStore>) {
        if let Some(cfg) = &self.shared.cache_config
            && cfg.store == crate::config::CacheStoreKind::Redis
        {
            let _ = self
                .shared
                .cache
                .set(ResponseCache::new(cfg, store).with_metrics(self.shared.deps.metrics.clone()));
        }
    }

    /// `llm.cache`, if set.
    pub fn cache_config(&self) -> Option<&crate::config::CacheConfig> {
        self.shared.cache_config.as_ref()
    }
}

/// The answer to a cache hit: the cached body, or with `stream` its SSE replay.
pub(super) fn hit_response(
    hit: Cached,
    format: ApiFormat,
    stream: bool,
    include_usage: bool,
) -> http::Response<Body> {
    let mut resp = if stream {
        let mut r = http::Response::new(Body::from(replay_sse(format, &hit.body, include_usage)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r
    } else {
        json_response(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&hit.body).unwrap_or_default()),
            None,
        )
    };
    identity_headers_of(resp.headers_mut(), &hit.provider, &hit.model);
    mark(&mut resp, "hit");
    resp
}

/// Sets `x-switchboard-cache`.
pub(super) fn mark(resp: &mut http::Response<Body>, result: &'static str) {
    resp.headers_mut()
        .insert(CACHE_HEADER, HeaderValue::from_static(result));
}

/// A streamed miss: the body passes to the client unchanged while the answer is assembled
/// from it, and kept when the stream ends complete.
pub(super) fn tee_stream(
    resp: http::Response<Body>,
    cache: ResponseCache,
    key: String,
    format: ApiFormat,
    provider: String,
    model: String,
) -> http::Response<Body> {
    let (parts, body) = resp.into_parts();
    let tee = Tee {
        inner: body.into_data_stream(),
        assembler: Some(Assembler::new(format, cache.max_entry_bytes())),
        keep: Some((cache, key, provider, model)),
    };
    let mut resp = http::Response::from_parts(parts, Body::from_stream(tee));
    mark(&mut resp, "miss");
    resp
}

struct Tee {
    inner: axum::body::BodyDataStream,
    assembler: Option<Assembler>,
    keep: Option<(ResponseCache, String, String, String)>,
}

impl Stream for Tee {
    type Item = Result<Bytes, axum::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(a) = &mut this.assembler {
                    a.feed(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.assembler = None;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                if let (Some(a), Some((cache, key, provider, model))) =
                    (this.assembler.take(), this.keep.take())
                    && let Some(body) = a.finish()
                {
                    cache.put(
                        key,
                        &Cached {
                            provider,
                            model,
                            body,
                        },
                    );
                }
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
