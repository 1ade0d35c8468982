//! OpenTelemetry traces (`tracing:`): the settings resolved from the file and the standard
//! `OTEL_*` variables ([`Settings::resolve`]: the file wins, the environment fills in, then the
//! defaults), the OTLP exporter (gRPC or HTTP/protobuf) behind a batch span processor on the
//! tokio runtime ([`Otel::start`]), and the request's server span ([`Otel::server_span`]),
//! child of the client's W3C `traceparent`. With tracing off there is no [`Otel`]: the
//! pipeline checks one `Option` per request and builds nothing.
//!
//! An unreachable collector costs the processor's bounded queue (spans beyond it are
//! dropped) and nothing else: exports run in the background, never on a request.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use opentelemetry::global::BoxedTracer;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use switchboard_core::trace::{Trace, Tracer};

use crate::config::{OtlpProtocol, TracingConfig};

/// The exporter settings after the file, the environment and the defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Full URL spans are sent to.
    pub endpoint: String,
    /// gRPC or HTTP/protobuf.
    pub protocol: OtlpProtocol,
    /// Headers sent with each export (secrets: never logged).
    pub headers: BTreeMap<String, String>,
    /// Export timeout.
    pub timeout: Duration,
    /// Ratio of new traces sampled (parent-based).
    pub ratio: f64,
    /// Resource attributes, `service.name` included.
    pub resource: BTreeMap<String, String>,
    /// `capture_content`.
    pub capture_content: bool,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

