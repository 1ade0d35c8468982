"""A stdio MCP target that floods: `tools/call` of `flood` answers, then writes `n` (default
5000) `notifications/message` (about 1 KiB each, `params.data.i` = 0..n), which belong to no
request (none is in flight); with `"before": true` it floods first, so the notifications go
with the call, and answers last; `"pace": true` pauses a millisecond every 20 notifications
(a steady stream rather than one burst). `echo` just answers. Raw JSON-RPC, one message a line (no SDK needed)."""

import json
import sys
import time


def send(m):
    sys.stdout.write(json.dumps(m) + "\n")
    sys.stdout.flush()


def result(m, r):
    send({"jsonrpc": "2.0", "id": m["id"], "result": r})


def text(t):
    return {"content": [{"type": "text", "text": t}]}


for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if "id" not in m or "method" not in m:
        continue
    method = m["method"]
    params = m.get("params") or {}
    if method == "initialize":
        result(m, {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                   "capabilities": {"tools": {}},
                   "serverInfo": {"name": "flood", "version": "0"}})
    elif method == "tools/list":
        schema = {"type": "object"}
        result(m, {"tools": [{"name": "flood", "inputSchema": schema},
                             {"name": "echo", "inputSchema": schema}]})
    elif method == "tools/call" and params.get("name") == "flood":
        args = params.get("arguments") or {}
        n = int(args.get("n", 5000))
        before = bool(args.get("before"))
        if not before:
            result(m, text("flooded"))
        pad = "x" * 1000
        for i in range(n):
            sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                                         "params": {"level": "info",
                                                    "data": {"i": i, "pad": pad}}}) + "\n")
            if args.get("pace") and i % 20 == 19:
                sys.stdout.flush()
                time.sleep(0.001)
        sys.stdout.flush()
        if before:
            result(m, text("flooded"))
    elif method == "tools/call":
        result(m, text("echo"))
    elif method == "ping":
        result(m, {})
    else:
        send({"jsonrpc": "2.0", "id": m["id"],
              "error": {"code": -32601, "message": "Method not found"}})
