//! `pets [--port N]`: the REST pet store of `examples/openapi/pets.yaml`. Prints
//! `listening on http://ADDR` once bound (port 0 picks a free port).

use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 8080)]
    port: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (addr, task) =
        switchboard_examples::pets::serve(([127, 0, 0, 1], args.port).into()).await?;
    println!("listening on http://{addr}");
    task.await?;
    Ok(())
}
