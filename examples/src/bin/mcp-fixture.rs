//! `mcp-fixture [--port N | --bind ADDR]`: the MCP conformance fixture server (Streamable HTTP at `/mcp`).
//! Prints `listening on http://ADDR/mcp` once bound (port 0 picks a free port).

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on (instead of `--port`).
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (addr, task) = switchboard_examples::mcp_fixture::serve(
        args.bind.unwrap_or(([127, 0, 0, 1], args.port).into()),
    )
    .await?;
    println!("listening on http://{addr}/mcp");
    task.await?;
    Ok(())
}
