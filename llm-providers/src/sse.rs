//! Incremental Server-Sent Events parsing and writing. The parser accepts input split at any
//! byte (UTF-8 is decoded per complete line) and yields each event as soon as its blank line
//! arrives, so streams are never buffered whole.

use bytes::{BufMut, Bytes, BytesMut};

/// One SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field (None means `message`).
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Largest event a [`Parser`] assembles unless told otherwise (`llm.max_event_bytes`).
pub const DEFAULT_MAX_EVENT: usize = 4 << 20;

/// Incremental SSE parser. It holds at most one line and one event's data, each bounded by
/// its limit: a provider that sends a longer line or event makes it stop ([`Parser::overflowed`])
/// instead of buffering without end.
#[derive(Debug)]
pub struct Parser {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    skip_lf: bool,
    max: usize,
    overflow: bool,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT)
    }
}

impl Parser {
    /// A new parser with the default limit ([`DEFAULT_MAX_EVENT`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// A new parser refusing lines and events longer than `max` bytes.
    pub fn with_limit(max: usize) -> Self {
        Parser {
            buf: BytesMut::new(),
            event: None,
            data: String::new(),
            has_data: false,
            skip_lf: false,
            max,
            overflow: false,
        }
    }

    /// True once a line or an event was longer than the limit; the parser then ignores the
    /// rest of its input.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    fn overflowing(&mut self) {
        self.overflow = true;
        self.buf = BytesMut::new();
        self.data = String::new();
        self.event = None;
        self.has_data = false;
    }

    /// Feeds bytes and appends every completed event to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) {
        while !input.is_empty() && !self.overflow {
            if self.skip_lf {
                self.skip_lf = false;
                if let Some(rest) = input.strip_prefix(b"\n") {
                    input = rest;
                    continue;
                }
            }
            let end = input.iter().position(|&b| b == b'\n' || b == b'\r');
            let (part, rest) = input.split_at(end.unwrap_or(input.len()));
            if self.buf.len() + part.len() > self.max {
                self.overflowing();
                return;
            }
            self.buf.extend_from_slice(part);
            match rest.split_first() {
                Some((&eol, rest)) => {
                    self.skip_lf = eol == b'\r';
                    input = rest;
                    let line = self.buf.split();
                    self.line(&line, out);
                }
                None => input = rest,
            }
        }
    }

    /// Ends the input: a final event without its blank line is still delivered.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.overflow {
            return;
        }
        if !self.buf.is_empty() {
            let line = self.buf.split();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        match line.first() {
            None => {
                self.dispatch(out);
                return;
            }
            Some(b':') => return,
            Some(_) => {}
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.split_once(':') {
            Some((field, v)) => (field, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max {
                    self.overflowing();
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<Event>) {
        if self.has_data {
            out.push(Event {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        } else {
            self.event = None;
        }
        self.has_data = false;
    }
}

/// Appends `data: {data}\n\n` (OpenAI style).
pub fn write_data(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

/// Appends `event: {name}\ndata: {data}\n\n` (Anthropic style).
pub fn write_event(out: &mut BytesMut, name: &str, data: &[u8]) {
    out.reserve(name.len() + data.len() + 17);
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\ndata: ");
    out.put_slice(data);
    out.put_slice(b"\n\n");
}

/// `data: [DONE]\n\n`.
pub const DONE: Bytes = Bytes::from_static(b"data: [DONE]\n\n");

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<Event> {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn parses_fields_comments_and_line_endings() {
        let evs =
            parse_all(&[b": ping\r\nevent: a\r\ndata: 1\r\ndata:2\r\n\r\ndata: x\n\ndata: tail"]);
        assert_eq!(
            evs,
            vec![
                Event {
                    event: Some("a".into()),
                    data: "1\n2".into()
                },
                Event {
                    event: None,
                    data: "x".into()
                },
                Event {
                    event: None,
                    data: "tail".into()
                },
            ]
        );
    }

    #[test]
    fn a_line_or_event_over_the_limit_stops_the_parser() {
        let mut p = Parser::with_limit(16);
        let mut out = Vec::new();
        p.feed(b"data: short\n\n", &mut out);
        assert_eq!(out.len(), 1);
        // One line longer than the limit, arriving in pieces: never buffered past it.
        for _ in 0..100 {
            p.feed(b"data: xxxxxxxx", &mut out);
            assert!(p.buf.len() <= 16);
        }
        assert!(p.overflowed());
        p.feed(b"\n\ndata: later\n\n", &mut out);
        assert_eq!(out.len(), 1, "nothing after the overflow");
        // Many short data lines adding up to one event over the limit.
        let mut p = Parser::with_limit(16);
        p.feed(b"data: 12345\ndata: 12345\ndata: 12345\n", &mut out);
        assert!(p.overflowed());
        assert!(p.data.is_empty());
    }

    proptest! {
        #[test]
        fn any_split_gives_same_events(split in 0usize..80, split2 in 0usize..80) {
            let input = "event: message_start\r\ndata: {\"a\":\"h\u{e9}llo\"}\r\n\r\ndata: b\n\n: c\n\ndata: [DONE]\n\n".as_bytes();
            let whole = parse_all(&[input]);
            let a = split.min(input.len());
            let b = split2.min(input.len()).max(a);
            let parts = parse_all(&[&input[..a], &input[a..b], &input[b..]]);
            prop_assert_eq!(whole, parts);
        }
    }
}
