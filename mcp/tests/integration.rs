//! Every integration test of this crate, in one test binary: each file of `tests/` is a module
//! here, and what they share is compiled once. A test binary per file linked the crate and its
//! dependencies again for each file, at a hundred megabytes or more of disk apiece. Run one
//! file's tests with
//! `cargo nextest run -p switchboard-mcp --test integration <file>::`.

// What the files share, compiled once.
#[path = "support/harness.rs"]
mod harness;

// The files, a module each.
mod apps;
mod backpressure;
mod batches;
mod conformance;
mod faults;
mod federation;
mod hostile;
mod http_target;
mod input_rounds;
mod openapi;
mod routing;
mod sessions;
mod stateless_stream;
mod stdio_sessions;
mod subscriptions;

/// A file added to `tests/` runs only once it is declared above.
#[test]
fn every_file_of_tests_is_a_module_here() {
    switchboard_testing::assert_every_test_file_is_a_module(env!("CARGO_MANIFEST_DIR"));
}
