//! Bounds on hostile input that the HTTP layer cannot see: JSON nesting depth, JSON-RPC batch
//! size and message size. The listener already bounds header bytes, body bytes and the time to
//! send headers (`listeners[].limits`). Every `POST` body of an MCP, A2A or LLM route is read by
//! [`BoundedJson`] in the backend stage ([`crate::backend`]), with the listener's [`JsonLimits`],
//! before any backend or serde sees it: reading stops at `max_message_bytes` (nothing beyond it
//! is buffered) and nesting is scanned chunk by chunk as it arrives, so a body that nests too
//! deep is refused before serde builds a tree.
//!
//! The scan is one linear pass over the bytes without allocation, so a 16 MiB body of `[`
//! costs a scan, not a stack overflow or a 16 MiB tree.

use bytes::{Bytes, BytesMut};
use switchboard_core::Cause;

pub use crate::config::JsonLimits;

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
}

impl InputError {
    /// The cause: too large is 413; nesting too deep to parse is invalid JSON (400, JSON-RPC
    /// -32700); a batch too large is a bad request (400, JSON-RPC -32600).
    pub fn cause(&self) -> Cause {
        match self {
            InputError::TooLarge { .. } => Cause::PayloadTooLarge,
            InputError::TooDeep { .. } => Cause::InvalidJson,
            InputError::BatchTooLarge { .. } => Cause::BadRequest,
        }
    }
}

impl From<InputError> for switchboard_core::Error {
    fn from(e: InputError) -> Self {
        switchboard_core::Error::new(e.cause(), e.to_string())
    }
}

/// What [`Scanner`] learned about a JSON text without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Deepest nesting of arrays and objects.
    pub depth: usize,
    /// Whether the top-level value is an array.
    pub top_array: bool,
    /// Number of elements of a top-level array (0 otherwise).
    pub top_len: usize,
}

/// An incremental nesting scanner: feed it a JSON text in chunks split anywhere; it tracks
/// nesting outside strings and fails (with [`InputError::TooDeep`]) as soon as `max_depth` is
/// exceeded. It does not validate the JSON; serde does that afterwards on input known to be
/// shallow.
#[derive(Debug, Clone)]
pub struct Scanner {
    max_depth: usize,
    depth: usize,
    max_seen: usize,
    in_string: bool,
    escaped: bool,
    top_array: Option<bool>,
    top_len: usize,
    top_has_value: bool,
}

impl Scanner {
    /// A scanner refusing nesting deeper than `max_depth`.
    pub fn new(max_depth: usize) -> Self {
        Scanner {
            max_depth,
            depth: 0,
            max_seen: 0,
            in_string: false,
            escaped: false,
            top_array: None,
            top_len: 0,
            top_has_value: false,
        }
    }

    /// Scans the next chunk.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InputError> {
        let mut rest = bytes;
        while let Some((&b, tail)) = rest.split_first() {
            rest = tail;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                } else {
                    // Inside a string only a quote or a backslash matters: skip to the next
                    // one at once (most of an LLM request is string content, issue 19).
                    match memchr::memchr2(b'"', b'\\', rest) {
                        Some(at) => rest = rest.get(at..).unwrap_or_default(),
                        None => break,
                    }
                }
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    self.count_top_value();
                }
                b'[' | b'{' => {
                    if self.depth == 0 && self.top_array.is_none() {
                        self.top_array = Some(b == b'[');
                    } else {
                        self.count_top_value();
                    }
                    self.depth += 1;
                    self.max_seen = self.max_seen.max(self.depth);
                    if self.depth > self.max_depth {
                        return Err(InputError::TooDeep {
                            limit: self.max_depth,
                        });
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                b',' if self.depth == 1 => self.top_has_value = false,
                b' ' | b'\t' | b'\n' | b'\r' | b':' | b',' => {}
                _ => {
                    if self.depth == 0 && self.top_array.is_none() {
                        self.top_array = Some(false);
                    } else {
                        self.count_top_value();
                    }
                }
            }
        }
        Ok(())
    }

    /// A value starts here: counts it when it is an element of a top-level array.
    fn count_top_value(&mut self) {
        if self.depth == 1 && self.top_array == Some(true) && !self.top_has_value {
            self.top_has_value = true;
            self.top_len += 1;
        }
    }

    /// What was seen so far.
    pub fn shape(&self) -> Shape {
        Shape {
            depth: self.max_seen,
            top_array: self.top_array == Some(true),
            top_len: self.top_len,
        }
    }
}

