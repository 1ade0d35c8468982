//! Tracing inside the MCP backend. The request's span travels as a tokio task-local (set by
//! [`scoped`] around a request, carried into the tasks a request spawns by [`carry`]), so the
//! stages deep inside federation see it without every signature naming it. With tracing off
//! nothing is ever set and each lookup finds nothing.
//!
//! Spans: one INTERNAL span per JSON-RPC request dispatched (`{mcp.method.name} [{tool}]`; for
//! lists, the fan-out across targets) and one CLIENT span per target request under it.
//! Propagation: HTTP and SSE targets, and the REST calls of OpenAPI targets, get
//! `traceparent`/`tracestate` headers ([`headers`]);
//! stdio targets, which have no headers, get them in `params._meta` ([`inject_meta`]).

use std::future::Future;

use futures::future::Either;

use serde_json::{Map, Value};
use switchboard_core::Trace;

tokio::task_local! {
    static CURRENT: Trace;
}

/// The span the current task works under, if tracing is on.
pub(crate) fn current() -> Option<Trace> {
    CURRENT.try_with(Trace::clone).ok()
}

/// `f` with `t` as the current span (as is, when `None`). Not an `async fn`: one would hold
/// `f` twice (its argument, then the future it awaits), doubling the size of every request
/// future above it, which is copied whole when it is boxed or moved.
pub(crate) fn scoped<F: Future>(t: Option<Trace>, f: F) -> Scoped<F> {
    match t {
        Some(t) => Either::Left(CURRENT.scope(t, f)),
        None => Either::Right(f),
    }
}

/// The future of [`scoped`].
pub(crate) type Scoped<F> = Either<tokio::task::futures::TaskLocalFuture<Trace, F>, F>;

/// `f` under the current span, for a task spawned on the request's behalf.
pub(crate) fn carry<F: Future>(f: F) -> impl Future<Output = F::Output> {
    scoped(current(), f)
}

/// Adds the current span's `traceparent` (and `tracestate`) to a request to an HTTP target.
pub(crate) fn headers(rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    let Some((parent, state)) = current().and_then(|t| t.traceparent()) else {
        return rb;
    };
    let rb = rb.header("traceparent", parent);
    match state {
        Some(s) => rb.header("tracestate", s),
        None => rb,
    }
}

/// The current span's `traceparent` (and `tracestate`) header values, for a request built
/// without reqwest's builder.
pub(crate) fn header_values() -> Option<(String, Option<String>)> {
    current().and_then(|t| t.traceparent())
}

/// Puts `traceparent` (and `tracestate`) into the request's `params._meta`, keeping whatever
/// `_meta` the client sent (the keys are added, the object is not replaced).
pub(crate) fn inject_meta(msg: &mut Value, t: &Trace) {
    let Some((parent, state)) = t.traceparent() else {
        return;
    };
    let Some(obj) = msg.as_object_mut() else {
        return;
    };
    let params = obj
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if params.is_null() {
        *params = Value::Object(Map::new());
    }
    let Some(params) = params.as_object_mut() else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    meta.insert("traceparent".into(), Value::String(parent));
    if let Some(s) = state {
        meta.insert("tracestate".into(), Value::String(s));
    }
}
