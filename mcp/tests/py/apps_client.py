"""An MCP Apps host's steps with the official Python MCP SDK: find the tool's UI resource in
`_meta.ui.resourceUri`, read it, call the tool and check the result names the same UI.

usage: apps_client.py URL TOOL
Prints one JSON summary line; exits non-zero on the first failed expectation.
"""

import json
import sys

import anyio
from mcp import Client

URL, TOOL = sys.argv[1], sys.argv[2]


async def main():
    async with Client(URL, mode="legacy") as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert TOOL in tools, sorted(tools)
        meta = tools[TOOL].meta or {}
        uri = meta["ui"]["resourceUri"]
        assert uri.startswith("ui://"), uri
        assert meta["ui/resourceUri"] == uri, meta
        read = await client.read_resource(uri)
        content = read.contents[0]
        assert str(content.uri) == uri, (content.uri, uri)
        result = await client.call_tool(TOOL, {})
        assert result.meta["ui"]["resourceUri"] == uri, result.meta
    print(json.dumps({"ok": True, "uri": uri, "mime": content.mime_type, "html": content.text}))


anyio.run(main)
