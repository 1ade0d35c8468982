//! `switchboard-controller`: `run` the Kubernetes controller, or print the `crds` or the
//! `install` manifests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use kube::Api;
use switchboard_controller::install::{self, InstallOptions};
use switchboard_controller::leader::{self, LeaseConfig};
use switchboard_controller::push::{self, Authenticator, ConfigHub, ServingCert};
use switchboard_controller::reconcile;
use switchboard_controller::render::RenderOptions;

#[derive(Parser)]
#[command(
    name = "switchboard-controller",
    version,
    about = "Switchboard Kubernetes controller"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (kubeconfig, or in-cluster).
    Run {
        /// Address of the config push server.
        #[arg(long, default_value = "0.0.0.0:9977")]
        push_bind: SocketAddr,
        /// Base URL at which proxies reach the push server; default:
        /// `https://switchboard-controller.NAMESPACE.svc:9977` (`http://` with --plain-http).
        #[arg(long, env = "SWITCHBOARD_PUSH_URL")]
        push_url: Option<String>,
        /// Default proxy image.
        #[arg(long, env = "SWITCHBOARD_PROXY_IMAGE")]
        proxy_image: Option<String>,
        /// Namespace of the leader-election Lease (and of the push certificate's Secret);
        /// default: POD_NAMESPACE in a pod, else the kubeconfig context's namespace.
        #[arg(long, env = "POD_NAMESPACE")]
        namespace: Option<String>,
        /// This replica's identity for leader election; default: the pod name (env POD_NAME,
        /// from the downward API), else the host name with a random suffix.
        #[arg(long)]
        identity: Option<String>,
        /// How long the Lease is valid without renewal (a follower takes over a dead leader
        /// within this time; a leader that shuts down releases it at once).
        #[arg(long, env = "SWITCHBOARD_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
        lease_duration: Duration,
        /// Cluster DNS domain.
        #[arg(long, default_value = "cluster.local")]
        cluster_domain: String,
        /// The push server's certificate chain (PEM); with --tls-key. Default: the Secret
        /// --tls-secret, generated on first start.
        #[arg(long, env = "SWITCHBOARD_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The push server's private key (PEM).
        #[arg(long, env = "SWITCHBOARD_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The CA bundle proxies verify the push server with (PEM); default: --tls-cert.
        #[arg(long, env = "SWITCHBOARD_TLS_CA", requires = "tls_cert")]
        tls_ca: Option<PathBuf>,
        /// Secret (`tls.crt`, `tls.key`, `ca.crt`) in the controller's namespace holding the
        /// push server's certificate when --tls-cert is not given; created with a fresh
        /// self-signed CA when missing.
        #[arg(long, default_value = install::TLS_SECRET)]
        tls_secret: String,
        /// Serve config push over plain HTTP (tokens and configs cross the network in clear;
        /// only for development). The rendered proxies then get --control-plane-allow-http.
        #[arg(long, env = "SWITCHBOARD_PLAIN_HTTP", conflicts_with = "tls_cert")]
        plain_http: bool,
    },
    /// Print the CRD YAML generated from the Rust types.
    Crds,
    /// Print the install manifests: namespace, CRDs, least-privilege RBAC, the controller
    /// Deployment, its PodDisruptionBudget and Service, and the `switchboard` GatewayClass.
    Install {
        /// The controller's namespace.
        #[arg(long, default_value = "switchboard-system")]
        namespace: String,
        /// The controller image.
        #[arg(long, default_value_t = InstallOptions::default().image)]
        image: String,
        /// The default proxy image.
        #[arg(long, default_value_t = InstallOptions::default().proxy_image)]
        proxy_image: String,
        /// Controller replicas (one leads, the others stand by).
        #[arg(long, default_value_t = 2)]
        replicas: u32,
        /// Leave the Switchboard CRDs out (apply `switchboard-controller crds` separately).
        #[arg(long)]
        without_crds: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", switchboard_controller::crd::crds_yaml());
            Ok(())
        }
        Command::Install {
            namespace,
            image,
            proxy_image,
            replicas,
            without_crds,
        } => {
            print!(
                "{}",
                install::install_yaml(&InstallOptions {
                    namespace,
                    image,
                    proxy_image,
                    replicas,
                    crds: !without_crds,
                })
            );
            Ok(())
        }
        Command::Run {
            push_bind,
            push_url,
            proxy_image,
            namespace,
            identity,
            lease_duration,
            cluster_domain,
            tls_cert,
            tls_key,
            tls_ca,
            tls_secret,
            plain_http,
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let builder = tracing_subscriber::fmt().with_env_filter(filter);
            match cli.log_format {
                LogFormat::Text => builder.init(),
                LogFormat::Json => builder.json().init(),
            }
            let _ = rustls::crypto::ring::default_provider().install_default();
            let tls = if plain_http {
                Tls::Plain
            } else if let (Some(cert), Some(key)) = (tls_cert, tls_key) {
                Tls::Files(ServingCert::from_files(&cert, &key, tls_ca.as_deref())?)
            } else {
                Tls::Secret(tls_secret)
            };
            let settings = RunSettings {
                push_bind,
                push_url,
                proxy_image,
                namespace,
                identity,
                lease_duration,
                cluster_domain,
                tls,
            };
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(settings))
        }
    }
}

/// Where the push server's certificate comes from.
enum Tls {
    Plain,
    Files(ServingCert),
    Secret(String),
}

struct RunSettings {
    push_bind: SocketAddr,
    push_url: Option<String>,
    proxy_image: Option<String>,
    namespace: Option<String>,
    identity: Option<String>,
    lease_duration: Duration,
    cluster_domain: String,
    tls: Tls,
}

