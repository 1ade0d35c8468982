//! Links the `switchboard` binary with packed relative relocations (`DT_RELR`) when the
//! binary is built for, and on, a Linux host whose glibc is 2.36 or later.
//!
//! A position-independent Rust binary carries about 80,000 relative relocations. As RELA
//! entries (24 bytes each) they are a 2 MB table the loader reads at every start, and those
//! pages then count in the process's resident set for its whole life; packed, they take about
//! 30 KB. The loader must understand the packed form: glibc 2.36 and later do, and a binary
//! linked this way names `GLIBC_ABI_DT_RELR`, so an older glibc refuses it at start with a
//! clear message rather than misbehaving. So it is done only where the binary is built on such
//! a glibc for itself; `SWITCHBOARD_PORTABLE_LINK=1` turns it off for a binary meant to be
//! copied to hosts with an older glibc (the container images ship the build host's libraries
//! and loader, so they need no such care).

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SWITCHBOARD_PORTABLE_LINK");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let portable = std::env::var_os("SWITCHBOARD_PORTABLE_LINK").is_some_and(|v| v != "0");
    if portable || target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if glibc_version().is_some_and(|v| v >= (2, 36)) {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// The build host's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn glibc_version() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts
        .next()?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some((major, minor))
}
