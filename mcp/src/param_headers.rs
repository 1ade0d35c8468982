//! `Mcp-Param-*` headers (2026-07-28, SEP-2243): a tool's `inputSchema` may mark parameters with
//! `x-mcp-header: "Name"`; a client calling the tool over HTTP mirrors each such argument into an
//! `Mcp-Param-Name` header so intermediaries can route without reading the body, and whoever
//! reads the body must refuse a request whose headers disagree with it.
//!
//! The gateway plays both roles: it mirrors the headers on `tools/call`s it sends to
//! 2026-07-28 targets, and checks the ones its 2026-07-28 clients send. Both need the target's
//! own tool schemas, kept per target in a [`ToolHeaders`] cache filled by every `tools/list`
//! the gateway makes and dropped when the catalogue changes (`list_changed` epoch).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

const PREFIX: &str = "mcp-param-";
const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// One annotated parameter: the header's name part and the argument's path below `arguments`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    pub header: String,
    pub path: Vec<String>,
}

/// Upstream tool name → its bindings, as of one catalogue epoch.
type ByTool = (u64, HashMap<String, Arc<[Binding]>>);

/// Per-target cache: upstream tool name → its bindings, valid for one catalogue epoch.
#[derive(Clone, Default)]
pub(crate) struct ToolHeaders(Arc<RwLock<ByTool>>);

impl ToolHeaders {
    /// Record the tools of one `tools/list` page taken at `epoch`.
    pub fn record(&self, epoch: u64, tools: &[Value]) {
        let mut g = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if g.0 != epoch {
            *g = (epoch, HashMap::new());
        }
        for t in tools {
            if let Some(name) = t.get("name").and_then(Value::as_str) {
                g.1.insert(name.to_string(), bindings(t.get("inputSchema")).into());
            }
        }
    }

    /// The bindings of tool `name`, if its schema is known at `epoch`.
    pub fn get(&self, epoch: u64, name: &str) -> Option<Arc<[Binding]>> {
        let g = self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (g.0 == epoch).then(|| g.1.get(name).cloned()).flatten()
    }

    /// The bindings of tool `name` whatever the epoch (what the HTTP client mirrors).
    pub fn any(&self, name: &str) -> Option<Arc<[Binding]>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1
            .get(name)
            .cloned()
    }
}

/// The valid `x-mcp-header` annotations of an `inputSchema`. Only properties reached through
/// `properties` keys count, on primitive types, with token names unique ignoring case; a schema
/// with an invalid annotation yields none (the tool is then not routed by headers at all).
pub(crate) fn bindings(schema: Option<&Value>) -> Vec<Binding> {
    let mut out = Vec::new();
    let mut path = Vec::new();
    if let Some(s) = schema
        && !walk(s, &mut path, &mut out)
    {
        return Vec::new();
    }
    let mut seen = std::collections::HashSet::new();
    if out
        .iter()
        .all(|b| seen.insert(b.header.to_ascii_lowercase()))
    {
        out
    } else {
        Vec::new()
    }
}

fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Binding>) -> bool {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return true;
    };
    for (k, p) in props {
        path.push(k.clone());
        if let Some(h) = p.get("x-mcp-header") {
            let ty = p.get("type").and_then(Value::as_str);
            let ok = h.as_str().filter(|h| is_token(h)).is_some()
                && matches!(ty, Some("string" | "integer" | "boolean" | "number"));
            if !ok {
                return false;
            }
            out.push(Binding {
                header: h.as_str().unwrap_or_default().to_string(),
                path: path.clone(),
            });
        }
        if !walk(p, path, out) {
            return false;
        }
        path.pop();
    }
    true
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The header text of a primitive argument (`None` for null, objects and arrays).
fn plain(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Encode a header value: printable ASCII as is, anything else (and anything that looks like
/// the sentinel, or has surrounding whitespace) as `=?base64?…?=` over its UTF-8 bytes.
pub(crate) fn encode(v: &str) -> String {
    let printable = v.bytes().all(|b| (0x20..0x7f).contains(&b));
    if printable && v.trim() == v && !(v.starts_with(SENTINEL_START) && v.ends_with(SENTINEL_END)) {
        v.to_string()
    } else {
        format!("{SENTINEL_START}{}{SENTINEL_END}", STANDARD.encode(v))
    }
}

/// Decode a header value (`None`: a sentinel with an invalid payload).
pub(crate) fn decode(v: &str) -> Option<String> {
    match v
        .strip_prefix(SENTINEL_START)
        .and_then(|r| r.strip_suffix(SENTINEL_END))
    {
        Some(b64) => String::from_utf8(STANDARD.decode(b64).ok()?).ok(),
        None => Some(v.to_string()),
    }
}

fn argument<'a>(args: Option<&'a Value>, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(args?, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// The `Mcp-Param-*` headers of a `tools/call` with `args`.
pub(crate) fn headers_for(bindings: &[Binding], args: Option<&Value>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for b in bindings {
        let Some(v) = argument(args, &b.path).and_then(plain) else {
            continue;
        };
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(format!("{PREFIX}{}", b.header).as_bytes()),
            HeaderValue::from_str(&encode(&v)),
        ) {
            map.insert(k, v);
        }
    }
    map
}

/// Check a request's `Mcp-Param-*` headers against its `arguments`: an annotated argument
/// present in the body needs its header with the same value (integers and numbers compare as
/// numbers); an absent or null one must not have a header.
pub(crate) fn check(
    bindings: &[Binding],
    args: Option<&Value>,
    headers: &HeaderMap,
) -> Result<(), String> {
    for b in bindings {
        let name = format!("Mcp-Param-{}", b.header);
        let header = headers.get(&name).map(|h| h.to_str().ok().and_then(decode));
        match (argument(args, &b.path), header) {
            (None, None) => {}
            (None, Some(_)) => {
                return Err(format!("{name} header given but the argument is absent"));
            }
            (Some(_), None) => return Err(format!("{name} header missing")),
            (Some(_), Some(None)) => return Err(format!("{name} header is not a valid value")),
            (Some(v), Some(Some(h))) => {
                let same = match v {
                    Value::Number(n) => h.trim().parse::<f64>().ok() == n.as_f64(),
                    other => plain(other).as_deref() == Some(h.as_str()),
                };
                if !same {
                    return Err(format!("{name} header does not match the body"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_encoded_per_the_spec() {
        assert_eq!(encode("us-west1"), "us-west1");
        assert_eq!(encode(" padded"), "=?base64?IHBhZGRlZA==?=");
        assert_eq!(encode("日本"), "=?base64?5pel5pys?=");
        assert_eq!(
            encode("=?base64?literal?="),
            "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
        );
        assert_eq!(encode("a\nb"), "=?base64?YQpi?=");
        for v in ["us-west1", " padded", "日本", "=?base64?literal?=", "a\nb"] {
            assert_eq!(decode(&encode(v)).as_deref(), Some(v));
        }
        assert_eq!(decode("=?base64?***?="), None);
    }

    #[test]
    fn annotations_are_found_and_invalid_ones_void_the_tool() {
        let schema = json!({"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "opts": {"type": "object", "properties": {"shard": {"type": "integer", "x-mcp-header": "Shard"}}},
            "plain": {"type": "string"}}});
        let mut b = bindings(Some(&schema));
        b.sort_by(|x, y| x.header.cmp(&y.header));
        assert_eq!(
            b,
            vec![
                Binding {
                    header: "Region".into(),
                    path: vec!["region".into()]
                },
                Binding {
                    header: "Shard".into(),
                    path: vec!["opts".into(), "shard".into()]
                },
            ]
        );
        let dup = json!({"properties": {"a": {"type": "string", "x-mcp-header": "X"}, "b": {"type": "string", "x-mcp-header": "x"}}});
        assert!(bindings(Some(&dup)).is_empty());
        let bad = json!({"properties": {"a": {"type": "object", "x-mcp-header": "X"}}});
        assert!(bindings(Some(&bad)).is_empty());
        let space = json!({"properties": {"a": {"type": "string", "x-mcp-header": "X Y"}}});
        assert!(bindings(Some(&space)).is_empty());
    }

    #[test]
    fn headers_are_mirrored_and_checked() {
        let schema = json!({"properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "shard": {"type": "integer", "x-mcp-header": "Shard"},
            "dry": {"type": "boolean", "x-mcp-header": "Dry"}}});
        let b = bindings(Some(&schema));
        let args = json!({"region": "eu ", "shard": 7, "dry": null});
        let h = headers_for(&b, Some(&args));
        assert_eq!(h.get("mcp-param-region").unwrap(), "=?base64?ZXUg?=");
        assert_eq!(h.get("mcp-param-shard").unwrap(), "7");
        assert!(
            h.get("mcp-param-dry").is_none(),
            "null arguments have no header"
        );
        assert!(check(&b, Some(&args), &h).is_ok());

        let mut wrong = h.clone();
        wrong.insert("mcp-param-shard", "8".parse().unwrap());
        assert!(check(&b, Some(&args), &wrong).is_err());
        let mut float = h.clone();
        float.insert("mcp-param-shard", "7.0".parse().unwrap());
        assert!(
            check(&b, Some(&args), &float).is_ok(),
            "numbers compare as numbers"
        );
        let mut missing = h.clone();
        missing.remove("mcp-param-region");
        assert!(check(&b, Some(&args), &missing).is_err());
        let mut extra = h.clone();
        extra.insert("mcp-param-dry", "true".parse().unwrap());
        assert!(check(&b, Some(&args), &extra).is_err());
    }

    #[test]
    fn the_cache_follows_the_epoch() {
        let c = ToolHeaders::default();
        c.record(1, &[json!({"name": "t", "inputSchema": {"properties": {"r": {"type": "string", "x-mcp-header": "R"}}}})]);
        assert_eq!(c.get(1, "t").unwrap().len(), 1);
        assert!(c.get(2, "t").is_none());
        assert!(c.any("t").is_some());
        assert!(c.get(1, "u").is_none());
    }
}
