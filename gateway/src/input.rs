//! Bounds on hostile input that the HTTP layer cannot see: JSON nesting depth, JSON-RPC batch
//! size and message size. The listener already bounds header bytes, body bytes and the time to
//! send headers (`listeners[].limits`); the MCP, A2A and LLM backends call
//! [`parse_jsonrpc`] / [`check_json`] on each body they parse, with the listener's
//! [`JsonLimits`], before handing it to serde.
//!
//! The checks are one linear pass over the bytes without allocation, so a 16 MiB body of `[`
//! costs a scan, not a stack overflow or a 16 MiB tree.

use http::StatusCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `listeners[].limits.json` — limits on JSON bodies the gateway parses itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonLimits {
    /// Deepest nesting of arrays and objects allowed. Default 64.
    #[serde(default = "default_max_depth")]
    pub max_depth: usize,
    /// Most requests in one JSON-RPC batch. Default 64.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Largest single JSON-RPC message (or batch) in bytes. Default 4 MiB.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

impl Default for JsonLimits {
    fn default() -> Self {
        Self {
            max_depth: default_max_depth(),
            max_batch: default_max_batch(),
            max_message_bytes: default_max_message_bytes(),
        }
    }
}

fn default_max_depth() -> usize {
    64
}
fn default_max_batch() -> usize {
    64
}
fn default_max_message_bytes() -> usize {
    4 * 1024 * 1024
}

impl JsonLimits {
    /// Semantic checks for `validate`, as `(key path, message)` pairs.
    pub fn validate(&self, path: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (key, v) in [
            ("max_depth", self.max_depth),
            ("max_batch", self.max_batch),
            ("max_message_bytes", self.max_message_bytes),
        ] {
            if v == 0 {
                out.push((format!("{path}.{key}"), "must be at least 1".into()));
            }
        }
        if self.max_depth > 1024 {
            out.push((
                format!("{path}.max_depth"),
                "must be at most 1024 (deeper nesting only serves stack exhaustion)".into(),
            ));
        }
        out
    }
}

/// Why a JSON body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// The message is larger than `max_message_bytes`.
    #[error("message is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// Arrays and objects nest deeper than `max_depth`.
    #[error("JSON nests deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A JSON-RPC batch has more than `max_batch` entries.
    #[error("JSON-RPC batch has more than {limit} entries")]
    BatchTooLarge {
        /// The limit.
        limit: usize,
    },
    /// A JSON-RPC batch with no entries (invalid per JSON-RPC 2.0).
    #[error("empty JSON-RPC batch")]
    EmptyBatch,
    /// Not valid JSON (including invalid UTF-8).
    #[error("body is not valid JSON")]
    Parse,
}

impl InputError {
    /// HTTP status for this cause.
    pub fn status(&self) -> StatusCode {
        match self {
            InputError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// JSON-RPC error code: -32700 for unparsable input, -32600 (invalid request) otherwise.
    pub fn jsonrpc_code(&self) -> i64 {
        match self {
            InputError::Parse | InputError::TooDeep { .. } => -32700,
            _ => -32600,
        }
    }
}

/// What [`scan`] learned about a JSON text without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting of arrays and objects.
    pub depth: usize,
    /// Whether the top-level value is an array.
    pub top_array: bool,
    /// Number of elements of a top-level array (0 otherwise).
    pub top_len: usize,
}

/// Scans `bytes` once, tracking nesting outside strings; stops early (with
/// [`InputError::TooDeep`]) as soon as `max_depth` is exceeded. It does not validate the
/// JSON; serde does that afterwards on input known to be shallow.
pub fn scan(bytes: &[u8], max_depth: usize) -> Result<Shape, InputError> {
    let mut depth = 0usize;
    let mut max_seen = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut top_array = None;
    let mut top_len = 0usize;
    let mut top_has_value = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                if depth == 1 && top_array == Some(true) && !top_has_value {
                    top_has_value = true;
                    top_len += 1;
                }
            }
            b'[' | b'{' => {
                if depth == 0 && top_array.is_none() {
                    top_array = Some(b == b'[');
                } else if depth == 1 && top_array == Some(true) && !top_has_value {
                    top_has_value = true;
                    top_len += 1;
                }
                depth += 1;
                max_seen = max_seen.max(depth);
                if depth > max_depth {
                    return Err(InputError::TooDeep { limit: max_depth });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => top_has_value = false,
            b' ' | b'\t' | b'\n' | b'\r' | b':' | b',' => {}
            _ => {
                if depth == 0 && top_array.is_none() {
                    top_array = Some(false);
                } else if depth == 1 && top_array == Some(true) && !top_has_value {
                    top_has_value = true;
                    top_len += 1;
                }
            }
        }
    }
    Ok(Shape {
        depth: max_seen,
        top_array: top_array == Some(true),
        top_len,
    })
}

