//! Config push client: follows a controller's stream of config versions
//! (`switchboard run --control-plane URL`).
//!
//! The stream is newline-delimited JSON, one `{"version", "checksum", "config"}` object per
//! line (blank lines are heartbeats). Each config goes through the same path as a file:
//! [`config::load_str`] (environment expansion, unknown keys, validation) then
//! [`Gateway::apply`], and the outcome is recorded like a file reload. A refused version, a
//! dropped connection or an absent controller leave the serving config alone; the client
//! reconnects with capped exponential backoff and re-reads its token each time, because
//! projected service-account tokens rotate.
//!
//! The URL is `https://` (verified with `--control-plane-ca`, rustls) unless plain HTTP is
//! explicitly allowed (`--control-plane-allow-http`).

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;

use crate::config;
use crate::gateway::{Gateway, format_errors};

/// Where Kubernetes mounts the pod's projected service-account token.
pub const DEFAULT_TOKEN_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest reconnect delay.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A stream silent for this long (the controller sends heartbeats every 15s) is dead.
const READ_TIMEOUT: Duration = Duration::from_secs(45);

/// Settings of the push client.
#[derive(Debug, Clone)]
pub struct ControlPlane {
    /// The stream URL, e.g. `https://switchboard-controller.switchboard-system.svc:9977/v1/config/ns/gw`.
    pub url: String,
    /// File holding the bearer token; re-read on every connect. A missing file means no token.
    pub token_file: PathBuf,
    /// PEM CA bundle that verifies the controller (`https://` URLs); re-read on every
    /// connect, so a rotated bundle is picked up. `None`: the public web roots.
    pub ca_file: Option<PathBuf>,
    /// Whether an `http://` URL is allowed (the token then crosses the network in clear).
    pub allow_http: bool,
}

impl ControlPlane {
    /// Refuses a URL that is neither `https://` nor an allowed `http://`.
    pub fn check(&self) -> Result<(), String> {
        if self.url.starts_with("https://") {
            return Ok(());
        }
        if self.url.starts_with("http://") {
            if self.allow_http {
                tracing::warn!(url = %self.url, "following the control plane over plain HTTP: the token and configs cross the network in clear");
                return Ok(());
            }
            return Err(format!(
                "--control-plane {} is plain HTTP: the service-account token would cross the network in clear; use https:// (with --control-plane-ca), or pass --control-plane-allow-http",
                self.url
            ));
        }
        Err(format!(
            "--control-plane {}: the URL must start with https:// (or http:// with --control-plane-allow-http)",
            self.url
        ))
    }

    /// An HTTP client that trusts the CA bundle (read now), or the public web roots.
    async fn client(&self) -> Result<reqwest::Client, String> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = tokio::fs::read(path).await.map_err(|e| {
                    format!("cannot read the control plane CA {}: {e}", path.display())
                })?;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert =
                        cert.map_err(|e| format!("the control plane CA {}: {e}", path.display()))?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("the control plane CA {}: {e}", path.display()))?;
                }
                if roots.is_empty() {
                    return Err(format!(
                        "the control plane CA {} holds no certificate",
                        path.display()
                    ));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let mut tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| e.to_string())
    }
}

#[derive(serde::Deserialize)]
struct Version {
    version: u64,
    checksum: String,
    config: String,
}

/// Spawns the follower; it runs until the gateway shuts down.
pub fn spawn(gw: Gateway, cp: ControlPlane) {
    let shutdown = gw.shutdown_token();
    tokio::spawn(async move {
        let mut backoff = MIN_BACKOFF;
        let mut last_checksum: Option<String> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = follow(&gw, &cp, &mut last_checksum) => {
                    match outcome {
                        // It delivered at least one version: the next attempt starts fresh.
                        Ok(true) => backoff = MIN_BACKOFF,
                        Ok(false) => {}
                        Err(e) => tracing::warn!(url = %cp.url, error = %e, ?backoff, "control plane unavailable; keeping the current config"),
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    });
}

/// One connection: applies versions until the stream ends. `Ok(true)` if any version came.
async fn follow(
    gw: &Gateway,
    cp: &ControlPlane,
    last_checksum: &mut Option<String>,
) -> Result<bool, String> {
    let client = cp.client().await?;
    let mut req = client.get(&cp.url).header("accept", "application/x-ndjson");
    if let Ok(token) = tokio::fs::read_to_string(&cp.token_file).await {
        req = req.bearer_auth(token.trim());
    }
    // The whole chain: a refused certificate is named, not just "error sending request".
    let resp = req
        .send()
        .await
        .map_err(|e| crate::upstream::DisplayChain(&e).to_string())?;
    if !resp.status().is_success() {
        return Err(format!("controller answered {}", resp.status()));
    }
    tracing::info!(url = %cp.url, "following the control plane");
    let mut body = resp.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut got_any = false;
    loop {
        let chunk = match tokio::time::timeout(READ_TIMEOUT, body.next()).await {
            Err(_) => return Err("the stream went silent".into()),
            Ok(None) => return Ok(got_any),
            Ok(Some(Err(e))) => return Err(e.to_string()),
            Ok(Some(Ok(c))) => c,
        };
        buf.extend_from_slice(&chunk);
        while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=nl).collect();
            let line = line.strip_suffix(b"\n").unwrap_or(&line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            got_any = true;
            match serde_json::from_slice::<Version>(line) {
                Ok(v) => apply_version(gw, v, last_checksum).await,
                Err(e) => tracing::warn!(error = %e, "ignoring a malformed config push line"),
            }
        }
    }
}

async fn apply_version(gw: &Gateway, v: Version, last_checksum: &mut Option<String>) {
    if last_checksum.as_deref() == Some(v.checksum.as_str()) {
        return;
    }
    let source = format!("control-plane@{}", v.version);
    // Relative paths resolve as for the boot file (the gateway's `base_dir`).
    let base_dir = gw
        .config_path()
        .map(config::base_dir_of)
        .unwrap_or(std::path::Path::new("."));
    let outcome = match config::load_str_in(
        &v.config,
        &source,
        &|name| std::env::var(name).ok(),
        base_dir,
    ) {
        Err(errors) => Err(format_errors(&errors)),
        // Usually the first version: the boot file already holds it.
        Ok(cfg) if cfg == gw.current().config => {
            *last_checksum = Some(v.checksum);
            tracing::debug!(version = v.version, "control plane config already serving");
            return;
        }
        Ok(cfg) => gw.apply(cfg).await.map_err(|e| vec![e.to_string()]),
    };
    if outcome.is_ok() {
        *last_checksum = Some(v.checksum);
        tracing::info!(version = v.version, "applied config from the control plane");
    }
    gw.record_reload(outcome);
}
