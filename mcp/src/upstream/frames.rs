//! Bounded readers of what targets send: a JSON body, server-sent events and stdio lines, each
//! message capped at the route's `max_reply_bytes`. A target is untrusted: a message over the
//! cap fails (HTTP, SSE) or is skipped (stdio) instead of growing memory, and an endless stream
//! holds at most one message's worth of bytes at a time.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use switchboard_core::sse::{self, Event};
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
pub(crate) async fn read_body(resp: super::direct::Reply, max: usize) -> Result<Bytes, FrameError> {
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

/// The events of an SSE body (parsed by the core [`sse::Parser`]), each line and each event's
/// data capped at `max` bytes. The stream ends after the first error; an event not ended by
/// its blank line when the body ends is not delivered.
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
        parser: sse::Parser,
        fed: Vec<Event>,
        ready: VecDeque<Event>,
        done: bool,
    }
    let st = St {
        body,
        parser: sse::Parser::with_limit(max),
        fed: Vec::new(),
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
                    st.parser.feed(&chunk, &mut st.fed);
                    if st.parser.overflowed() {
                        // Nothing of a chunk that went over the cap is delivered.
                        st.done = true;
                        st.fed.clear();
                        return Some((Err(FrameError::TooLarge), st));
                    }
                    st.ready.extend(st.fed.drain(..));
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
        let body = futures::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let evs: Vec<_> = futures::executor::block_on(sse_events(body, max).collect());
        evs.into_iter().collect()
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
                    event: Some("endpoint".into()),
                    data: "/m".into()
                },
                Event {
                    event: None,
                    data: "a\nb".into()
                },
                Event {
                    event: None,
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
        // Events completed in the chunk that went over are not delivered either.
        assert!(matches!(
            parse(&[b"data: a\n\ndata: 0123456789012345678901234567890123456789012345678901234567890\n"], 64),
            Err(FrameError::TooLarge)
        ));
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
