//! Agent card rewriting: the card a client fetches through the gateway must send it back to the
//! gateway, and must not promise authentication or signatures that no longer hold.
//!
//! - Every JSON-RPC interface URL (1.0 `supportedInterfaces[]`, 0.3 `url` and
//!   `additionalInterfaces[]`) becomes the route's public URL plus the path the agent gave,
//!   relative to the upstream's base path (so an agent serving JSON-RPC at `/rpc` is reached at
//!   `{public}/rpc`). The host in the agent's URL is ignored: agents often advertise a name
//!   only they resolve.
//! - Interfaces of other bindings (gRPC, HTTP+JSON) are dropped: this route proxies JSON-RPC
//!   only, where it can see methods, tasks and push URLs.
//! - Security schemes and requirements (card and skills) are replaced by the route's own
//!   authentication ([`RouteSecurity`]); the agent's credentials are the gateway's business.
//! - Signatures are dropped: they covered the original card and would no longer verify.

use serde_json::{Map, Value, json};

/// What the route's own authentication looks like in a card: built from the route's
/// `policies.authn` ([`RouteSecurity::from_authn`]); empty (no schemes advertised) without it.
#[derive(Debug, Clone, Default)]
pub struct RouteSecurity {
    /// `securitySchemes` to advertise (name → scheme object, 1.0 shape).
    pub schemes: Map<String, Value>,
    /// 1.0 `securityRequirements` (each `{"schemes": {name: {"list": [scopes]}}}`).
    pub requirements: Vec<Value>,
}

impl RouteSecurity {
    /// A `bearer` HTTP scheme (JWT, with the route's required scopes) and an API-key header
    /// scheme, each an alternative requirement, as the route's authn accepts them.
    pub fn from_authn(authn: &crate::config::AuthnPolicy) -> Self {
        let mut sec = RouteSecurity::default();
        if authn.jwt.is_some() {
            sec.schemes.insert(
                "bearer".into(),
                json!({"httpAuthSecurityScheme": {"scheme": "Bearer", "bearerFormat": "JWT"}}),
            );
            sec.requirements
                .push(json!({"schemes": {"bearer": {"list": authn.required_scopes.clone()}}}));
        }
        if !authn.api_keys.is_empty() {
            sec.schemes.insert(
                "apiKey".into(),
                json!({"apiKeySecurityScheme": {"location": "header", "name": "x-api-key"}}),
            );
            sec.requirements
                .push(json!({"schemes": {"apiKey": {"list": []}}}));
        }
        sec
    }
}

/// What a rewrite changed, for the log line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Signatures removed.
    pub signatures_dropped: usize,
    /// Interfaces removed (not JSON-RPC), by binding.
    pub interfaces_dropped: Vec<String>,
}

