//! From an OpenAPI 3.0/3.1 document to tools: each operation (method + path) becomes one
//! [`Operation`] with its MCP tool definition. What cannot be called faithfully is skipped with
//! a warning (returned to the caller, who logs it), never guessed at.
//!
//! - Name: the `operationId` (characters outside `A-Za-z0-9_.-` become `_`, at most 128). An
//!   operation without one gets `{method}_{path}` with every run of characters outside
//!   `A-Za-z0-9` turned into one `_` (`GET /pets/{petId}` → `get_pets_petId`). A name already
//!   taken skips the later operation.
//! - Description: `summary` and `description`, joined by a blank line (else `METHOD /path`).
//! - Input schema: an object with one property per path, query and header parameter (by its
//!   name; path parameters always required) and, for a JSON request body, a property `body`
//!   holding the body's schema (required when the body is). Two properties of the same name
//!   skip the operation.
//! - `$ref`s (`#/...` pointers within the document) are inlined, in schemas, parameters and
//!   request bodies. A reference to itself (directly or through others) becomes `{}` (any
//!   value) at the point it recurs; a schema that grows past [`MAX_SCHEMA_NODES`] nodes, a
//!   chain of references longer than [`MAX_REF_DEPTH`] or a reference outside the document
//!   skips the operation. OpenAPI 3.0's `nullable: true` becomes a `"null"` type.
//! - Skipped: request bodies without a JSON media type (`application/json` or `*+json`);
//!   required cookie parameters, and required parameters described by `content` or a `style`
//!   other than the default (`form` for query, `simple` for path and header; optional ones are
//!   left out of the schema). Header parameters `Accept`, `Content-Type` and `Authorization`
//!   are ignored, as OpenAPI says.

use serde_json::{Map, Value, json};

/// Longest tool name (MCP).
pub(crate) const MAX_TOOL_NAME: usize = 128;
/// Most schema nodes one operation's input schema may have once references are inlined.
pub(crate) const MAX_SCHEMA_NODES: usize = 20_000;
/// Most references followed in one chain (a reference to a reference to ...), and the deepest
/// nesting of inlined references.
pub(crate) const MAX_REF_DEPTH: usize = 32;

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Location {
    Path,
    Query,
    Header,
}

/// One parameter of an operation.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: String,
    pub location: Location,
    pub required: bool,
    /// Query arrays: repeated keys (`true`, the default) or one comma-separated value.
    pub explode: bool,
}

/// One operation, ready to be called.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// The tool name.
    pub name: String,
    pub method: http::Method,
    /// The path template (`/pets/{petId}`).
    pub path: String,
    pub params: Vec<Param>,
    /// The JSON request body's media type and whether it is required.
    pub body: Option<(String, bool)>,
    /// The MCP tool definition.
    pub tool: Value,
}

/// The tools of one document.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub ops: Vec<Operation>,
    /// `info.title` and `info.version`.
    pub title: String,
    pub version: String,
    /// The first `servers[].url` (server variables replaced by their defaults).
    pub server: Option<String>,
}

/// Turn a parsed document into its operations; returns them and the warnings about what was
/// skipped. Fails when the document is not OpenAPI 3.0/3.1 or no operation is usable.
pub(crate) fn catalog(doc: &Value) -> Result<(Catalog, Vec<String>), String> {
    if let Some(v) = doc.get("swagger") {
        return Err(format!(
            "Swagger {} documents are not supported; convert it to OpenAPI 3",
            v.as_str().unwrap_or("2.0")
        ));
    }
    let version = doc
        .get("openapi")
        .and_then(Value::as_str)
        .ok_or("not an OpenAPI document (no `openapi` version field)")?;
    if !(version.starts_with("3.0") || version.starts_with("3.1")) {
        return Err(format!(
            "OpenAPI {version} is not supported (3.0 and 3.1 are)"
        ));
    }
    let info = doc.get("info");
    let text = |k: &str| {
        info.and_then(|i| i.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut cat = Catalog {
        title: text("title"),
        version: text("version"),
        server: first_server(doc),
        ops: Vec::new(),
    };
    let mut warnings = Vec::new();
    let paths = match doc.get("paths") {
        Some(Value::Object(p)) => p,
        None => &Map::new(),
        Some(_) => return Err("`paths` must be an object".into()),
    };
    let resolver = Resolver { doc };
    for (path, item) in paths {
        let item = match resolver.deref(item) {
            Ok(Value::Object(i)) => i,
            Ok(_) => {
                warnings.push(format!("paths.{path}: not an object, skipped"));
                continue;
            }
            Err(e) => {
                warnings.push(format!("paths.{path}: {e}, skipped"));
                continue;
            }
        };
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let at = format!("{} {path}", method.to_uppercase());
            match operation(&resolver, path, method, item, op) {
                Ok(op) => {
                    if cat.ops.iter().any(|o| o.name == op.name) {
                        warnings.push(format!(
                            "{at}: tool name `{}` is already taken, operation skipped",
                            op.name
                        ));
                    } else {
                        cat.ops.push(op);
                    }
                }
                Err(e) => warnings.push(format!("{at}: {e}, operation skipped")),
            }
        }
    }
    if cat.ops.is_empty() {
        let mut why = "no operation of the document can be a tool".to_string();
        if let Some(w) = warnings.first() {
            why.push_str(&format!(" ({w})"));
        }
        return Err(why);
    }
    Ok((cat, warnings))
}

fn first_server(doc: &Value) -> Option<String> {
    let s = doc.get("servers")?.as_array()?.first()?;
    let mut url = s.get("url")?.as_str()?.to_string();
    if let Some(vars) = s.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            if let Some(d) = v.get("default").and_then(Value::as_str) {
                url = url.replace(&format!("{{{k}}}"), d);
            }
        }
    }
    Some(url)
}

