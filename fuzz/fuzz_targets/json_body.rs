//! The request body reader of MCP, A2A and LLM routes (`switchboard_gateway::json_body::BoundedJson`,
//! what the backend stage runs on every JSON `POST`) under libFuzzer: the first three bytes
//! choose `max_depth`, the chunk size and the body kind, the rest is the body, read against a
//! 4 KiB `max_message_bytes`. The invariants are `fuzzing::json_body`'s (the proptest suite
//! checks the same on stable).
#![no_main]

use switchboard_gateway::json_body::{BodyKind, JsonLimits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let [depth, chunk, kind, body @ ..] = data else {
        return;
    };
    let limits = JsonLimits {
        max_depth: usize::from(*depth % 32) + 1,
        max_batch: 8,
        max_message_bytes: 4 * 1024,
    };
    let kind = if kind % 2 == 0 {
        BodyKind::JsonRpc
    } else {
        BodyKind::Json
    };
    switchboard_gateway::fuzzing::json_body(body, &limits, usize::from(*chunk) + 1, kind);
});
