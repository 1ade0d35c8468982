//! The example HTTP upstream (`upstream --bind 127.0.0.1:3000`).

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = switchboard_examples::upstream::spawn(args.bind).await?;
    println!("example upstream listening on http://{addr}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
