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
//!
//! On every Linux target it also hands the linker `startup.ld`, which gathers the functions the
//! gateway runs while it starts (listed by scripts/startup-layout.py) into one output section,
//! `.text.sb_startup`, ahead of `.text`. Spread over the whole 25 MB of code, those functions
//! fault in most of it; gathered, a few MB, so the idle process is about 6 MB smaller. Both GNU
//! ld and lld read the script (`INSERT BEFORE` keeps their default layout otherwise);
//! `SWITCHBOARD_STARTUP_LAYOUT=0` leaves it out, for a linker that cannot (mold).

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SWITCHBOARD_PORTABLE_LINK");
    println!("cargo::rerun-if-env-changed=SWITCHBOARD_STARTUP_LAYOUT");
    println!("cargo::rerun-if-changed=startup.ld");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    let portable = std::env::var_os("SWITCHBOARD_PORTABLE_LINK").is_some_and(|v| v != "0");
    let layout = std::env::var_os("SWITCHBOARD_STARTUP_LAYOUT").is_none_or(|v| v != "0");
    if layout && target.contains("-linux-") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{dir}/startup.ld");
    }
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
