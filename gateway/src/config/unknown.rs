//! Finds every unknown key in one pass by walking the parsed value against the JSON Schema
//! derived from the config types. serde stops at the first unknown field; users fixing a file
//! want all of them at once, each with a "did you mean".

use std::sync::OnceLock;

use serde_json::{Map, Value};

/// `(key path, message)` for each key the schema does not allow.
pub(super) fn unknown_keys(value: &Value) -> Vec<(String, String)> {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(super::json_schema);
    let defs = schema.get("$defs").and_then(Value::as_object);
    let mut out = Vec::new();
    walk(schema, value, String::new(), defs, &mut out);
    out
}

fn resolve<'a>(mut schema: &'a Value, defs: Option<&'a Map<String, Value>>) -> &'a Value {
    while let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        match r.strip_prefix("#/$defs/").and_then(|n| defs?.get(n)) {
            Some(s) => schema = s,
            None => break,
        }
    }
    schema
}

/// The object-shaped alternative of a schema (`Option<T>` becomes `anyOf: [T, null]`).
fn object_schema<'a>(schema: &'a Value, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    let schema = resolve(schema, defs);
    if schema.get("properties").is_some() || schema.get("additionalProperties").is_some() {
        return Some(schema);
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            for alt in alts {
                if let Some(s) = object_schema(alt, defs) {
                    return Some(s);
                }
            }
        }
    }
    None
}

fn array_items<'a>(schema: &'a Value, defs: Option<&'a Map<String, Value>>) -> Option<&'a Value> {
    let schema = resolve(schema, defs);
    if let Some(items) = schema.get("items") {
        return Some(items);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            for alt in alts {
                if let Some(s) = array_items(alt, defs) {
                    return Some(s);
                }
            }
        }
    }
    None
}

fn walk(
    schema: &Value,
    value: &Value,
    path: String,
    defs: Option<&Map<String, Value>>,
    out: &mut Vec<(String, String)>,
) {
    match value {
        Value::Object(map) => {
            let Some(schema) = object_schema(schema, defs) else {
                return;
            };
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if let Some(prop) = props.and_then(|p| p.get(key)) {
                    walk(prop, child, child_path, defs, out);
                } else if let Some(extra) = additional.filter(|a| a.is_object()) {
                    walk(extra, child, child_path, defs, out);
                } else if additional == Some(&Value::Bool(false)) {
                    let known: Vec<&str> = props
                        .map(|p| p.keys().map(String::as_str).collect())
                        .unwrap_or_default();
                    out.push((child_path, unknown_message(key, &known)));
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = array_items(schema, defs) {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, format!("{path}[{i}]"), defs, out);
                }
            }
        }
        _ => {}
    }
}

fn unknown_message(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, k)) => format!("unknown key `{key}`; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown key `{key}`"),
        None => format!("unknown key `{key}`; expected one of: {}", known.join(", ")),
    }
}
