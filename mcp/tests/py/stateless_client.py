"""Connect with the Python SDK's default `mode="auto"`: it probes `server/discover` and, since
the gateway offers 2026-07-28, sends stateless requests (no session). usage: URL TOOL"""

import json
import sys

import anyio
from mcp import Client

URL, TOOL = sys.argv[1], sys.argv[2]


async def main():
    async with Client(URL) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        assert TOOL in tools, tools
        r = await client.call_tool(TOOL, {})
        text = r.content[0].text
        assert "simple text response" in text, r
        resources = (await client.list_resources()).resources
        rr = await client.read_resource(str(resources[0].uri))
        assert rr.contents, rr
        print(json.dumps({"ok": True, "tools": len(tools), "negotiated": str(client.session.discover_result is not None)}))


anyio.run(main)
