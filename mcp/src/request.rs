//! The parse stage: every JSON-RPC message a client sends is parsed once into a [`Message`],
//! and a request's method into a [`Method`] carrying the facts the gateway routes on (the
//! tool or prompt name, the resource URI, the list cursor, the completion reference). The
//! message itself stays a `serde_json::Value` ([`Request::msg`]) that is forwarded untouched
//! apart from the rewritten ids and names: tool arguments, `_meta` and unknown fields pass
//! through as the client sent them.

use serde_json::Value;

use crate::error::ProtocolError;
use crate::jsonrpc::{self, Kind};

/// One message from a client.
pub(crate) enum Message {
    /// A request: answered with a result or an error.
    Request(Request),
    /// A notification: nothing answers it.
    Notification(Notification, Value),
    /// The client's reply to a server-to-client request.
    Response(Value),
}

/// Not a JSON-RPC message; `id` is the message's when it has a string or number one.
pub(crate) struct Invalid {
    pub id: Value,
}

impl Message {
    /// Parse one message.
    pub fn parse(msg: Value) -> Result<Message, Invalid> {
        match jsonrpc::kind(&msg) {
            Kind::Request => Ok(Message::Request(Request::parse(msg))),
            Kind::Notification => Ok(Message::Notification(Notification::parse(&msg), msg)),
            Kind::Response => Ok(Message::Response(msg)),
            Kind::Invalid => Err(Invalid {
                id: msg
                    .get("id")
                    .filter(|id| id.is_string() || id.is_number())
                    .cloned()
                    .unwrap_or(Value::Null),
            }),
        }
    }
}

/// A client request.
pub(crate) struct Request {
    /// The client's id (a string or a number).
    pub id: Value,
    pub method: Method,
    /// The message as the client sent it.
    pub msg: Value,
}

impl Request {
    /// Parse a message that [`jsonrpc::kind`] found to be a request.
    pub fn parse(msg: Value) -> Request {
        Request {
            id: jsonrpc::id(&msg),
            method: Method::parse(&msg),
            msg,
        }
    }
}

/// Which list a `*/list` request fans out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListKind {
    Tools,
    Prompts,
    Resources,
    Templates,
}

impl ListKind {
    /// The list method.
    pub fn method(self) -> &'static str {
        match self {
            Self::Tools => "tools/list",
            Self::Prompts => "prompts/list",
            Self::Resources => "resources/list",
            Self::Templates => "resources/templates/list",
        }
    }
}

/// What a `completion/complete` completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference {
    /// `ref/prompt` with its name.
    Prompt(String),
    /// `ref/resource` with its URI (or URI template).
    Resource(String),
    /// Anything else: resolves to nothing.
    Other,
}

/// The methods the gateway serves, with their routing facts.
#[derive(Debug)]
pub(crate) enum Method {
    Initialize,
    Ping,
    /// `server/discover` (2026-07-28).
    Discover,
    /// `tools/list`, `prompts/list`, `resources/list`, `resources/templates/list`.
    List {
        kind: ListKind,
        cursor: Option<String>,
    },
    /// `logging/setLevel`: sent to every target.
    SetLevel,
    /// `tools/call`.
    CallTool {
        name: String,
    },
    /// `prompts/get`.
    GetPrompt {
        name: String,
    },
    /// `resources/read`.
    ReadResource {
        uri: String,
    },
    /// `resources/subscribe`.
    Subscribe {
        uri: String,
    },
    /// `resources/unsubscribe`.
    Unsubscribe {
        uri: String,
    },
    /// `completion/complete`.
    Complete(Reference),
    /// `subscriptions/listen` (2026-07-28): what the stream is to carry.
    Listen(ListenFilter),
    /// A method the gateway does not serve (answered "Method not found").
    Unknown(String),
    /// A known method whose params do not fit it; answered with `error`.
    Invalid {
        method: &'static str,
        error: ProtocolError,
    },
}

/// The `notifications` filter of a `subscriptions/listen` request (the wire's
/// `SubscriptionFilter`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ListenFilter {
    /// `toolsListChanged`.
    pub tools: bool,
    /// `promptsListChanged`.
    pub prompts: bool,
    /// `resourcesListChanged`.
    pub resources: bool,
    /// `resourceSubscriptions`: exposed resource URIs.
    pub uris: Vec<String>,
}

