//! The semantic checks of an `llm` block, one rule per check, each issue naming its key path.

use super::*;

impl LlmConfig {
    /// `virtual_models`: unique names beside `models`, targets among `models`, rules that
    /// compile.
    fn validate_virtual_models(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        let pools: std::collections::HashSet<&str> =
            self.models.iter().map(|m| m.name.as_str()).collect();
        let mut seen = std::collections::HashSet::new();
        let target = |issues: &mut Vec<(String, String)>, key: String, to: &str| {
            if !pools.contains(to) {
                issues.push((key, format!("`{to}` is not one of this route's `models`")));
            }
        };
        for (i, v) in self.virtual_models.iter().enumerate() {
            let vp = format!("{path}.virtual_models[{i}]");
            if v.name.is_empty() {
                issues.push((format!("{vp}.name"), "must not be empty".into()));
            } else if pools.contains(v.name.as_str()) || !seen.insert(v.name.as_str()) {
                issues.push((
                    format!("{vp}.name"),
                    format!("duplicate model name `{}`", v.name),
                ));
            }
            target(&mut issues, format!("{vp}.default"), &v.default);
            for (j, r) in v.rules.iter().enumerate() {
                if let Err(e) = crate::rule::compile_rule(&r.when) {
                    issues.push((format!("{vp}.rules[{j}].when"), e));
                }
                target(&mut issues, format!("{vp}.rules[{j}].to"), &r.to);
            }
        }
        issues
    }

    /// Semantic checks; each issue is `(key_path, message)` below `path` (e.g.
    /// `listeners[0].routes[1].llm`).
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        for (key, v) in [
            ("max_response_bytes", self.max_response_bytes),
            ("max_event_bytes", self.max_event_bytes),
        ] {
            if v == 0 {
                issues.push((format!("{path}.{key}"), "must be at least 1".into()));
            }
        }
        if self.models.is_empty() {
            issues.push((
                format!("{path}.models"),
                "at least one model is required".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            let mp = format!("{path}.models[{i}]");
            if m.name.is_empty() {
                issues.push((format!("{mp}.name"), "must not be empty".into()));
            } else if !seen.insert(m.name.as_str()) {
                issues.push((
                    format!("{mp}.name"),
                    format!("duplicate model name `{}`", m.name),
                ));
            }
            if m.providers.is_empty() {
                issues.push((
                    format!("{mp}.providers"),
                    "at least one provider is required".into(),
                ));
            }
            if m.strategy != Strategy::Failover && m.providers.iter().all(|p| p.weight == 0) {
                issues.push((
                    format!("{mp}.providers"),
                    "at least one provider needs weight > 0".into(),
                ));
            }
            for (j, p) in m.providers.iter().enumerate() {
                issues.extend(p.validate(&format!("{mp}.providers[{j}]")));
            }
        }
        issues.extend(self.validate_virtual_models(path));
        if let Some(c) = &self.cache {
            for (key, v) in [
                ("max_entries", c.max_entries),
                ("max_bytes", c.max_bytes),
                ("max_entry_bytes", c.max_entry_bytes),
            ] {
                if v == 0 {
                    issues.push((format!("{path}.cache.{key}"), "must be at least 1".into()));
                }
            }
            if c.ttl < Duration::from_secs(1) {
                issues.push((format!("{path}.cache.ttl"), "must be at least 1s".into()));
            }
        }
        if self.retry.attempts == 0 {
            issues.push((
                format!("{path}.retry.attempts"),
                "must be at least 1".into(),
            ));
        }
        if self.retry.max_backoff < self.retry.backoff {
            issues.push((
                format!("{path}.retry.max_backoff"),
                "must not be below retry.backoff".into(),
            ));
        }
        if self.timeouts.attempt.is_zero() {
            issues.push((
                format!("{path}.timeouts.attempt"),
                "must be greater than zero".into(),
            ));
        }
        if self.timeouts.deadline < self.timeouts.attempt {
            issues.push((
                format!("{path}.timeouts.deadline"),
                "must not be below timeouts.attempt".into(),
            ));
        }
        if self.outlier.max_ejection < self.outlier.base_ejection {
            issues.push((
                format!("{path}.outlier.max_ejection"),
                "must not be below outlier.base_ejection".into(),
            ));
        }
        for (name, price) in &self.prices {
            let values = [
                Some(price.input),
                Some(price.output),
                price.cache_read,
                price.cache_write,
            ];
            if values
                .into_iter()
                .flatten()
                .any(|v| !v.is_finite() || v < 0.0)
            {
                issues.push((
                    format!("{path}.prices.{name}"),
                    "prices must be non-negative numbers".into(),
                ));
            }
        }
        issues
    }
}

impl ProviderConfig {
    /// Semantic checks of one provider entry.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.model.is_empty() {
            issues.push((format!("{path}.model"), "must not be empty".into()));
        }
        if self.api_key.is_some() && self.api_key_env.is_some() {
            issues.push((
                format!("{path}.api_key_env"),
                "set either api_key or api_key_env, not both".into(),
            ));
        }
        if let Some(u) = &self.base_url {
            match url::Url::parse(u) {
                Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {}
                _ => issues.push((format!("{path}.base_url"), "must be an http(s) URL".into())),
            }
        }
        if self.provider == ProviderKind::AzureOpenai && self.base_url.is_none() {
            issues.push((
                format!("{path}.base_url"),
                "azure_openai needs base_url (https://{resource}.openai.azure.com)".into(),
            ));
        }
        let bedrock_only = [
            ("region", self.region.is_some()),
            ("access_key_id", self.access_key_id.is_some()),
            ("session_token", self.session_token.is_some()),
        ];
        if self.provider != ProviderKind::Bedrock {
            for (key, set) in bedrock_only {
                if set {
                    issues.push((
                        format!("{path}.{key}"),
                        "only valid with provider: bedrock".into(),
                    ));
                }
            }
        }
        if self.api_version.is_some() && self.provider != ProviderKind::AzureOpenai {
            issues.push((
                format!("{path}.api_version"),
                "only valid with provider: azure_openai".into(),
            ));
        }
        for name in self.headers.keys() {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.push((
                    format!("{path}.headers.{name}"),
                    "not a valid header name".into(),
                ));
            }
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{base, parse};

