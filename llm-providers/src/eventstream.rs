//! AWS event-stream framing (`application/vnd.amazon.eventstream`), used by Bedrock
//! ConverseStream. Each message: total length (u32 BE), headers length (u32 BE), prelude CRC32,
//! headers, payload, message CRC32. The decoder is incremental and checks both CRCs.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{Error, Result};

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// String-valued headers (`:event-type`, `:message-type`, `:exception-type`, ...).
    pub headers: Vec<(String, String)>,
    /// The payload (JSON for Bedrock).
    pub payload: Bytes,
}

impl Message {
    /// A header's string value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Incremental decoder. It buffers at most one message (bounded by its limit) plus the chunk
/// being fed.
#[derive(Debug)]
pub struct Decoder {
    buf: BytesMut,
    max: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::with_limit(crate::sse::DEFAULT_MAX_EVENT)
    }
}

const PRELUDE: usize = 12;

/// The big-endian `u32` at `at` of `b`, if `b` is long enough.
fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(bytes))
}

impl Decoder {
    /// A new decoder with the default limit ([`crate::sse::DEFAULT_MAX_EVENT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new decoder refusing messages longer than `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        Decoder {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Feeds bytes and appends every complete message to `out`. A message longer than the
    /// limit, or one whose length or checksums are wrong, is an error.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<()> {
        self.buf.extend_from_slice(input);
        loop {
            let (Some(total), Some(headers_len), Some(prelude_crc), Some(prelude)) = (
                be_u32(&self.buf, 0),
                be_u32(&self.buf, 4),
                be_u32(&self.buf, 8),
                self.buf.get(..8),
            ) else {
                return Ok(());
            };
            let (total, headers_len) = (total as usize, headers_len as usize);
            if crc32fast::hash(prelude) != prelude_crc {
                return Err(Error::Protocol(
                    "event-stream prelude checksum mismatch".into(),
                ));
            }
            if total < PRELUDE + 4 + headers_len {
                return Err(Error::Protocol(
                    "event-stream message length invalid".into(),
                ));
            }
            if total > self.max {
                self.buf = BytesMut::new();
                return Err(Error::Protocol(format!(
                    "event-stream message larger than {} bytes",
                    self.max
                )));
            }
            if self.buf.len() < total {
                return Ok(());
            }
            let mut msg = self.buf.split_to(total);
            let body = total - 4;
            let (Some(crc), Some(covered)) = (be_u32(&msg, body), msg.get(..body)) else {
                return Err(Error::Protocol("event-stream message truncated".into()));
            };
            if crc32fast::hash(covered) != crc {
                return Err(Error::Protocol(
                    "event-stream message checksum mismatch".into(),
                ));
            }
            msg.truncate(body);
            msg.advance(PRELUDE);
            let mut headers_raw = msg.split_to(headers_len);
            let headers = parse_headers(&mut headers_raw)?;
            out.push(Message {
                headers,
                payload: msg.freeze(),
            });
        }
    }

    /// True when bytes of an incomplete message are pending.
    pub fn has_partial(&self) -> bool {
        !self.buf.is_empty()
    }
}

fn parse_headers(b: &mut BytesMut) -> Result<Vec<(String, String)>> {
    let bad = || Error::Protocol("event-stream header malformed".into());
    let mut headers = Vec::new();
    while b.has_remaining() {
        let name_len = b.get_u8() as usize;
        if b.remaining() < name_len + 1 {
            return Err(bad());
        }
        let name = String::from_utf8_lossy(&b.split_to(name_len)).into_owned();
        let kind = b.get_u8();
        // Value sizes per type: 0/1 bool (none), 2 byte, 3 i16, 4 i32, 5 i64, 6 bytes,
        // 7 string, 8 timestamp, 9 uuid.
        let fixed = match kind {
            0 | 1 => Some(0),
            2 => Some(1),
            3 => Some(2),
            4 => Some(4),
            5 | 8 => Some(8),
            9 => Some(16),
            6 | 7 => None,
            _ => return Err(bad()),
        };
        match fixed {
            Some(n) => {
                if b.remaining() < n {
                    return Err(bad());
                }
                b.advance(n);
            }
            None => {
                if b.remaining() < 2 {
                    return Err(bad());
                }
                let len = b.get_u16() as usize;
                if b.remaining() < len {
                    return Err(bad());
                }
                let v = b.split_to(len);
                if kind == 7 {
                    headers.push((name, String::from_utf8_lossy(&v).into_owned()));
                }
            }
        }
    }
    Ok(headers)
}

/// Encodes a message with string headers (used by tests and fixtures).
pub fn encode(headers: &[(&str, &str)], payload: &[u8]) -> Bytes {
    let mut h = BytesMut::new();
    for (name, value) in headers {
        h.put_u8(name.len() as u8);
        h.put_slice(name.as_bytes());
        h.put_u8(7);
        h.put_u16(value.len() as u16);
        h.put_slice(value.as_bytes());
    }
    let total = PRELUDE + h.len() + payload.len() + 4;
    let mut m = BytesMut::with_capacity(total);
    m.put_u32(total as u32);
    m.put_u32(h.len() as u32);
    let crc = crc32fast::hash(m.get(..8).unwrap_or_default());
    m.put_u32(crc);
    m.put_slice(&h);
    m.put_slice(payload);
    let crc = crc32fast::hash(&m);
    m.put_u32(crc);
    m.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Vec<u8> {
        let mut v = encode(
            &[(":event-type", "messageStart"), (":message-type", "event")],
            br#"{"role":"assistant"}"#,
        )
        .to_vec();
        v.extend_from_slice(&encode(
            &[(":event-type", "contentBlockDelta")],
            br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#,
        ));
        v
    }

    #[test]
    fn round_trip() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.feed(&sample(), &mut out).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].header(":event-type"), Some("messageStart"));
        assert_eq!(
            &out[1].payload[..],
            br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#
        );
        assert!(!d.has_partial());
    }

    #[test]
    fn corrupt_crc_is_an_error() {
        let mut v = sample();
        let n = v.len();
        v[n - 1] ^= 1;
        let mut out = Vec::new();
        assert!(Decoder::new().feed(&v, &mut out).is_err());
    }

    #[test]
    fn a_message_over_the_limit_is_an_error_before_it_is_buffered() {
        let big = encode(&[(":event-type", "x")], &[b'a'; 1000]);
        let mut d = Decoder::with_limit(500);
        let mut out = Vec::new();
        // The prelude alone says it is too long.
        assert!(d.feed(&big[..16], &mut out).is_err());
        assert!(!d.has_partial());
    }

    proptest! {
        #[test]
        fn any_split(split in 0usize..200) {
            let v = sample();
            let s = split.min(v.len());
            let mut d = Decoder::new();
            let mut out = Vec::new();
            d.feed(&v[..s], &mut out).unwrap();
            d.feed(&v[s..], &mut out).unwrap();
            prop_assert_eq!(out.len(), 2);
        }
    }
}
