"""The official Python MCP SDK reading a resource and getting prompts through a Switchboard
MCP route with guardrails (the conformance fixture behind it).

usage: guardrails_mcp_content.py URL

Prints one JSON line: {"resource": "...", "prompt": "...", "prompt_args": "..."}.
"""

import json
import sys

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL = sys.argv[1]


async def main():
    async with Client(streamable_http_client(URL), mode="legacy") as client:
        res = await client.read_resource("test://static-text")
        simple = await client.get_prompt("test_simple_prompt")
        with_args = await client.get_prompt(
            "test_prompt_with_arguments", {"arg1": "dave@example.net", "arg2": "x"}
        )
        print(json.dumps({
            "resource": res.contents[0].text,
            "prompt": simple.messages[0].content.text,
            "prompt_args": with_args.messages[0].content.text,
        }))


anyio.run(main)
