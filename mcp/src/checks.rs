//! The checks of an MCP block that read OpenAPI documents: they need the code that turns a
//! document into tools (`crate::upstream::openapi`), so they live here rather than in
//! [`crate::config`], which is data.

use std::path::Path;
use std::time::Duration;

use crate::config::McpConfig;

impl McpConfig {
    /// [`validate`](Self::validate), with relative `openapi.spec` files read from `base_dir`
    /// (the config file's folder).
    pub fn validate_in(&self, path: &str, base_dir: &Path) -> Vec<(String, String)> {
        let mut issues = self.validate_static(path);
        for (i, t) in self.targets.iter().enumerate() {
            if let Some(o) = &t.openapi {
                issues.extend(crate::upstream::openapi::validate(
                    &o.resolved(base_dir),
                    &format!("{path}.targets[{i}].openapi"),
                ));
            }
        }
        issues
    }

    /// What is valid but left out: the operations of `openapi` targets' document files that
    /// cannot be tools (see the README's "OpenAPI targets"), as `(key_path, message)` pairs.
    /// A relative `openapi.spec` resolves against `base_dir` (the config file's folder).
    pub fn warnings(&self, path: &str, base_dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (i, t) in self.targets.iter().enumerate() {
            if let Some(o) = &t.openapi {
                out.extend(crate::upstream::openapi::warnings(
                    &o.resolved(base_dir),
                    &format!("{path}.targets[{i}].openapi"),
                ));
            }
        }
        out
    }

    /// Fetches the documents of `openapi` targets whose `spec` is a URL, as the route would when
    /// built (within each target's `timeout`, with its configured `headers` and its upstream
    /// credential from `credentials` when the document has the service's origin), and reports
    /// what would go wrong as `(key_path, message)` pairs: a document that cannot be fetched
    /// or used, and the operations it leaves out. `switchboard validate` prints them as
    /// warnings: a URL is outside the config file, and may well answer by the time the route
    /// is built.
    pub async fn check_documents(
        &self,
        path: &str,
        credentials: &crate::TargetCredentials,
    ) -> Vec<(String, String)> {
        let client = match reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
        {
            Ok(c) => c,
            Err(e) => return vec![(path.to_string(), format!("HTTP client: {e}"))],
        };
        let checks = self.targets.iter().enumerate().filter_map(|(i, t)| {
            let o = t.openapi.as_ref()?;
            let slot = crate::credentials::CredentialSlot::default();
            slot.set(credentials.resolve(&t.name));
            let headers = crate::credentials::UpstreamHeaders::new(
                crate::upstream::http::header_map(&o.headers),
                slot,
            );
            Some(crate::upstream::openapi::check_document(
                o,
                format!("{path}.targets[{i}].openapi"),
                client.clone(),
                headers,
                t.timeout(),
            ))
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}
