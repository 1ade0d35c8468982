"""A FastMCP server (PyPI `fastmcp`) with long-running tools that report progress and log.
usage: fastmcp_server.py stdio | http | sse | modern

- `work` (argument `steps`, default 3): `ctx.debug("starting")`, then for each step
  i = 1..steps `notifications/progress` (i of steps, message "step i") and `ctx.info("step i
  done")`, then `ctx.warning("all steps done")`; answers "worked {steps} steps".
- `confirm`: progress 1 of 2 ("asking"), asks the client `elicitation/create` ("Proceed?", a
  boolean), progress 2 of 2 ("answered"); answers "confirmed {answer}".

`http` serves streamable HTTP at /mcp, `sse` the legacy SSE transport at /sse, `modern`
streamable HTTP at /mcp refusing `initialize` (JSON-RPC -32022), so that clients speak
2026-07-28 to it; each on a port of the OS's choosing, reported on stdout as
`listening on port N` once bound. `stdio` serves stdio."""

import json
import socket
import sys

from fastmcp import Context, FastMCP

mcp = FastMCP("progress")


@mcp.tool
async def work(ctx: Context, steps: int = 3) -> str:
    """Work through `steps` steps, reporting progress and logging each."""
    await ctx.debug("starting")
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
        await ctx.info(f"step {i} done")
    await ctx.warning("all steps done")
    return f"worked {steps} steps"


@mcp.tool
async def confirm(ctx: Context) -> str:
    """Ask the client to confirm, reporting progress around the question."""
    await ctx.report_progress(1, 2, "asking")
    answer = await ctx.elicit("Proceed?", response_type=bool)
    await ctx.report_progress(2, 2, "answered")
    return f"confirmed {getattr(answer, 'data', answer.action)}"


def modern_only(app):
    """Refuse `initialize` as a 2026-07-28-only server does; pass everything else on."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)
        chunks, more = [], True
        while more:
            m = await receive()
            chunks.append(m.get("body", b""))
            more = m.get("more_body", False)
        body = b"".join(chunks)
        try:
            msg = json.loads(body)
        except ValueError:
            msg = None
        if isinstance(msg, dict) and msg.get("method") == "initialize":
            err = {"jsonrpc": "2.0", "id": msg.get("id"),
                   "error": {"code": -32022, "message": "only 2026-07-28 is supported"}}
            await send({"type": "http.response.start", "status": 400,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": json.dumps(err).encode()})
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await app(scope, replay, send)

    return wrapped


def serve_http(app):
    import anyio
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    print(f"listening on port {sock.getsockname()[1]}", flush=True)
    anyio.run(server.serve, [sock])


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        mcp.run(transport="stdio", show_banner=False)
    elif mode == "http":
        serve_http(mcp.http_app(path="/mcp"))
    elif mode == "sse":
        serve_http(mcp.http_app(path="/sse", transport="sse"))
    elif mode == "modern":
        serve_http(modern_only(mcp.http_app(path="/mcp")))
    else:
        sys.exit(f"unknown mode {mode}")