impl ListenFilter {
    fn parse(v: Option<&Value>) -> Result<ListenFilter, &'static str> {
        let Some(Value::Object(n)) = v else {
            return Err("missing notifications");
        };
        let flag = |k: &str| n.get(k) == Some(&Value::Bool(true));
        let uris = match n.get("resourceSubscriptions") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|u| u.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or("resourceSubscriptions must be strings")?,
            Some(_) => return Err("resourceSubscriptions must be an array"),
        };
        Ok(ListenFilter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris,
        })
    }
}

fn string_param(msg: &Value, key: &str) -> Option<String> {
    jsonrpc::param_str(msg, key).map(str::to_string)
}

impl Method {
    fn parse(msg: &Value) -> Method {
        let method = jsonrpc::method(msg);
        let invalid = |method, why: &'static str| Method::Invalid {
            method,
            error: ProtocolError::InvalidParams(why.into()),
        };
        let list = |kind: ListKind| match crate::jsonrpc::at(msg, &["params", "cursor"]) {
            None | Some(Value::Null) => Method::List { kind, cursor: None },
            Some(Value::String(c)) => Method::List {
                kind,
                cursor: Some(c.clone()),
            },
            Some(_) => invalid(kind.method(), "cursor must be a string"),
        };
        match method {
            "initialize" => Method::Initialize,
            "ping" => Method::Ping,
            "server/discover" => Method::Discover,
            "tools/list" => list(ListKind::Tools),
            "prompts/list" => list(ListKind::Prompts),
            "resources/list" => list(ListKind::Resources),
            "resources/templates/list" => list(ListKind::Templates),
            "logging/setLevel" => match crate::jsonrpc::at(msg, &["params", "level"]) {
                Some(Value::String(_)) => Method::SetLevel,
                _ => invalid("logging/setLevel", "missing level"),
            },
            "tools/call" => match string_param(msg, "name") {
                Some(name) => Method::CallTool { name },
                None => invalid("tools/call", "missing name"),
            },
            "prompts/get" => match string_param(msg, "name") {
                Some(name) => Method::GetPrompt { name },
                None => invalid("prompts/get", "missing name"),
            },
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                let Some(uri) = string_param(msg, "uri") else {
                    let method = match method {
                        "resources/read" => "resources/read",
                        "resources/subscribe" => "resources/subscribe",
                        _ => "resources/unsubscribe",
                    };
                    return invalid(method, "missing uri");
                };
                match method {
                    "resources/read" => Method::ReadResource { uri },
                    "resources/subscribe" => Method::Subscribe { uri },
                    _ => Method::Unsubscribe { uri },
                }
            }
            "subscriptions/listen" => {
                match ListenFilter::parse(crate::jsonrpc::at(msg, &["params", "notifications"])) {
                    Ok(f) => Method::Listen(f),
                    Err(why) => invalid("subscriptions/listen", why),
                }
            }
            "completion/complete" => {
                let r = crate::jsonrpc::at(msg, &["params", "ref"]);
                let field = |k: &str| r.and_then(|r| r.get(k)).and_then(Value::as_str);
                Method::Complete(match (field("type"), field("name"), field("uri")) {
                    (Some("ref/prompt"), Some(n), _) => Reference::Prompt(n.to_string()),
                    (Some("ref/resource"), _, Some(u)) => Reference::Resource(u.to_string()),
                    _ => Reference::Other,
                })
            }
            other => Method::Unknown(other.to_string()),
        }
    }

    /// The method as it is on the wire.
    pub fn name(&self) -> &str {
        match self {
            Method::Initialize => "initialize",
            Method::Ping => "ping",
            Method::Discover => "server/discover",
            Method::List { kind, .. } => kind.method(),
            Method::SetLevel => "logging/setLevel",
            Method::CallTool { .. } => "tools/call",
            Method::GetPrompt { .. } => "prompts/get",
            Method::ReadResource { .. } => "resources/read",
            Method::Subscribe { .. } => "resources/subscribe",
            Method::Unsubscribe { .. } => "resources/unsubscribe",
            Method::Complete(_) => "completion/complete",
            Method::Listen(_) => "subscriptions/listen",
            Method::Unknown(m) => m,
            Method::Invalid { method, .. } => method,
        }
    }

    /// The tool or prompt name, or the resource URI, the request names (what `Mcp-Name`
    /// carries in 2026-07-28).
    pub fn item_name(&self) -> Option<&str> {
        match self {
            Method::CallTool { name } | Method::GetPrompt { name } => Some(name),
            Method::ReadResource { uri }
            | Method::Subscribe { uri }
            | Method::Unsubscribe { uri } => Some(uri),
            _ => None,
        }
    }

    /// Whether serving it may need input from the client mid-call (elicitation, sampling,
    /// roots): the calls that 2026-07-28 lets answer `input_required`.
    pub fn may_need_input(&self) -> bool {
        matches!(
            self,
            Method::CallTool { .. } | Method::GetPrompt { .. } | Method::ReadResource { .. }
        )
    }

    /// Whether its 2026-07-28 result carries caching hints.
    pub fn cacheable(&self) -> bool {
        matches!(
            self,
            Method::List { .. } | Method::ReadResource { .. } | Method::Discover
        )
    }
}

