//! Model routing rules (`llm.virtual_models`): a name clients send that resolves, per request,
//! to one of the route's `models` by the first rule whose CEL condition is true, else the
//! virtual model's `default`. Rules are compiled once per config ([`Routes::compile`]) and see
//! three variables:
//!
//! * `request.headers`: the request's headers, lower-case names, repeated ones joined with
//!   `, `; client credentials (`authorization`, `cookie`, `x-api-key`) left out;
//! * `caller`: `subject`, `api_key` and `team` of the authenticated caller (empty strings when
//!   unknown);
//! * `llm`: what the request asks for: `model` (the virtual name), `format` (`openai` or
//!   `anthropic`), `prompt_chars` (characters of the text in `system`, `messages`,
//!   `instructions` and `input`), `prompt_tokens` (the gateway's token estimate,
//!   [`crate::estimate::estimate_tokens`]), `tools` (tools or functions offered), `vision` (an
//!   image in the prompt), `stream`, `max_tokens` (0 when unset).
//!
//! A rule that errors (a missing header, a type mismatch) counts as false.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program};

use crate::rule::env;
pub use crate::rule::{VARIABLES, compile_rule};
use http::HeaderMap;
use serde_json::{Value, json};
use switchboard_core::RequestContext;

use crate::config::VirtualModelConfig;
use crate::format::ApiFormat;

/// Headers never shown to rules: the client's credentials.
const HIDDEN_HEADERS: [&str; 3] = ["authorization", "cookie", "x-api-key"];

struct Rule {
    when: Program,
    to: Arc<str>,
}

struct Virtual {
    rules: Vec<Rule>,
    default: Arc<str>,
}

/// The compiled `virtual_models` of a route.
#[derive(Default)]
pub struct Routes {
    by_name: HashMap<String, Virtual>,
    order: Vec<String>,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("virtual_models", &self.order)
            .finish()
    }
}

/// What a rule may look at, of one request.
pub struct Facts<'a> {
    /// The request's headers.
    pub headers: &'a HeaderMap,
    /// The caller.
    pub ctx: &'a RequestContext,
    /// The request body.
    pub body: &'a serde_json::Map<String, Value>,
    /// The caller's API format.
    pub format: ApiFormat,
}

impl Routes {
    /// Compiles the rules (validated already: a rule that does not compile here is an error).
    pub fn compile(cfg: &[VirtualModelConfig]) -> Result<Self, String> {
        let mut by_name = HashMap::new();
        let mut order = Vec::new();
        for v in cfg {
            let rules = v
                .rules
                .iter()
                .map(|r| {
                    Ok(Rule {
                        when: compile_rule(&r.when)?,
                        to: r.to.as_str().into(),
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            order.push(v.name.clone());
            by_name.insert(
                v.name.clone(),
                Virtual {
                    rules,
                    default: v.default.as_str().into(),
                },
            );
        }
        Ok(Routes { by_name, order })
    }

    /// Whether there are no virtual models.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The virtual model names, in config order.
    pub fn names(&self) -> &[String] {
        &self.order
    }

    /// Whether `name` is a virtual model.
    pub fn is_virtual(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The model `name` resolves to for this request: `None` when `name` is not virtual.
    pub fn resolve(&self, name: &str, facts: &Facts<'_>) -> Option<Arc<str>> {
        let v = self.by_name.get(name)?;
        if v.rules.is_empty() {
            return Some(v.default.clone());
        }
        let ctx = context(name, facts);
        let hit = v
            .rules
            .iter()
            .find(|r| matches!(r.when.execute(&ctx), Ok(cel::Value::Bool(true))));
        Some(hit.map_or_else(|| v.default.clone(), |r| r.to.clone()))
    }
}

/// The rule variables for one request.
fn context(model: &str, f: &Facts<'_>) -> Context<'static, 'static> {
    let mut ctx = Context::with_env(env().clone());
    let mut headers: HashMap<String, String> = HashMap::new();
    for (k, v) in f.headers {
        if HIDDEN_HEADERS.contains(&k.as_str()) {
            continue;
        }
        let v = String::from_utf8_lossy(v.as_bytes());
        headers
            .entry(k.as_str().to_string())
            .and_modify(|e| {
                e.push_str(", ");
                e.push_str(&v);
            })
            .or_insert_with(|| v.into_owned());
    }
    let features = Features::of(f.body);
    let max_tokens = ["max_tokens", "max_completion_tokens", "max_output_tokens"]
        .iter()
        .find_map(|k| f.body.get(*k).and_then(Value::as_u64))
        .unwrap_or(0);
    let stream = f
        .body
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let format = match f.format {
        ApiFormat::Anthropic => "anthropic",
        _ => "openai",
    };
    let vars = [
        ("request", json!({"headers": headers})),
        (
            "caller",
            json!({
                "subject": f.ctx.principal.as_deref().unwrap_or(""),
                "api_key": f.ctx.api_key.as_deref().unwrap_or(""),
                "team": f.ctx.team.as_deref().unwrap_or(""),
            }),
        ),
        (
            "llm",
            json!({
                "model": model,
                "format": format,
                "prompt_chars": features.prompt_chars,
                "prompt_tokens": crate::estimate::estimate_tokens(f.body),
                "tools": features.tools,
                "vision": features.vision,
                "stream": stream,
                "max_tokens": max_tokens,
            }),
        ),
    ];
    for (name, v) in vars {
        if let Ok(v) = cel::to_value(&v) {
            ctx.add_variable_from_value(name, v);
        }
    }
    ctx
}

/// What a request's body asks for, beside its parameters.
#[derive(Debug, Default, PartialEq, Eq)]
struct Features {
    prompt_chars: u64,
    tools: bool,
    vision: bool,
}

impl Features {
    fn of(body: &serde_json::Map<String, Value>) -> Self {
        fn walk(v: &Value, f: &mut Features) {
            match v {
                Value::String(s) => f.prompt_chars += s.chars().count() as u64,
                Value::Array(a) => a.iter().for_each(|v| walk(v, f)),
                Value::Object(o) => {
                    let kind = o.get("type").and_then(Value::as_str);
                    if matches!(kind, Some("image" | "image_url" | "input_image")) {
                        f.vision = true;
                        return;
                    }
                    // Only the text of a block counts, not its `type` or `role`.
                    for (k, v) in o {
                        if !matches!(k.as_str(), "type" | "role" | "id" | "tool_call_id") {
                            walk(v, f);
                        }
                    }
                }
                _ => {}
            }
        }
        let mut f = Features::default();
        for key in ["system", "messages", "instructions", "input"] {
            if let Some(v) = body.get(key) {
                walk(v, &mut f);
            }
        }
        let offered = |k: &str| {
            body.get(k)
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
        };
        f.tools = offered("tools") || offered("functions");
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(o) => o,
            _ => unreachable!(),
        }
    }

    #[test]
    fn features_of_openai_and_anthropic_bodies() {
        let f = Features::of(&body(json!({
            "model": "auto",
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "héllo"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}],
            "tools": [{"type": "function", "function": {"name": "f"}}]
        })));
        assert_eq!(
            f,
            Features {
                prompt_chars: 5,
                tools: true,
                vision: true
            }
        );
        let f = Features::of(&body(json!({
            "model": "auto", "system": "abc", "max_tokens": 5,
            "messages": [{"role": "user", "content": "de"}]
        })));
        assert_eq!(
            f,
            Features {
                prompt_chars: 5,
                tools: false,
                vision: false
            }
        );
    }
}
