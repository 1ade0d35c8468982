//! Example upstreams for Switchboard tests and benchmarks.