    fn issues(v: serde_json::Value) -> Vec<(String, String)> {
        parse(v).validate("llm")
    }

    #[test]
    fn rule_no_models() {
        let i = issues(serde_json::json!({"models": []}));
        assert_eq!(i[0].0, "llm.models");
    }

    #[test]
    fn rule_duplicate_model() {
        let mut v = base();
        let m = v["models"][0].clone();
        v["models"].as_array_mut().unwrap().push(m);
        assert_eq!(issues(v)[0].0, "llm.models[1].name");
    }

    #[test]
    fn rule_empty_providers() {
        let mut v = base();
        v["models"][0]["providers"] = serde_json::json!([]);
        assert_eq!(issues(v)[0].0, "llm.models[0].providers");
    }

    #[test]
    fn rule_both_key_sources() {
        let mut v = base();
        v["models"][0]["providers"][0]["api_key_env"] = "K".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].api_key_env");
    }

    #[test]
    fn rule_bad_base_url() {
        let mut v = base();
        v["models"][0]["providers"][0]["base_url"] = "ftp://x".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].base_url");
    }

    #[test]
    fn rule_azure_needs_base_url() {
        let mut v = base();
        v["models"][0]["providers"][0]["provider"] = "azure_openai".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].base_url");
    }

    #[test]
    fn rule_bedrock_only_keys() {
        let mut v = base();
        v["models"][0]["providers"][0]["region"] = "eu-west-1".into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers[0].region");
    }

    #[test]
    fn rule_zero_weights() {
        let mut v = base();
        v["models"][0]["strategy"] = "weighted".into();
        v["models"][0]["providers"][0]["weight"] = 0.into();
        assert_eq!(issues(v)[0].0, "llm.models[0].providers");
    }

    #[test]
    fn rule_retry_and_timeouts() {
        let mut v = base();
        v["retry"] = serde_json::json!({"attempts": 0, "backoff": "1s", "max_backoff": "10ms"});
        v["timeouts"] = serde_json::json!({"attempt": "10s", "deadline": "1s"});
        let keys: Vec<String> = issues(v).into_iter().map(|i| i.0).collect();
        assert_eq!(
            keys,
            [
                "llm.retry.attempts",
                "llm.retry.max_backoff",
                "llm.timeouts.deadline"
            ]
        );
    }

    #[test]
    fn rule_negative_price() {
        let mut v = base();
        v["prices"] = serde_json::json!({"gpt-4o": {"input": -1.0, "output": 1.0}});
        assert_eq!(issues(v)[0].0, "llm.prices.gpt-4o");
    }
}
