//! `switchboard-controller`: `run` the Kubernetes controller, or print the `crds`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use switchboard_controller::leader::{self, LeaseConfig};
use switchboard_controller::push::{self, Authenticator, ConfigHub};
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
        /// Base URL at which proxies reach the push server.
        #[arg(
            long,
            env = "SWITCHBOARD_PUSH_URL",
            default_value = "http://switchboard-controller.switchboard-system.svc:9977"
        )]
        push_url: String,
        /// Default proxy image.
        #[arg(long, env = "SWITCHBOARD_PROXY_IMAGE")]
        proxy_image: Option<String>,
        /// Namespace of the leader-election Lease.
        #[arg(long, env = "POD_NAMESPACE", default_value = "switchboard-system")]
        namespace: String,
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
    },
    /// Print the CRD YAML generated from the Rust types.
    Crds,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => {
            print!("{}", switchboard_controller::crd::crds_yaml());
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
        } => {
            let filter = tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let builder = tracing_subscriber::fmt().with_env_filter(filter);
            match cli.log_format {
                LogFormat::Text => builder.init(),
                LogFormat::Json => builder.json().init(),
            }
            let _ = rustls::crypto::ring::default_provider().install_default();
            let mut opts = RenderOptions {
                push_url: Some(push_url),
                cluster_domain,
                ..Default::default()
            };
            if let Some(image) = proxy_image {
                opts.image = image;
            }
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(run(
                    push_bind,
                    opts,
                    LeaseConfig {
                        namespace,
                        name: "switchboard-controller".into(),
                        identity: identity.unwrap_or_else(leader::default_identity),
                        duration: lease_duration,
                    },
                ))
        }
    }
}

/// How long in-flight reconciles may take to finish after SIGTERM/Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

async fn run(push_bind: SocketAddr, opts: RenderOptions, lease: LeaseConfig) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
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
    let (listener, addr) = push::bind(push_bind).await?;
    tracing::info!(%addr, identity = %lease.identity, "config push server listening");
    let server = tokio::spawn(push::serve(
        listener,
        hub.clone(),
        Authenticator::TokenReview(client.clone()),
        stop_rx,
    ));

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
