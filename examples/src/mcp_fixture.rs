//! An MCP server (rmcp, Streamable HTTP) implementing the fixture tools, prompts and resources
//! that the `@modelcontextprotocol/conformance` server scenarios call. Tests run the suite
//! against it directly and through the gateway.
//!
//! Results are written as JSON (the wire shapes the suite checks) and converted into rmcp's
//! types, which keeps the fixture readable next to the scenarios it serves.
// Logging, sampling and subscriptions are deprecated in rmcp for 2026-07-28, but they are part
// of the revisions (2025-06-18, 2025-11-25) this fixture serves.
#![allow(deprecated)]

use axum::serve::ListenerExt;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ResourceUpdatedNotificationParam,
    ServerConfig, SetLevelRequestParams, SubscribeRequestParams, UnsubscribeRequestParams,
};
use rmcp::service::{NotificationContext, Peer, RequestContext};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A 1x1 red PNG.
pub const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
pub const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

fn from<T: DeserializeOwned>(v: Value) -> Result<T, McpError> {
    serde_json::from_value(v).map_err(|e| McpError::internal_error(format!("fixture: {e}"), None))
}

/// The fixture server's handler (one per session).
#[derive(Clone, Default)]
pub struct Fixture {
    subscriptions: Arc<Mutex<HashSet<String>>>,
    /// Speak only the stateless 2026-07-28 revision (refuse `initialize`).
    modern_only: bool,
    /// Also offer the MCP Apps tool and its `ui://` resource ([`serve_apps`]).
    apps: bool,
    /// Every session of this server, for resource changes made on demand.
    hub: FixtureHub,
}

/// The MCP Apps UI resource of the fixture's `test_app_ui` tool ([`serve_apps`]).
pub const APP_URI: &str = "ui://fixture/app.html";
/// The HTML of [`APP_URI`].
pub const APP_HTML: &str = "<!doctype html><html><body><h1>fixture app</h1></body></html>";
/// The MIME type of MCP Apps HTML resources (SEP-1865).
pub const APP_MIME: &str = "text/html;profile=mcp-app";

/// The MCP Apps tool: its UI is [`APP_URI`], named in the tool's `_meta.ui.resourceUri`, in the
/// older `_meta["ui/resourceUri"]` key, and in its result's `_meta.ui.resourceUri` and a
/// `resource_link`.
fn app_tool() -> Value {
    json!({"name": "test_app_ui", "description": "Tests an MCP Apps tool with a ui:// resource",
           "inputSchema": empty_schema(),
           "_meta": {"ui": {"resourceUri": APP_URI, "visibility": ["model", "app"]}, "ui/resourceUri": APP_URI}})
}

/// The sessions of one fixture server and the resources each subscribed to: a test changes a
/// resource on demand ([`touch`](Self::touch)) and every subscribed session is told on its
/// standalone stream (cheap clone).
#[derive(Clone, Default)]
pub struct FixtureHub(Arc<Mutex<Vec<HubSession>>>);

/// A session's peer and the resources it subscribed to.
type HubSession = (Peer<RoleServer>, Arc<Mutex<HashSet<String>>>);

impl FixtureHub {
    /// Resource `uri` changed: `notifications/resources/updated` to every session subscribed
    /// to it; returns how many were told.
    pub async fn touch(&self, uri: &str) -> usize {
        let sessions = self.0.lock().unwrap().clone();
        let mut told = 0;
        for (peer, subs) in sessions {
            if subs.lock().unwrap().contains(uri)
                && peer
                    .notify_resource_updated(ResourceUpdatedNotificationParam::new(uri))
                    .await
                    .is_ok()
            {
                told += 1;
            }
        }
        told
    }
}

fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