/// How long in-flight reconciles may take to finish after SIGTERM/Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn run(s: RunSettings) -> anyhow::Result<()> {
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes API to talk to (set KUBECONFIG, or run in a pod)")?;
    // POD_NAMESPACE (a pod) or --namespace, else the kubeconfig context's namespace (kube
    // reads the service-account namespace in a pod, and says `default` without either).
    let namespace = s
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = kube::Client::try_from(config).context("cannot reach the Kubernetes API")?;
    // Every permission the controller will use, checked once: a missing one is one clear
    // error now, not a warning from a watch every few seconds.
    let missing = install::missing_permissions(&client, &namespace)
        .await
        .context("cannot check the controller's permissions (SelfSubjectAccessReview)")?;
    if !missing.is_empty() {
        anyhow::bail!(
            "the controller's identity lacks {} permission(s): {}. Grant them with the RBAC of \
             `switchboard-controller install` (its ClusterRole, and its Role in namespace {namespace}), \
             or run with an identity that has them",
            missing.len(),
            missing.join(", ")
        );
    }
    let ns_api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    if ns_api.get_opt(&namespace).await?.is_none() {
        return Err(leader::LeaderError::NoNamespace(namespace).into());
    }
    let scheme = if matches!(s.tls, Tls::Plain) { "http" } else { "https" };
    let push_url = s.push_url.clone().unwrap_or_else(|| {
        format!(
            "{scheme}://{}.{namespace}.svc:{}",
            install::NAME,
            install::PUSH_PORT
        )
    });
    if push_url.starts_with("http://") != matches!(s.tls, Tls::Plain) {
        anyhow::bail!(
            "--push-url {push_url} does not match the push server, which serves {}",
            if scheme == "http" { "plain HTTP (--plain-http)" } else { "HTTPS" }
        );
    }
    let cert = match s.tls {
        Tls::Plain => {
            tracing::warn!("config push over plain HTTP (--plain-http): tokens and configs cross the network in clear");
            None
        }
        Tls::Files(c) => Some(c),
        Tls::Secret(name) => {
            let mut hosts = vec![
                install::NAME.to_string(),
                format!("{}.{namespace}", install::NAME),
                format!("{}.{namespace}.svc", install::NAME),
                format!("{}.{namespace}.svc.{}", install::NAME, s.cluster_domain),
                "localhost".to_string(),
                "127.0.0.1".to_string(),
            ];
            if let Some(host) = url_host(&push_url)
                && !hosts.contains(&host)
            {
                hosts.push(host);
            }
            Some(
                ServingCert::from_secret(&client, &namespace, &name, &hosts)
                    .await
                    .with_context(|| format!("the push server certificate (Secret {namespace}/{name})"))?,
            )
        }
    };
    let mut opts = RenderOptions {
        push_url: Some(push_url),
        push_ca: cert.as_ref().map(|c| c.ca.clone()),
        cluster_domain: s.cluster_domain,
        ..Default::default()
    };
    if let Some(image) = s.proxy_image {
        opts.image = image;
    }
    let lease = LeaseConfig {
        namespace,
        name: install::NAME.into(),
        identity: s.identity.unwrap_or_else(leader::default_identity),
        duration: s.lease_duration,
    };
    // The signal handler is installed first thing, so a SIGTERM at any point (even right
    // after becoming leader) takes the graceful path that releases the Lease.
    let (sig_tx, sig_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        switchboard_gateway::shutdown_signal().await;
        let _ = sig_tx.send(true);
    });
    let signalled = move || {
        let mut rx = sig_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let hub = ConfigHub::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (listener, addr) = push::bind(s.push_bind).await?;
    let auth = Authenticator::TokenReview(client.clone());
    let server = match &cert {
        Some(cert) => {
            let tls = cert.server_config()?;
            tracing::info!(%addr, identity = %lease.identity, lease_namespace = %lease.namespace, tls = true, "config push server listening");
            tokio::spawn(push::serve_tls(listener, tls, hub.clone(), auth, stop_rx))
        }
        None => {
            tracing::info!(%addr, identity = %lease.identity, lease_namespace = %lease.namespace, tls = false, "config push server listening");
            tokio::spawn(push::serve(listener, hub.clone(), auth, stop_rx))
        }
    };

    // Wait for leadership, but stop waiting on a signal.
    let leadership = tokio::select! {
        l = leader::lead(client.clone(), lease) => l,
        _ = signalled() => {
            let _ = stop_tx.send(true);
            return Ok(());
        }
    };
    let leadership = match leadership {
        Ok(l) => l,
        Err(e) => {
            let _ = stop_tx.send(true);
            return Err(e.into());
        }
    };
    hub.set_serving(true);
    // Losing the lease drops the reconciler at once (in-flight writes are cancelled), before
    // another replica may take over; a signal stops it gracefully and releases the lease.
    // The graceful stop is bounded, so the Lease is released promptly whatever hangs.
    let lost = tokio::select! {
        _ = reconcile::run(client, hub.clone(), opts, signalled()) => false,
        _ = leadership.lost() => true,
        _ = async {
            signalled().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("the reconciler did not stop in time; cancelling it");
            false
        }
    };
    hub.set_serving(false);
    let _ = stop_tx.send(true);
    if lost {
        let _ = server.await;
        anyhow::bail!("lost leadership; exiting so a fresh replica can take over");
    }
    leadership.release().await;
    let _ = server.await;
    Ok(())
}

/// The host of an `http(s)://host:port/...` URL.
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    (!host.is_empty()).then(|| host.to_string())
}
