//! A small OTLP trace receiver for tests: OTLP/HTTP (`POST /v1/traces`, protobuf) and
//! OTLP/gRPC (`TraceService/Export`) on loopback port-0 sockets, built on the
//! `opentelemetry-proto` definitions. It keeps every span it receives, flattened into
//! [`Span`]s (ids in hex, attributes as strings), with the headers of the export requests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;

/// One received span.
#[derive(Debug, Clone)]
pub struct Span {
    /// Trace id, 32 hex digits.
    pub trace_id: String,
    /// Span id, 16 hex digits.
    pub span_id: String,
    /// Parent span id (empty for a root).
    pub parent_span_id: String,
    /// Span name.
    pub name: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// Attributes, values as strings (ints and bools formatted).
    pub attrs: BTreeMap<String, String>,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// Resource attributes of the batch it came in.
    pub resource: BTreeMap<String, String>,
    /// `http` or `grpc`: how it arrived.
    pub via: &'static str,
    /// The span's events, in order.
    pub events: Vec<Event>,
}

/// One event of a span.
#[derive(Debug, Clone)]
pub struct Event {
    /// Event name.
    pub name: String,
    /// Attributes, values as strings.
    pub attrs: BTreeMap<String, String>,
}

impl Span {
    /// An attribute's value.
    pub fn attr(&self, k: &str) -> Option<&str> {
        self.attrs.get(k).map(String::as_str)
    }
}

/// Span kinds as OTLP numbers them.
pub const INTERNAL: i32 = 1;
/// Span kind SERVER.
pub const SERVER: i32 = 2;
/// Span kind CLIENT.
pub const CLIENT: i32 = 3;

#[derive(Default)]
struct Store {
    spans: Mutex<Vec<Span>>,
    headers: Mutex<Vec<HeaderMap>>,
}

/// The running receiver.
pub struct Receiver {
    store: Arc<Store>,
    /// OTLP/HTTP address (`http://{http}/v1/traces`).
    pub http: SocketAddr,
    /// OTLP/gRPC address.
    pub grpc: SocketAddr,
}

impl Receiver {
    /// Starts both servers on loopback port 0.
    pub async fn start() -> Receiver {
        let store = Arc::new(Store::default());
        let s = store.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let s = s.clone();
                async move {
                    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
                        return (StatusCode::BAD_REQUEST, HeaderMap::new(), Vec::new());
                    };
                    s.headers.lock().unwrap().push(headers);
                    collect(&s, req, "http");
                    let mut h = HeaderMap::new();
                    h.insert(
                        header::CONTENT_TYPE,
                        "application/x-protobuf".parse().unwrap(),
                    );
                    (
                        StatusCode::OK,
                        h,
                        ExportTraceServiceResponse::default().encode_to_vec(),
                    )
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, app).await;
        });

        let g = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let grpc = g.local_addr().unwrap();
        let svc = TraceServiceServer::new(Grpc(store.clone()));
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(g))
                .await;
        });
        Receiver { store, http, grpc }
    }

    /// The OTLP/HTTP traces URL.
    pub fn http_url(&self) -> String {
        format!("http://{}/v1/traces", self.http)
    }

    /// The OTLP/gRPC endpoint URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.store.spans.lock().unwrap().clone()
    }

    /// The headers of every export request received over HTTP (gRPC metadata included as
    /// headers too).
    pub fn export_headers(&self) -> Vec<HeaderMap> {
        self.store.headers.lock().unwrap().clone()
    }

    /// Waits (up to `timeout`) until `done` holds for the spans received, and returns them;
    /// panics with what arrived when it never does.
    pub async fn wait_for(&self, timeout: Duration, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("spans never matched; received: {spans:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

struct Grpc(Arc<Store>);

#[async_trait::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0
            .headers
            .lock()
            .unwrap()
            .push(request.metadata().clone().into_headers());
        collect(&self.0, request.into_inner(), "grpc");
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn collect(store: &Store, req: ExportTraceServiceRequest, via: &'static str) {
    let mut out = store.spans.lock().unwrap();
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .map(|r| attrs(&r.attributes))
            .unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(Span {
                    trace_id: hex::encode(&s.trace_id),
                    span_id: hex::encode(&s.span_id),
                    parent_span_id: hex::encode(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    attrs: attrs(&s.attributes),
                    status: s.status.map(|st| st.code).unwrap_or(0),
                    resource: resource.clone(),
                    via,
                    events: s
                        .events
                        .iter()
                        .map(|e| Event {
                            name: e.name.clone(),
                            attrs: attrs(&e.attributes),
                        })
                        .collect(),
                });
            }
        }
    }
}

fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(AnyValue::StringValue(s)) => s.clone(),
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                Some(other) => format!("{other:?}"),
                None => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}
