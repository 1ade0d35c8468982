//! One `tools/call` of an OpenAPI target: the arguments become one REST request (path
//! parameters percent-encoded into the path, query parameters, header parameters, the JSON
//! body), and the reply becomes the tool's result.
//!
//! - Arguments: scalars (strings, numbers, booleans) for path and header parameters; query
//!   parameters also take arrays of scalars (repeated keys, or one comma-separated value with
//!   `explode: false`); any other value is sent as its JSON text. Arguments the operation does
//!   not have are ignored. A missing required argument, or one of the wrong shape (a path
//!   argument cannot be empty, `.` or `..`), is a tool error (`isError: true`) naming it; no
//!   request is sent.
//! - Reply: a 2xx reply is the tool's text content (the body as sent), with
//!   `structuredContent` when it is a JSON object; any other status is a tool error whose text
//!   is `HTTP {status}` and the body. A body over `max_reply_bytes` fails the call (JSON-RPC
//!   -32603), as for every target; a REST service that cannot be reached is -32002.

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use serde_json::{Map, Value, json};

use super::tools::{Location, Operation, is_json};
use super::{Loaded, OpenApi};
use crate::error::{Error, Result};

/// Why a bounded read stopped.
#[derive(Debug)]
pub(crate) enum ReadError {
    TooLarge,
    Io(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge => f.write_str("larger than the limit"),
            ReadError::Io(e) => f.write_str(e),
        }
    }
}

/// A reply's body, at most `max` bytes.
pub(crate) async fn read_bounded(
    resp: reqwest::Response,
    max: usize,
) -> std::result::Result<Vec<u8>, ReadError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(ReadError::TooLarge);
    }
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Io(e.to_string()))?;
        if body.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A tool result that is an error the model can read.
