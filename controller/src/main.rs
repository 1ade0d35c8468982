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
        /// This replica's identity for leader election.
        #[arg(long, env = "POD_NAME", default_value = "switchboard-controller")]
        identity: String,
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
                .block_on(run(push_bind, opts, namespace, identity))
        }
    }
}

async fn run(
    push_bind: SocketAddr,
    opts: RenderOptions,
    namespace: String,
    identity: String,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API")?;
    let hub = ConfigHub::new();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (listener, addr) = push::bind(push_bind).await?;
    tracing::info!(%addr, "config push server listening");
    let server = tokio::spawn(push::serve(
        listener,
        hub.clone(),
        Authenticator::TokenReview(client.clone()),
        stop_rx,
    ));

    // Wait for leadership, but stop waiting on a signal.
    let mut leading = tokio::select! {
        l = leader::lead(client.clone(), LeaseConfig {
            namespace,
            name: "switchboard-controller".into(),
            identity,
            duration: Duration::from_secs(15),
        }) => l,
        _ = switchboard_gateway::shutdown_signal() => {
            let _ = stop_tx.send(true);
            return Ok(());
        }
    };
    hub.set_serving(true);
    let lost = {
        let mut leading = leading.clone();
        async move {
            let _ = leading.wait_for(|l| !*l).await;
        }
    };
    reconcile::run(client, hub, opts, async move {
        tokio::select! {
            _ = switchboard_gateway::shutdown_signal() => {},
            _ = lost => {},
        }
    })
    .await;
    let _ = stop_tx.send(true);
    let _ = server.await;
    if !*leading.borrow_and_update() {
        anyhow::bail!("lost leadership; exiting so a fresh replica can take over");
    }
    Ok(())
}
