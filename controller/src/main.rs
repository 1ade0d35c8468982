//! The `switchboard-controller` binary. The controller is being built (issue 8); until then
//! this binary says so and exits non-zero rather than pretending to work.

fn main() {
    eprintln!("switchboard-controller: not available in this build yet");
    std::process::exit(2);
}
