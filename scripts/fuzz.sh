#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a fixed number of iterations (libFuzzer -runs=N).
#
#   scripts/fuzz.sh [RUNS] [TARGET...]     RUNS per target (default 20000); all targets by default
#   FUZZ_SECONDS=600 scripts/fuzz.sh 0     a long run: 10 minutes per target, no iteration cap
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and a C++ compiler (libFuzzer is
# built from source by libfuzzer-sys). Uses `cargo fuzz` when installed; otherwise it builds the
# targets with the same sanitizer-coverage flags cargo-fuzz passes and runs the binaries itself.
# Without nightly it falls back to the stable property tests that check the same invariants
# (gateway/tests/security_props.rs, gateway/tests/edge_props.rs) with PROPTEST_CASES=RUNS.
#
# Corpora live in fuzz/corpus/TARGET (seeded from the repository's configs), crashes in
# fuzz/artifacts/TARGET; both are git-ignored. Exit status is non-zero when any target fails.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-20000}
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(config jsonrpc json_body authz_rule jwt sse llm_translation mcp_names path_normalize authority)
fi
EXTRA=()
if [ -n "${FUZZ_SECONDS:-}" ]; then
  EXTRA+=("-max_total_time=${FUZZ_SECONDS}")
fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: no nightly toolchain; running the stable property tests instead (PROPTEST_CASES=$RUNS)"
  PROPTEST_CASES=$RUNS exec cargo nextest run -p switchboard-gateway --test integration security_props:: edge_props::
fi

seed() {
  local t=$1 dir=fuzz/corpus/$1
  mkdir -p "$dir" "fuzz/artifacts/$t"
  case $t in
    config)
      for f in examples/*.yaml gateway/tests/configs/*.yaml; do
        [ -f "$f" ] && cp -n "$f" "$dir/$(basename "$f")"
      done ;;
    jsonrpc)
      printf '%s' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","arguments":{}}}' > "$dir/call.json"
      printf '%s' '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]' > "$dir/batch.json" ;;
    json_body)
      printf '%s' '@ {"model":"m","messages":[{"role":"user","content":"hi"}]}' > "$dir/chat.json"
      printf '%s' '@ [{"jsonrpc":"2.0","id":1,"method":"ping"}]' > "$dir/batch.json" ;;
    authz_rule)
      printf '%s' 'jwt.sub == "alice" && mcp.tool.name.startsWith("search__")' > "$dir/rule.cel" ;;
    jwt)
      printf '%s' 'eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2ln' > "$dir/token" ;;
    sse)
      printf 'event: message\nid: 1\ndata: {"a":1}\n\n' > "$dir/event" ;;
    path_normalize)
      printf '\000/x/../%%61dmin//./%%2e%%2E/a%%2Fb' > "$dir/tricks"
      printf '\003/a%%2fb//c/..%%5C' > "$dir/keep" ;;
    authority)
      printf '\005public.example\nAdmin.Example.:080\nadmin.example' > "$dir/hosts" ;;
  esac
}

status=0
if cargo fuzz --version >/dev/null 2>&1; then
  cargo +nightly fuzz build -O
  for t in "${TARGETS[@]}"; do
    seed "$t"
    echo "== fuzz $t (runs=$RUNS ${EXTRA[*]:-})"
    cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" -- -runs="$RUNS" "${EXTRA[@]}" \
      -artifact_prefix="fuzz/artifacts/$t/" || status=1
  done
else
  # What cargo-fuzz does: instrument only the target crates (a --target build keeps the flags
  # away from build scripts and proc macros).
  host=$(rustc +nightly -vV | sed -n 's/^host: //p')
  export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
  cargo +nightly build --manifest-path fuzz/Cargo.toml --release --target "$host" --bins
  for t in "${TARGETS[@]}"; do
    seed "$t"
    echo "== fuzz $t (runs=$RUNS ${EXTRA[*]:-})"
    "fuzz/target/$host/release/$t" -runs="$RUNS" "${EXTRA[@]}" \
      -artifact_prefix="fuzz/artifacts/$t/" "fuzz/corpus/$t" || status=1
  done
fi
exit $status
