//! Every integration test of this crate, in one test binary: each file of `tests/` is a module
//! here, and what they share is compiled once. A test binary per file linked the crate and its
//! dependencies again for each file, at a hundred megabytes or more of disk apiece. Run one
//! file's tests with
//! `cargo nextest run -p switchboard-controller --test integration <file>::`.

// What the files share, compiled once.
mod common;

// The files, a module each.
mod images;
mod install;
mod leader;
mod patterns_real;
mod push_e2e;
mod real_cluster;
mod reconcile_mock;
mod render_golden;
mod render_routes;
mod route_features_e2e;
mod schema_roundtrip;
mod whole_loop;

/// A file added to `tests/` runs only once it is declared above.
#[test]
fn every_file_of_tests_is_a_module_here() {
    switchboard_testing::assert_every_test_file_is_a_module(env!("CARGO_MANIFEST_DIR"));
}
