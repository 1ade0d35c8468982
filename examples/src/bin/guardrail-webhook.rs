//! An example external guardrail (`guardrail-webhook --bind 127.0.0.1:3040 --block forbidden`):
//! rejects texts containing a blocked word. See `switchboard_examples::guardrail_webhook`.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3040")]
    bind: std::net::SocketAddr,
    /// A word whose presence rejects a text (repeatable).
    #[arg(long, default_values_t = vec!["forbidden".to_string()])]
    block: Vec<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let state = switchboard_examples::guardrail_webhook::Webhook::new(args.block);
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!(
        "example guardrail webhook listening on http://{}/check",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        switchboard_examples::guardrail_webhook::router(state),
    )
    .await?;
    Ok(())
}
