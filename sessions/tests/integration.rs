//! Every integration test of this crate, in one test binary: each file of `tests/` is a module
//! here, and what they share is compiled once. A test binary per file linked the crate and its
//! dependencies again for each file, at a hundred megabytes or more of disk apiece. Run one
//! file's tests with
//! `cargo nextest run -p switchboard-sessions --test integration <file>::`.

// The files, a module each.
mod affinity;
mod footprint;
mod replicas;
mod stores;
mod topologies;

/// A file added to `tests/` runs only once it is declared above.
#[test]
fn every_file_of_tests_is_a_module_here() {
    switchboard_testing::assert_every_test_file_is_a_module(env!("CARGO_MANIFEST_DIR"));
}