/// A client notification the gateway acts on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Notification {
    /// `notifications/initialized`.
    Initialized,
    /// `notifications/cancelled` of request `request_id` (the client's id).
    Cancelled { request_id: Value },
    /// `notifications/roots/list_changed`.
    RootsListChanged,
    /// Anything else (dropped).
    Other,
}

impl Notification {
    fn parse(msg: &Value) -> Notification {
        match jsonrpc::method(msg) {
            "notifications/initialized" => Notification::Initialized,
            "notifications/cancelled" => match crate::jsonrpc::at(msg, &["params", "requestId"]) {
                Some(id) => Notification::Cancelled {
                    request_id: id.clone(),
                },
                None => Notification::Other,
            },
            "notifications/roots/list_changed" => Notification::RootsListChanged,
            _ => Notification::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn method(v: Value) -> Method {
        match Message::parse(v) {
            Ok(Message::Request(r)) => r.method,
            _ => panic!("not a request"),
        }
    }

    #[test]
    fn requests_are_parsed_into_their_routing_facts() {
        let m = method(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "t", "arguments": {"x": 1}}}));
        assert!(matches!(&m, Method::CallTool { name } if name == "t"));
        assert_eq!(m.item_name(), Some("t"));
        assert!(m.may_need_input());
        let m = method(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"cursor": "c"}}));
        assert!(matches!(&m, Method::List { kind: ListKind::Tools, cursor: Some(c) } if c == "c"));
        assert!(m.cacheable());
        let m = method(
            json!({"jsonrpc": "2.0", "id": 1, "method": "completion/complete",
            "params": {"ref": {"type": "ref/resource", "uri": "file:///a"}}}),
        );
        assert!(matches!(m, Method::Complete(Reference::Resource(u)) if u == "file:///a"));
        let m = method(
            json!({"jsonrpc": "2.0", "id": "l", "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": true, "resourceSubscriptions": ["a://x"]}}}),
        );
        assert!(
            matches!(&m, Method::Listen(f) if f.tools && !f.prompts && f.uris == ["a://x"]),
            "{m:?}"
        );
        let m = method(json!({"jsonrpc": "2.0", "id": 1, "method": "no/such"}));
        assert!(matches!(&m, Method::Unknown(n) if n == "no/such"));
    }

    #[test]
    fn params_that_do_not_fit_are_invalid() {
        for (msg, why) in [
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call"}),
                "missing name",
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "resources/read", "params": {"uri": 7}}),
                "missing uri",
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "prompts/list", "params": {"cursor": 1}}),
                "cursor must be a string",
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "logging/setLevel", "params": {}}),
                "missing level",
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {}}),
                "missing notifications",
            ),
            (
                json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen",
                    "params": {"notifications": {"resourceSubscriptions": [1]}}}),
                "resourceSubscriptions must be strings",
            ),
        ] {
            match method(msg) {
                Method::Invalid { error, .. } => {
                    assert_eq!(error.code(), -32602);
                    assert_eq!(error.message(), why);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn notifications_responses_and_invalid_messages() {
        let n = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 4}});
        assert!(matches!(
            Message::parse(n),
            Ok(Message::Notification(Notification::Cancelled { request_id }, _)) if request_id == 4
        ));
        let r = json!({"jsonrpc": "2.0", "id": "sb-1", "result": {}});
        assert!(matches!(Message::parse(r), Ok(Message::Response(_))));
        let bad = json!({"jsonrpc": "2.0", "id": 2});
        assert!(matches!(Message::parse(bad), Err(Invalid { id }) if id == 2));
        assert!(matches!(Message::parse(json!(7)), Err(Invalid { id }) if id.is_null()));
    }
}