/// Rewrites `card` in place. `public` is the route's public URL without a trailing slash;
/// `base_path` the upstream URL's path without a trailing slash.
pub fn rewrite(
    card: &mut Value,
    public: &str,
    base_path: &str,
    security: &RouteSecurity,
) -> Rewritten {
    let mut out = Rewritten::default();
    let Some(obj) = card.as_object_mut() else {
        return out;
    };
    let map = |u: &str| map_url(u, public, base_path);

    if let Some(Value::Array(ifaces)) = obj.get_mut("supportedInterfaces") {
        ifaces.retain(|i| {
            let binding = i
                .get("protocolBinding")
                .and_then(Value::as_str)
                .unwrap_or("JSONRPC");
            let keep = binding.eq_ignore_ascii_case("JSONRPC");
            if !keep {
                out.interfaces_dropped.push(binding.to_owned());
            }
            keep
        });
        for i in ifaces.iter_mut() {
            if let Some(u) = i.get("url").and_then(Value::as_str) {
                let mapped = map(u);
                i["url"] = Value::String(mapped);
            }
        }
    }

    // 0.3: `url` is the preferred transport's; make it the JSON-RPC one.
    let preferred = obj
        .get("preferredTransport")
        .and_then(Value::as_str)
        .unwrap_or("JSONRPC")
        .to_owned();
    let mut jsonrpc_url = preferred
        .eq_ignore_ascii_case("JSONRPC")
        .then(|| obj.get("url").and_then(Value::as_str).map(str::to_owned))
        .flatten();
    if let Some(Value::Array(extra)) = obj.get_mut("additionalInterfaces") {
        extra.retain(|i| {
            let t = i.get("transport").and_then(Value::as_str).unwrap_or("");
            let keep = t.eq_ignore_ascii_case("JSONRPC");
            if !keep {
                out.interfaces_dropped.push(t.to_owned());
            }
            keep
        });
        for i in extra.iter_mut() {
            if let Some(u) = i.get("url").and_then(Value::as_str) {
                if jsonrpc_url.is_none() {
                    jsonrpc_url = Some(u.to_owned());
                }
                let mapped = map(u);
                i["url"] = Value::String(mapped);
            }
        }
    }
    if obj.contains_key("url") {
        match jsonrpc_url {
            Some(u) => {
                obj.insert("url".into(), Value::String(map(&u)));
                if obj.contains_key("preferredTransport") {
                    obj.insert("preferredTransport".into(), Value::String("JSONRPC".into()));
                }
            }
            // No JSON-RPC endpoint at all: point at the route anyway (its JSON-RPC errors
            // explain more than a dead upstream URL would).
            None => {
                obj.insert("url".into(), Value::String(format!("{public}/")));
                obj.insert("preferredTransport".into(), Value::String("JSONRPC".into()));
            }
        }
    }

    for key in ["securitySchemes", "security", "securityRequirements"] {
        obj.remove(key);
    }
    if let Some(Value::Array(skills)) = obj.get_mut("skills") {
        for s in skills.iter_mut().filter_map(Value::as_object_mut) {
            s.remove("security");
            s.remove("securityRequirements");
        }
    }
    if !security.schemes.is_empty() {
        obj.insert(
            "securitySchemes".into(),
            Value::Object(security.schemes.clone()),
        );
        obj.insert(
            "securityRequirements".into(),
            Value::Array(security.requirements.clone()),
        );
    }

    if let Some(sigs) = obj.remove("signatures") {
        out.signatures_dropped = sigs.as_array().map_or(1, Vec::len);
    }
    out
}

