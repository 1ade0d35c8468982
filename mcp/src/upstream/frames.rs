//! Bounded readers of what targets send: a JSON body, server-sent events and stdio lines, each
//! message capped at the route's `max_reply_bytes`. A target is untrusted: a message over the
//! cap fails (HTTP, SSE) or is skipped (stdio) instead of growing memory, and an endless stream
//! holds at most one message's worth of bytes at a time.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Why reading a target's messages stopped.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// One message (body, SSE line or event, stdio line) was larger than the cap.
    TooLarge,
    /// The connection failed.
    Io(String),
}

/// Read a whole (non-streamed) body, refusing one over `max` bytes as soon as it is known:
/// from `Content-Length`, or while reading.
pub(crate) async fn read_body(resp: reqwest::Response, max: usize) -> Result<Bytes, FrameError> {
    if resp
        .content_length()
        .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > max))
    {
        return Err(FrameError::TooLarge);
    }
    let mut body = resp.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| FrameError::Io(e.to_string()))?;
        if out.len().saturating_add(chunk.len()) > max {
            return Err(FrameError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    /// The `event:` field (empty: `message`).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental SSE parser (the WHATWG event-stream rules: LF, CR or CRLF end a line, `:`
/// starts a comment, one space after the colon is dropped) that never holds more than `max`
/// bytes of one line or of one event's data.
pub(crate) struct SseDecoder {
    max: usize,
    line: Vec<u8>,
    /// The previous chunk ended in CR: a LF starting the next one is its CRLF's second half.
    after_cr: bool,
    event: String,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    pub fn new(max: usize) -> Self {
        SseDecoder {
            max,
            line: Vec::new(),
            after_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
        }
    }

    /// Feed a chunk; complete events are pushed to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut VecDeque<Event>) -> Result<(), FrameError> {
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while let Some(end) = chunk.iter().position(|b| *b == b'\n' || *b == b'\r') {
            let (head, tail) = chunk.split_at(end);
            if self.line.len().saturating_add(head.len()) > self.max {
                return Err(FrameError::TooLarge);
            }
            self.line.extend_from_slice(head);
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, out)?;
            // `tail` starts with the terminator.
            let crlf = tail.starts_with(b"\r\n");
            let cr_at_end = tail == b"\r";
            chunk = tail.get(if crlf { 2 } else { 1 }..).unwrap_or_default();
            if cr_at_end {
                self.after_cr = true;
            }
        }
        if self.line.len().saturating_add(chunk.len()) > self.max {
            return Err(FrameError::TooLarge);
        }
        self.line.extend_from_slice(chunk);
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], out: &mut VecDeque<Event>) -> Result<(), FrameError> {
        if line.is_empty() {
            if self.has_data {
                out.push_back(Event {
                    event: std::mem::take(&mut self.event),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let (f, v) = line.split_at(i);
                let v = v.get(1..).unwrap_or_default();
                (f, v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                if self.data.len().saturating_add(value.len()) > self.max {
                    return Err(FrameError::TooLarge);
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => {
                self.event.clear();
                self.event.push_str(&value);
            }
            _ => {}
        }
        Ok(())
    }
}

/// The events of an SSE body, each line and each event's data capped at `max` bytes. The
/// stream ends after the first error.
pub(crate) fn sse_events<S, E>(
    body: S,
    max: usize,
) -> impl Stream<Item = Result<Event, FrameError>> + Send + Unpin
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    struct St<S> {
        body: S,
        dec: SseDecoder,
        ready: VecDeque<Event>,
        done: bool,
    }
    let st = St {
        body,
        dec: SseDecoder::new(max),
        ready: VecDeque::new(),
        done: false,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.ready.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done {
                return None;
            }
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = st.dec.feed(&chunk, &mut st.ready) {
                        st.done = true;
                        st.ready.clear();
                        return Some((Err(e), st));
                    }
                }
                Some(Err(e)) => {
                    st.done = true;
                    return Some((Err(FrameError::Io(e.to_string())), st));
                }
                None => st.done = true,
            }
        }
    }))
}

/// What [`read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    /// A line (without its `\n`) is in the buffer.
    Line,
    /// A line over the cap was read and dropped.
    TooLarge,
    /// End of input.
    Eof,
}

/// Read one `\n`-terminated line into `buf` (cleared first), holding at most `max` bytes: the
/// rest of a longer line is read and dropped.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Read> {
    buf.clear();
    let mut over = false;
    loop {
        let avail = r.fill_buf().await?;
        if avail.is_empty() {
            return Ok(if over {
                Read::TooLarge
            } else if buf.is_empty() {
                Read::Eof
            } else {
                Read::Line
            });
        }
        let (part, found) = match avail.iter().position(|b| *b == b'\n') {
            Some(i) => (avail.get(..i).unwrap_or_default(), Some(i)),
            None => (avail, None),
        };
        if !over {
            if buf.len().saturating_add(part.len()) > max {
                over = true;
                buf.clear();
            } else {
                buf.extend_from_slice(part);
            }
        }
        match found {
            Some(i) => {
                r.consume(i.saturating_add(1));
                return Ok(if over { Read::TooLarge } else { Read::Line });
            }
            None => {
                let n = avail.len();
                r.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(chunks: &[&[u8]], max: usize) -> Result<Vec<Event>, FrameError> {
        let mut d = SseDecoder::new(max);
        let mut out = VecDeque::new();
        for c in chunks {
            d.feed(c, &mut out)?;
        }
        Ok(out.into_iter().collect())
    }

    #[test]
    fn events_across_chunks_and_line_endings() {
        let evs = parse(
            &[
                b"event: endpoint\r",
                b"\ndata: /m\r\n\r\n: c\n",
                b"data: a\ndata:b\n\nda",
                b"ta: x\r\r",
            ],
            64,
        )
        .unwrap();
        assert_eq!(
            evs,
            vec![
                Event {
                    event: "endpoint".into(),
                    data: "/m".into()
                },
                Event {
                    event: String::new(),
                    data: "a\nb".into()
                },
                Event {
                    event: String::new(),
                    data: "x".into()
                },
            ]
        );
    }

    #[test]
    fn long_lines_and_events_fail() {
        assert!(matches!(
            parse(&[&[b'x'; 100]], 64),
            Err(FrameError::TooLarge)
        ));
        let many: Vec<&[u8]> = std::iter::repeat_n(&b"data: 0123456789\n"[..], 10).collect();
        assert!(matches!(parse(&many, 64), Err(FrameError::TooLarge)));
        assert!(parse(&many[..3], 64).is_ok());
    }

    #[tokio::test]
    async fn lines_over_the_cap_are_dropped() {
        let input = b"short\nxxxxxxxxxxxxxxxxxxxxxxx\nok\nlast".to_vec();
        let mut r = tokio::io::BufReader::with_capacity(4, &input[..]);
        let mut buf = Vec::new();
        let mut got = Vec::new();
        loop {
            match read_line(&mut r, &mut buf, 8).await.unwrap() {
                Read::Eof => break,
                Read::TooLarge => got.push("<too large>".to_string()),
                Read::Line => got.push(String::from_utf8(buf.clone()).unwrap()),
            }
        }
        assert_eq!(got, ["short", "<too large>", "ok", "last"]);
    }
}
