//! Config push: the controller serves every proxy its Gateway's rendered config as a stream of
//! versions at `GET /v1/config/{namespace}/{gateway}`.
//!
//! The response is newline-delimited JSON, one [`PushedConfig`] per line, the current version
//! first and each new one as the reconciler publishes it; a bare newline every
//! [`HEARTBEAT`] lets both sides notice a dead connection. Callers authenticate with their
//! projected service-account token (`Authorization: Bearer ...`), which a TokenReview checks;
//! only the Gateway's own ServiceAccount (`system:serviceaccount:{namespace}:{gateway}`) may
//! read its config, as the config names upstreams and policies. A replica that is not the
//! leader answers 503 so the proxy retries (and reaches the leader); a Gateway without a
//! config (unknown, deleted, not ours, not rendered yet) answers 404, and the stream of a
//! Gateway that is deleted or stops being ours ends.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// Idle time after which the server sends a bare newline.
pub const HEARTBEAT: Duration = Duration::from_secs(15);

/// One config version as sent on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushedConfig {
    /// Increases with every change, per controller process.
    pub version: u64,
    /// Hex SHA-256 of `config` (the same value as the pod template's checksum annotation).
    pub checksum: String,
    /// The proxy config as YAML, with `${VAR}` references for secrets.
    pub config: String,
}

type Slot = watch::Sender<Option<Arc<PushedConfig>>>;

/// The latest rendered config of every Gateway; cheap to clone.
#[derive(Clone, Default)]
pub struct ConfigHub {
    inner: Arc<HubInner>,
}

#[derive(Default)]
struct HubInner {
    slots: Mutex<HashMap<(String, String), Slot>>,
    version: AtomicU64,
    serving: AtomicBool,
}

impl ConfigHub {
    /// A hub that is not serving yet (see [`ConfigHub::set_serving`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Publishes a Gateway's config; a config equal to the current one is not a new version.
    /// Returns the version now current.
    pub fn publish(&self, ns: &str, gateway: &str, checksum: &str, yaml: &str) -> u64 {
        let slot = self.slot(ns, gateway);
        let mut version = 0;
        slot.send_if_modified(|cur| {
            if let Some(c) = cur
                && c.checksum == checksum
            {
                version = c.version;
                return false;
            }
            version = self.inner.version.fetch_add(1, Ordering::AcqRel) + 1;
            *cur = Some(Arc::new(PushedConfig {
                version,
                checksum: checksum.to_string(),
                config: yaml.to_string(),
            }));
            true
        });
        version
    }

    /// Forgets a Gateway (deleted, or no longer ours); open streams end.
    pub fn remove(&self, ns: &str, gateway: &str) {
        self.inner
            .slots
            .lock()
            .expect("hub lock")
            .remove(&(ns.to_string(), gateway.to_string()));
    }

    /// The Gateways with a config, as (namespace, name).
    pub fn gateways(&self) -> Vec<(String, String)> {
        self.inner
            .slots
            .lock()
            .expect("hub lock")
            .keys()
            .cloned()
            .collect()
    }

    /// The current config of a Gateway.
    pub fn current(&self, ns: &str, gateway: &str) -> Option<Arc<PushedConfig>> {
        self.inner
            .slots
            .lock()
            .expect("hub lock")
            .get(&(ns.to_string(), gateway.to_string()))
            .and_then(|s| s.borrow().clone())
    }

    /// Marks this replica as the one that renders (the leader), or not.
    pub fn set_serving(&self, serving: bool) {
        self.inner.serving.store(serving, Ordering::Release);
    }

    fn slot(&self, ns: &str, gateway: &str) -> Slot {
        self.inner
            .slots
            .lock()
            .expect("hub lock")
            .entry((ns.to_string(), gateway.to_string()))
            .or_insert_with(|| watch::channel(None).0)
            .clone()
    }
}

/// How callers are authenticated.
#[derive(Clone)]
pub enum Authenticator {
    /// TokenReview against the API server.
    TokenReview(Client),
    /// No authentication (only for local development; the binary never uses it).
    Disabled,
}