/// `{public}{path relative to base_path}`; the agent's scheme, host and query are not kept.
pub fn map_url(agent_url: &str, public: &str, base_path: &str) -> String {
    let path = match url::Url::parse(agent_url) {
        Ok(u) => u.path().to_owned(),
        // A relative URL: treat it as a path.
        Err(_) => agent_url.split(['?', '#']).next().unwrap_or("").to_owned(),
    };
    let rest = match path.strip_prefix(base_path) {
        Some(r) if base_path.is_empty() || r.is_empty() || r.starts_with('/') => r,
        _ => path.as_str(),
    };
    if rest.is_empty() || rest.starts_with('/') {
        format!("{public}{rest}")
    } else {
        format!("{public}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_paths_relative_to_the_upstream_base() {
        assert_eq!(
            map_url("http://agent:9999/", "https://gw/a", ""),
            "https://gw/a/"
        );
        assert_eq!(
            map_url("http://agent:9999", "https://gw/a", ""),
            "https://gw/a/"
        );
        assert_eq!(
            map_url("http://other/base/rpc", "https://gw/a", "/base"),
            "https://gw/a/rpc"
        );
        assert_eq!(
            map_url("http://other/elsewhere/rpc", "https://gw/a", "/base"),
            "https://gw/a/elsewhere/rpc"
        );
        assert_eq!(
            map_url("http://x/basement", "https://gw/a", "/base"),
            "https://gw/a/basement"
        );
    }

    #[test]
    fn rewrites_a_mixed_card() {
        let mut card = json!({
            "name": "x",
            "supportedInterfaces": [
                {"url": "http://127.0.0.1:1/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                {"url": "http://127.0.0.1:1/rest", "protocolBinding": "HTTP+JSON"},
                {"url": "127.0.0.1:2", "protocolBinding": "GRPC"},
            ],
            "url": "http://127.0.0.1:1/",
            "preferredTransport": "JSONRPC",
            "additionalInterfaces": [{"url": "http://127.0.0.1:1/", "transport": "JSONRPC"}, {"url": "x", "transport": "GRPC"}],
            "securitySchemes": {"k": {"type": "apiKey"}},
            "security": [{"k": []}],
            "securityRequirements": [{"schemes": {"k": {"list": []}}}],
            "skills": [{"id": "s", "security": [{"k": []}]}],
            "signatures": [{"protected": "p", "signature": "s"}],
        });
        let r = rewrite(
            &mut card,
            "https://gw.example/agents/h",
            "",
            &RouteSecurity::default(),
        );
        assert_eq!(r.signatures_dropped, 1);
        assert_eq!(r.interfaces_dropped, vec!["HTTP+JSON", "GRPC", "GRPC"]);
        assert_eq!(
            card,
            json!({
                "name": "x",
                "supportedInterfaces": [
                    {"url": "https://gw.example/agents/h/", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"},
                ],
                "url": "https://gw.example/agents/h/",
                "preferredTransport": "JSONRPC",
                "additionalInterfaces": [{"url": "https://gw.example/agents/h/", "transport": "JSONRPC"}],
                "skills": [{"id": "s"}],
            })
        );
    }

    #[test]
    fn legacy_card_with_grpc_preferred() {
        let mut card = json!({
            "url": "grpc://agent:50051",
            "preferredTransport": "GRPC",
            "additionalInterfaces": [{"url": "http://agent:8080/a2a", "transport": "JSONRPC"}],
        });
        rewrite(&mut card, "http://gw:1/p", "", &RouteSecurity::default());
        assert_eq!(card["url"], "http://gw:1/p/a2a");
        assert_eq!(card["preferredTransport"], "JSONRPC");
    }

    #[test]
    fn route_security_replaces_the_agents() {
        let mut schemes = Map::new();
        schemes.insert(
            "gw".into(),
            json!({"httpAuthSecurityScheme": {"scheme": "bearer"}}),
        );
        let sec = RouteSecurity {
            schemes,
            requirements: vec![json!({"schemes": {"gw": {"list": []}}})],
        };
        let mut card = json!({"securitySchemes": {"agent": {}}});
        rewrite(&mut card, "http://gw", "", &sec);
        assert_eq!(
            card["securitySchemes"],
            json!({"gw": {"httpAuthSecurityScheme": {"scheme": "bearer"}}})
        );
        assert_eq!(
            card["securityRequirements"][0]["schemes"]["gw"],
            json!({"list": []})
        );
    }

    #[test]
    fn route_authn_becomes_the_cards_security() {
        let authn: crate::config::AuthnPolicy = serde_json::from_value(json!({
            "jwt": {"issuer": "https://idp", "audiences": ["gw"], "jwks": {"url": "https://idp/jwks"}},
            "api_keys": [{"name": "k", "sha256": "00"}],
            "required_scopes": ["a2a:send"]
        }))
        .unwrap();
        let sec = RouteSecurity::from_authn(&authn);
        let mut card =
            json!({"securitySchemes": {"agent": {"type": "oauth2"}}, "security": [{"agent": []}]});
        rewrite(&mut card, "http://gw", "", &sec);
        assert_eq!(
            card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
            "Bearer"
        );
        assert_eq!(
            card["securitySchemes"]["apiKey"]["apiKeySecurityScheme"]["name"],
            "x-api-key"
        );
        assert!(card["securitySchemes"].get("agent").is_none());
        assert_eq!(
            card["securityRequirements"][0]["schemes"]["bearer"]["list"],
            json!(["a2a:send"])
        );
    }
}
