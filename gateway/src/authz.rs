//! Authorization (`policies.authz`): CEL rules, compiled once per config generation; a request
//! is allowed when any rule evaluates to `true` (a rule that errors, e.g. on a missing claim,
//! counts as false).
//!
//! Rules see these variables:
//!
//! | variable | value |
//! |---|---|
//! | `request.path`, `request.method` | the request line |
//! | `request.headers` | map of lowercase header name to value (repeated headers joined with `, `); credential headers (`authorization`, `cookie`, `x-api-key`, `proxy-authorization`) are left out |
//! | `jwt` | the verified JWT claims (`jwt.sub`, `jwt.scope`, …); `{}` without a JWT |
//! | `api_key.name` | the API key's name; `api_key` is `{}` without one |
//! | `mcp.method` | the MCP JSON-RPC method (`tools/call`, …) |
//! | `mcp.tool.name`, `mcp.prompt.name`, `mcp.resource.uri` | what an MCP request names |
//! | `llm.model` | the model an LLM request asks for |
//!
//! Two checks use them. The pipeline calls [`Authorizer::allows_route`] for every request: it
//! evaluates rules that need only the request and principal, and on MCP and LLM routes rules
//! that mention `mcp` or `llm` count as "decided later" (they cannot be judged before the
//! backend parses the body); on other routes those rules see empty `mcp` and `llm` maps.
//! The MCP and LLM backends call [`Authorizer::allows`] with the full [`AuthzContext`] for each
//! tool, prompt, resource or model: the MCP backend hides denied items from every list and
//! answers requests naming them as if they did not exist; the LLM backend answers 403.
//! [`Authorizer::allows`] also applies an API key's `models`, `tools`, `prompts` and
//! `resources` allow lists. An MCP item is always checked as the method that uses it —
//! `tools/call` with `mcp.tool.name`, `prompts/get` with `mcp.prompt.name`, `resources/read`
//! with `mcp.resource.uri` — also when a list is filtered, a resource subscribed to or a
//! completion asked for, so one rule governs listing and every use. Exactly one of `tool`,
//! `prompt`, `resource` is set: a rule about another kind errors (missing key) and counts as
//! false, so an item is denied unless some rule allows it.

use std::collections::HashMap;
use std::sync::Arc;

use cel::{Context, Program, Value};
use http::HeaderMap;
use switchboard_core::{Access, Item};

use crate::auth::{CLIENT_CREDENTIAL_HEADERS, Principal};
use crate::cel::{Rule, compile_rule, env};
use crate::config::AuthzPolicy;

/// What an MCP request names, for [`AuthzContext::mcp`].
#[derive(Debug, Clone, Copy, Default)]
pub struct McpAttributes<'a> {
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: &'a str,
    /// Tool name (as the client sees it, prefixed when federated).
    pub tool: Option<&'a str>,
    /// Prompt name.
    pub prompt: Option<&'a str>,
    /// Resource URI.
    pub resource: Option<&'a str>,
}

/// Everything a rule may look at. Backends fill what they know; the rest stays `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthzContext<'a> {
    /// The authenticated principal.
    pub principal: Option<&'a Principal>,
    /// Request method.
    pub method: &'a str,
    /// Request path.
    pub path: &'a str,
    /// Request headers.
    pub headers: Option<&'a HeaderMap>,
    /// MCP attributes.
    pub mcp: Option<McpAttributes<'a>>,
    /// The LLM model asked for.
    pub llm_model: Option<&'a str>,
}

/// The compiled `authz` policy of a route (empty when the route has none). Cheap to clone;
/// the policy stage captures a clone in the request context's [`Access`] for the backends.
#[derive(Clone, Default)]
pub struct Authorizer {
    rules: Arc<[Rule]>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer")
            .field("rules", &self.rules.len())
            .finish()
    }
}

