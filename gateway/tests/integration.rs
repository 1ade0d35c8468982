//! Every integration test of this crate, in one test binary: each file of `tests/` is a module
//! here, and what they share is compiled once. A test binary per file linked the crate and its
//! dependencies again for each file, at a hundred megabytes or more of disk apiece. Run one
//! file's tests with
//! `cargo nextest run -p switchboard-gateway --test integration <file>::`.

// What the files share, compiled once.
mod common;
#[path = "../../mcp/tests/support/harness.rs"]
mod harness;
mod raw_support;
mod security_support;

// The files, a module each.
mod a2a;
mod a2a_config;
mod access_log;
mod admin_ui;
mod adversarial;
mod adversarial_edge;
mod authz_backends;
mod cli;
mod edge_props;
mod errors;
mod fleet_store;
mod guardrails;
mod http_proxy;
mod http_routes;
mod limit_by;
mod llm;
mod llm_cache;
mod llm_count_tokens;
mod llm_fleet;
mod llm_routing;
mod mcp;
mod mcp_fleet;
mod mcp_sessions;
mod mcp_upstream_auth;
mod memory;
mod proxy_protocol;
mod reload;
mod security;
mod security_props;
mod security_sweep;
mod tracing;
mod virtual_keys;

/// A file added to `tests/` runs only once it is declared above.
#[test]
fn every_file_of_tests_is_a_module_here() {
    switchboard_testing::assert_every_test_file_is_a_module(env!("CARGO_MANIFEST_DIR"));
}
