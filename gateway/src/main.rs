//! The `switchboard` command: `run` the proxy, `validate` a config file, print the config
//! `schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard_gateway::control_plane::ControlPlane;
use switchboard_gateway::telemetry::{self, LogFormat};
use switchboard_gateway::{Gateway, config};

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: an agentic AI gateway"
)]
struct Cli {
    /// Log format.
    #[arg(long, value_enum, default_value = "text", global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        /// The configuration file (YAML). It is watched and reloaded when it changes.
        #[arg(short, long)]
        config: PathBuf,
        /// Also follow this controller's config stream (the file is the boot config).
        #[arg(long)]
        control_plane: Option<String>,
        /// Bearer token file for --control-plane (re-read on every connect).
        #[arg(long, default_value = switchboard_gateway::control_plane::DEFAULT_TOKEN_PATH)]
        control_plane_token: PathBuf,
        /// CA bundle (PEM) that verifies the controller's certificate on an `https://`
        /// --control-plane (re-read on every connect); default: the public web roots.
        #[arg(long, env = "SWITCHBOARD_CONTROL_PLANE_CA")]
        control_plane_ca: Option<PathBuf>,
        /// Allow an `http://` --control-plane (the token and configs cross the network in
        /// clear; only for development).
        #[arg(long)]
        control_plane_allow_http: bool,
        /// Serving threads (each connection lives on one). Default: `SWITCHBOARD_WORKERS`, else
        /// one per core.
        #[arg(long)]
        workers: Option<usize>,
    },
    /// Check a configuration file; print every error as FILE:LINE:COL: key.path: message
    /// (exit 1), and every setting that can have no effect, and what OpenAPI documents leave
    /// out or what of them cannot be fetched (`spec` URLs are fetched), as FILE:LINE:COL:
    /// key.path: warning: message (exit 0).
    Validate {
        /// The configuration file.
        file: PathBuf,
    },
    /// Print the JSON Schema of the configuration file.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file } => match validate(&file) {
            Ok((_, warnings)) => {
                // Settings that can have no effect, OpenAPI documents: reported, not refused.
                let name = file.display().to_string();
                for w in &warnings {
                    let w = config::ConfigIssue {
                        message: format!("warning: {}", w.message),
                        ..w.clone()
                    };
                    eprintln!("{}", w.display_with_file(&name));
                }
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::Schema => {
            let schema = config::json_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            ExitCode::SUCCESS
        }
        Command::Run {
            config,
            control_plane,
            control_plane_token,
            control_plane_ca,
            control_plane_allow_http,
            workers,
        } => {
            telemetry::init(cli.log_format);
            switchboard_gateway::install_crypto_provider();
            let workers = workers.unwrap_or_else(switchboard_gateway::workers::default_count);
            // Client traffic runs on the serving threads; this runtime has the accept loops,
            // admin, reloads and background tasks, which need little.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(if workers == 0 { default_threads() } else { 1 })
                .enable_all()
                .build()
                .expect("tokio runtime");
            let cp = control_plane.map(|url| ControlPlane {
                url,
                token_file: control_plane_token,
                ca_file: control_plane_ca,
                allow_http: control_plane_allow_http,
            });
            if let Some(Err(e)) = cp.as_ref().map(ControlPlane::check) {
                eprintln!("switchboard: {e}");
                return ExitCode::FAILURE;
            }
            match rt.block_on(run(config, cp, workers)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("switchboard: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// [`validate::validate_file`]: also fetches the OpenAPI documents that `spec` URLs name.
fn validate(
    file: &std::path::Path,
) -> Result<(config::Config, Vec<config::ConfigIssue>), config::ConfigErrors> {
    switchboard_gateway::install_crypto_provider();
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(switchboard_gateway::validate::validate_file(file)),
        // Without a runtime, what needs no network.
        Err(_) => config::load_file_with_warnings(file),
    }
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

async fn run(path: PathBuf, cp: Option<ControlPlane>, workers: usize) -> anyhow::Result<()> {
    let cfg = config::load_file(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let grace = cfg.shutdown.grace_period;
    let gw = Gateway::start_with_workers(cfg, Some(path.clone()), workers)
        .await
        .context("cannot start")?;
    switchboard_gateway::reload::spawn(gw.clone(), path).context("cannot watch the config file")?;
    if let Some(cp) = cp {
        switchboard_gateway::control_plane::spawn(gw.clone(), cp);
    }
    tracing::info!(version = gw.version(), "switchboard ready");

    switchboard_gateway::shutdown_signal().await;
    // Re-read the grace period: a reload may have changed it.
    let grace = {
        let g = gw.current().config.shutdown.grace_period;
        if g.is_zero() { grace } else { g }
    };
    tracing::info!(?grace, "shutting down: no new connections, draining");
    gw.shutdown(grace).await;
    tracing::info!("stopped");
    Ok(())
}