/// Checks size and depth, then parses `bytes` as JSON.
pub fn check_json(bytes: &[u8], limits: &JsonLimits) -> Result<serde_json::Value, InputError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(InputError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    scan(bytes, limits.max_depth)?;
    serde_json::from_slice(bytes).map_err(|_| InputError::Parse)
}

/// A JSON-RPC body: one message or a batch.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonRpcBody {
    /// One message (request, notification or response).
    Single(serde_json::Value),
    /// A batch of messages, never empty and at most `max_batch` long.
    Batch(Vec<serde_json::Value>),
}

/// Checks size, depth and batch length, then parses a JSON-RPC body. The batch length is
/// counted before parsing, so an oversized batch is never materialized.
pub fn parse_jsonrpc(bytes: &[u8], limits: &JsonLimits) -> Result<JsonRpcBody, InputError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(InputError::TooLarge {
            limit: limits.max_message_bytes,
        });
    }
    let shape = scan(bytes, limits.max_depth)?;
    if shape.top_array && shape.top_len > limits.max_batch {
        return Err(InputError::BatchTooLarge {
            limit: limits.max_batch,
        });
    }
    match serde_json::from_slice(bytes).map_err(|_| InputError::Parse)? {
        serde_json::Value::Array(items) if items.is_empty() => Err(InputError::EmptyBatch),
        serde_json::Value::Array(items) if items.len() > limits.max_batch => {
            Err(InputError::BatchTooLarge {
                limit: limits.max_batch,
            })
        }
        serde_json::Value::Array(items) => Ok(JsonRpcBody::Batch(items)),
        v => Ok(JsonRpcBody::Single(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(depth: usize, batch: usize, bytes: usize) -> JsonLimits {
        JsonLimits {
            max_depth: depth,
            max_batch: batch,
            max_message_bytes: bytes,
        }
    }

    #[test]
    fn depth_counts_outside_strings_only() {
        let s = scan(br#"{"a": "[[[[[[", "b": [1, {"c": "\"]]{"}]}"#, 8).unwrap();
        assert_eq!(s.depth, 3);
        assert!(!s.top_array);
        assert_eq!(
            scan(&[b'['; 100], 64),
            Err(InputError::TooDeep { limit: 64 })
        );
    }

    #[test]
    fn deep_json_is_refused_before_serde() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            check_json(deep.as_bytes(), &JsonLimits::default()),
            Err(InputError::TooDeep { limit: 64 })
        );
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(check_json(ok.as_bytes(), &JsonLimits::default()).is_ok());
    }

    #[test]
    fn batch_length_and_size() {
        let l = lim(8, 2, 1000);
        let one = br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert!(matches!(parse_jsonrpc(one, &l), Ok(JsonRpcBody::Single(_))));
        let two =
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","id":2,"method":"b"}]"#;
        assert!(matches!(parse_jsonrpc(two, &l), Ok(JsonRpcBody::Batch(v)) if v.len() == 2));
        let three = br#"[{"id":1},{"id":2},"x"]"#;
        assert_eq!(
            parse_jsonrpc(three, &l),
            Err(InputError::BatchTooLarge { limit: 2 })
        );
        assert_eq!(parse_jsonrpc(b"[]", &l), Err(InputError::EmptyBatch));
        assert_eq!(
            parse_jsonrpc(&[b' '; 1001], &l),
            Err(InputError::TooLarge { limit: 1000 })
        );
        assert_eq!(
            parse_jsonrpc(b"{\"a\": \"\xff\"}", &l),
            Err(InputError::Parse)
        );
        assert_eq!(InputError::Parse.jsonrpc_code(), -32700);
        assert_eq!(
            InputError::TooLarge { limit: 1 }.status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn top_len_counts_scalars_and_nested() {
        let s = scan(br#"[1, "a", [2], {"b": [3, 4]}, null]"#, 8).unwrap();
        assert!(s.top_array);
        assert_eq!(s.top_len, 5);
    }
}