/// Scans a whole text with a [`Scanner`].
pub fn scan(bytes: &[u8], max_depth: usize) -> Result<Shape, InputError> {
    let mut s = Scanner::new(max_depth);
    s.feed(bytes)?;
    Ok(s.shape())
}

/// Which JSON bodies a [`BoundedJson`] reads: JSON-RPC bodies (MCP, A2A) also have their
/// top-level batch length checked against `max_batch` before anything parses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// A JSON-RPC message or batch.
    JsonRpc,
    /// Any other JSON document (LLM API requests).
    Json,
}

/// The synchronous core of the backend stage's JSON body reader: accumulates a body chunk by chunk, never holding
/// more than its limit, scanning nesting as bytes arrive.
#[derive(Debug)]
pub struct BoundedJson {
    limit: usize,
    max_batch: usize,
    kind: BodyKind,
    /// The declared length, allocated once when a second chunk arrives.
    capacity: usize,
    buf: BytesMut,
    /// The first chunk, kept without copying while it is the only one (the common case of a
    /// body that arrives in one frame).
    first: Option<Bytes>,
    scanner: Scanner,
}

impl BoundedJson {
    /// A reader for at most `limit` bytes (the smaller of `max_message_bytes` and the
    /// listener's `max_body_bytes`). `declared` is the body's `Content-Length`, if any: a body
    /// declaring more than the limit is refused before a byte is read, and a smaller one gets
    /// its buffer allocated once.
    pub fn new(
        limits: &JsonLimits,
        limit: usize,
        kind: BodyKind,
        declared: Option<u64>,
    ) -> Result<Self, InputError> {
        let limit = limit.min(limits.max_message_bytes);
        let too_large = InputError::TooLarge { limit };
        let capacity = match declared {
            Some(n) if n > limit as u64 => return Err(too_large),
            Some(n) => usize::try_from(n).map_err(|_| too_large)?,
            None => 0,
        };
        Ok(BoundedJson {
            limit,
            max_batch: limits.max_batch,
            kind,
            capacity,
            buf: BytesMut::new(),
            first: None,
            scanner: Scanner::new(limits.max_depth),
        })
    }

    fn len(&self) -> usize {
        self.buf.len() + self.first.as_ref().map_or(0, Bytes::len)
    }

    /// Takes the next chunk: refused when it would take the body over the limit (nothing of it
    /// is kept) or when nesting goes too deep.
    pub fn push(&mut self, chunk: Bytes) -> Result<(), InputError> {
        if chunk.len() > self.limit.saturating_sub(self.len()) {
            return Err(InputError::TooLarge { limit: self.limit });
        }
        self.scanner.feed(&chunk)?;
        self.check_batch()?;
        if self.first.is_none() && self.buf.is_empty() {
            self.first = Some(chunk);
            return Ok(());
        }
        if let Some(first) = self.first.take() {
            // Allocated once for a body that declared its length; grown by doubling (never
            // past twice the limit) for a chunked one.
            self.buf
                .reserve(self.capacity.max(first.len() + chunk.len()));
            self.buf.extend_from_slice(&first);
        }
        self.buf.extend_from_slice(&chunk);
        Ok(())
    }

    /// A JSON-RPC batch is refused as soon as it has one entry too many.
    fn check_batch(&self) -> Result<(), InputError> {
        let shape = self.scanner.shape();
        if self.kind == BodyKind::JsonRpc && shape.top_array && shape.top_len > self.max_batch {
            return Err(InputError::BatchTooLarge {
                limit: self.max_batch,
            });
        }
        Ok(())
    }

