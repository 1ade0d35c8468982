//! Incremental Server-Sent Events parsing and writing, the one parser every crate uses (LLM
//! provider streams, MCP upstream streams, A2A streams observed in passing). The parser follows
//! the WHATWG event-stream rules (LF, CR or CRLF end a line, `:` starts a comment, one space
//! after the colon is dropped), accepts input split at any byte (UTF-8 is decoded per complete
//! line) and yields each event as soon as its blank line arrives, so streams are never
//! buffered whole. An upstream is untrusted: the parser holds at most one line and one event's
//! data, each bounded by its limit.

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
/// its limit. A longer line or event makes it stop ([`Parser::overflowed`]) instead of
/// buffering without end, or, made with [`Parser::skipping_oversize`], drops that one event
/// and goes on with the next.
#[derive(Debug)]
pub struct Parser {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    skip_lf: bool,
    max: usize,
    overflow: bool,
    /// Skip an oversize event instead of stopping.
    skip_oversize: bool,
    /// Inside an oversize event: ignore lines until its blank line.
    skipping: bool,
    /// Inside an oversize line: drop its bytes until its end.
    dropping_line: bool,
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
            skip_oversize: false,
            skipping: false,
            dropping_line: false,
        }
    }

    /// A new parser that drops an event with a line or data longer than `max` bytes (never
    /// holding more than `max` of it) and goes on with the next event: for streams passed
    /// through untouched and only observed, where one oversize event must not end the rest.
    pub fn skipping_oversize(max: usize) -> Self {
        Parser {
            skip_oversize: true,
            ..Self::with_limit(max)
        }
    }

    /// True once a line or an event was longer than the limit; the parser then ignores the
    /// rest of its input. Never true for a [`Parser::skipping_oversize`] parser.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    fn overflowing(&mut self) {
        if self.skip_oversize {
            self.skipping = true;
        } else {
            self.overflow = true;
        }
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
            let end = memchr::memchr2(b'\n', b'\r', input);
            let (part, rest) = input.split_at(end.unwrap_or(input.len()));
            if !self.dropping_line && self.buf.len().saturating_add(part.len()) > self.max {
                self.overflowing();
                if !self.skip_oversize {
                    return;
                }
                self.dropping_line = true;
            }
            let Some((&eol, rest)) = rest.split_first() else {
                // The line goes on in the next input.
                if !self.dropping_line {
                    self.buf.extend_from_slice(part);
                }
                return;
            };
            self.skip_lf = eol == b'\r';
            input = rest;
            if std::mem::take(&mut self.dropping_line) {
                continue;
            }
            if self.buf.is_empty() {
                // The whole line is in this input: read in place, not copied first.
                self.line(part, out);
            } else {
                self.buf.extend_from_slice(part);
                let line = self.buf.split();
                self.line(&line, out);
            }
        }
    }

    /// Ends the input: a final event without its blank line is still delivered.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.overflow || self.skipping {
            return;
        }
        if !self.buf.is_empty() {
            let line = self.buf.split();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if self.skipping {
            // The oversize event ends at its blank line; the next one is read again.
            self.skipping = !line.is_empty();
            return;
        }
        match line.first() {
            None => {
                self.dispatch(out);
                return;
            }
            Some(b':') => return,
            Some(_) => {}
        }
        // Checked with `from_utf8` first: `from_utf8_lossy` walks a valid line in chunks at
        // several times the cost, and every provider stream line is valid (issue 19).
        let line = match std::str::from_utf8(line) {
            Ok(line) => std::borrow::Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(line),
        };
        let (field, value) = match line.split_once(':') {
            Some((field, v)) => (field, v.strip_prefix(' ').unwrap_or(v)),
            None => (&*line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
                if self
                    .data
                    .len()
                    .saturating_add(value.len())
                    .saturating_add(1)
                    > self.max
                {
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

    #[test]
    fn a_skipping_parser_drops_only_the_oversize_event() {
        let mut p = Parser::skipping_oversize(16);
        let mut out = Vec::new();
        p.feed(b"data: a\n\ndata: ", &mut out);
        // One line longer than the limit, in pieces: dropped, never buffered past the limit.
        for _ in 0..100 {
            p.feed(b"xxxxxxxx", &mut out);
            assert!(p.buf.len() <= 16);
        }
        p.feed(b"\ndata: still the big one\n\ndata: b\r\n\r\n", &mut out);
        // Many short lines adding up to too much: that event only is dropped.
        p.feed(
            b"event: e\ndata: 12345\ndata: 12345\ndata: 12345\n\ndata: c\n\n",
            &mut out,
        );
        assert!(!p.overflowed());
        let data: Vec<_> = out.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["a", "b", "c"]);
        assert!(out.iter().all(|e| e.event.is_none()));
        // An unfinished oversize event is not delivered at the end either.
        let mut out = Vec::new();
        p.feed(b"data: 0123456789012345678", &mut out);
        p.finish(&mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn a_line_that_is_not_utf8_is_read_with_replacement_characters() {
        let events = parse_all(&[
            b"event: a\xffb\ndata: caf\xc3\xa9 \xc3\n\n",
            b"data: ok\n\n",
        ]);
        assert_eq!(
            events,
            vec![
                Event {
                    event: Some("a\u{fffd}b".into()),
                    data: "caf\u{e9} \u{fffd}".into(),
                },
                Event {
                    event: None,
                    data: "ok".into(),
                },
            ]
        );
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

        /// Lines read in place (whole input) and lines assembled in the buffer (a byte at a
        /// time) give the same events and the same overflow, at any limit, either mode.
        #[test]
        fn in_place_and_buffered_lines_agree(
            input in proptest::collection::vec(proptest::sample::select(b"data: x\r\n:evn\xc3\xa9\xff".to_vec()), 0..200),
            max in 1usize..40,
            skip in proptest::bool::ANY,
        ) {
            let make = || if skip { Parser::skipping_oversize(max) } else { Parser::with_limit(max) };
            let (mut p, mut whole) = (make(), Vec::new());
            p.feed(&input, &mut whole);
            p.finish(&mut whole);
            let (mut q, mut bytes) = (make(), Vec::new());
            for b in &input {
                q.feed(std::slice::from_ref(b), &mut bytes);
            }
            q.finish(&mut bytes);
            prop_assert_eq!(whole, bytes);
            prop_assert_eq!(p.overflowed(), q.overflowed());
        }
    }
}
