//! The SSE parser the MCP and LLM clients use (eventsource-stream) on arbitrary bytes split
//! at an arbitrary point, and the session SSE writer's frames read back by it: parsing never
//! panics, and a written event (payload without CRs, see the report on lone CRs) comes back
//! as exactly one event with the same data.
#![no_main]

use eventsource_stream::Eventsource;
use futures::StreamExt;

fn parse(chunks: Vec<bytes::Bytes>) -> Vec<Result<eventsource_stream::Event, String>> {
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    futures::executor::block_on(stream.eventsource().collect::<Vec<_>>())
        .into_iter()
        .map(|r| r.map_err(|e| e.to_string()))
        .collect()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let split = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    let (a, b) = data.split_at(split);
    let _ = parse(vec![
        bytes::Bytes::copy_from_slice(a),
        bytes::Bytes::copy_from_slice(b),
    ]);

    if let Ok(text) = std::str::from_utf8(data)
        && !text.contains('\r')
    {
        let frame = switchboard_sessions::sse::event(Some("1"), Some("message"), text);
        let events = parse(vec![frame]);
        assert_eq!(events.len(), 1);
        let e = events[0].as_ref().expect("a written frame parses");
        assert_eq!(e.data, text);
        assert_eq!(e.id, "1");
    }
});