    /// The whole body.
    pub fn finish(self) -> Result<Bytes, InputError> {
        self.check_batch()?;
        Ok(match self.first {
            Some(first) => first,
            None => self.buf.freeze(),
        })
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

    fn read(chunks: &[&[u8]], l: &JsonLimits, kind: BodyKind) -> Result<Bytes, InputError> {
        let mut r = BoundedJson::new(l, usize::MAX, kind, None)?;
        for c in chunks {
            r.push(Bytes::copy_from_slice(c))?;
        }
        r.finish()
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
    fn deep_json_is_refused_while_reading() {
        let l = JsonLimits::default();
        let deep = "[".repeat(100_000);
        // The first chunk already nests too deep: the rest is never needed.
        assert_eq!(
            read(&[deep.as_bytes()], &l, BodyKind::Json),
            Err(InputError::TooDeep { limit: 64 })
        );
        let ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        let (a, b) = ok.as_bytes().split_at(40);
        assert_eq!(read(&[a, b], &l, BodyKind::Json).unwrap(), ok.as_bytes());
    }

    #[test]
    fn size_is_refused_before_the_chunk_that_crosses_it() {
        let l = lim(8, 2, 10);
        assert_eq!(
            BoundedJson::new(&l, usize::MAX, BodyKind::Json, Some(11)).err(),
            Some(InputError::TooLarge { limit: 10 })
        );
        // The listener's max_body_bytes wins when it is smaller.
        assert_eq!(
            BoundedJson::new(&l, 5, BodyKind::Json, Some(6)).err(),
            Some(InputError::TooLarge { limit: 5 })
        );
        let mut r = BoundedJson::new(&l, usize::MAX, BodyKind::Json, None).unwrap();
        r.push(Bytes::from_static(b"[1,2,3")).unwrap();
        assert_eq!(
            r.push(Bytes::from_static(b",4,5]")),
            Err(InputError::TooLarge { limit: 10 })
        );
        assert_eq!(r.len(), 6, "the refused chunk is not kept");
        assert_eq!(
            read(&[b"[1,", b"2]"], &l, BodyKind::Json).unwrap(),
            &b"[1,2]"[..]
        );
    }

    #[test]
    fn batch_length_is_checked_on_json_rpc_bodies_only() {
        let l = lim(8, 2, 1000);
        let two =
            br#"[{"jsonrpc":"2.0","id":1,"method":"a"}, {"jsonrpc":"2.0","id":2,"method":"b"}]"#;
        assert!(read(&[two], &l, BodyKind::JsonRpc).is_ok());
        let three = br#"[{"id":1},{"id":2},"x"]"#;
        assert_eq!(
            read(&[three], &l, BodyKind::JsonRpc),
            Err(InputError::BatchTooLarge { limit: 2 })
        );
        assert!(read(&[three], &l, BodyKind::Json).is_ok());
        let e = switchboard_core::Error::from(InputError::TooDeep { limit: 1 });
        assert_eq!(e.jsonrpc_object()["code"], -32700);
        let e = switchboard_core::Error::from(InputError::TooLarge { limit: 1 });
        assert_eq!(e.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
        let e = switchboard_core::Error::from(InputError::BatchTooLarge { limit: 1 });
        assert_eq!(e.jsonrpc_object()["code"], -32600);
    }

    #[test]
    fn strings_skipped_at_once_scan_as_byte_by_byte() {
        // The scan skips a string's content to its next quote or backslash: split anywhere,
        // or fed one byte at a time (nothing to skip to), a text scans the same.
        let texts: [&[u8]; 5] = [
            br#"{"a": "[[[[[[", "b": [1, {"c": "\"]]{"}]}"#,
            br#"["x\\", ["\\\"[", {"k": "v\\"}], "]]]", [[["\u005b"]]]]"#,
            br#"{"m": [{"role": "user", "content": "a long text with no quote at all"}]}"#,
            br#"["unterminated [[[ string \" still {{{ in it"#,
            br#"[[["\"#,
        ];
        for (text, depth) in texts.into_iter().zip([3, 4, 3, 1, 3]) {
            let mut one = Scanner::new(8);
            for b in text {
                one.feed(std::slice::from_ref(b)).unwrap();
            }
            assert_eq!(one.shape().depth, depth, "{text:?}");
            assert_eq!(scan(text, 8).unwrap(), one.shape(), "{text:?}");
            for at in 0..=text.len() {
                let (a, b) = text.split_at(at);
                let mut split = Scanner::new(8);
                split.feed(a).unwrap();
                split.feed(b).unwrap();
                assert_eq!(split.shape(), one.shape(), "{text:?} split at {at}");
            }
        }
        assert_eq!(
            scan(br#"["[[[", [[["#, 3),
            Err(InputError::TooDeep { limit: 3 })
        );
    }

    #[test]
    fn top_len_counts_scalars_and_nested() {
        let s = scan(br#"[1, "a", [2], {"b": [3, 4]}, null]"#, 8).unwrap();
        assert!(s.top_array);
        assert_eq!(s.top_len, 5);
    }
}