impl Authenticator {
    /// The authenticated username of `token`, or `None`.
    pub async fn username(&self, token: &str) -> Option<String> {
        match self {
            Authenticator::Disabled => Some(String::new()),
            Authenticator::TokenReview(client) => {
                let review = TokenReview {
                    metadata: Default::default(),
                    spec: TokenReviewSpec {
                        token: token.to_string(),
                        audiences: None,
                    },
                    status: None,
                };
                let api: Api<TokenReview> = Api::all(client.clone());
                match api.create(&PostParams::default(), &review).await {
                    Ok(r) => {
                        let s = r.status?;
                        if s.authenticated == Some(true) {
                            s.user.and_then(|u| u.username)
                        } else {
                            None
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "TokenReview failed");
                        None
                    }
                }
            }
        }
    }
}

#[derive(Clone)]
struct AppState {
    hub: ConfigHub,
    auth: Authenticator,
    shutdown: watch::Receiver<bool>,
}

/// The push server's router.
pub fn router(hub: ConfigHub, auth: Authenticator, shutdown: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/v1/config/{namespace}/{gateway}", get(stream_config))
        .route("/healthz", get(|| async { "ok" }))
        // Ready only on the leader, so the controller Service sends proxies there.
        .route("/readyz", get(readyz))
        .with_state(AppState {
            hub,
            auth,
            shutdown,
        })
}

/// Serves the push API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    hub: ConfigHub,
    auth: Authenticator,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    let app = router(hub, auth, shutdown.clone());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await?;
    Ok(())
}

/// Binds `addr` and returns the listener and its address (port 0 resolved).
pub async fn bind(addr: SocketAddr) -> crate::Result<(tokio::net::TcpListener, SocketAddr)> {
    let l = tokio::net::TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

async fn readyz(State(st): State<AppState>) -> Response {
    if st.hub.inner.serving.load(Ordering::Acquire) {
        "ok".into_response()
    } else {
        error(StatusCode::SERVICE_UNAVAILABLE, "not the leader")
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({"error": {"type": status.canonical_reason().unwrap_or("error"), "message": message}})
            .to_string(),
    )
        .into_response()
}

async fn stream_config(
    State(st): State<AppState>,
    Path((ns, gateway)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
    else {
        return error(StatusCode::UNAUTHORIZED, "a bearer token is required");
    };
    let Some(user) = st.auth.username(token).await else {
        return error(StatusCode::UNAUTHORIZED, "the token was not accepted");
    };
    let expected = format!("system:serviceaccount:{ns}:{gateway}");
    if !matches!(st.auth, Authenticator::Disabled) && user != expected {
        tracing::warn!(%user, %ns, %gateway, "config push refused: not the Gateway's ServiceAccount");
        return error(
            StatusCode::FORBIDDEN,
            "only the Gateway's ServiceAccount may read its config",
        );
    }
    if !st.hub.inner.serving.load(Ordering::Acquire) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "this controller replica is not the leader",
        );
    }
    // A Gateway that is unknown, deleted or not ours has no config: 404 (the proxy retries
    // with backoff and keeps what it serves).
    if st.hub.current(&ns, &gateway).is_none() {
        return error(
            StatusCode::NOT_FOUND,
            "no config for this Gateway: unknown, deleted, not ours, or not rendered yet",
        );
    }
    let rx = st.hub.slot(&ns, &gateway).subscribe();
    tracing::info!(%ns, %gateway, "proxy subscribed to config");
    let body = Body::from_stream(config_stream(rx, st.shutdown));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .expect("static response parts")
}

/// Current version first, then every change; heartbeats when idle; ends on shutdown or when
/// the Gateway is forgotten.
fn config_stream(
    rx: watch::Receiver<Option<Arc<PushedConfig>>>,
    shutdown: watch::Receiver<bool>,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::unfold(
        (rx, shutdown, true),
        |(mut rx, mut shutdown, first)| async move {
            if first {
                let cur = rx.borrow_and_update().clone();
                if let Some(c) = cur {
                    return Some((Ok(line(&c)), (rx, shutdown, false)));
                }
            }
            let out = tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    let cur = rx.borrow_and_update().clone();
                    cur.map(|c| line(&c)).unwrap_or_else(|| Bytes::from_static(b"\n"))
                }
                _ = tokio::time::sleep(HEARTBEAT) => Bytes::from_static(b"\n"),
                _ = shutdown.wait_for(|s| *s) => return None,
            };
            Some((Ok(out), (rx, shutdown, false)))
        },
    )
}

fn line(c: &PushedConfig) -> Bytes {
    let mut v = serde_json::to_vec(c).expect("a pushed config serializes");
    v.push(b'\n');
    Bytes::from(v)
}

