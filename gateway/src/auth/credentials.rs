//! The credential boundary between clients and upstreams: the client's credentials are
//! removed from what goes upstream (unless a route opts in) and the route's own upstream
//! credential (`policies.upstream_auth`) is set, read from the config, the environment or a
//! file that is re-read when it changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::config::UpstreamAuth;

/// Client credential headers that never reach an upstream unless a route opts in.
pub static CLIENT_CREDENTIAL_HEADERS: [HeaderName; 4] = [
    header::AUTHORIZATION,
    header::COOKIE,
    HeaderName::from_static("x-api-key"),
    header::PROXY_AUTHORIZATION,
];

/// Removes the client's credentials (`Authorization`, `Cookie`, `x-api-key`,
/// `Proxy-Authorization`) from headers bound upstream. Backends that build their own upstream
/// requests from client headers call this (the pipeline already does it for every route
/// without `forward_client_credentials`).
pub fn strip_client_credentials(headers: &mut HeaderMap) {
    crate::forwarding::remove_all(headers, &CLIENT_CREDENTIAL_HEADERS);
}

/// A route's upstream credential handling: strip the client's, add the configured one. The
/// default strips and adds nothing.
#[derive(Clone, Default)]
pub struct UpstreamCredentials {
    forward_client: bool,
    header: Option<(HeaderName, Arc<CredentialSource>)>,
}

impl std::fmt::Debug for UpstreamCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("UpstreamCredentials")
            .field("forward_client", &self.forward_client)
            .field("header", &self.header.as_ref().map(|(h, _)| h))
            .finish()
    }
}

enum CredentialSource {
    Static(Option<HeaderValue>),
    File {
        path: PathBuf,
        prefix: String,
        cached: Mutex<FileCache>,
    },
}

struct FileCache {
    checked: Option<std::time::Instant>,
    /// Modification time and length when last read.
    stamp: Option<(Option<SystemTime>, u64)>,
    value: Option<HeaderValue>,
}

/// How often a credential file's modification time is checked.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

impl CredentialSource {
    fn current(&self) -> Option<HeaderValue> {
        match self {
            CredentialSource::Static(v) => v.clone(),
            CredentialSource::File {
                path,
                prefix,
                cached,
            } => {
                let mut c = cached.lock().unwrap_or_else(|p| p.into_inner());
                let due = c.checked.is_none_or(|t| t.elapsed() >= FILE_CHECK_INTERVAL);
                if due {
                    c.checked = Some(std::time::Instant::now());
                    // A stat at most once a second; the read only when the file changed.
                    let stamp = std::fs::metadata(path)
                        .ok()
                        .map(|m| (m.modified().ok(), m.len()));
                    if stamp.is_none() || stamp != c.stamp {
                        c.stamp = stamp;
                        c.value = read_secret_file(path, prefix);
                    }
                }
                c.value.clone()
            }
        }
    }
}

fn read_secret_file(path: &Path, prefix: &str) -> Option<HeaderValue> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            let v = HeaderValue::from_str(&format!("{prefix}{}", s.trim()));
            if v.is_err() {
                tracing::warn!(file = %path.display(), "upstream credential file is not a valid header value");
            }
            v.ok().map(|mut v| {
                v.set_sensitive(true);
                v
            })
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read upstream credential file");
            None
        }
    }
}

impl UpstreamCredentials {
    /// Compiles the route's settings. `env` resolves `upstream_auth.env`; `base_dir` resolves
    /// a relative `upstream_auth.file`.
    pub fn new(
        forward_client: bool,
        auth: Option<&UpstreamAuth>,
        env: &dyn Fn(&str) -> Option<String>,
        base_dir: &Path,
    ) -> Self {
        let header = auth.and_then(|a| {
            let name = HeaderName::from_bytes(a.header.as_bytes()).ok()?;
            let sensitive = |s: String| {
                HeaderValue::from_str(&format!("{}{s}", a.prefix))
                    .ok()
                    .map(|mut v| {
                        v.set_sensitive(true);
                        v
                    })
            };
            let src = if let Some(v) = &a.value {
                CredentialSource::Static(sensitive(v.clone()))
            } else if let Some(var) = &a.env {
                let v = env(var);
                if v.is_none() {
                    tracing::warn!(env = %var, "upstream credential variable is not set");
                }
                CredentialSource::Static(v.and_then(sensitive))
            } else {
                let f = a.file.as_deref()?;
                CredentialSource::File {
                    path: base_dir.join(f),
                    prefix: a.prefix.clone(),
                    cached: Mutex::new(FileCache {
                        checked: None,
                        stamp: None,
                        value: None,
                    }),
                }
            };
            Some((name, Arc::new(src)))
        });
        UpstreamCredentials {
            forward_client,
            header,
        }
    }

