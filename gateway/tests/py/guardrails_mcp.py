"""The official Python MCP SDK calling a tool through a Switchboard MCP route with guardrails.

usage: guardrails_mcp.py URL TOOL ARGS_JSON

Prints one JSON line: {"tools": {name: description}, "text": "...", "is_error": bool} or
{"tools": ..., "error": "..."} when the call raised (a JSON-RPC error).
"""

import json
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL, TOOL, ARGS = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])


async def main():
    async with Client(streamable_http_client(URL), mode="legacy") as client:
        tools = {t.name: t.description for t in (await client.list_tools()).tools}
        out = {"tools": tools}
        try:
            r = await client.call_tool(TOOL, ARGS)
            out["text"] = " ".join(getattr(c, "text", "") for c in r.content)
            out["is_error"] = r.is_error
        except Exception as e:  # the SDK raises McpError for JSON-RPC errors
            out["error"] = str(e)
        print(json.dumps(out))


anyio.run(main)