/// The tool name of an operation.
pub(crate) fn tool_name(operation_id: Option<&str>, method: &str, path: &str) -> String {
    let name: String = match operation_id.filter(|s| !s.is_empty()) {
        Some(id) => id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect(),
        None => {
            let mut out = String::new();
            for c in format!("{method}{path}").chars() {
                if c.is_ascii_alphanumeric() {
                    out.push(c);
                } else if !out.ends_with('_') {
                    out.push('_');
                }
            }
            out.trim_matches('_').to_string()
        }
    };
    name.chars().take(MAX_TOOL_NAME).collect()
}

fn operation(
    r: &Resolver<'_>,
    path: &str,
    method: &str,
    item: &Map<String, Value>,
    op: &Value,
) -> Result<Operation, String> {
    let op = r.deref(op)?;
    let name = tool_name(op.get("operationId").and_then(Value::as_str), method, path);
    if name.is_empty() {
        return Err("no usable tool name".into());
    }
    // Path-level parameters, overridden by operation-level ones of the same name and location.
    let mut raw: Vec<&Value> = Vec::new();
    for list in [item.get("parameters"), op.get("parameters")] {
        for p in list.and_then(Value::as_array).into_iter().flatten() {
            let p = r.deref(p)?;
            let key = |p: &Value| (p.get("name").cloned(), p.get("in").cloned());
            raw.retain(|q| key(q) != key(p));
            raw.push(p);
        }
    }
    let mut budget = MAX_SCHEMA_NODES;
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut params = Vec::new();
    for p in raw {
        let pname = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or("a parameter has no `name`")?;
        let loc = p.get("in").and_then(Value::as_str).unwrap_or_default();
        let is_required = loc == "path" || p.get("required").and_then(Value::as_bool) == Some(true);
        let style = p.get("style").and_then(Value::as_str);
        let default_style = if loc == "query" { "form" } else { "simple" };
        let location = match loc {
            "path" => Location::Path,
            "query" => Location::Query,
            "header"
                if ["accept", "content-type", "authorization"]
                    .contains(&pname.to_ascii_lowercase().as_str()) =>
            {
                continue;
            }
            "header" => Location::Header,
            "cookie" if is_required => {
                return Err(format!("cookie parameter `{pname}` is not supported"));
            }
            "cookie" => continue,
            other => return Err(format!("parameter `{pname}` is in `{other}`")),
        };
        let unsupported = if p.get("schema").is_none() {
            Some("has no `schema` (`content` is not supported)")
        } else if style.is_some_and(|s| s != default_style) {
            Some("has an unsupported `style`")
        } else {
            None
        };
        if let Some(why) = unsupported {
            if is_required {
                return Err(format!("parameter `{pname}` {why}"));
            }
            continue;
        }
        let mut schema = r.inline(
            p.get("schema").unwrap_or(&Value::Null),
            &mut budget,
            &mut Vec::new(),
        )?;
        if let (Some(d), Some(s)) = (p.get("description"), schema.as_object_mut())
            && !s.contains_key("description")
        {
            s.insert("description".into(), d.clone());
        }
        if properties.insert(pname.to_string(), schema).is_some() {
            return Err(format!("two parameters are named `{pname}`"));
        }
        if is_required {
            required.push(Value::String(pname.to_string()));
        }
        params.push(Param {
            name: pname.to_string(),
            location,
            required: is_required,
            explode: p.get("explode").and_then(Value::as_bool).unwrap_or(true),
        });
    }
    // Every `{name}` of the path must be a path parameter.
    for var in template_vars(path) {
        if !params
            .iter()
            .any(|p| p.location == Location::Path && p.name == var)
        {
            return Err(format!("path parameter `{var}` is not declared"));
        }
    }
    let mut body = None;
    if let Some(rb) = op.get("requestBody") {
        let rb = r.deref(rb)?;
        let content = rb.get("content").and_then(Value::as_object);
        let media = content.and_then(|c| {
            c.keys()
                .find(|k| k.as_str() == "application/json")
                .or_else(|| c.keys().find(|k| is_json(k)))
        });
        let Some(media) = media else {
            let types: Vec<&str> = content
                .map(|c| c.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(format!(
                "request body is not JSON ({}) and only JSON bodies are supported",
                types.join(", ")
            ));
        };
        let schema = content
            .and_then(|c| c.get(media))
            .and_then(|m| m.get("schema"))
            .map(|s| r.inline(s, &mut budget, &mut Vec::new()))
            .transpose()?
            .unwrap_or_else(|| json!({}));
        let mut schema = schema;
        if let (Some(d), Some(s)) = (rb.get("description"), schema.as_object_mut())
            && !s.contains_key("description")
        {
            s.insert("description".into(), d.clone());
        }
        if properties.insert("body".into(), schema).is_some() {
            return Err("a parameter is named `body`, like the request body".into());
        }
        let is_required = rb.get("required").and_then(Value::as_bool) == Some(true);
        if is_required {
            required.push(json!("body"));
        }
        body = Some((media.clone(), is_required));
    }
    let text = |k: &str| op.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let description = match (text("summary"), text("description")) {
        (Some(s), Some(d)) => format!("{s}\n\n{d}"),
        (Some(s), None) | (None, Some(s)) => s.to_string(),
        (None, None) => format!("{} {path}", method.to_uppercase()),
    };
    let mut input = json!({"type": "object", "properties": properties});
    if !required.is_empty()
        && let Some(o) = input.as_object_mut()
    {
        o.insert("required".into(), Value::Array(required));
    }
    let method = http::Method::from_bytes(method.to_uppercase().as_bytes())
        .map_err(|_| format!("bad method {method}"))?;
    Ok(Operation {
        tool: json!({"name": name, "description": description, "inputSchema": input}),
        name,
        method,
        path: path.to_string(),
        params,
        body,
    })
}

/// `application/json`, `application/problem+json`, `application/json; charset=utf-8`...
pub(crate) fn is_json(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// The `{name}`s of a path template.
pub(crate) fn template_vars(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        let after = rest.get(open + 1..).unwrap_or_default();
        let Some(close) = after.find('}') else { break };
        out.push(after.get(..close).unwrap_or_default());
        rest = after.get(close + 1..).unwrap_or_default();
    }
    out
}

/// Resolves `$ref`s within one document.
struct Resolver<'a> {
    doc: &'a Value,
}