impl Authorizer {
    /// The per-item check MCP and LLM backends receive in the request context: tools, prompts,
    /// resources and models are checked with [`Self::allows`] for `principal`'s request
    /// (`method`, `path`). `None` when nothing could refuse (no rules, no key allow lists), so
    /// unrestricted routes pay nothing per item. It applies to anonymous callers
    /// (`authn: optional`) too.
    pub fn access(
        &self,
        principal: Option<&Principal>,
        method: &str,
        path: &str,
    ) -> Option<Access> {
        let restricted = self.has_rules()
            || principal.is_some_and(|p| p.allowed_models.is_some() || p.restricts_mcp());
        if !restricted {
            return None;
        }
        let authz = self.clone();
        let principal = principal.cloned();
        let method: Arc<str> = Arc::from(method);
        let path: Arc<str> = Arc::from(path);
        Some(Access(Arc::new(move |item| {
            let base = AuthzContext {
                principal: principal.as_ref(),
                method: &method,
                path: &path,
                ..Default::default()
            };
            // An MCP item is checked as the method that uses it (see the module docs): one
            // rule governs listing and every use.
            let (method, tool, prompt, resource) = match item {
                Item::Model(model) => {
                    return authz.allows(&AuthzContext {
                        llm_model: Some(model),
                        ..base
                    });
                }
                Item::Tool(n) => ("tools/call", Some(n), None, None),
                Item::Prompt(n) => ("prompts/get", None, Some(n), None),
                Item::Resource(u) => ("resources/read", None, None, Some(u)),
            };
            authz.allows(&AuthzContext {
                mcp: Some(McpAttributes {
                    method,
                    tool,
                    prompt,
                    resource,
                }),
                ..base
            })
        })))
    }

    /// Compiles a policy; rules that do not compile (already reported by validation) are
    /// dropped, which can only narrow access.
    pub fn new(p: &AuthzPolicy) -> Self {
        let rules: Vec<Rule> = p
            .rules
            .iter()
            .filter_map(|r| compile_rule(r).ok())
            .collect();
        Authorizer {
            rules: rules.into(),
        }
    }

    /// Whether the route has rules.
    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The route-level check. `backend_checks_items` says whether the route's backend calls
    /// [`Authorizer::allows`] per tool, prompt, resource or model (MCP and LLM backends do).
    /// True when there are no rules, when a rule that needs only the request and principal is
    /// true, or, with `backend_checks_items`, when some rule mentions `mcp` or `llm` (the
    /// backend decides those). On other routes such rules are evaluated with `mcp` and `llm`
    /// empty, so a listener-wide tool rule never opens an `http` route.
    pub fn allows_route(&self, cx: &AuthzContext<'_>, backend_checks_items: bool) -> bool {
        if self.rules.is_empty() || (backend_checks_items && self.rules.iter().any(|r| r.deferred))
        {
            return true;
        }
        let ctx = self.context(cx);
        self.rules.iter().any(|r| eval(&r.program, &ctx))
    }

    /// The full check backends call per tool, prompt, resource or model: the API key's allow
    /// lists first, then any rule true (or no rules).
    pub fn allows(&self, cx: &AuthzContext<'_>) -> bool {
        if let Some(p) = cx.principal {
            if let Some(m) = cx.mcp
                && (m.tool.is_some_and(|t| !p.may_use_tool(t))
                    || m.prompt.is_some_and(|n| !p.may_use_prompt(n))
                    || m.resource.is_some_and(|u| !p.may_use_resource(u)))
            {
                return false;
            }
            if let Some(model) = cx.llm_model
                && !p.may_use_model(model)
            {
                return false;
            }
        }
        if self.rules.is_empty() {
            return true;
        }
        let ctx = self.context(cx);
        self.rules.iter().any(|r| eval(&r.program, &ctx))
    }

