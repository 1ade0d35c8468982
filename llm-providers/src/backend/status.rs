//! A read-only view of a backend's models and their provider pools, for the admin UI: which
//! providers serve each model and whether outlier ejection has taken one out.

use super::LlmBackend;
use crate::pool::Health;

/// One model of a route, as the admin UI shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelStatus {
    /// The model name clients send.
    pub name: String,
    /// Its providers, in config order.
    pub providers: Vec<ProviderStatus>,
}

/// One provider of a model's pool. Carries no credential.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProviderStatus {
    /// The provider's name (`x-switchboard-provider`).
    pub name: String,
    /// Its kind (`openai`, `anthropic`, ...).
    pub kind: &'static str,
    /// The provider's model id.
    pub model: String,
    /// `up`, `ejected` (outlier ejection is keeping it out) or `probe` (the ejection ended;
    /// the next request tests it).
    pub health: &'static str,
    /// The EWMA of its time to first byte, in milliseconds (0 before any request).
    pub latency_ms: f64,
}

impl LlmBackend {
    /// The models of this backend and the state of their provider pools, in config order.
    pub fn status(&self) -> Vec<ModelStatus> {
        self.shared
            .order
            .iter()
            .filter_map(|name| self.shared.models.get(name))
            .map(|m| ModelStatus {
                name: m.name.to_string(),
                providers: m
                    .members
                    .iter()
                    .enumerate()
                    .map(|(i, p)| ProviderStatus {
                        name: p.name.to_string(),
                        kind: p.kind.as_str(),
                        model: p.model.to_string(),
                        health: match m.pool.health(i) {
                            Health::Up => "up",
                            Health::Ejected => "ejected",
                            Health::Probe => "probe",
                        },
                        latency_ms: m.pool.latency(i).as_secs_f64() * 1000.0,
                    })
                    .collect(),
            })
            .collect()
    }
}
