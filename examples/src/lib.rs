//! Example upstreams for Switchboard: small real servers used by the quickstart, the tests and
//! the benchmark harness.
//!
//! - [`upstream`]: an HTTP server with echo, streaming, SSE, slow and WebSocket endpoints.

pub mod upstream;
