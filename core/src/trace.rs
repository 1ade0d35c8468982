//! The tracing seam every backend shares: a [`Tracer`] (built by the gateway when `tracing:` is
//! on, absent otherwise) and [`Trace`], one span in flight with the OpenTelemetry context it
//! heads. A request carries `Option<Trace>` in its [`crate::RequestContext`]; with tracing off
//! it is `None` and no span object is ever built, no header written.
//!
//! Backends open child spans ([`Trace::child`]), set attributes from the OpenTelemetry HTTP,
//! GenAI and MCP semantic conventions, and propagate the W3C trace context upstream: as
//! `traceparent`/`tracestate` headers ([`Trace::inject`]) or, for transports without headers,
//! as the strings of [`Trace::traceparent`] (MCP `params._meta`).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use opentelemetry::global::BoxedTracer;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};

pub use opentelemetry::KeyValue as Attr;
pub use opentelemetry::trace::SpanKind as Kind;

/// The process's tracer: cheap to clone.
#[derive(Clone)]
pub struct Tracer(Arc<TracerInner>);

struct TracerInner {
    tracer: BoxedTracer,
    capture_content: bool,
}

impl Tracer {
    /// Wraps an OpenTelemetry tracer. `capture_content`: whether spans may carry prompt text
    /// and tool arguments (`tracing.capture_content`; never credentials).
    pub fn new(tracer: BoxedTracer, capture_content: bool) -> Self {
        Tracer(Arc::new(TracerInner {
            tracer,
            capture_content,
        }))
    }

    /// Starts a span as a child of `parent` (an empty context: a new trace).
    pub fn start(
        &self,
        parent: &Context,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attrs: Vec<KeyValue>,
    ) -> Trace {
        let span = self
            .0
            .tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attrs)
            .start_with_context(&self.0.tracer, parent);
        Trace {
            tracer: self.clone(),
            cx: parent.with_span(span),
        }
    }
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tracer(..)")
    }
}

/// One span in flight and the context it heads. Clones share the span; it ends at
/// [`Trace::end`] (or when the last clone is dropped).
#[derive(Clone)]
pub struct Trace {
    tracer: Tracer,
    cx: Context,
}

impl Trace {
    /// Starts a child span of this one.
    pub fn child(
        &self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attrs: Vec<KeyValue>,
    ) -> Trace {
        self.tracer.start(&self.cx, name, kind, attrs)
    }

    /// The OpenTelemetry context this span heads.
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Whether prompt text and tool arguments may be recorded (`tracing.capture_content`).
    pub fn capture_content(&self) -> bool {
        self.tracer.0.capture_content
    }

    /// Whether the span is recorded (sampled in): attributes that cost something to compute
    /// can be skipped when it is not.
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// Sets one attribute.
    pub fn set(&self, kv: KeyValue) {
        self.cx.span().set_attribute(kv);
    }

    /// Adds an event (a timestamped, named set of attributes) to the span.
    pub fn event(&self, name: impl Into<Cow<'static, str>>, attrs: Vec<KeyValue>) {
        self.cx.span().add_event(name, attrs);
    }

    /// Marks the span failed: status error with `message` and `error.type`.
    pub fn error(&self, error_type: impl Into<Cow<'static, str>>) {
        let t: Cow<'static, str> = error_type.into();
        let span = self.cx.span();
        span.set_attribute(KeyValue::new("error.type", t.to_string()));
        span.set_status(Status::error(t));
    }

    /// Ends the span now.
    pub fn end(&self) {
        self.cx.span().end();
    }

    /// The W3C `traceparent` of this span, and its `tracestate` when not empty; `None` for an
    /// invalid span context.
    pub fn traceparent(&self) -> Option<(String, Option<String>)> {
        let span = self.cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return None;
        }
        let parent = format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        );
        let state = sc.trace_state().header();
        Some((parent, (!state.is_empty()).then_some(state)))
    }

    /// Writes `traceparent` (and `tracestate`) for this span into `headers`, replacing the
    /// client's: the upstream's parent is the gateway's span.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        headers.remove(TRACESTATE);
        if let Some((parent, state)) = self.traceparent() {
            if let Ok(v) = http::HeaderValue::from_str(&parent) {
                headers.insert(TRACEPARENT, v);
            }
            if let Some(v) = state.and_then(|s| http::HeaderValue::from_str(&s).ok()) {
                headers.insert(TRACESTATE, v);
            }
        }
    }
}

impl fmt::Debug for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let span = self.cx.span();
        let sc = span.span_context();
        write!(f, "Trace({}-{})", sc.trace_id(), sc.span_id())
    }
}

/// The W3C trace context header.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The W3C trace state header.
pub const TRACESTATE: http::HeaderName = http::HeaderName::from_static("tracestate");

/// A stable, non-reversible stand-in for an identifier that must not be exported as is (an
/// MCP session id is a bearer token): the first 16 bytes of its SHA-256, hex.
pub fn hash_id(id: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(id.as_bytes());
    hex::encode(d.get(..16).unwrap_or_default())
}
