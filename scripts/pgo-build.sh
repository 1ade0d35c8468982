#!/usr/bin/env bash
# Builds the `switchboard` binary with profile-guided optimisation (PGO): once instrumented
# (`-Cprofile-generate`), run under the benchmark harness's training load (every kind of
# traffic it measures: plain HTTP with the access log off and on, LLM chat, streams and both
# translations, MCP through one and three targets; `examples/bench/run.py --only train`),
# then built again with the profile it wrote (`-Cprofile-use`). Measured on a 2-vCPU VM: 30%
# fewer instructions per plain-HTTP request, 26% per LLM chat, 24% per MCP call (BENCHMARKS.md,
# "Round fourteen").
#
#   scripts/pgo-build.sh [--profile release|dev] [--seconds N]
#
#   --profile   cargo profile (default: release). `dev` checks the steps on debug builds in
#               minutes (CI does); its binary is no faster.
#   --seconds   seconds of each training load (default: 3).
#
# Needs llvm-profdata of the toolchain's own LLVM: `rustup component add llvm-tools` (.ci/setup
# and `make setup` add it), or LLVM_PROFDATA=/path/to/llvm-profdata. Both builds have target
# folders of their own under target/pgo/ (CARGO_TARGET_DIR is not read), so target/release is
# left as it is. Prints the binary's path on stdout when done: target/pgo/use/release/switchboard
# for the release profile.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release; seconds=3
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "pgo-build: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) dir=release; harness=() ;;
  dev) dir=debug; harness=(--smoke) ;;
  *) echo "pgo-build: --profile is release or dev" >&2; exit 2 ;;
esac

host=$(rustc -vV | sed -n 's/^host: //p')
profdata=${LLVM_PROFDATA:-$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata}
if [ ! -x "$profdata" ]; then
  echo "pgo-build: no llvm-profdata at $profdata (rustup component add llvm-tools, or set LLVM_PROFDATA)" >&2
  exit 1
fi

work="$PWD/target/pgo"
raw="$work/profraw-$profile"
data="$work/switchboard-$profile.profdata"
rm -rf "$raw" "$data"
mkdir -p "$raw"
flags=${RUSTFLAGS:-}

echo "pgo-build: the example upstreams and load generators ($profile)" >&2
# As the harness builds them (`make bench`), where it looks for them: target/, whatever
# CARGO_TARGET_DIR says. Up to date after a `make bench` or a smoke pass.
cargo build --locked --profile "$profile" -p switchboard-gateway -p switchboard-examples --bins \
  --target-dir "$PWD/target" >&2

echo "pgo-build: the gateway, instrumented" >&2
RUSTFLAGS="$flags -Cprofile-generate=$raw" cargo build --locked --profile "$profile" \
  -p switchboard-gateway --bin switchboard --target-dir "$work/generate" >&2

echo "pgo-build: the training load" >&2
LLVM_PROFILE_FILE="$raw/switchboard-%p-%m.profraw" python3 examples/bench/run.py --no-build "${harness[@]}" \
  --only train --seconds "$seconds" --gateway "$work/generate/$dir/switchboard" >&2
shopt -s nullglob
profiles=("$raw"/*.profraw)
# One profile per gateway the training load ran (access log off, and to a file).
if [ "${#profiles[@]}" -lt 2 ]; then
  echo "pgo-build: the training load left ${#profiles[@]} profiles in $raw, not 2" >&2
  exit 1
fi
"$profdata" merge -o "$data" "${profiles[@]}"

echo "pgo-build: the gateway, built with the profile" >&2
RUSTFLAGS="$flags -Cprofile-use=$data" cargo build --locked --profile "$profile" \
  -p switchboard-gateway --bin switchboard --target-dir "$work/use" >&2
echo "$work/use/$dir/switchboard"