    fn context(&self, cx: &AuthzContext<'_>) -> Context<'static, 'static> {
        let mut ctx = Context::with_env(env().clone());
        let mut headers: HashMap<String, String> = HashMap::new();
        if let Some(h) = cx.headers {
            for (k, v) in h {
                if CLIENT_CREDENTIAL_HEADERS.contains(k) {
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
        }
        let request: HashMap<&str, Value> = HashMap::from([
            ("path", Value::from(cx.path.to_string())),
            ("method", Value::from(cx.method.to_string())),
            ("headers", Value::from(headers)),
        ]);
        ctx.add_variable_from_value("request", request);
        let jwt = cx
            .principal
            .filter(|p| p.claims.is_object())
            .and_then(|p| cel::to_value(&*p.claims).ok())
            .unwrap_or_else(|| Value::from(HashMap::<String, Value>::new()));
        ctx.add_variable_from_value("jwt", jwt);
        let mut api_key: HashMap<&str, Value> = HashMap::new();
        if let Some(name) = cx.principal.and_then(|p| p.api_key.as_deref()) {
            api_key.insert("name", Value::from(name.to_string()));
        }
        ctx.add_variable_from_value("api_key", api_key);
        let mut mcp: HashMap<&str, Value> = HashMap::new();
        if let Some(m) = cx.mcp {
            mcp.insert("method", Value::from(m.method.to_string()));
            let named =
                |key: &'static str, v: &str| HashMap::from([(key, Value::from(v.to_string()))]);
            if let Some(t) = m.tool {
                mcp.insert("tool", Value::from(named("name", t)));
            }
            if let Some(p) = m.prompt {
                mcp.insert("prompt", Value::from(named("name", p)));
            }
            if let Some(r) = m.resource {
                mcp.insert("resource", Value::from(named("uri", r)));
            }
        }
        ctx.add_variable_from_value("mcp", mcp);
        let mut llm: HashMap<&str, Value> = HashMap::new();
        if let Some(model) = cx.llm_model {
            llm.insert("model", Value::from(model.to_string()));
        }
        ctx.add_variable_from_value("llm", llm);
        ctx
    }
}

fn eval(p: &Program, ctx: &Context<'_, '_>) -> bool {
    matches!(p.execute(ctx), Ok(Value::Bool(true)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::PrincipalKind;

    fn jwt(claims: serde_json::Value) -> Principal {
        Principal {
            kind: PrincipalKind::Jwt,
            subject: claims["sub"].as_str().unwrap_or("").into(),
            claims: Arc::new(claims),
            api_key: None,
            team: None,
            scopes: Arc::from([]),
            allowed_models: None,
            allowed_tools: None,
            allowed_prompts: None,
            allowed_resources: None,
            virtual_key: None,
        }
    }

    fn authz(rules: &[&str]) -> Authorizer {
        Authorizer::new(&AuthzPolicy {
            rules: rules.iter().map(|s| s.to_string()).collect(),
        })
    }

    #[test]
    fn validation_reports_bad_rules_with_paths() {
        let p = AuthzPolicy {
            rules: vec![
                "jwt.sub == 'alice'".into(),
                "jwt.sub ==".into(),
                "user.name == 'x'".into(),
                "  ".into(),
            ],
        };
        let issues = p.validate("listeners[0].policies.authz");
        let paths: Vec<_> = issues.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listeners[0].policies.authz.rules[1]",
                "listeners[0].policies.authz.rules[2]",
                "listeners[0].policies.authz.rules[3]"
            ]
        );
        assert!(issues[0].1.contains("not a valid CEL expression"));
        assert!(issues[1].1.contains("unknown variable `user`"));
    }

    #[test]
    fn claims_and_request() {
        let a = authz(&[
            r#"jwt.sub == "alice""#,
            r#"request.method == "GET" && request.headers["x-team"] == "ml""#,
        ]);
        let alice = jwt(serde_json::json!({"sub": "alice"}));
        let bob = jwt(serde_json::json!({"sub": "bob", "groups": ["ml"]}));
        let mut h = HeaderMap::new();
        let base = AuthzContext {
            method: "POST",
            path: "/x",
            headers: Some(&h),
            ..Default::default()
        };
        assert!(a.allows_route(
            &AuthzContext {
                principal: Some(&alice),
                ..base
            },
            false
        ));
        assert!(!a.allows_route(
            &AuthzContext {
                principal: Some(&bob),
                ..base
            },
            false
        ));
        assert!(
            !a.allows_route(&base, false),
            "anonymous: no claims, no access"
        );
        h.insert("x-team", "ml".parse().unwrap());
        let get = AuthzContext {
            principal: Some(&bob),
            method: "GET",
            path: "/x",
            headers: Some(&h),
            ..Default::default()
        };
        assert!(a.allows_route(&get, false));
        let groups = authz(&[r#""ml" in jwt.groups"#]);
        assert!(groups.allows(&get));
        assert!(!groups.allows(&AuthzContext {
            principal: Some(&alice),
            ..get
        }));
    }

    #[test]
    fn credentials_are_not_visible_to_rules() {
        let a = authz(&[r#"has(request.headers.authorization)"#]);
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer x".parse().unwrap());
        assert!(!a.allows(&AuthzContext {
            headers: Some(&h),
            ..Default::default()
        }));
    }

    #[test]
    fn mcp_tools_and_llm_models() {
        let a = authz(&[
            r#"mcp.method == "tools/call" && mcp.tool.name.startsWith("search__")"#,
            r#"api_key.name == "ci" && llm.model == "small""#,
        ]);
        let call = |tool| AuthzContext {
            mcp: Some(McpAttributes {
                method: "tools/call",
                tool: Some(tool),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(a.allows(&call("search__web")));
        assert!(!a.allows(&call("files__delete")));
        // Route level: an MCP or LLM backend decides rules about mcp/llm; on any other route
        // they are false, so a tool rule never opens an http route.
        assert!(a.allows_route(&AuthzContext::default(), true));
        assert!(!a.allows_route(&AuthzContext::default(), false));
        let ci = Principal {
            kind: PrincipalKind::ApiKey,
            subject: "ci".into(),
            claims: Arc::new(serde_json::Value::Null),
            api_key: Some("ci".into()),
            team: None,
            scopes: Arc::from([]),
            allowed_models: None,
            allowed_tools: Some(Arc::from(["search__web".to_string()])),
            allowed_prompts: None,
            allowed_resources: None,
            virtual_key: None,
        };
        let model = |m| AuthzContext {
            principal: Some(&ci),
            llm_model: Some(m),
            ..Default::default()
        };
        assert!(a.allows(&model("small")));
        assert!(!a.allows(&model("large")));
        // The key's tool allow list applies even when a rule would allow.
        let restricted = AuthzContext {
            principal: Some(&ci),
            ..call("search__images")
        };
        assert!(!a.allows(&restricted));
        assert!(
            !Authorizer::default().allows(&restricted),
            "allow lists apply without rules"
        );
        assert!(Authorizer::default().allows(&call("anything")));
    }

    #[test]
    fn mcp_items_are_denied_unless_a_rule_about_their_kind_allows() {
        let item = |method, tool, prompt, resource| AuthzContext {
            mcp: Some(McpAttributes {
                method,
                tool,
                prompt,
                resource,
            }),
            ..Default::default()
        };
        let tool = |n| item("tools/call", Some(n), None, None);
        let prompt = |n| item("prompts/get", None, Some(n), None);
        let resource = |u| item("resources/read", None, None, Some(u));
        // A rule about tools says nothing about prompts or resources: they are denied.
        let a = authz(&[r#"mcp.tool.name == "echo""#]);
        assert!(a.allows(&tool("echo")));
        assert!(!a.allows(&tool("other")));
        assert!(!a.allows(&prompt("echo")));
        assert!(!a.allows(&resource("file:///echo")));
        // The README's examples.
        let a = authz(&[
            r#"has(mcp.resource) && mcp.resource.uri.startsWith("file:///public/")"#,
            r#"has(mcp.prompt) && jwt.sub == "alice""#,
        ]);
        assert!(a.allows(&resource("file:///public/a")));
        assert!(!a.allows(&resource("file:///private/a")));
        assert!(!a.allows(&tool("file:///public/a")));
        let alice = jwt(serde_json::json!({"sub": "alice"}));
        assert!(a.allows(&AuthzContext {
            principal: Some(&alice),
            ..prompt("p")
        }));
        assert!(!a.allows(&prompt("p")), "anonymous");
        // A key's lists apply per kind, as a group.
        let key = Principal {
            kind: PrincipalKind::ApiKey,
            subject: "k".into(),
            claims: Arc::new(serde_json::Value::Null),
            api_key: Some("k".into()),
            team: None,
            scopes: Arc::from([]),
            allowed_models: None,
            allowed_tools: None,
            allowed_prompts: Some(Arc::from(["p".to_string()])),
            allowed_resources: None,
            virtual_key: None,
        };
        let open = Authorizer::default();
        let with = |cx: AuthzContext<'static>| AuthzContext {
            principal: Some(&key),
            ..cx
        };
        assert!(open.allows(&with(prompt("p"))));
        assert!(!open.allows(&with(prompt("q"))));
        assert!(!open.allows(&with(tool("t"))), "no tools list: no tools");
        assert!(!open.allows(&with(resource("r"))));
    }
}
