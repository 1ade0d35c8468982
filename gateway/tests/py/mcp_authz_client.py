"""The official Python MCP SDK behind an API key on an MCP route with authorization.

usage: mcp_authz_client.py URL API_KEY ALLOWED_TOOL DENIED_TOOL

Lists the tools the key may see and tries to call the denied one anyway. Prints one JSON line:
{"tools": [...], "allowed_result": "...", "denied_error": "..."}.
"""

import json
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL, KEY, ALLOWED, DENIED = sys.argv[1:5]


async def main():
    http = httpx2.AsyncClient(headers={"x-api-key": KEY}, timeout=30)
    async with http:
        async with Client(streamable_http_client(URL, http_client=http), mode="legacy") as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            ok = await client.call_tool(ALLOWED, {})
            denied = None
            try:
                r = await client.call_tool(DENIED, {})
                if r.is_error:
                    denied = " ".join(getattr(c, "text", "") for c in r.content)
            except Exception as e:  # the SDK raises McpError for JSON-RPC errors
                denied = str(e)
            print(json.dumps({
                "tools": tools,
                "allowed_result": " ".join(getattr(c, "text", "") for c in ok.content),
                "allowed_is_error": ok.is_error,
                "denied_error": denied,
            }))


anyio.run(main)
