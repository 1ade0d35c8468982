//! `mcp-fixture [--port N]`: the MCP conformance fixture server (Streamable HTTP at `/mcp`).
//! Prints `listening on http://ADDR/mcp` once bound (port 0 picks a free port).

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (addr, task) =
        switchboard_examples::mcp_fixture::serve(([127, 0, 0, 1], args.port).into()).await?;
    println!("listening on http://{addr}/mcp");
    task.await?;
    Ok(())
}
