//! `switchboard_gateway::fuzzing::llm_translation` under libFuzzer (the same invariants the proptest
//! suite checks on stable).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    switchboard_gateway::fuzzing::llm_translation(data);
});
