//! Just enough JSON-RPC 2.0 to route raw messages without losing fields: messages stay
//! `serde_json::Value` so unknown fields, `_meta` and progress tokens pass through untouched.

use serde_json::{Value, json};

/// What a JSON-RPC message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Has `method` and `id`.
    Request,
    /// Has `method`, no `id`.
    Notification,
    /// Has `id` and `result` or `error`.
    Response,
    /// Anything else.
    Invalid,
}

/// Classify a message.
pub fn kind(msg: &Value) -> Kind {
    let Some(obj) = msg.as_object() else {
        return Kind::Invalid;
    };
    let has_id = obj
        .get("id")
        .is_some_and(|id| id.is_string() || id.is_number());
    match (obj.get("method").and_then(Value::as_str), has_id) {
        (Some(_), true) => Kind::Request,
        (Some(_), false) if !obj.contains_key("id") => Kind::Notification,
        (None, true) if obj.contains_key("result") || obj.contains_key("error") => Kind::Response,
        _ => Kind::Invalid,
    }
}

/// The `method` of a request or notification.
pub fn method(msg: &Value) -> &str {
    msg.get("method").and_then(Value::as_str).unwrap_or("")
}

/// A success response.
pub fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A request.
pub fn request(id: Value, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// A notification.
pub fn notification(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// `params._meta.progressToken`, if any.
pub fn progress_token(msg: &Value) -> Option<&Value> {
    msg.get("params")?.get("_meta")?.get("progressToken")
}

/// Replace `params._meta.progressToken` (which must exist).
pub fn set_progress_token(msg: &mut Value, token: Value) {
    if let Some(slot) = msg
        .get_mut("params")
        .and_then(|p| p.get_mut("_meta"))
        .and_then(|m| m.get_mut("progressToken"))
    {
        *slot = token;
    }
}

/// The value at `path`, object member by member: `at(msg, &["params", "name"])` is
/// `msg.pointer("/params/name")` for names that are not array indices, without the two
/// `String`s `pointer` builds per step to unescape `~0` and `~1`.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, name| v.as_object()?.get(*name))
}

/// A string parameter, e.g. `params.name`.
pub fn param_str<'a>(msg: &'a Value, key: &str) -> Option<&'a str> {
    msg.get("params")?.get(key)?.as_str()
}

/// The `id` of a message (`null` without one).
pub fn id(msg: &Value) -> Value {
    msg.get("id").cloned().unwrap_or(Value::Null)
}

/// Set the `id` of a message (a no-op on anything but an object).
pub fn set_id(msg: &mut Value, id: Value) {
    if let Some(o) = msg.as_object_mut() {
        o.insert("id".into(), id);
    }
}

/// Set `params.<key>` (creating `params` when absent; a no-op when `params` or the message is
/// not an object).
pub fn set_param(msg: &mut Value, key: &str, value: Value) {
    let Some(o) = msg.as_object_mut() else {
        return;
    };
    if let Some(p) = o
        .entry("params")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()
    {
        p.insert(key.into(), value);
    }
}

/// Whether a reply from a target has the shape of a JSON-RPC response: an object with an
/// object `result`, or an `error` object with an integer `code` and a string `message`.
/// Anything else (arrays, scalars, a result that is not an object) is refused with the
/// reason, so it never reaches a client or the code that rewrites replies.
pub fn check_reply(reply: &Value) -> Result<(), &'static str> {
    let Some(o) = reply.as_object() else {
        return Err("reply is not a JSON object");
    };
    match (o.get("result"), o.get("error")) {
        (Some(Value::Object(_)), None) => Ok(()),
        (Some(_), None) => Err("result is not an object"),
        (None, Some(Value::Object(e))) => {
            if e.get("code").is_some_and(|c| c.is_i64())
                && e.get("message").is_some_and(Value::is_string)
            {
                Ok(())
            } else {
                Err("error is not a JSON-RPC error object")
            }
        }
        (None, Some(_)) => Err("error is not an object"),
        _ => Err("reply has neither result nor error"),
    }
}

/// Turn a JSON-RPC id into a map key that keeps `1` and `"1"` apart.
pub fn id_key(id: &Value) -> String {
    match id {
        Value::String(s) => format!("s:{s}"),
        other => format!("n:{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_finds_what_pointer_finds() {
        let msg = json!({"params": {"name": "t", "_meta": {"a/b": 1, "progressToken": [7]},
            "list": [{"x": 1}]}, "error": null});
        for path in [
            &["params", "name"][..],
            &["params", "_meta", "progressToken"],
            &["params", "_meta", "a/b"],
            &["params", "missing"],
            &["params", "name", "deeper"],
            &["params", "list", "x"],
            &["error", "code"],
            &["params"],
            &[],
        ] {
            let pointer = path
                .iter()
                .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
                .collect::<String>();
            assert_eq!(at(&msg, path), msg.pointer(&pointer), "{pointer}");
        }
        assert_eq!(at(&msg, &["params", "_meta", "a/b"]), Some(&json!(1)));
        assert_eq!(at(&json!([1]), &["0"]), None);
    }

    #[test]
    fn classifies() {
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":1,"method":"x"})),
            Kind::Request
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","method":"x"})),
            Kind::Notification
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":"a","result":{}})),
            Kind::Response
        );
        assert_eq!(
            kind(&json!({"jsonrpc":"2.0","id":null,"method":"x"})),
            Kind::Invalid
        );
        assert_eq!(kind(&json!([1])), Kind::Invalid);
    }

    #[test]
    fn progress_token_round_trip() {
        let mut m =
            json!({"id":1,"method":"tools/call","params":{"_meta":{"progressToken":"p","x":1}}});
        assert_eq!(progress_token(&m), Some(&json!("p")));
        set_progress_token(&mut m, json!(7));
        assert_eq!(m["params"]["_meta"], json!({"progressToken":7,"x":1}));
    }
}
