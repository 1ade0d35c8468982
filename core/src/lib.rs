//! What every Switchboard crate shares, and nothing else:
//!
//! - [`error`]: the error model. A failure that ends a request is an [`Error`] with a
//!   [`Cause`]; [`Error::render`] turns it into a response in the caller's [`ApiFormat`]. Backends
//!   return `Result<Response, Error>` and the gateway renders at one edge.
//! - [`context`]: the [`RequestContext`] the gateway's policy stage hands every backend, and
//!   the [`UpstreamCredential`] seam through which backends get the route's upstream credential.
//! - [`http`]: small HTTP helpers (a host without its port, whether a body is an event
//!   stream).
//! - [`h1pool`]: the per-thread HTTP/1.1 connection pool of the paths that send to plain
//!   `http://` upstreams on hyper directly.
//! - [`sse`]: the one bounded, incremental Server-Sent Events parser (and the writers of
//!   `data:`/`event:` frames) for every stream read from an upstream.
//! - [`boxed`]: a future boxed without first being built on the stack.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod context;
pub mod error;
pub mod h1pool;
pub mod http;
pub mod sse;
pub mod trace;

pub use context::{
    Access, Item, RequestContext, SpendMeter, SpendReservation, Spent, TokenMeter,
    TokenReservation, UpstreamCredential,
};
pub use error::{ApiFormat, Cause, Error, Result};
pub use trace::{Trace, Tracer};

/// `Box::pin(make())`, with the box allocated before the future is made, so that the future
/// is written into it in place. `Box::pin(f)` builds `f` on the stack and copies it whole
/// into the heap: for an MCP call's request future, 8.5 KB per request.
#[inline(always)]
pub fn boxed<F: std::future::Future>(make: impl FnOnce() -> F) -> std::pin::Pin<Box<F>> {
    Box::into_pin(Box::write(Box::new_uninit(), make()))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_boxed_future_runs_as_it_would_unboxed() {
        let words = [String::from("in"), String::from("place")];
        let f = super::boxed(|| async move {
            tokio::task::yield_now().await;
            words.join(" ")
        });
        assert_eq!(f.await, "in place");
    }
}
