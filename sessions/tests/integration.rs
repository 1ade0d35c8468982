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
