#!/usr/bin/env bash
# Builds Switchboard and the example upstreams (HTTP, mock LLM, MCP over HTTP and stdio, A2A
# agent), starts the upstreams, then runs the gateway with examples/quickstart.yaml in the
# foreground. Offline, no API keys. Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p switchboard-gateway -p switchboard-examples --bins
bin=target/debug
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

"$bin/upstream" --bind "${UPSTREAM_HTTP:-127.0.0.1:3000}" & pids+=($!)
"$bin/mock-llm" --bind "${UPSTREAM_LLM:-127.0.0.1:3010}" & pids+=($!)
"$bin/mcp-fixture" --bind "${UPSTREAM_MCP:-127.0.0.1:3020}" & pids+=($!)
"$bin/a2a-echo" --bind "${UPSTREAM_A2A:-127.0.0.1:3030}" & pids+=($!)
# The gateway starts the stdio MCP server ($MCP_ECHO, default target/debug/mcp-echo) itself.

admin="${SWITCHBOARD_ADMIN:-127.0.0.1:15000}"
echo "switchboard: http://${SWITCHBOARD_BIND:-127.0.0.1:8080}  (admin http://$admin)"
echo "admin UI:    http://$admin/ui  (listeners, MCP targets, sessions, LLM models, config, playground)"
"$bin/switchboard" run --config examples/quickstart.yaml
