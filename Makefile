# One entry point for humans and CI. `make quickstart` runs the gateway with local example
# upstreams; `make test` installs the test peers and runs every test.
.PHONY: quickstart test setup fmt lint modcycles check build release-pgo bench bench-smoke startup-layout

NEXTEST_PROFILE ?= $(if $(CI),ci,default)

quickstart:
	examples/quickstart.sh

setup:
	.ci/setup

test: setup
	cargo nextest run --workspace --locked --profile $(NEXTEST_PROFILE)

fmt:
	cargo fmt --all

lint: modcycles
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# No import cycles between a crate's top-level modules (config is data; runtime compiles it).
MODCYCLE_CRATES ?= core/src gateway/src mcp/src llm-providers/src sessions/src controller/src
modcycles:
	python3 scripts/modcycles.py $(MODCYCLE_CRATES)

check: lint test

build:
	cargo build --workspace

# The gateway built with profile-guided optimisation: target/pgo/use/release/switchboard
# (scripts/pgo-build.sh; needs the harness's tools, so setup first).
release-pgo: setup
	scripts/pgo-build.sh

bench: setup
	examples/bench/run.py

bench-smoke: setup
	examples/bench/run.py --smoke

# Re-list the functions the gateway runs while it starts (gateway/startup.ld, see gateway/build.rs).
startup-layout:
	cargo build --release -p switchboard-gateway -p switchboard-examples --bins
	python3 scripts/startup-layout.py
