//! The quickstart's example A2A agent (`a2a-echo --bind 127.0.0.1:3030`): echoes each message.

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3030")]
    bind: std::net::SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (addr, task) = switchboard_examples::a2a_echo::serve(args.bind).await?;
    println!("example A2A agent listening on http://{addr}");
    task.await?;
    Ok(())
}
