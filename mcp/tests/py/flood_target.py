"""A stdio MCP target that floods: `tools/call` of `flood` answers, then writes `n` (default
5000) `notifications/message` (about 1 KiB each, `params.data.i` = 0..n), which belong to no
request (none is in flight); with `"before": true` it floods first, so the notifications go
with the call, and answers last; `"pace": true` pauses a millisecond every 20 notifications
(a steady stream rather than one burst). `ask` sends the client a `roots/list` request
(`ask-1`), floods `n` (default 1000) notifications, sends a second `roots/list` (`ask-2`), then
waits for the replies to both and answers the call with them as JSON text (`{"ask-1": reply,
"ask-2": reply}`). `echo` just answers. Raw JSON-RPC, one message a line (no SDK needed)."""

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


def flood(n, pace):
    pad = "x" * 1000
    for i in range(n):
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "method": "notifications/message",
                                     "params": {"level": "info",
                                                "data": {"i": i, "pad": pad}}}) + "\n")
        if pace and i % 20 == 19:
            sys.stdout.flush()
            time.sleep(0.001)
    sys.stdout.flush()


def ask(m, n):
    send({"jsonrpc": "2.0", "id": "ask-1", "method": "roots/list"})
    flood(n, False)
    send({"jsonrpc": "2.0", "id": "ask-2", "method": "roots/list"})
    replies = {}
    while len(replies) < 2:
        line = sys.stdin.readline()
        if not line:
            sys.exit(0)
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("id") in ("ask-1", "ask-2") and "method" not in r:
            replies[r["id"]] = r
    result(m, text(json.dumps(replies)))


while True:
    line = sys.stdin.readline()
    if not line:
        break
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
                             {"name": "ask", "inputSchema": schema},
                             {"name": "echo", "inputSchema": schema}]})
    elif method == "tools/call" and params.get("name") == "flood":
        args = params.get("arguments") or {}
        n = int(args.get("n", 5000))
        before = bool(args.get("before"))
        if not before:
            result(m, text("flooded"))
        flood(n, bool(args.get("pace")))
        if before:
            result(m, text("flooded"))
    elif method == "tools/call" and params.get("name") == "ask":
        ask(m, int((params.get("arguments") or {}).get("n", 1000)))
    elif method == "tools/call":
        result(m, text("echo"))
    elif method == "ping":
        result(m, {})
    else:
        send({"jsonrpc": "2.0", "id": m["id"],
              "error": {"code": -32601, "message": "Method not found"}})
