//! `switchboard_gateway::fuzzing::authority` under libFuzzer (the same invariants the
//! proptest suite `gateway/tests/edge_props.rs` checks on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchboard_gateway::fuzzing::authority(data);
});
