//! Link settings of the `switchboard` binary.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        // The binary is position-independent, so the dynamic loader rewrites every pointer
        // in it at start-up. As RELA entries those relative relocations are 24 bytes each,
        // ~2 MB that the loader reads once and that then stay resident; packed (DT_RELR,
        // glibc 2.36 and later) they take a few KB. Idle RSS: BENCHMARKS.md.
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
