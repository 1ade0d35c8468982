"""Two Python SDK sessions at once against a gateway whose only target is server-everything over
stdio with `sessions: per_session`, each with its own sampling callback and roots, plus a third
session that declares neither capability.

usage: per_session_client.py URL
Prints `OPEN {json}` once every check passed while all three sessions are open, then waits for
a line on stdin, closes the sessions (DELETE) and prints `DONE {json}`. Exits non-zero on the
first failed expectation.
"""

import json
import sys

import anyio
import mcp_types as types
from mcp import Client

URL = sys.argv[1]


class Peer:
    """One downstream session's callbacks; records what reached them."""

    def __init__(self, label):
        self.label = label
        self.sampled = []
        self.roots_asked = 0
        self.extra_roots = []
        self.logs = []
        self.roots_stored = None

    async def log(self, params):
        text = str(params.data)
        self.logs.append(text)
        # server-everything logs this after it stored the roots it asked this client for.
        if self.roots_stored is not None and "Roots updated: 2 root(s)" in text:
            self.roots_stored.set()

    async def sampling(self, context, params):
        text = params.messages[0].content.text
        self.sampled.append(text)
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled-by-{self.label}"),
            model="test-model",
            stop_reason="endTurn",
        )

    async def roots(self, context):
        self.roots_asked += 1
        uris = [f"file:///tmp/root-{self.label}", *self.extra_roots]
        return types.ListRootsResult(roots=[types.Root(uri=u, name=u.rsplit("/", 1)[-1]) for u in uris])


async def tool_names(client):
    return {t.name for t in (await client.list_tools()).tools}


async def exercise(client, peer, other, results):
    tools = await tool_names(client)
    # Offered exactly what this client has: server-everything registers these two tools only
    # for clients that declared sampling and roots.
    assert {"trigger-sampling-request", "get-roots-list"} <= tools, tools
    r = await client.call_tool(
        "trigger-sampling-request", {"prompt": f"prompt-{peer.label}", "maxTokens": 5}
    )
    body = r.content[0].text
    assert f"sampled-by-{peer.label}" in body, body
    assert f"sampled-by-{other}" not in body, body
    r = await client.call_tool("get-roots-list", {})
    roots = r.content[0].text
    assert f"file:///tmp/root-{peer.label}" in roots, roots
    assert f"file:///tmp/root-{other}" not in roots, roots
    results[peer.label] = {"tools": len(tools)}


async def main():
    a, b = Peer("A"), Peer("B")
    results = {}
    async with (
        Client(
            URL, mode="legacy", sampling_callback=a.sampling, list_roots_callback=a.roots, logging_callback=a.log
        ) as ca,
        Client(URL, mode="legacy", sampling_callback=b.sampling, list_roots_callback=b.roots) as cb,
        Client(URL, mode="legacy") as bare,
    ):
        # Both sessions' sampling calls are in flight at the same time.
        async with anyio.create_task_group() as tg:
            tg.start_soon(exercise, ca, a, "B", results)
            tg.start_soon(exercise, cb, b, "A", results)
        # Each callback saw its own session's prompts only.
        assert a.sampled and all("prompt-A" in s for s in a.sampled), a.sampled
        assert b.sampled and all("prompt-B" in s for s in b.sampled), b.sampled
        assert a.roots_asked >= 1 and b.roots_asked >= 1, (a.roots_asked, b.roots_asked)
        # A's roots change: its child (only) is told and asks A again.
        b_asked = b.roots_asked
        a.roots_stored = anyio.Event()
        a.extra_roots.append("file:///tmp/root-A-added")
        await ca.send_roots_list_changed()
        # The child's log message (sent outside any request) reaches its owner's stream.
        with anyio.fail_after(30):
            await a.roots_stored.wait()
        r = await ca.call_tool("get-roots-list", {})
        assert "file:///tmp/root-A-added" in r.content[0].text, r
        r = await cb.call_tool("get-roots-list", {})
        assert "root-A-added" not in r.content[0].text, r
        assert b.roots_asked == b_asked, (b.roots_asked, b_asked)
        bare_tools = await tool_names(bare)
        assert "echo" in bare_tools, bare_tools
        assert "trigger-sampling-request" not in bare_tools, bare_tools
        assert "get-roots-list" not in bare_tools, bare_tools
        summary = {
            "sampled": {"A": a.sampled, "B": b.sampled},
            "roots_asked": {"A": a.roots_asked, "B": b.roots_asked},
            "bare_tools": len(bare_tools),
            **results,
        }
        print("OPEN " + json.dumps(summary), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
    print("DONE " + json.dumps({"ok": True}), flush=True)


anyio.run(main)
