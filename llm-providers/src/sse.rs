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

/// Incremental SSE parser.
#[derive(Debug, Default)]
pub struct Parser {
    buf: BytesMut,
    event: Option<String>,
    data: String,
    has_data: bool,
    skip_lf: bool,
}

impl Parser {
    /// A new parser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes and appends every completed event to `out`.
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<Event>) {
        while !input.is_empty() {
            if self.skip_lf {
                self.skip_lf = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.buf.extend_from_slice(&input[..pos]);
                    self.skip_lf = input[pos] == b'\r';
                    input = &input[pos + 1..];
                    let line = self.buf.split();
                    self.line(&line, out);
                }
                None => {
                    self.buf.extend_from_slice(input);
                    input = &[];
                }
            }
        }
    }

    /// Ends the input: a final event without its blank line is still delivered.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if !self.buf.is_empty() {
            let line = self.buf.split();
            self.line(&line, out);
        }
        self.dispatch(out);
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<Event>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let line = String::from_utf8_lossy(line);
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => {
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
