//! `mcp-echo`: the quickstart's stdio MCP server (tools `echo` and `add`), for the gateway to
//! start as a `stdio` target. Logs nothing on stdout (stdout is the MCP channel).

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    switchboard_examples::mcp_echo::serve_stdio().await
}