fn tool_error(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// Percent-encode everything but RFC 3986's unreserved characters (one path segment).
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A scalar argument as text; `None` for arrays and objects.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The request an operation's arguments make: URL (with query) and headers from parameters.
pub(crate) fn build(
    base: &str,
    op: &Operation,
    args: &Map<String, Value>,
) -> std::result::Result<(url::Url, HeaderMap), String> {
    let present = |name: &str| args.get(name).filter(|v| !v.is_null());
    let mut missing: Vec<&str> = op
        .params
        .iter()
        .filter(|p| p.required && present(&p.name).is_none())
        .map(|p| p.name.as_str())
        .collect();
    if op.body.as_ref().is_some_and(|(_, req)| *req) && present("body").is_none() {
        missing.push("body");
    }
    if !missing.is_empty() {
        return Err(format!(
            "missing required argument{}: {}",
            if missing.len() > 1 { "s" } else { "" },
            missing.join(", ")
        ));
    }
    let mut path = op.path.clone();
    let mut headers = HeaderMap::new();
    let mut query: Vec<(String, String)> = Vec::new();
    for p in &op.params {
        let Some(v) = present(&p.name) else { continue };
        match p.location {
            Location::Path => {
                let s = scalar(v).ok_or_else(|| {
                    format!("argument `{}` must be a string, number or boolean", p.name)
                })?;
                // `.`, `..` (however encoded, URLs resolve them) and `` would reach another
                // path than the operation's.
                if matches!(s.as_str(), "" | "." | "..") {
                    return Err(format!("argument `{}` cannot be `{s}`", p.name));
                }
                path = path.replace(&format!("{{{}}}", p.name), &encode_segment(&s));
            }
            Location::Query => match v {
                Value::Array(items) => {
                    let items: Vec<String> = items
                        .iter()
                        .map(|i| scalar(i).unwrap_or_else(|| i.to_string()))
                        .collect();
                    if p.explode {
                        query.extend(items.into_iter().map(|i| (p.name.clone(), i)));
                    } else {
                        query.push((p.name.clone(), items.join(",")));
                    }
                }
                v => query.push((p.name.clone(), scalar(v).unwrap_or_else(|| v.to_string()))),
            },
            Location::Header => {
                let s = match v {
                    Value::Array(items) => items
                        .iter()
                        .map(|i| scalar(i).unwrap_or_else(|| i.to_string()))
                        .collect::<Vec<_>>()
                        .join(","),
                    v => scalar(v).unwrap_or_else(|| v.to_string()),
                };
                let (Ok(name), Ok(value)) = (
                    HeaderName::from_bytes(p.name.as_bytes()),
                    HeaderValue::from_str(&s),
                ) else {
                    return Err(format!("argument `{}` is not a valid header value", p.name));
                };
                headers.insert(name, value);
            }
        }
    }
    let mut url = url::Url::parse(&format!("{base}{path}"))
        .map_err(|e| format!("cannot build the request URL: {e}"))?;
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok((url, headers))
}

impl OpenApi {
    /// Call `op` with `args`. The configured headers win over header parameters.
    pub(super) async fn call(
        &self,
        loaded: &Loaded,
        op: &Operation,
        args: &Map<String, Value>,
    ) -> Result<Value> {
        let (url, mut headers) = match build(&loaded.base, op, args) {
            Ok(r) => r,
            Err(why) => return Ok(tool_error(why)),
        };
        for (k, v) in &self.headers_now() {
            headers.insert(k.clone(), v.clone());
        }
        if !headers.contains_key(header::ACCEPT) {
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_static("application/json, */*;q=0.5"),
            );
        }
        let mut req = self.client.here().request(op.method.clone(), url);
        if let (Some((media, _)), Some(body)) =
            (&op.body, args.get("body").filter(|b| !b.is_null()))
        {
            if let Ok(ct) = HeaderValue::from_str(media) {
                headers.insert(header::CONTENT_TYPE, ct);
            }
            req = req.body(serde_json::to_vec(body).unwrap_or_default());
        }
        let resp = crate::trace::headers(req.headers(headers))
            .send()
            .await
            .map_err(|e| self.unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let json_reply = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(is_json);
        let body = read_bounded(resp, self.max_reply)
            .await
            .map_err(|e| match e {
                ReadError::TooLarge => Error::TooLarge {
                    target: self.target.to_string(),
                    limit: self.max_reply,
                },
                ReadError::Io(e) => self.unavailable(e),
            })?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            let mut t = format!("HTTP {}", status.as_u16());
            if let Some(r) = status.canonical_reason() {
                t.push(' ');
                t.push_str(r);
            }
            if !text.is_empty() {
                t.push_str(": ");
                t.push_str(&text);
            }
            return Ok(tool_error(t));
        }
        let mut result = json!({"content": [{"type": "text", "text": text}], "isError": false});
        if json_reply
            && let Ok(v @ Value::Object(_)) = serde_json::from_slice::<Value>(&body)
            && let Some(r) = result.as_object_mut()
        {
            r.insert("structuredContent".into(), v);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tools::catalog;
    use super::*;

    fn op() -> Operation {
        let doc = json!({"openapi": "3.1.0", "paths": {"/pets/{petId}/x": {"post": {
            "operationId": "op",
            "parameters": [
                {"name": "petId", "in": "path", "schema": {"type": "string"}},
                {"name": "tags", "in": "query", "schema": {"type": "array"}},
                {"name": "ids", "in": "query", "explode": false, "schema": {"type": "array"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                {"name": "X-Owner", "in": "header", "schema": {"type": "string"}}],
            "requestBody": {"required": true, "content": {"application/merge-patch+json": {"schema": {}}}}}}}});
        catalog(&doc).unwrap().0.ops.remove(0)
    }

    #[test]
    fn arguments_become_path_query_and_headers() {
        let args = json!({"petId": "a b/c?d%", "tags": ["x y", "z"], "ids": [1, 2], "limit": 5,
                          "X-Owner": "ann", "body": {}, "unknown": 1});
        let (url, headers) = build("http://h/api", &op(), args.as_object().unwrap()).unwrap();
        assert_eq!(
            url.as_str(),
            "http://h/api/pets/a%20b%2Fc%3Fd%25/x?tags=x+y&tags=z&ids=1%2C2&limit=5"
        );
        assert_eq!(headers["x-owner"], "ann");
        assert_eq!(
            op().body,
            Some(("application/merge-patch+json".into(), true))
        );
    }

    #[test]
    fn missing_and_malformed_arguments() {
        let e = build(
            "http://h",
            &op(),
            json!({"petId": null}).as_object().unwrap(),
        )
        .unwrap_err();
        assert_eq!(e, "missing required arguments: petId, body");
        let e = build(
            "http://h",
            &op(),
            json!({"petId": [1], "body": 1}).as_object().unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("`petId` must be a string"), "{e}");
        for bad in ["", ".", ".."] {
            let e = build(
                "http://h/api",
                &op(),
                json!({"petId": bad, "body": 1}).as_object().unwrap(),
            )
            .unwrap_err();
            assert_eq!(e, format!("argument `petId` cannot be `{bad}`"));
        }
        // Dots inside a value are data.
        let (url, _) = build(
            "http://h/api",
            &op(),
            json!({"petId": "a..b", "body": 1}).as_object().unwrap(),
        )
        .unwrap();
        assert_eq!(url.path(), "/api/pets/a..b/x");
        let e = build(
            "http://h",
            &op(),
            json!({"petId": 1, "body": 1, "X-Owner": "a\nb"})
                .as_object()
                .unwrap(),
        )
        .unwrap_err();
        assert!(e.contains("`X-Owner` is not a valid header value"), "{e}");
    }
}
