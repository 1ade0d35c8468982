//! Metrics named after the OpenTelemetry GenAI semantic conventions (`gen_ai.client.token.usage`
//! → `gen_ai_client_token_usage`, ...), labelled per provider and model.
//!
//! A request that succeeded records through handles resolved once per serving thread for its
//! (operation, provider, request model, response model): no label strings are built or hashed
//! per request. Failed requests, whose `error_type` varies, go through the families.

use std::borrow::Cow;
use std::cell::{OnceCell, RefCell};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use thread_local::ThreadLocal;

use crate::format::Usage;

/// Labels of token usage.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    /// `chat` or `embeddings`.
    pub gen_ai_operation_name: &'static str,
    /// Provider name (config `name`, default the provider kind).
    pub gen_ai_provider_name: Arc<str>,
    /// Model the client asked for (the route's model name).
    pub gen_ai_request_model: Arc<str>,
    /// The provider's model.
    pub gen_ai_response_model: Arc<str>,
    /// `input` or `output`.
    pub gen_ai_token_type: &'static str,
}

/// Labels of request duration and time to first token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// `chat`, `embeddings`, `responses`.
    pub gen_ai_operation_name: &'static str,
    /// Provider name.
    pub gen_ai_provider_name: Arc<str>,
    /// Model the client asked for.
    pub gen_ai_request_model: Arc<str>,
    /// The provider's model.
    pub gen_ai_response_model: Arc<str>,
    /// Empty on success, else the error class (`429`, `500`, `timeout`, `stream_error`).
    pub error_type: Cow<'static, str>,
}

/// Labels of the cost counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    /// Provider name.
    pub gen_ai_provider_name: Arc<str>,
    /// The provider's model.
    pub gen_ai_response_model: Arc<str>,
}

/// Labels of the response cache's lookups.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    /// `hit` or `miss`.
    pub result: &'static str,
}

/// The LLM backend's metric families (cheap to clone; build once per process).
#[derive(Clone, Debug)]
pub struct Metrics(Arc<Families>);

#[derive(Debug)]
struct Families {
    token_usage: Family<TokenLabels, Histogram>,
    duration: Family<RequestLabels, Histogram>,
    ttft: Family<RequestLabels, Histogram>,
    cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    cache_requests: Family<CacheLabels, Counter>,
    /// Per serving thread, the handles of the successful label sets seen, at most
    /// [`SERVED_MAX`] of them.
    served: ThreadLocal<RefCell<Vec<Served>>>,
}

/// How many successful label sets a thread keeps handles for; beyond that, requests record
/// through the families (the same series, at the cost of a lookup).
const SERVED_MAX: usize = 64;

/// One successful (operation, provider, request model, response model) set and its handles,
/// each resolved when first used, so a series appears only once something is recorded in it.
#[derive(Debug)]
struct Served {
    labels: RequestLabels,
    duration: OnceCell<Histogram>,
    ttft: OnceCell<Histogram>,
    input: OnceCell<Histogram>,
    output: OnceCell<Histogram>,
    cost: OnceCell<Counter<f64, AtomicU64>>,
}

#[derive(Clone, Copy)]
enum Slot {
    Duration,
    Ttft,
    Input,
    Output,
}

/// The empty label value, one shared allocation (provider and response model until a member
/// answers).
pub(crate) fn unset() -> Arc<str> {
    static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    EMPTY.clone()
}

