//! Secrets: a Secret key the config needs becomes a `${VAR}` reference in the config and a
//! `secretKeyRef` environment variable of the proxy container, so the ConfigMap never holds a
//! secret and the controller never reads one.

use std::collections::BTreeMap;

use crate::crd::SecretValue;

/// Secrets the config refers to as `${VAR}`, turned into Deployment env vars.
#[derive(Debug, Clone)]
pub(super) struct EnvCollector {
    /// The Gateway's namespace: the only one whose Secrets the proxy can read as env.
    pub(super) namespace: String,
    /// Env var name to (Secret name, key).
    pub(super) vars: BTreeMap<String, (String, String)>,
}

impl EnvCollector {
    pub(super) fn new(ns: &str) -> Self {
        Self {
            namespace: ns.to_string(),
            vars: BTreeMap::new(),
        }
    }

    /// `${VAR}` for a Secret key, registering the env var that provides it.
    pub(super) fn reference(&mut self, v: &SecretValue) -> String {
        let r = &v.secret_key_ref;
        let name: String = format!("SB_SECRET_{}_{}", r.name, r.key)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        self.vars
            .insert(name.clone(), (r.name.clone(), r.key.clone()));
        format!("${{{name}}}")
    }
}
