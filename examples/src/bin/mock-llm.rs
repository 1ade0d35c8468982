//! The mock LLM provider as a standalone server (for benchmarks and manual testing).

use clap::Parser;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Mock LLM provider (OpenAI, Anthropic, Gemini, Bedrock wire formats)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    println!("mock-llm listening on http://{}", listener.local_addr()?);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    switchboard_examples::mock_llm::serve_until(listener, Default::default(), shutdown).await?;
    Ok(())
}