/// The push server's certificate: PEM `cert` (leaf first, then intermediates), `key`, and the
/// `ca` bundle proxies verify it with (`switchboard run --control-plane-ca`).
#[derive(Clone)]
pub struct ServingCert {
    /// Certificate chain, PEM.
    pub cert: String,
    /// Private key, PEM.
    pub key: String,
    /// CA bundle that verifies `cert`, PEM.
    pub ca: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert").finish_non_exhaustive()
    }
}

/// Secret keys of a `kubernetes.io/tls` Secret (cert-manager's layout).
const CERT_KEY: &str = "tls.crt";
const KEY_KEY: &str = "tls.key";
const CA_KEY: &str = "ca.crt";

impl ServingCert {
    /// A fresh self-signed CA and a certificate it signs for `hosts` (DNS names or IP
    /// addresses), valid until rcgen's default (the year 4096): rotate by deleting the
    /// Secret and restarting the controller.
    pub fn generate(hosts: &[String]) -> crate::Result<Self> {
        let tls = |e: rcgen::Error| crate::Error::Tls(e.to_string());
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "switchboard-controller CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(tls)?;
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls)?;
        let mut params = rcgen::CertificateParams::new(hosts.to_vec()).map_err(tls)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "switchboard-controller");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let cert = params.signed_by(&key, &ca).map_err(tls)?;
        Ok(Self {
            cert: cert.pem(),
            key: key.serialize_pem(),
            ca: ca.pem(),
        })
    }

    /// Reads PEM files; `ca` defaults to the certificate file (a self-signed certificate).
    pub fn from_files(
        cert: &std::path::Path,
        key: &std::path::Path,
        ca: Option<&std::path::Path>,
    ) -> crate::Result<Self> {
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p)
                .map_err(|e| crate::Error::Tls(format!("cannot read {}: {e}", p.display())))
        };
        Ok(Self {
            cert: read(cert)?,
            key: read(key)?,
            ca: read(ca.unwrap_or(cert))?,
        })
    }

    /// The rustls server configuration (HTTP/1.1 and HTTP/2 by ALPN).
    pub fn server_config(&self) -> crate::Result<Arc<rustls::ServerConfig>> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| crate::Error::Tls(format!("certificate: {e}")))?;
        if certs.is_empty() {
            return Err(crate::Error::Tls("no certificate in the PEM".into()));
        }
        let key = PrivateKeyDer::from_pem_slice(self.key.as_bytes())
            .map_err(|e| crate::Error::Tls(format!("private key: {e}")))?;
        let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| crate::Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| crate::Error::Tls(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }

    /// The certificate in Secret `name` of `namespace`; when the Secret does not exist, one
    /// is generated for `hosts` and stored there (another replica that created it first
    /// wins: its certificate is read back), so every replica serves the same certificate.
    pub async fn from_secret(
        client: &Client,
        namespace: &str,
        name: &str,
        hosts: &[String],
    ) -> crate::Result<Self> {
        use k8s_openapi::api::core::v1::Secret;
        use k8s_openapi::ByteString;
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let read = |s: &Secret| -> crate::Result<Self> {
            let field = |k: &str| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
                    .ok_or_else(|| {
                        crate::Error::Tls(format!("Secret {namespace}/{name} has no {k}"))
                    })
            };
            Ok(Self {
                cert: field(CERT_KEY)?,
                key: field(KEY_KEY)?,
                ca: field(CA_KEY)?,
            })
        };
        if let Some(s) = api.get_opt(name).await? {
            return read(&s);
        }
        let fresh = Self::generate(hosts)?;
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some(
                    [(
                        "app.kubernetes.io/name".to_string(),
                        "switchboard-controller".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            type_: Some("kubernetes.io/tls".into()),
            data: Some(
                [
                    (CERT_KEY, &fresh.cert),
                    (KEY_KEY, &fresh.key),
                    (CA_KEY, &fresh.ca),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
            ),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(%namespace, %name, "generated the push server certificate");
                Ok(fresh)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => read(&api.get(name).await?),
            Err(e) => Err(e.into()),
        }
    }
}

/// Serves the push API over TLS on `listener` until `shutdown` turns true; open streams end
/// then, and the server waits a few seconds for them to close.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    hub: ConfigHub,
    auth: Authenticator,
    mut shutdown: watch::Receiver<bool>,
) -> crate::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let app = router(hub, auth, shutdown.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let tcp = tokio::select! {
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "push server accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // A client that never finishes its handshake holds only its own task.
            let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                .await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "push server TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
            let _ = watcher.watch(conn.into_owned()).await;
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
    Ok(())
}