impl Settings {
    /// Resolves the settings: `None` when tracing is off (no `tracing:` section and no
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`/`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`). `env` reads a
    /// variable (the process environment in `main`). Values the file sets win; an unusable
    /// environment value is an error naming the variable.
    pub fn resolve(
        cfg: Option<&TracingConfig>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Settings>, String> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let traces_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if cfg.is_none() && traces_endpoint.is_none() && base_endpoint.is_none() {
            return Ok(None);
        }
        let default = TracingConfig::default();
        let cfg = cfg.unwrap_or(&default);
        let protocol = match cfg.otlp.protocol {
            Some(p) => p,
            None => match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
                .as_deref()
            {
                None | Some("http/protobuf") => OtlpProtocol::HttpProtobuf,
                Some("grpc") => OtlpProtocol::Grpc,
                Some(other) => {
                    return Err(format!(
                        "OTEL_EXPORTER_OTLP_PROTOCOL: `{other}` is not supported (grpc or http/protobuf)"
                    ));
                }
            },
        };
        let endpoint = match (&cfg.otlp.endpoint, traces_endpoint, base_endpoint) {
            (Some(e), _, _) => signal_url(e, protocol),
            // The signal's own variable is the full URL; the base one gets the signal's path.
            (None, Some(e), _) => e,
            (None, None, Some(e)) => signal_url(&e, protocol),
            (None, None, None) => match protocol {
                OtlpProtocol::Grpc => "http://localhost:4317".into(),
                OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/traces".into(),
            },
        };
        match url::Url::parse(&endpoint) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => return Err("the OTLP endpoint must be an http:// or https:// URL".into()),
        }
        let mut headers = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
            .map(|h| pairs(&h))
            .unwrap_or_default();
        headers.extend(cfg.otlp.headers.clone());
        let timeout =
            match cfg.otlp.timeout {
                Some(t) => t,
                None => match env("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
                    .or_else(|| env("OTEL_EXPORTER_OTLP_TIMEOUT"))
                {
                    Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| {
                        "OTEL_EXPORTER_OTLP_TIMEOUT: must be milliseconds".to_string()
                    })?),
                    None => DEFAULT_TIMEOUT,
                },
            };
        let ratio = match cfg.sampling {
            Some(r) => r,
            None => env_ratio(&env)?,
        };
        if !(0.0..=1.0).contains(&ratio) {
            return Err(format!("sampling ratio {ratio} is not from 0 to 1"));
        }
        let mut resource = env("OTEL_RESOURCE_ATTRIBUTES")
            .map(|r| pairs(&r))
            .unwrap_or_default();
        if let Some(name) = env("OTEL_SERVICE_NAME") {
            resource.insert("service.name".into(), name);
        }
        resource
            .entry("service.name".into())
            .or_insert_with(|| "switchboard".into());
        resource.extend(cfg.resource.clone());
        Ok(Some(Settings {
            endpoint,
            protocol,
            headers,
            timeout,
            ratio,
            resource,
            capture_content: cfg.capture_content,
        }))
    }
}

/// An HTTP endpoint without a path gets the traces path; anything else is used as is.
fn signal_url(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_string(),
        OtlpProtocol::HttpProtobuf => match url::Url::parse(base) {
            Ok(u) if u.path() == "/" || u.path().is_empty() => {
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
            _ => base.to_string(),
        },
    }
}

/// `OTEL_TRACES_SAMPLER` and `_ARG` as a parent-based ratio.
fn env_ratio(env: &dyn Fn(&str) -> Option<String>) -> Result<f64, String> {
    let arg = || -> Result<f64, String> {
        match env("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(a) => a
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| "OTEL_TRACES_SAMPLER_ARG: must be a ratio from 0 to 1".into()),
        }
    };
    match env("OTEL_TRACES_SAMPLER").as_deref() {
        None | Some("always_on" | "parentbased_always_on") => Ok(1.0),
        Some("always_off" | "parentbased_always_off") => Ok(0.0),
        Some("traceidratio" | "parentbased_traceidratio") => arg(),
        Some(other) => Err(format!("OTEL_TRACES_SAMPLER: `{other}` is not supported")),
    }
}

/// `k=v,k2=v2` (the `OTEL_*` list format; values percent-decoded).
fn pairs(s: &str) -> BTreeMap<String, String> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_string(), percent_decode(v.trim())))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%'
            && let Some(h) = b.get(i + 1..i + 3)
            && let Ok(h) = std::str::from_utf8(h)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The running tracer: the SDK provider (flushed at shutdown) and the handle requests use.
#[derive(Clone)]
pub struct Otel {
    provider: SdkTracerProvider,
    tracer: Tracer,
}

impl std::fmt::Debug for Otel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Otel(..)")
    }
}

impl Otel {
    /// Builds the exporter and the batch processor on the current tokio runtime. Nothing is
    /// sent until spans end; an unreachable collector is reported by the exporter's own
    /// log lines, never to a request.
    pub fn start(s: &Settings) -> Result<Otel, String> {
        let exporter = match s.protocol {
            OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(s.endpoint.clone())
                .with_timeout(s.timeout)
                .with_headers(
                    s.headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<HashMap<_, _>>(),
                )
                .build(),
            OtlpProtocol::Grpc => {
                let mut map = http::HeaderMap::new();
                for (k, v) in &s.headers {
                    if let (Ok(k), Ok(v)) = (
                        http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        http::HeaderValue::from_str(v),
                    ) {
                        map.insert(k, v);
                    }
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(s.endpoint.clone())
                    .with_timeout(s.timeout)
                    .with_metadata(
                        opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(map),
                    )
                    .build()
            }
        }
        .map_err(|e| format!("OTLP exporter: {e}"))?;
        let processor =
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build();
        let resource = Resource::builder_empty()
            .with_attributes(
                s.resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                s.ratio,
            ))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("switchboard");
        Ok(Otel {
            tracer: Tracer::new(BoxedTracer::new(Box::new(tracer)), s.capture_content),
            provider,
        })
    }

    /// The handle backends open spans with.
    pub fn tracer(&self) -> &Tracer {
        &self.tracer
    }

    /// The SERVER span of one request, child of the client's `traceparent` when it sent a
    /// valid one.
    pub fn server_span(
        &self,
        headers: &http::HeaderMap,
        name: String,
        attrs: Vec<KeyValue>,
    ) -> Trace {
        let parent = if headers.contains_key("traceparent") {
            TraceContextPropagator::new().extract_with_context(&Context::new(), &Headers(headers))
        } else {
            Context::new()
        };
        self.tracer.start(&parent, name, SpanKind::Server, attrs)
    }

    /// Exports what is queued and stops the processor (at shutdown), waiting at most `wait`.
    pub async fn shutdown(&self, wait: Duration) {
        let provider = self.provider.clone();
        // The SDK blocks its caller until the processor task answers: not on a runtime thread.
        let done = tokio::task::spawn_blocking(move || provider.shutdown_with_timeout(wait));
        match tokio::time::timeout(wait + Duration::from_millis(500), done).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "flushing the last spans failed"),
            _ => tracing::warn!("flushing the last spans timed out"),
        }
    }
}

/// A request's headers as the propagator reads them.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_without_section_or_endpoint_variable() {
        assert_eq!(Settings::resolve(None, &env(&[])).unwrap(), None);
        assert_eq!(
            Settings::resolve(None, &env(&[("OTEL_SERVICE_NAME", "x")])).unwrap(),
            None
        );
    }

    #[test]
    fn environment_alone_turns_it_on() {
        let s = Settings::resolve(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=a%20b,x-team=ml"),
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
                ("OTEL_SERVICE_NAME", "edge"),
                ("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://collector:4318/v1/traces");
        assert_eq!(s.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(s.headers["x-api-key"], "a b");
        assert_eq!(s.ratio, 0.25);
        assert_eq!(s.resource["service.name"], "edge");
        assert_eq!(s.resource["deployment.environment"], "prod");
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let cfg = TracingConfig {
            otlp: crate::config::OtlpConfig {
                endpoint: Some("http://127.0.0.1:4317".into()),
                protocol: Some(OtlpProtocol::Grpc),
                headers: [("x-team".to_string(), "file".to_string())].into(),
                timeout: Some(Duration::from_secs(3)),
            },
            sampling: Some(0.5),
            resource: [("service.name".to_string(), "from-file".to_string())].into(),
            capture_content: false,
        };
        let s = Settings::resolve(
            Some(&cfg),
            &env(&[
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://other:4318/v1/traces",
                ),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_HEADERS", "x-team=env,x-env=1"),
                ("OTEL_TRACES_SAMPLER", "always_off"),
                ("OTEL_SERVICE_NAME", "from-env"),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "100"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:4317");
        assert_eq!(s.protocol, OtlpProtocol::Grpc);
        assert_eq!(s.headers["x-team"], "file");
        assert_eq!(s.headers["x-env"], "1");
        assert_eq!(s.ratio, 0.5);
        assert_eq!(s.resource["service.name"], "from-file");
        assert_eq!(s.timeout, Duration::from_secs(3));
    }

    #[test]
    fn bad_environment_values_are_refused() {
        let cfg = TracingConfig::default();
        for vars in [
            &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")][..],
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ][..],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4317")][..],
        ] {
            let vars: &'static [(&'static str, &'static str)] = vars;
            assert!(
                Settings::resolve(Some(&cfg), &env(vars)).is_err(),
                "{vars:?}"
            );
        }
    }
}
