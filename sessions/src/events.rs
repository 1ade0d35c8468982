//! Event ids and replay results for `Last-Event-ID` resumption.
//!
//! Every SSE event the gateway sends on a session's stream is appended to that stream's bounded
//! log first; the id it gets back is the SSE `id:`. The id names the session, the stream and the
//! position, so a `Last-Event-ID` alone says what to replay, and a client cannot name another
//! session's stream (the manager checks the session).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;

use crate::token::SessionId;

/// The payload of a stream's last entry: the stream is complete (the answer to its request was
/// sent, or handed to the log and then finished). Never sent to a client. A reader following
/// the log of a stream another replica still produces stops at it. (Empty payloads are
/// priming events; JSON messages never start with a NUL byte.)
pub const END_MARKER: &[u8] = b"\0end";

/// One event stream of a session, e.g. the standalone GET stream or the stream answering one
/// POST. The name is chosen by the caller; keep it short (it is part of every event id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamKey {
    /// The session the stream belongs to.
    pub session: SessionId,
    /// The stream's name within the session; any text without control characters.
    pub name: Arc<str>,
}

impl StreamKey {
    /// The stream `name` of `session`.
    pub fn new(session: SessionId, name: impl Into<Arc<str>>) -> Self {
        StreamKey {
            session,
            name: name.into(),
        }
    }
}

/// The id of one stored event: `{session}/{stream}/{seq}` in text form, `seq` counting from 1 in
/// each stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EventId {
    /// The stream the event was appended to.
    pub stream: StreamKey,
    /// Its position in the stream, starting at 1.
    pub seq: u64,
}

impl EventId {
    /// The text form, as `Display` writes it, built without the formatting machinery for
    /// the parts that are text (every logged SSE event carries one).
    pub fn text(&self) -> String {
        use fmt::Write as _;
        let mut out = String::with_capacity(22 + 1 + self.stream.name.len() + 1 + 20);
        out.push_str(self.stream.session.text(&mut [0; 22]));
        out.push('/');
        out.push_str(&self.stream.name);
        out.push('/');
        let _ = write!(out, "{}", self.seq);
        out
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.stream.session, self.stream.name, self.seq
        )
    }
}

impl FromStr for EventId {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        let (session, rest) = s.split_once('/').ok_or(crate::Error::InvalidEventId)?;
        let (name, seq) = rest.rsplit_once('/').ok_or(crate::Error::InvalidEventId)?;
        let session = session
            .parse::<SessionId>()
            .map_err(|()| crate::Error::InvalidEventId)?;
        // Digits only: `u64::from_str` would also take a leading `+`, and two spellings of one
        // id would be confusing in logs.
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return Err(crate::Error::InvalidEventId);
        }
        let seq = seq.parse().map_err(|_| crate::Error::InvalidEventId)?;
        if name.chars().any(char::is_control) {
            return Err(crate::Error::InvalidEventId);
        }
        Ok(EventId {
            stream: StreamKey::new(session, name),
            seq,
        })
    }
}

/// What a stream still holds after a given event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replay {
    /// The stored events after the given id, oldest first.
    pub events: Vec<(EventId, Bytes)>,
    /// False when events after the given id were dropped (the log is bounded to
    /// `event_log_size` and expires with the session) or the stream is unknown here (memory store
    /// on another replica or after a restart): the client then missed something.
    pub complete: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_roundtrip_with_slashes_in_name() {
        let id = EventId {
            stream: StreamKey::new(SessionId([3; 16]), "post/42"),
            seq: 17,
        };
        let text = id.to_string();
        assert_eq!(text.parse::<EventId>().unwrap(), id);
        assert_eq!(id.text(), text);
    }

    #[test]
    fn text_is_what_display_writes() {
        for (session, name, seq) in [
            (SessionId([0; 16]), "get", 1),
            (SessionId([255; 16]), "post/00ab12cd34ef", u64::MAX),
            (SessionId::random(), "n\u{e9}", 0),
        ] {
            let id = EventId {
                stream: StreamKey::new(session, name),
                seq,
            };
            assert_eq!(id.text(), id.to_string());
            assert_eq!(id.text().parse::<EventId>().unwrap(), id);
        }
    }

    #[test]
    fn rejects_garbage() {
        let sid = SessionId([3; 16]).to_string();
        for bad in [
            "".to_owned(),
            "x".to_owned(),
            format!("{sid}/get"),
            format!("{sid}/get/"),
            format!("{sid}/get/+1"),
            format!("{sid}/get/1x"),
            format!("{sid}/get/99999999999999999999999"),
            format!("{sid}/g\net/1"),
            "short/get/1".to_owned(),
        ] {
            assert!(bad.parse::<EventId>().is_err(), "{bad:?}");
        }
    }
}