fn tools() -> Value {
    let simple = |name: &str, description: &str| json!({"name": name, "description": description, "inputSchema": empty_schema()});
    json!([
        simple("test_simple_text", "Tests simple text content response"),
        simple("test_image_content", "Tests image content response"),
        simple("test_audio_content", "Tests audio content response"),
        simple("test_embedded_resource", "Tests embedded resource content response"),
        simple("test_multiple_content_types", "Tests response with multiple content types (text, image, resource)"),
        simple("test_tool_with_logging", "Tests tool that emits log messages during execution"),
        simple("test_tool_with_progress", "Tests tool that reports progress notifications"),
        simple("test_error_handling", "Tests error response handling"),
        simple("test_reconnection", "Tests SSE stream disconnection and client reconnection"),
        {"name": "test_sampling", "description": "Tests server-initiated sampling (LLM completion request)",
         "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string", "description": "The prompt to send to the LLM"}}, "required": ["prompt"]}},
        {"name": "test_elicitation", "description": "Tests server-initiated elicitation (user input request)",
         "inputSchema": {"type": "object", "properties": {"message": {"type": "string", "description": "The message to show the user"}}, "required": ["message"]}},
        simple("test_elicitation_sep1034_defaults", "Tests elicitation with default values per SEP-1034"),
        simple("test_elicitation_sep1330_enums", "Tests elicitation with enum schema improvements per SEP-1330"),
        {"name": "json_schema_2020_12_tool", "description": "Tool with JSON Schema 2020-12 features for conformance testing (SEP-1613)",
         "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
            "additionalProperties": false
         }},
    ])
}

fn text(t: &str) -> Value {
    json!({"type": "text", "text": t})
}

async fn elicit(ctx: &RequestContext<RoleServer>, params: Value, label: &str) -> Value {
    match ctx
        .peer
        .create_elicitation(match from(params) {
            Ok(p) => p,
            Err(e) => return json!({"content": [text(&e.message)], "isError": true}),
        })
        .await
    {
        Ok(r) => {
            let r = serde_json::to_value(r).unwrap_or(Value::Null);
            let content = r.get("content").cloned().unwrap_or(json!({}));
            json!({"content": [text(&format!("{label}: action={}, content={content}", r["action"].as_str().unwrap_or("")))]})
        }
        Err(e) => json!({"content": [text(&format!("Elicitation not supported or error: {e}"))]}),
    }
}

impl Fixture {
    async fn log(ctx: &RequestContext<RoleServer>, data: &str) {
        if let Ok(p) = from(json!({"level": "info", "logger": "conformance-fixture", "data": data}))
        {
            let _ = ctx.peer.notify_logging_message(p).await;
        }
    }