fn same(a: &Arc<str>, b: &Arc<str>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

impl Served {
    fn is(&self, l: &RequestLabels) -> bool {
        let m = &self.labels;
        m.gen_ai_operation_name == l.gen_ai_operation_name
            && same(&m.gen_ai_provider_name, &l.gen_ai_provider_name)
            && same(&m.gen_ai_request_model, &l.gen_ai_request_model)
            && same(&m.gen_ai_response_model, &l.gen_ai_response_model)
    }
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
        Metrics(Arc::new(Families {
            token_usage,
            duration,
            ttft,
            cost,
            cache_requests,
            served: ThreadLocal::new(),
        }))
    }

    fn register_gen_ai(&self, registry: &mut Registry) {
        registry.register(
            "gen_ai_client_token_usage",
            "Tokens used per request, by token type (OTel gen_ai.client.token.usage)",
            self.0.token_usage.clone(),
        );
        registry.register(
            "gen_ai_server_request_duration",
            "Seconds from request to the end of the response (OTel gen_ai.server.request.duration)",
            self.0.duration.clone(),
        );
        registry.register(
            "gen_ai_server_time_to_first_token",
            "Seconds until the first generated token (OTel gen_ai.server.time_to_first_token)",
            self.0.ttft.clone(),
        );
    }

    fn register_own(&self, registry: &mut Registry) {
        registry.register(
            "llm_cost_usd",
            "Cost in USD from the configured price table",
            self.0.cost.clone(),
        );
        // `switchboard_llm_cache_requests_total` in the gateway, whose registry adds the
        // `switchboard_` prefix.
        registry.register(
            "llm_cache_requests",
            "Response cache lookups (llm.cache), by result: hit or miss",
            self.0.cache_requests.clone(),
        );
    }

    /// A detached instance (tests, or a gateway without metrics).
    pub fn unregistered() -> Self {
        Self::new(&mut Registry::default())
    }

    /// The histogram of `slot` for `l`, from the families.
    fn resolve(&self, l: &RequestLabels, slot: Slot) -> Histogram {
        let token = |kind| TokenLabels {
            gen_ai_operation_name: l.gen_ai_operation_name,
            gen_ai_provider_name: l.gen_ai_provider_name.clone(),
            gen_ai_request_model: l.gen_ai_request_model.clone(),
            gen_ai_response_model: l.gen_ai_response_model.clone(),
            gen_ai_token_type: kind,
        };
        match slot {
            Slot::Duration => self.0.duration.get_or_create_owned(l),
            Slot::Ttft => self.0.ttft.get_or_create_owned(l),
            Slot::Input => self.0.token_usage.get_or_create_owned(&token("input")),
            Slot::Output => self.0.token_usage.get_or_create_owned(&token("output")),
        }
    }

    fn cost_counter(&self, l: &RequestLabels) -> Counter<f64, AtomicU64> {
        self.0.cost.get_or_create_owned(&CostLabels {
            gen_ai_provider_name: l.gen_ai_provider_name.clone(),
            gen_ai_response_model: l.gen_ai_response_model.clone(),
        })
    }

    /// Runs `f` on this thread's handles for `l` when `l` is a success (empty `error_type`)
    /// and has, or may take, a place among them; `None` otherwise.
    fn with_served<R>(&self, l: &RequestLabels, f: impl FnOnce(&Served) -> R) -> Option<R> {
        if !l.error_type.is_empty() {
            return None;
        }
        let cell = self.0.served.get_or(|| RefCell::new(Vec::new()));
        let mut served = cell.borrow_mut();
        let i = match served.iter().position(|s| s.is(l)) {
            Some(i) => i,
            None if served.len() < SERVED_MAX => {
                served.push(Served {
                    labels: l.clone(),
                    duration: OnceCell::new(),
                    ttft: OnceCell::new(),
                    input: OnceCell::new(),
                    output: OnceCell::new(),
                    cost: OnceCell::new(),
                });
                served.len() - 1
            }
            None => return None,
        };
        served.get(i).map(f)
    }

    fn observe(&self, l: &RequestLabels, slot: Slot, v: f64) {
        let done = self.with_served(l, |s| {
            let cell = match slot {
                Slot::Duration => &s.duration,
                Slot::Ttft => &s.ttft,
                Slot::Input => &s.input,
                Slot::Output => &s.output,
            };
            cell.get_or_init(|| self.resolve(l, slot)).observe(v);
        });
        if done.is_none() {
            self.resolve(l, slot).observe(v);
        }
    }

    /// Records token usage of one request (the operation and models from `l`).
    pub fn record_usage(&self, l: &RequestLabels, u: &Usage) {
        self.observe(l, Slot::Input, u.input as f64);
        self.observe(l, Slot::Output, u.output as f64);
    }

    /// Records a request's duration.
    pub fn record_duration(&self, labels: &RequestLabels, d: Duration) {
        self.observe(labels, Slot::Duration, d.as_secs_f64());
    }

    /// Records time to first token.
    pub fn record_ttft(&self, labels: &RequestLabels, d: Duration) {
        self.observe(labels, Slot::Ttft, d.as_secs_f64());
    }

    /// Counts a response cache lookup.
    pub fn record_cache(&self, hit: bool) {
        self.0
            .cache_requests
            .get_or_create(&CacheLabels {
                result: if hit { "hit" } else { "miss" },
            })
            .inc();
    }

    /// Adds cost, by the provider and response model of `l`.
    pub fn record_cost(&self, l: &RequestLabels, usd: f64) {
        if usd > 0.0 {
            let done = self.with_served(l, |s| {
                s.cost.get_or_init(|| self.cost_counter(l)).inc_by(usd);
            });
            if done.is_none() {
                self.cost_counter(l).inc_by(usd);
            }
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

    fn labels(provider: &str, request: &str, response: &str, error: &'static str) -> RequestLabels {
        RequestLabels {
            gen_ai_operation_name: "chat",
            gen_ai_provider_name: provider.into(),
            gen_ai_request_model: request.into(),
            gen_ai_response_model: response.into(),
            error_type: Cow::Borrowed(error),
        }
    }

    fn text(reg: &Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, reg).unwrap();
        s
    }

    /// The value of the one sample whose line starts with `prefix` (name and labels).
    fn sample(text: &str, prefix: &str) -> f64 {
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
        assert_eq!(lines.len(), 1, "{prefix} in\n{text}");
        lines[0].rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn names_follow_otel_and_cost_is_priced() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg);
        let l = labels("openai", "smart", "gpt-4o", "");
        m.record_usage(
            &l,
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
        m.record_cost(&l, c);
        let s = text(&reg);
        assert!(s.contains("gen_ai_client_token_usage_bucket"), "{s}");
        assert!(s.contains("gen_ai_token_type=\"input\""));
        assert!(s.contains("gen_ai_provider_name=\"openai\""));
        assert!(s.contains("\nllm_cost_usd_total"));
    }

    /// Successes record through this thread's resolved handles, failures through the
    /// families, other threads through their own handles, and label sets beyond the
    /// per-thread bound through the families: all into the same series, none lost, and a
    /// series appears only once something was recorded in it.
    #[test]
    fn resolved_handles_record_into_the_families_series() {
        let mut reg = Registry::default();
        let m = Metrics::new(&mut reg);
        let ok = labels("openai", "smart", "gpt-4o", "");
        // Equal labels built from other allocations find the same handles.
        let ok_again = labels("openai", "smart", "gpt-4o", "");
        let failed = labels("openai", "smart", "gpt-4o", "500");
        let u = Usage {
            input: 7,
            output: 3,
            cache_read: 0,
            cache_write: 0,
        };
        m.record_duration(&ok, Duration::from_millis(5));
        m.record_duration(&ok_again, Duration::from_millis(5));
        m.record_usage(&ok, &u);
        m.record_cost(&ok, 0.25);
        m.record_cost(&ok_again, 0.5);
        m.record_duration(&failed, Duration::from_millis(5));
        std::thread::scope(|t| {
            t.spawn(|| {
                m.record_duration(&ok, Duration::from_millis(5));
                m.record_usage(&ok_again, &u);
            });
        });
        // Fill this thread's places, then one more label set goes through the family.
        for i in 0..SERVED_MAX {
            m.record_duration(&labels("p", &format!("m{i}"), "x", ""), Duration::ZERO);
        }
        let beyond = labels("p", "beyond", "x", "");
        m.record_duration(&beyond, Duration::ZERO);
        m.record_duration(&beyond, Duration::ZERO);
        let s = text(&reg);
        let ok_set = "gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"openai\",gen_ai_request_model=\"smart\",gen_ai_response_model=\"gpt-4o\"";
        assert_eq!(
            sample(
                &s,
                &format!("gen_ai_server_request_duration_count{{{ok_set},error_type=\"\"}}")
            ),
            3.0
        );
        assert_eq!(
            sample(
                &s,
                &format!("gen_ai_server_request_duration_count{{{ok_set},error_type=\"500\"}}")
            ),
            1.0
        );
        assert_eq!(
            sample(
                &s,
                &format!("gen_ai_client_token_usage_sum{{{ok_set},gen_ai_token_type=\"input\"}}")
            ),
            14.0
        );
        assert_eq!(
            sample(
                &s,
                &format!("gen_ai_client_token_usage_sum{{{ok_set},gen_ai_token_type=\"output\"}}")
            ),
            6.0
        );
        assert_eq!(
            sample(
                &s,
                "llm_cost_usd_total{gen_ai_provider_name=\"openai\",gen_ai_response_model=\"gpt-4o\"}"
            ),
            0.75
        );
        assert_eq!(
            sample(
                &s,
                "gen_ai_server_request_duration_count{gen_ai_operation_name=\"chat\",gen_ai_provider_name=\"p\",gen_ai_request_model=\"beyond\""
            ),
            2.0
        );
        // Nothing was recorded as time to first token: no series.
        assert!(
            !s.contains("gen_ai_server_time_to_first_token_count{"),
            "{s}"
        );
    }
}
