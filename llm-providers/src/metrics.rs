//! Metrics named after the OpenTelemetry GenAI semantic conventions (`gen_ai.client.token.usage`
//! → `gen_ai_client_token_usage`, ...), labelled per provider and model.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::format::Usage;

/// Labels of token usage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `chat` or `embeddings`.
    pub gen_ai_operation_name: &'static str,
    /// Provider name (config `name`, default the provider kind).
    pub gen_ai_provider_name: String,
    /// Model the client asked for (the route's model name).
    pub gen_ai_request_model: String,
    /// The provider's model.
    pub gen_ai_response_model: String,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

/// Labels of request duration and time to first token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chat`, `embeddings`, `responses`.
    pub gen_ai_operation_name: &'static str,
    /// Provider name.
    pub gen_ai_provider_name: String,
    /// Model the client asked for.
    pub gen_ai_request_model: String,
    /// The provider's model.
    pub gen_ai_response_model: String,
    /// Empty on success, else the error class (`429`, `500`, `timeout`, `stream_error`).
    pub error_type: String,
}

/// Labels of the cost counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// Provider name.
    pub gen_ai_provider_name: String,
    /// The provider's model.
    pub gen_ai_response_model: String,
}

/// Labels of the response cache's lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// The LLM backend's metric families (cheap to clone; build once per process).
#[derive(Clone, Debug)]
pub struct Metrics {
    token_usage: Family<TokenLabels, Histogram>,
    duration: Family<RequestLabels, Histogram>,
    ttft: Family<RequestLabels, Histogram>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    cache_requests: Family<CacheLabels, Counter>,
}

impl Metrics {
    /// Registers the families in `registry`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self::families();
        m.register_gen_ai(registry);
        m.register_own(registry);
        m
    }

    /// Registers the OpenTelemetry GenAI families (`gen_ai_*`) in `gen_ai` and Switchboard's
    /// own (`llm_cost_usd`, `llm_cache_requests`) in `own`: the gateway exposes the first
    /// without its `switchboard_` prefix, under the names the GenAI conventions give them.
    pub fn new_split(gen_ai: &mut Registry, own: &mut Registry) -> Self {
        let m = Self::families();
        m.register_gen_ai(gen_ai);
        m.register_own(own);
        m
    }

    fn families() -> Self {
        let token_usage = Family::<TokenLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                1.0,
                4.0,
                16.0,
                64.0,
                256.0,
                1024.0,
                4096.0,
                16384.0,
                65536.0,
                262_144.0,
                1_048_576.0,
                4_194_304.0,
            ])
        });
        let duration = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                81.92,
            ])
        });
        let ttft = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0,
            ])
        });
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        let cache_requests = Family::<CacheLabels, Counter>::default();
        Metrics {
            token_usage,
            duration,
            ttft,
            cost,
            cache_requests,
        }
    }

    fn register_gen_ai(&self, registry: &mut Registry) {
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type (OTel gen_ai.client.token.usage)",
            self.token_usage.clone(),
        );
        registry.register(
            "gen_ai_server_request_duration",
            "Seconds from request to the end of the response (OTel gen_ai.server.request.duration)",
            self.duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token",
            "Seconds until the first generated token (OTel gen_ai.server.time_to_first_token)",
            self.ttft.clone(),
        );
    }

    fn register_own(&self, registry: &mut Registry) {
        registry.register(
            "llm_cost_usd",
            "Cost in USD from the configured price table",
            self.cost.clone(),
        );
        // `switchboard_llm_cache_requests_total` in the gateway, whose registry adds the
        // `switchboard_` prefix.
        registry.register(
            "llm_cache_requests",
            "Response cache lookups (llm.cache), by result: hit or miss",
            self.cache_requests.clone(),
        );
    }

    /// A detached instance (tests, or a gateway without metrics).
    pub fn unregistered() -> Self {
        Self::new(&mut Registry::default())
    }

    /// Records token usage of one request.
    pub fn record_usage(
        &self,
        op: &'static str,
        provider: &str,
        request_model: &str,
        response_model: &str,
        u: &Usage,
    ) {
        for (kind, n) in [("input", u.input), ("output", u.output)] {
            self.token_usage
                .get_or_create(&TokenLabels {
                    gen_ai_operation_name: op,
                    gen_ai_provider_name: provider.to_string(),
                    gen_ai_request_model: request_model.to_string(),
                    gen_ai_response_model: response_model.to_string(),
                    gen_ai_token_type: kind,
                })
                .observe(n as f64);
        }
    }

    /// Records a request's duration.
    pub fn record_duration(&self, labels: &RequestLabels, d: Duration) {
        self.duration.get_or_create(labels).observe(d.as_secs_f64());
    }

    /// Records time to first token.
    pub fn record_ttft(&self, labels: &RequestLabels, d: Duration) {
        self.ttft.get_or_create(labels).observe(d.as_secs_f64());
    }

    /// Counts a response cache lookup.
    pub fn record_cache(&self, hit: bool) {
        self.cache_requests
            .get_or_create(&CacheLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// Adds cost.
    pub fn record_cost(&self, provider: &str, model: &str, usd: f64) {
        if usd > 0.0 {
            self.cost
                .get_or_create(&CostLabels {
                    gen_ai_provider_name: provider.to_string(),
                    gen_ai_response_model: model.to_string(),
                })
                .inc_by(usd);
        }
    }
}

/// Cost in USD of `u` at `price` (USD per million tokens).
pub fn cost(price: &crate::config::ModelPrice, u: &Usage) -> f64 {
    let m = 1_000_000.0;
    (u.uncached_input() as f64 * price.input
        + u.cache_read as f64 * price.cache_read.unwrap_or(price.input)
        + u.cache_write as f64 * price.cache_write.unwrap_or(price.input)
        + u.output as f64 * price.output)
        / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_otel_and_cost_is_priced() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg);
        m.record_usage(
            "chat",
            "openai",
            "smart",
            "gpt-4o",
            &Usage {
                input: 100,
                output: 10,
                cache_read: 50,
                cache_write: 0,
            },
        );
        let price = crate::config::ModelPrice {
            input: 2.0,
            output: 8.0,
            cache_read: Some(1.0),
            cache_write: None,
        };
        let c = cost(
            &price,
            &Usage {
                input: 1_000_000,
                output: 1_000_000,
                cache_read: 500_000,
                cache_write: 0,
            },
        );
        assert!((c - (1.0 + 0.5 + 8.0)).abs() < 1e-9);
        m.record_cost("openai", "gpt-4o", c);
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &reg).unwrap();
        assert!(s.contains("gen_ai_client_token_usage_bucket"), "{s}");
        assert!(s.contains("gen_ai_token_type=\"input\""));
        assert!(s.contains("gen_ai_provider_name=\"openai\""));
        assert!(s.contains("\nllm_cost_usd_total"));
    }
}