/// Keys whose values are data, not schemas: copied as they are.
const DATA_KEYS: [&str; 5] = ["example", "examples", "default", "enum", "const"];

impl<'a> Resolver<'a> {
    /// The value a `#/...` reference points at.
    fn lookup(&self, r: &str) -> Result<&'a Value, String> {
        let Some(pointer) = r.strip_prefix('#') else {
            return Err(format!("reference `{r}` is outside the document"));
        };
        // A JSON pointer in a URI fragment: percent-encoded (`~0`, `~1` are the pointer's).
        let decoded = percent_decode(pointer);
        self.doc
            .pointer(&decoded)
            .ok_or_else(|| format!("reference `{r}` points at nothing"))
    }

    /// Follow `v`'s `$ref` chain (parameters, request bodies, path items).
    fn deref(&self, mut v: &'a Value) -> Result<&'a Value, String> {
        for _ in 0..MAX_REF_DEPTH {
            match v.get("$ref").and_then(Value::as_str) {
                Some(r) => v = self.lookup(r)?,
                None => return Ok(v),
            }
        }
        Err(format!("references nest deeper than {MAX_REF_DEPTH}"))
    }

    /// `v` with every reference inlined (see the module docs).
    fn inline(
        &self,
        v: &'a Value,
        budget: &mut usize,
        stack: &mut Vec<&'a str>,
    ) -> Result<Value, String> {
        *budget = budget
            .checked_sub(1)
            .ok_or_else(|| format!("its input schema has more than {MAX_SCHEMA_NODES} nodes once references are inlined"))?;
        match v {
            Value::Object(m) => {
                if let Some(r) = m.get("$ref").and_then(Value::as_str) {
                    if stack.contains(&r) {
                        // Recursion: from here on, any value.
                        return Ok(json!({}));
                    }
                    if stack.len() >= MAX_REF_DEPTH {
                        return Err(format!("references nest deeper than {MAX_REF_DEPTH}"));
                    }
                    let target = self.lookup(r)?;
                    stack.push(r);
                    let resolved = self.inline(target, budget, stack);
                    stack.pop();
                    let mut resolved = resolved?;
                    // 3.1 allows keywords next to `$ref` (a description, say): they win.
                    if let Some(o) = resolved.as_object_mut() {
                        for (k, v) in m.iter().filter(|(k, _)| k.as_str() != "$ref") {
                            o.insert(k.clone(), self.inline(v, budget, stack)?);
                        }
                    }
                    return Ok(resolved);
                }
                let mut out = Map::new();
                for (k, v) in m {
                    let v = if DATA_KEYS.contains(&k.as_str()) || k.starts_with("x-") {
                        v.clone()
                    } else {
                        self.inline(v, budget, stack)?
                    };
                    out.insert(k.clone(), v);
                }
                // OpenAPI 3.0: `nullable: true` is 3.1's (and JSON Schema's) `"null"` type.
                if out.get("nullable") == Some(&Value::Bool(true)) {
                    out.remove("nullable");
                    if let Some(Value::String(t)) = out.get("type").cloned() {
                        out.insert("type".into(), json!([t, "null"]));
                    }
                }
                Ok(Value::Object(out))
            }
            Value::Array(a) => a
                .iter()
                .map(|v| self.inline(v, budget, stack))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            other => Ok(other.clone()),
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(paths: Value, components: Value) -> Value {
        json!({"openapi": "3.1.0", "info": {"title": "t", "version": "1"}, "paths": paths, "components": components})
    }

    #[test]
    fn derived_and_sanitized_names() {
        assert_eq!(tool_name(None, "get", "/pets/{petId}"), "get_pets_petId");
        assert_eq!(tool_name(None, "delete", "/a-b/{x}/"), "delete_a_b_x");
        assert_eq!(tool_name(Some("list pets/v2"), "get", "/"), "list_pets_v2");
        assert_eq!(tool_name(Some("a.b-c_d"), "get", "/"), "a.b-c_d");
        assert_eq!(tool_name(Some(&"x".repeat(300)), "get", "/").len(), 128);
    }

    #[test]
    fn refs_are_inlined_and_recursion_is_cut() {
        let d = doc(
            json!({"/n": {"post": {"operationId": "mk", "requestBody": {"$ref": "#/components/requestBodies/N"}}}}),
            json!({
                "requestBodies": {"N": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Node"}}}}},
                "schemas": {"Node": {"type": "object", "properties": {
                    "name": {"type": "string", "nullable": true},
                    "children": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                    "a~b": {"$ref": "#/components/schemas/a~1b", "description": "sibling wins"}}},
                    "a/b": {"type": "integer", "description": "escaped"}}
            }),
        );
        let (c, w) = catalog(&d).unwrap();
        assert!(w.is_empty(), "{w:?}");
        let s = &c.ops[0].tool["inputSchema"];
        assert_eq!(s["required"], json!(["body"]));
        let node = &s["properties"]["body"]["properties"];
        assert_eq!(node["name"]["type"], json!(["string", "null"]));
        assert_eq!(node["children"]["items"], json!({}));
        assert_eq!(
            node["a~b"],
            json!({"type": "integer", "description": "sibling wins"})
        );
        assert_eq!(c.ops[0].body, Some(("application/json".into(), true)));
    }

    #[test]
    fn exponential_refs_hit_the_budget() {
        // Each level references the next twice: 2^30 nodes if inlined blindly.
        let mut schemas = Map::new();
        for i in 0..30 {
            schemas.insert(
                format!("L{i}"),
                json!({"type": "object", "properties": {
                    "a": {"$ref": format!("#/components/schemas/L{}", i + 1)},
                    "b": {"$ref": format!("#/components/schemas/L{}", i + 1)}}}),
            );
        }
        schemas.insert("L30".into(), json!({"type": "string"}));
        let d = doc(
            json!({
                "/big": {"post": {"operationId": "big", "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/L0"}}}}}},
                "/ok": {"get": {"operationId": "ok"}}
            }),
            json!({"schemas": schemas}),
        );
        let (c, w) = catalog(&d).unwrap();
        assert_eq!(c.ops.len(), 1);
        assert!(
            w[0].contains("POST /big") && w[0].contains("nodes"),
            "{w:?}"
        );
    }

    #[test]
    fn unsupported_operations_are_skipped_with_a_reason() {
        let d = doc(
            json!({
                "/upload": {"put": {"operationId": "up", "requestBody": {"content": {"image/png": {}}}}},
                "/c": {"get": {"operationId": "c", "parameters": [{"name": "s", "in": "cookie", "required": true, "schema": {}}]}},
                "/content": {"get": {"operationId": "content", "parameters": [{"name": "f", "in": "query", "required": true, "content": {"application/json": {}}}]}},
                "/style": {"get": {"operationId": "style", "parameters": [{"name": "f", "in": "query", "required": true, "style": "pipeDelimited", "schema": {}}]}},
                "/dup/{id}": {"get": {"operationId": "dup", "parameters": [
                    {"name": "id", "in": "path", "schema": {"type": "string"}},
                    {"name": "id", "in": "query", "schema": {"type": "string"}}]}},
                "/undeclared/{x}": {"get": {"operationId": "undeclared"}},
                "/ext": {"get": {"operationId": "ext", "parameters": [{"$ref": "other.yaml#/p"}]}},
                "/same": {"get": {"operationId": "ok"}, "post": {"operationId": "ok"}},
                "/fine": {"get": {
                    "parameters": [
                        {"name": "opt", "in": "cookie", "schema": {}},
                        {"name": "Authorization", "in": "header", "schema": {}},
                        {"name": "q", "in": "query", "style": "deepObject", "schema": {}},
                        {"name": "X-Trace", "in": "header", "description": "trace id", "schema": {"type": "string"}}]}}
            }),
            json!({}),
        );
        let (c, w) = catalog(&d).unwrap();
        let names: Vec<&str> = c.ops.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["get_fine", "ok"]);
        let all = w.join("\n");
        for needle in [
            "PUT /upload: request body is not JSON (image/png)",
            "GET /c: cookie parameter `s`",
            "GET /content: parameter `f` has no `schema` (`content` is not supported)",
            "GET /style: parameter `f` has an unsupported `style`",
            "GET /dup/{id}: two parameters are named `id`",
            "GET /undeclared/{x}: path parameter `x` is not declared",
            "GET /ext: reference `other.yaml#/p` is outside the document",
            "POST /same: tool name `ok` is already taken",
        ] {
            assert!(all.contains(needle), "{needle} not in {all}");
        }
        let fine = &c.ops[0].tool["inputSchema"];
        assert_eq!(
            fine,
            &json!({"type": "object", "properties": {"X-Trace": {"type": "string", "description": "trace id"}}})
        );
        assert_eq!(c.ops[0].tool["description"], "GET /fine");
    }

    #[test]
    fn path_level_parameters_are_overridden_by_the_operation() {
        let d = doc(
            json!({"/p/{id}": {
                "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}, {"name": "v", "in": "query", "schema": {"type": "string"}}],
                "get": {"operationId": "g", "summary": "S", "description": "D",
                        "parameters": [{"name": "v", "in": "query", "required": true, "explode": false, "schema": {"type": "array"}}]}}}),
            json!({}),
        );
        let (c, _) = catalog(&d).unwrap();
        let op = &c.ops[0];
        assert_eq!(op.tool["description"], "S\n\nD");
        assert_eq!(op.tool["inputSchema"]["required"], json!(["id", "v"]));
        assert_eq!(op.tool["inputSchema"]["properties"]["v"]["type"], "array");
        assert!(!op.params[1].explode);
    }

    #[test]
    fn documents_that_are_not_openapi_3() {
        assert!(
            catalog(&json!({"swagger": "2.0"}))
                .unwrap_err()
                .contains("Swagger 2.0")
        );
        assert!(
            catalog(&json!({"openapi": "4.0.0"}))
                .unwrap_err()
                .contains("4.0.0")
        );
        assert!(
            catalog(&json!({"info": {}}))
                .unwrap_err()
                .contains("`openapi`")
        );
        let e = catalog(&doc(
            json!({"/u": {"put": {"requestBody": {"content": {"text/plain": {}}}}}}),
            json!({}),
        ))
        .unwrap_err();
        assert!(
            e.contains("no operation") && e.contains("text/plain"),
            "{e}"
        );
    }

    #[test]
    fn servers_with_variables() {
        let d = json!({"openapi": "3.0.3", "servers": [{"url": "https://{host}/v1", "variables": {"host": {"default": "api.example"}}}],
                       "paths": {"/x": {"get": {}}}});
        let (c, _) = catalog(&d).unwrap();
        assert_eq!(c.server.as_deref(), Some("https://api.example/v1"));
    }
}