    /// Whether the client's credentials are forwarded (the risky opt-in).
    pub fn forwards_client_credentials(&self) -> bool {
        self.forward_client
    }

    /// The configured upstream credential header and its current value, for backends that
    /// build their own upstream requests.
    pub fn upstream_header(&self) -> Option<(HeaderName, HeaderValue)> {
        let (name, src) = self.header.as_ref()?;
        Some((name.clone(), src.current()?))
    }

    /// Prepares headers bound upstream: strips the client's credentials (unless forwarding is
    /// on) and sets the configured credential.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.forward_client {
            strip_client_credentials(headers);
        }
        if let Some((name, value)) = self.upstream_header() {
            headers.insert(name, value);
        }
    }
}

impl switchboard_core::UpstreamCredential for UpstreamCredentials {
    fn header(&self) -> Option<(HeaderName, HeaderValue)> {
        self.upstream_header()
    }
}

/// The credentials of an `mcp` route's targets: the route's `upstream_auth` (already compiled
/// into `route`) for every http, sse and openapi target, unless a target sets its own
/// `targets[].upstream_auth` (a credential, compiled here the same way, or `none`).
/// `forward_client_credentials` plays no part: MCP targets never get the client's credentials.
pub fn mcp_target_credentials(
    route: &UpstreamCredentials,
    mcp: &switchboard_mcp::McpConfig,
    env: &dyn Fn(&str) -> Option<String>,
    base_dir: &Path,
) -> switchboard_mcp::TargetCredentials {
    use switchboard_mcp::config::TargetUpstreamAuth;
    let shared = |c: UpstreamCredentials| -> Option<Arc<dyn switchboard_core::UpstreamCredential>> {
        c.header.is_some().then(|| Arc::new(c) as _)
    };
    let mut out = switchboard_mcp::TargetCredentials::new(shared(UpstreamCredentials {
        forward_client: false,
        header: route.header.clone(),
    }));
    for t in &mcp.targets {
        match &t.upstream_auth {
            None => {}
            Some(TargetUpstreamAuth::Off(_)) => out = out.with_target(&t.name, None),
            Some(TargetUpstreamAuth::Credential(spec)) => {
                let auth = UpstreamAuth::from(spec);
                let own = UpstreamCredentials::new(false, Some(&auth), env, base_dir);
                out = out.with_target(&t.name, shared(own));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_client_credentials_unless_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer c"));
        h.insert(header::COOKIE, HeaderValue::from_static("s=1"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        h.insert("x-other", HeaderValue::from_static("o"));
        let mut fwd = h.clone();
        let env = |_: &str| Some("upstream-secret".to_string());
        let auth = UpstreamAuth {
            header: "x-upstream-key".into(),
            prefix: String::new(),
            value: None,
            env: Some("K".into()),
            file: None,
        };
        UpstreamCredentials::new(false, Some(&auth), &env, Path::new(".")).apply(&mut h);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert!(h.get(header::COOKIE).is_none());
        assert!(h.get("x-api-key").is_none());
        assert_eq!(h["x-other"], "o");
        assert_eq!(h["x-upstream-key"], "upstream-secret");
        assert!(h["x-upstream-key"].is_sensitive());
        UpstreamCredentials::new(true, None, &env, Path::new(".")).apply(&mut fwd);
        assert_eq!(fwd[header::AUTHORIZATION], "Bearer c");
    }

    #[test]
    fn credential_file_is_reread_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cred");
        std::fs::write(&f, "one\n").unwrap();
        let auth = UpstreamAuth {
            header: "authorization".into(),
            prefix: "Bearer ".into(),
            value: None,
            env: None,
            file: Some("cred".into()),
        };
        let c = UpstreamCredentials::new(false, Some(&auth), &|_| None, dir.path());
        assert_eq!(c.upstream_header().unwrap().1, "Bearer one");
        std::fs::write(&f, "two-longer\n").unwrap();
        // Force the next check regardless of the once-a-second throttle.
        if let Some((_, src)) = &c.header
            && let CredentialSource::File { cached, .. } = &**src
        {
            cached.lock().unwrap().checked = None;
        }
        assert_eq!(c.upstream_header().unwrap().1, "Bearer two-longer");
    }

    #[test]
    fn validation_messages_never_echo_secrets() {
        let auth = UpstreamAuth {
            header: "authorization".into(),
            prefix: String::new(),
            value: Some("sekrit\n".into()),
            env: None,
            file: None,
        };
        let issues = auth.validate("p");
        assert_eq!(issues.len(), 1);
        assert!(!format!("{issues:?}").contains("sekrit"));
    }
}
