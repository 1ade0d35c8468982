//! Example upstreams for Switchboard: small real servers used by the quickstart, the tests and
//! the benchmark harness.
//!
//! - [`a2a_echo`]: an A2A agent (JSON-RPC) that echoes each message (the quickstart's agent).
//! - [`guardrail_webhook`]: an external guardrail service (allow, reject, slow) for the
//!   gateway's `webhook` guardrail rules.
//! - [`mcp_echo`]: an MCP server over stdio with tools `echo` and `add` (the quickstart's stdio
//!   target).
//! - [`upstream`]: an HTTP server with echo, streaming, SSE, slow and WebSocket endpoints.
//! - [`mock_llm`]: a mock LLM provider speaking the OpenAI, Anthropic, Gemini and Bedrock wire
//!   formats, with failure injection.
//! - [`mcp_fixture`]: an MCP server (rmcp) implementing the conformance suite's fixture tools,
//!   prompts and resources.
//! - [`mcp_hostile`]: an MCP target that answers with arrays, non-JSON, wrong types, an
//!   endless `tools/list` and endless SSE streams (the gateway's untrusted-upstream tests).
//! - [`mcp_modern`]: an MCP server that speaks only 2026-07-28 (multi round-trip requests,
//!   `Mcp-Param-*` routing headers).
//! - [`pets`]: a REST pet store with its OpenAPI document (`examples/openapi/pets.yaml`), the
//!   upstream of the gateway's OpenAPI targets.

pub mod a2a_echo;
pub mod guardrail_webhook;
pub mod mcp_echo;
pub mod mcp_fixture;
pub mod mcp_hostile;
pub mod mcp_modern;
pub mod mock_llm;
pub mod pets;
pub mod upstream;

/// Sets TCP_NODELAY on an accepted connection: these servers double as benchmark upstreams,
/// and Nagle's algorithm with delayed ACKs would add ~40 ms to multi-write responses.
pub fn nodelay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}