    async fn call(
        &self,
        name: &str,
        args: &Value,
        ctx: &RequestContext<RoleServer>,
    ) -> Result<Value, McpError> {
        Ok(match name {
            "test_app_ui" if self.apps => json!({"content": [text("rendered by the app"),
                    {"type": "resource_link", "uri": APP_URI, "name": "app", "mimeType": APP_MIME}],
                "_meta": {"ui": {"resourceUri": APP_URI}}}),
            "test_simple_text" => {
                json!({"content": [text("This is a simple text response for testing.")]})
            }
            "test_image_content" => {
                json!({"content": [{"type": "image", "data": PNG, "mimeType": "image/png"}]})
            }
            "test_audio_content" => {
                json!({"content": [{"type": "audio", "data": WAV, "mimeType": "audio/wav"}]})
            }
            "test_embedded_resource" => json!({"content": [{"type": "resource", "resource": {
                "uri": "test://embedded-resource", "mimeType": "text/plain", "text": "This is an embedded resource content."}}]}),
            "test_multiple_content_types" => json!({"content": [
                text("Multiple content types test:"),
                {"type": "image", "data": PNG, "mimeType": "image/png"},
                {"type": "resource", "resource": {"uri": "test://mixed-content-resource", "mimeType": "application/json",
                    "text": json!({"test": "data", "value": 123}).to_string()}},
            ]}),
            "test_tool_with_logging" => {
                for m in [
                    "Tool execution started",
                    "Tool processing data",
                    "Tool execution completed",
                ] {
                    Self::log(ctx, m).await;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                json!({"content": [text("Tool with logging executed successfully")]})
            }
            "test_tool_with_progress" => {
                let token = ctx.meta.get("progressToken").cloned().unwrap_or(json!(0));
                for p in [0, 50, 100] {
                    if let Ok(param) =
                        from(json!({"progressToken": token, "progress": p, "total": 100,
                        "message": format!("Completed step {p} of 100")}))
                    {
                        let _ = ctx.peer.notify_progress(param).await;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                json!({"content": [text(&token.to_string())]})
            }
            "test_error_handling" => {
                json!({"content": [text("This tool intentionally returns an error for testing")], "isError": true})
            }
            "test_reconnection" => {
                json!({"content": [text("Reconnection test completed successfully.")]})
            }
            "test_sampling" => {
                let prompt = args.get("prompt").and_then(Value::as_str).unwrap_or("");
                let params = from(
                    json!({"messages": [{"role": "user", "content": text(prompt)}], "maxTokens": 100}),
                )?;
                let r = ctx.peer.create_message(params).await;
                match r {
                    Ok(r) => {
                        let r = serde_json::to_value(r).unwrap_or(Value::Null);
                        let t = r
                            .pointer("/content/text")
                            .and_then(Value::as_str)
                            .unwrap_or("No response");
                        json!({"content": [text(&format!("LLM response: {t}"))]})
                    }
                    Err(e) => {
                        json!({"content": [text(&format!("Sampling not supported or error: {e}"))]})
                    }
                }
            }
            "test_elicitation" => {
                let message = args.get("message").and_then(Value::as_str).unwrap_or("");
                let params = json!({"mode": "form", "message": message, "requestedSchema": {"type": "object",
                    "properties": {"response": {"type": "string", "description": "User's response"}}, "required": ["response"]}});
                elicit(ctx, params, "User response").await
            }
            "test_elicitation_sep1034_defaults" => {
                let params = json!({"mode": "form", "message": "Please review and update the form fields with defaults",
                    "requestedSchema": {"type": "object", "properties": {
                        "name": {"type": "string", "description": "User name", "default": "John Doe"},
                        "age": {"type": "integer", "description": "User age", "default": 30},
                        "score": {"type": "number", "description": "User score", "default": 95.5},
                        "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                        "verified": {"type": "boolean", "description": "Verification status", "default": true}
                    }, "required": []}});
                elicit(ctx, params, "Elicitation completed").await
            }
            "test_elicitation_sep1330_enums" => {
                let params = json!({"mode": "form", "message": "Please select options from the enum fields",
                    "requestedSchema": {"type": "object", "properties": {
                        "untitledSingle": {"type": "string", "description": "Select one option", "enum": ["option1", "option2", "option3"]},
                        "titledSingle": {"type": "string", "description": "Select one option with titles", "oneOf": [
                            {"const": "value1", "title": "First Option"}, {"const": "value2", "title": "Second Option"}, {"const": "value3", "title": "Third Option"}]},
                        "legacyEnum": {"type": "string", "description": "Select one option (legacy)", "enum": ["opt1", "opt2", "opt3"],
                            "enumNames": ["Option One", "Option Two", "Option Three"]},
                        "untitledMulti": {"type": "array", "description": "Select multiple options", "minItems": 1, "maxItems": 3,
                            "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                        "titledMulti": {"type": "array", "description": "Select multiple options with titles", "minItems": 1, "maxItems": 3,
                            "items": {"anyOf": [{"const": "value1", "title": "First Choice"}, {"const": "value2", "title": "Second Choice"}, {"const": "value3", "title": "Third Choice"}]}}
                    }, "required": []}});
                elicit(ctx, params, "Elicitation completed").await
            }
            "json_schema_2020_12_tool" => {
                json!({"content": [text(&format!("JSON Schema 2020-12 tool called with: {args}"))]})
            }
            _ => {
                return Err(McpError::invalid_params(
                    format!("Unknown tool: {name}"),
                    None,
                ));
            }
        })
    }
}

impl ServerHandler for Fixture {
    async fn on_initialized(&self, ctx: NotificationContext<RoleServer>) {
        self.hub
            .0
            .lock()
            .unwrap()
            .push((ctx.peer, self.subscriptions.clone()));
    }

    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.modern_only {
            std::borrow::Cow::Owned(vec![ProtocolVersion::V_2026_07_28])
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        }
    }

    fn get_info(&self) -> ServerConfig {
        from(json!({
            "protocolVersion": if self.modern_only { "2026-07-28" } else { "2025-11-25" },
            "capabilities": {
                "tools": {"listChanged": true},
                "resources": {"subscribe": true, "listChanged": true},
                "prompts": {"listChanged": true},
                "logging": {},
                "completions": {}
            },
            "serverInfo": {"name": "switchboard-mcp-fixture", "version": env!("CARGO_PKG_VERSION")}
        }))
        .unwrap_or_default()
    }

    async fn list_tools(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let mut tools = tools();
        if self.apps
            && let Some(list) = tools.as_array_mut()
        {
            list.push(app_tool());
        }
        from(json!({"tools": tools}))
    }

    async fn call_tool(
        &self,
        r: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = serde_json::to_value(&r.arguments).unwrap_or(Value::Null);
        let v = self.call(&r.name, &args, &ctx).await?;
        let result: rmcp::model::CallToolResult = from(v)?;
        Ok(result.into())
    }

    async fn list_resources(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let mut list = json!({"resources": [
            {"uri": "test://static-text", "name": "static-text", "title": "Static Text Resource",
             "description": "A static text resource for testing", "mimeType": "text/plain"},
            {"uri": "test://static-binary", "name": "static-binary", "title": "Static Binary Resource",
             "description": "A static binary resource (image) for testing", "mimeType": "image/png"},
            {"uri": "test://watched-resource", "name": "watched-resource", "title": "Watched Resource",
             "description": "A resource that can be subscribed to", "mimeType": "text/plain"},
        ]});
        if self.apps
            && let Some(r) = list.get_mut("resources").and_then(Value::as_array_mut)
        {
            r.push(json!({"uri": APP_URI, "name": "app", "mimeType": APP_MIME}));
        }
        from(list)
    }

    async fn list_resource_templates(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        from(json!({"resourceTemplates": [
            {"uriTemplate": "test://template/{id}/data", "name": "template", "title": "Resource Template",
             "description": "A resource template with parameter substitution", "mimeType": "application/json"}
        ]}))
    }

    async fn read_resource(
        &self,
        r: ReadResourceRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let uri = r.uri.as_str();
        let contents = match uri {
            "test://static-text" => {
                json!([{"uri": uri, "mimeType": "text/plain", "text": "This is the content of the static text resource."}])
            }
            "test://static-binary" => json!([{"uri": uri, "mimeType": "image/png", "blob": PNG}]),
            APP_URI if self.apps => json!([{"uri": uri, "mimeType": APP_MIME, "text": APP_HTML}]),
            "test://watched-resource" => {
                json!([{"uri": uri, "mimeType": "text/plain", "text": "Watched resource content"}])
            }
            _ => match uri
                .strip_prefix("test://template/")
                .and_then(|s| s.strip_suffix("/data"))
            {
                Some(id) => json!([{"uri": uri, "mimeType": "application/json",
                    "text": json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string()}]),
                None => {
                    return Err(McpError::resource_not_found(
                        format!("Resource not found: {uri}"),
                        None,
                    ));
                }
            },
        };
        let result: rmcp::model::ReadResourceResult = from(json!({"contents": contents}))?;
        Ok(result.into())
    }

    async fn subscribe(
        &self,
        r: SubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.lock().unwrap().insert(r.uri.to_string());
        Self::log(&ctx, &format!("Subscribed to resource: {}", r.uri)).await;
        Ok(())
    }

    async fn unsubscribe(
        &self,
        r: UnsubscribeRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.lock().unwrap().remove(r.uri.as_str());
        Self::log(&ctx, &format!("Unsubscribed from resource: {}", r.uri)).await;
        Ok(())
    }

    async fn list_prompts(
        &self,
        _r: Option<PaginatedRequestParams>,
        _c: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        from(json!({"prompts": [
            {"name": "test_simple_prompt", "title": "Simple Test Prompt", "description": "A simple prompt without arguments"},
            {"name": "test_prompt_with_arguments", "title": "Prompt With Arguments", "description": "A prompt with required arguments",
             "arguments": [{"name": "arg1", "description": "First test argument", "required": true},
                           {"name": "arg2", "description": "Second test argument", "required": true}]},
            {"name": "test_prompt_with_embedded_resource", "title": "Prompt With Embedded Resource",
             "description": "A prompt that includes an embedded resource",
             "arguments": [{"name": "resourceUri", "description": "URI of the resource to embed", "required": true}]},
            {"name": "test_prompt_with_image", "title": "Prompt With Image", "description": "A prompt that includes image content"},
        ]}))
    }

    async fn get_prompt(
        &self,
        r: GetPromptRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let arg = |k: &str| {
            r.arguments
                .as_ref()
                .and_then(|a| a.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let messages = match r.name.as_str() {
            "test_simple_prompt" => {
                json!([{"role": "user", "content": text("This is a simple prompt for testing.")}])
            }
            "test_prompt_with_arguments" => json!([{"role": "user", "content":
                text(&format!("Prompt with arguments: arg1='{}', arg2='{}'", arg("arg1"), arg("arg2")))}]),
            "test_prompt_with_embedded_resource" => json!([
                {"role": "user", "content": {"type": "resource", "resource": {"uri": arg("resourceUri"), "mimeType": "text/plain",
                    "text": "Embedded resource content for testing."}}},
                {"role": "user", "content": text("Please process the embedded resource above.")},
            ]),
            "test_prompt_with_image" => json!([
                {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
                {"role": "user", "content": text("Please analyze the image above.")},
            ]),
            other => {
                return Err(McpError::invalid_params(
                    format!("Unknown prompt: {other}"),
                    None,
                ));
            }
        };
        let result: rmcp::model::GetPromptResult = from(json!({"messages": messages}))?;
        Ok(result.into())
    }

    async fn complete(
        &self,
        _r: CompleteRequestParams,
        _c: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        from(json!({"completion": {"values": [], "total": 0, "hasMore": false}}))
    }

    async fn set_level(
        &self,
        r: SetLevelRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let level = serde_json::to_value(r.level).unwrap_or(Value::Null);
        Self::log(
            &ctx,
            &format!("Log level set to: {}", level.as_str().unwrap_or("")),
        )
        .await;
        Ok(())
    }
}

/// The fixture as an axum router serving Streamable HTTP at `/mcp` (loopback hosts only).
pub fn router() -> axum::Router {
    router_with(false)
}

/// The fixture router; `modern_only` makes it a server that speaks only 2026-07-28.
pub fn router_with(modern_only: bool) -> axum::Router {
    router_with_hub(modern_only, FixtureHub::default())
}

/// The fixture router whose sessions join `hub` (see [`FixtureHub::touch`]).
pub fn router_with_hub(modern_only: bool, hub: FixtureHub) -> axum::Router {
    let mut config = StreamableHttpServerConfig::default();
    config.sse_keep_alive = None;
    let service = StreamableHttpService::new(
        move || {
            Ok(Fixture {
                modern_only,
                hub: hub.clone(),
                ..Fixture::default()
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    axum::Router::new().nest_service("/mcp", service)
}

/// Serve the fixture on `addr` until the process ends; returns once bound, with the bound address.
pub async fn serve(addr: SocketAddr) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    serve_with(addr, false).await
}

/// Like [`serve`], optionally as a 2026-07-28-only server.
pub async fn serve_with(
    addr: SocketAddr,
    modern_only: bool,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), router_with(modern_only)).await;
    });
    Ok((local, task))
}

/// Like [`serve`], also offering the MCP Apps tool `test_app_ui` and its UI resource
/// [`APP_URI`] (listed, readable, named in the tool's and its result's `_meta`).
pub async fn serve_apps(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let mut config = StreamableHttpServerConfig::default();
    config.sse_keep_alive = None;
    let service = StreamableHttpService::new(
        || {
            Ok(Fixture {
                apps: true,
                ..Fixture::default()
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), router).await;
    });
    Ok((local, task))
}

/// Like [`serve`], with the [`FixtureHub`] of its sessions.
pub async fn serve_hub(
    addr: SocketAddr,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>, FixtureHub)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let hub = FixtureHub::default();
    let app = router_with_hub(false, hub.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener.tap_io(crate::nodelay), app).await;
    });
    Ok((local, task, hub))
}
