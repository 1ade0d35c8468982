//! Example upstreams for Switchboard tests and benchmarks.
pub mod mcp_fixture;
