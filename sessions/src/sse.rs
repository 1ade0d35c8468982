//! Server-sent event framing for session streams.
//!
//! The gateway writes each event with the id [`append`](crate::SessionManager::append_event)
//! gave it, so a reconnecting client's `Last-Event-ID` names exactly what it saw. On drain it
//! writes [`retry`] and closes, so the client reconnects (to another replica) after that delay.

use std::time::Duration;

use bytes::Bytes;

/// `retry: N\n\n`: tells the client to reconnect after `after` (milliseconds on the wire).
pub fn retry(after: Duration) -> Bytes {
    Bytes::from(format!("retry: {}\n\n", after.as_millis()))
}

/// One SSE event: optional `id:` and `event:` lines, then `data:` lines (one per line of
/// `data`, so multi-line payloads survive; CRLF and lone CR count as line ends, as they do for
/// SSE parsers), then the blank line.
///
/// Carriage returns and newlines in `id` or `event` would break the framing; they are dropped.
pub fn event(id: Option<&str>, event: Option<&str>, data: &str) -> Bytes {
    let mut out = String::with_capacity(data.len() + 32 + id.map_or(0, str::len));
    if let Some(event) = event {
        out.push_str("event: ");
        push_line(&mut out, event);
    }
    if let Some(id) = id {
        out.push_str("id: ");
        push_line(&mut out, id);
    }
    // SSE ends a line at CRLF, a lone LF *or a lone CR*: split on all three, or text after a
    // lone CR would become a field of its own (a forged `id:` that the client then sends back
    // as `Last-Event-ID`). `split` (not `lines`) so an empty payload still yields one line.
    // A byte search: a JSON payload is one long line, and `str::find` with a set of chars
    // decoded it char by char (issue 19).
    let mut rest = data;
    loop {
        let cut = memchr::memchr2(b'\r', b'\n', rest.as_bytes());
        let line = &rest[..cut.unwrap_or(rest.len())];
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
        match cut {
            None => break,
            Some(i) => {
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
        }
    }
    out.push('\n');
    Bytes::from(out)
}

fn push_line(out: &mut String, value: &str) {
    if memchr::memchr2(b'\n', b'\r', value.as_bytes()).is_none() {
        out.push_str(value);
    } else {
        out.extend(value.chars().filter(|c| *c != '\n' && *c != '\r'));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_hint() {
        assert_eq!(&retry(Duration::from_millis(1500))[..], b"retry: 1500\n\n");
    }

    #[test]
    fn single_line_event_with_id() {
        assert_eq!(
            &event(Some("abc/get/3"), Some("message"), "{\"x\":1}")[..],
            b"event: message\nid: abc/get/3\ndata: {\"x\":1}\n\n"
        );
    }

    #[test]
    fn multi_line_data_and_injection() {
        assert_eq!(
            &event(Some("1\n\ndata: evil"), None, "a\r\nb\nc")[..],
            b"id: 1data: evil\ndata: a\ndata: b\ndata: c\n\n"
        );
        assert_eq!(&event(None, None, "")[..], b"data: \n\n");
        // A lone CR ends a line too; a line break at the end leaves an empty last line.
        assert_eq!(
            &event(None, None, "\u{e9}\rid: x\n")[..],
            "data: \u{e9}\ndata: id: x\ndata: \n\n".as_bytes()
        );
    }
}
