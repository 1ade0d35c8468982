"""Drive the gateway with the official Python MCP SDK (handshake era) and check federation.

usage: federation_client.py URL TRANSPORT(streamable|sse) TARGETS(comma separated, '' = unprefixed)
Prints one JSON summary line; exits non-zero on the first failed expectation.
"""

import json
import sys

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.sse import sse_client

URL, TRANSPORT, TARGETS = sys.argv[1], sys.argv[2], [t for t in sys.argv[3].split(",") if t]


def name(target, n):
    return f"{target}__{n}" if target else n


async def sampling(context, params):
    text = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled<{text}>"),
        model="test-model",
        stop_reason="endTurn",
    )


async def roots(context):
    return types.ListRootsResult(roots=[types.Root(uri="file:///tmp/switchboard-root", name="sb-root")])


async def main():
    server = URL if TRANSPORT == "streamable" else sse_client(URL)
    summary = {}
    async with Client(server, mode="legacy", sampling_callback=sampling, list_roots_callback=roots) as client:
        tools = []
        cursor = None
        while True:
            page = await client.list_tools(cursor=cursor)
            tools += [t.name for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        summary["tools"] = len(tools)
        for t in TARGETS or [""]:
            for n in ("echo", "trigger-long-running-operation", "trigger-sampling-request"):
                assert name(t, n) in tools, f"{name(t, n)} missing from {tools}"
        assert all(len(t) <= 64 for t in tools)

        for t in TARGETS or [""]:
            r = await client.call_tool(name(t, "echo"), {"message": f"hi {t}"})
            assert r.content[0].text == f"Echo: hi {t}", r

            progress = []

            async def on_progress(p, total, message):
                progress.append(p)

            r = await client.call_tool(
                name(t, "trigger-long-running-operation"),
                {"duration": 0.3, "steps": 3},
                progress_callback=on_progress,
            )
            assert "completed" in r.content[0].text, r
            assert progress == [1, 2, 3], f"{t}: progress {progress}"

            r = await client.call_tool(name(t, "trigger-sampling-request"), {"prompt": f"p-{t}", "maxTokens": 5})
            body = json.dumps([c.model_dump() for c in r.content])
            assert f"sampled<" in body and f"p-{t}" in body, body

            # Targets with a session of their own ask this client for its roots (the shared
            # stdio child is not offered roots: it has no single owner).
            if t in ("http", "sse", ""):
                r = await client.call_tool(name(t, "get-roots-list"), {})
                assert "file:///tmp/switchboard-root" in r.content[0].text, r

            prompts = [p.name for p in (await client.list_prompts()).prompts]
            assert name(t, "simple-prompt") in prompts, prompts
            pr = await client.get_prompt(name(t, "simple-prompt"))
            assert pr.messages, pr

        resources = (await client.list_resources()).resources
        summary["resources"] = len(resources)
        owners = set()
        for t in TARGETS or [""]:
            mine = [r for r in resources if (f"/{t}/" in str(r.uri)) or not t]
            assert mine, f"no resources of {t}"
            rr = await client.read_resource(str(mine[0].uri))
            assert rr.contents, rr
            owners.add(t)
        summary["read_from"] = sorted(owners)
    print(json.dumps({"ok": True, **summary}))


anyio.run(main)
