//! Example upstreams for Switchboard tests and benchmarks.
pub mod mock_llm;
