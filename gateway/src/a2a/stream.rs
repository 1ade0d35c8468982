//! Reading SSE events out of a stream that is passed through untouched: the scanner keeps only
//! the event being assembled (bounded), and the bytes go on to the client as they arrived.

/// Largest event the scanner assembles; longer ones pass through unobserved.
const MAX_EVENT: usize = 1 << 20;

/// An incremental `text/event-stream` parser that yields each event's `data`.
#[derive(Debug, Default)]
pub struct SseScanner {
    line: Vec<u8>,
    data: String,
    /// The current event grew past [`MAX_EVENT`]; skip to its end.
    skipping: bool,
}

impl SseScanner {
    /// Feeds one chunk; calls `on_event` with the data of every event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&str)) {
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(nl);
            self.push(line);
            rest = tail.get(1..).unwrap_or_default();
            let line = std::mem::take(&mut self.line);
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if line.is_empty() {
                if !self.skipping && !self.data.is_empty() {
                    on_event(&self.data);
                }
                self.data.clear();
                self.skipping = false;
            } else if let Some(v) = line.strip_prefix(b"data:")
                && !self.skipping
            {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(v));
                if self.data.len() > MAX_EVENT {
                    self.skipping = true;
                    self.data = String::new();
                }
            }
        }
        self.push(rest);
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.line.len() + bytes.len() > MAX_EVENT {
            self.skipping = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut s = SseScanner::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, |e| out.push(e.to_owned()));
        }
        out
    }

    #[test]
    fn splits_across_chunks_and_line_endings() {
        assert_eq!(
            events(&[
                b"data: {\"a\":",
                b"1}\n\n: comment\r\nevent: x\r\ndata: 2\r\ndata: 3\r\n\r\n",
                b"data: 4\n"
            ]),
            vec!["{\"a\":1}", "2\n3"]
        );
        assert_eq!(events(&[b"id: 1\n\n"]), Vec::<String>::new());
    }

    #[test]
    fn oversized_events_are_skipped_not_buffered() {
        let big = vec![b'x'; MAX_EVENT + 10];
        let mut s = SseScanner::default();
        let mut out = Vec::new();
        s.feed(b"data: ", |e| out.push(e.to_owned()));
        s.feed(&big, |e| out.push(e.to_owned()));
        s.feed(b"\n\ndata: ok\n\n", |e| out.push(e.to_owned()));
        assert_eq!(out, vec!["ok"]);
        assert!(s.line.capacity() <= MAX_EVENT + 16 || s.line.is_empty());
    }
}
