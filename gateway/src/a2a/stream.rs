//! Reading SSE events out of a stream that is passed through untouched: the core parser keeps
//! only the event being assembled (bounded), and the bytes go on to the client as they arrived.

use switchboard_core::sse::{Event, Parser};

/// Largest event the scanner assembles; longer ones pass through unobserved.
const MAX_EVENT: usize = 1 << 20;

/// Observes a `text/event-stream` in passing and yields each event's `data`; an event over
/// [`MAX_EVENT`] is skipped, the events after it are still seen.
#[derive(Debug)]
pub struct SseScanner {
    parser: Parser,
    events: Vec<Event>,
}

impl Default for SseScanner {
    fn default() -> Self {
        SseScanner {
            parser: Parser::skipping_oversize(MAX_EVENT),
            events: Vec::new(),
        }
    }
}

impl SseScanner {
    /// Feeds one chunk; calls `on_event` with the data of every (non-empty) event it completes.
    pub fn feed(&mut self, chunk: &[u8], mut on_event: impl FnMut(&str)) {
        self.parser.feed(chunk, &mut self.events);
        for ev in self.events.drain(..) {
            if !ev.data.is_empty() {
                on_event(&ev.data);
            }
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
        assert_eq!(events(&[b"data:\n\n"]), Vec::<String>::new());
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
    }
}
