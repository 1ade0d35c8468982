//! A small MCP server for the quickstart, spoken over stdio (the gateway starts it as a `stdio`
//! target): tools `echo {text}` (answers the text), `add {a, b}` (answers the sum) and `meta`
//! (answers the request's `_meta` as JSON text: what a tracing test reads `traceparent` from).
//! With `MCP_ECHO_DESCRIPTION_FILE` set, `echo`'s description is that file's content, read at
//! each `tools/list`.

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ListToolsResult, PaginatedRequestParams, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn from<T: DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| McpError::internal_error(format!("mcp-echo: {e}"), None))
}

/// The handler: stateless, one per connection.
#[derive(Clone, Default)]
pub struct Echo;

impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        from(json!({
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "switchboard-mcp-echo", "version": env!("CARGO_PKG_VERSION")}
        }))
        .unwrap_or_default()
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // A test can change the description between two listings (tool-poisoning tests).
        let echo_description = std::env::var_os("MCP_ECHO_DESCRIPTION_FILE")
            .and_then(|f| std::fs::read_to_string(f).ok())
            .unwrap_or_else(|| "Answers the text it is given".into());
        from(json!({"tools": [
            {"name": "echo", "description": echo_description,
             "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                             "required": ["text"]}},
            {"name": "add", "description": "Adds two numbers",
             "inputSchema": {"type": "object",
                             "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                             "required": ["a", "b"]}},
            {"name": "meta", "description": "Answers the request's _meta as JSON",
             "inputSchema": {"type": "object", "properties": {}}},
        ]}))
    }

    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        c: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if r.name == "meta" {
            // rmcp may have moved `_meta` from the params into the context.
            let meta = match &r.meta {
                Some(m) => serde_json::to_string(m),
                None => serde_json::to_string(&c.meta),
            }
            .unwrap_or_default();
            let result: rmcp::model::CallToolResult =
                from(json!({"content": [{"type": "text", "text": meta}]}))?;
            return Ok(result.into());
        }
        let args = r.arguments.unwrap_or_default();
        let text = match r.name.as_ref() {
            "echo" => match args.get("text").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => return Err(McpError::invalid_params("echo: `text` is a string", None)),
            },
            "add" => match (
                args.get("a").and_then(Value::as_f64),
                args.get("b").and_then(Value::as_f64),
            ) {
                (Some(a), Some(b)) => (a + b).to_string(),
                _ => {
                    return Err(McpError::invalid_params(
                        "add: `a` and `b` are numbers",
                        None,
                    ));
                }
            },
            other => {
                return Err(McpError::invalid_params(
                    format!("unknown tool {other}"),
                    None,
                ));
            }
        };
        let result: rmcp::model::CallToolResult =
            from(json!({"content": [{"type": "text", "text": text}]}))?;
        Ok(result.into())
    }
}

/// Serves [`Echo`] on stdin/stdout until the client closes stdin.
pub async fn serve_stdio() -> anyhow::Result<()> {
    let running = Echo.serve(rmcp::transport::stdio()).await?;
    running.waiting().await?;
    Ok(())
}
