//! What `switchboard validate` checks beyond loading the file: what only the network can
//! tell. The loader ([`crate::config`]) knows nothing of credentials; this module puts the
//! two together.

use std::path::Path;

use crate::config::{self, Config, ConfigErrors, ConfigIssue};

/// [`config::load_file_with_warnings`], and then, as more warnings: the OpenAPI documents of
/// `openapi` targets whose `spec` is a URL are fetched (as the gateway would, within each
/// target's `timeout`, with the target's credentials) and a document that cannot be fetched or
/// used, or operations it leaves out, are reported.
pub async fn validate_file(path: &Path) -> Result<(Config, Vec<ConfigIssue>), ConfigErrors> {
    let (config, mut warnings, index) = config::load_file_located(path)?;
    let env = |name: &str| std::env::var(name).ok();
    let base_dir = config::base_dir_of(path);
    for (i, l) in config.listeners.iter().enumerate() {
        for (j, r) in l.routes.iter().enumerate() {
            let Some(m) = &r.mcp else { continue };
            let merged = crate::policy::merge(l.policies.as_ref(), r.policies.as_ref());
            let route = crate::auth::UpstreamCredentials::new(
                false,
                merged.upstream_auth.as_ref(),
                &env,
                base_dir,
            );
            let creds = crate::auth::mcp_target_credentials(&route, m, &env, base_dir);
            let at = format!("listeners[{i}].routes[{j}].mcp");
            for (p, message) in m.check_documents(&at, &creds).await {
                warnings.push(index.issue(&p, message));
            }
        }
    }
    warnings.sort_by_key(|i| (i.line.unwrap_or(0), i.col.unwrap_or(0)));
    Ok((config, warnings))
}
