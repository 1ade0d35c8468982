//! Small HTTP helpers more than one crate needs.

/// Whether `headers` declare an SSE body: `Content-Type: text/event-stream`, parameters
/// allowed, the media type compared case-insensitively (as HTTP says).
pub fn is_event_stream(headers: &::http::HeaderMap) -> bool {
    headers
        .get(::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            // Bytes, not `str` searches: this runs on every response. `to_str` left only
            // visible ASCII and tabs, so an ASCII trim is the whole trim.
            let media = v
                .as_bytes()
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default();
            media
                .trim_ascii()
                .eq_ignore_ascii_case(b"text/event-stream")
        })
}

/// Headers a response's map has room for without growing.
///
/// An HTTP/1 server connection of hyper keeps each response's header map, emptied, and parses
/// the connection's next request head into it; the gateway then adds its forwarding headers
/// to that head. A map made for a reply's few headers had to grow (a reallocation and a
/// rehash) for that on every request whose reply the gateway wrote itself (LLM and MCP
/// routes; a proxied reply's map has grown once already) (issue 19).
pub const REPLY_HEAD_ROOM: usize = 16;

/// A header map for a reply the gateway writes itself: room for [`REPLY_HEAD_ROOM`] headers.
pub fn reply_headers() -> ::http::HeaderMap {
    ::http::HeaderMap::with_capacity(REPLY_HEAD_ROOM)
}

/// A response builder whose header map is [`reply_headers`].
pub fn response() -> ::http::response::Builder {
    let mut builder = ::http::Response::builder();
    if let Some(headers) = builder.headers_mut() {
        *headers = reply_headers();
    }
    builder
}

/// `host[:port]` without its port: `example.com:8080` → `example.com`, `[::1]:80` → `[::1]`
/// (an IPv6 literal keeps its brackets). A value with more than one colon outside brackets is
/// not `host:port` (an unbracketed IPv6 address, or garbage) and comes back whole, so no part
/// of an address is ever taken for a port; so does one whose "port" is not all digits.
pub fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6] or [v6]:port
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.split_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_has_room_for_the_next_request_head_and_forwarding_headers() {
        let reply = response()
            .header(::http::header::CONTENT_TYPE, "application/json")
            .body(())
            .unwrap();
        let mut headers = reply.into_parts().0.headers;
        let room = headers.capacity();
        assert!(room >= REPLY_HEAD_ROOM, "{room}");
        // What hyper does with it: emptied, then a request head and the forwarding headers.
        headers.clear();
        for i in 0..REPLY_HEAD_ROOM {
            headers.insert(
                ::http::HeaderName::try_from(format!("x-h{i}")).unwrap(),
                ::http::HeaderValue::from_static("v"),
            );
        }
        assert_eq!(headers.capacity(), room, "the map grew");
    }

    #[test]
    fn event_streams_are_known_by_their_media_type() {
        let with = |ct: &str| {
            let mut h = ::http::HeaderMap::new();
            h.insert(::http::header::CONTENT_TYPE, ct.parse().unwrap());
            is_event_stream(&h)
        };
        assert!(with("text/event-stream"));
        assert!(with("text/event-stream; charset=utf-8"));
        assert!(with("Text/Event-Stream"));
        assert!(!with("text/event-streams"));
        assert!(!with("application/json"));
        assert!(!is_event_stream(&::http::HeaderMap::new()));
    }

    #[test]
    fn hosts_lose_their_port_and_only_it() {
        assert_eq!(host_without_port("example.com:8080"), "example.com");
        assert_eq!(host_without_port("example.com:"), "example.com");
        assert_eq!(host_without_port("example.com"), "example.com");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("[fe80::1]:8443"), "[fe80::1]");
        // Unbracketed IPv6: the last group is not a port.
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("fe80::1:80"), "fe80::1:80");
        assert_eq!(host_without_port("example.com:http"), "example.com:http");
    }
}
