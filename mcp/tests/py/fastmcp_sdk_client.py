"""The Python `mcp` SDK's `Client` in its default mode (it discovers 2026-07-28 and sends
stateless requests), opted in to log messages from `info` up, calls each TOOL with `steps` 3
and records, in arrival order, every progress and log notification and then the result.
usage: fastmcp_sdk_client.py URL TOOL... ; prints one JSON line
{"stateless": bool, "calls": {TOOL: [["progress", p, total, message] | ["log", level, text]
| ["result", text], ...]}}"""

import json
import sys

import anyio
from mcp import Client

URL, TOOLS = sys.argv[1], sys.argv[2:]


async def main():
    events = []

    async def on_log(params):
        data = params.data.get("msg") if isinstance(params.data, dict) else params.data
        events.append(["log", params.level, data])

    async def on_progress(progress, total, message):
        events.append(["progress", progress, total, message])

    calls = {}
    async with Client(URL, logging_callback=on_log, log_level="info") as client:
        for tool in TOOLS:
            events.clear()
            r = await client.call_tool(tool, {"steps": 3}, progress_callback=on_progress)
            events.append(["result", r.content[0].text])
            calls[tool] = list(events)
        stateless = client.session.discover_result is not None
    print(json.dumps({"stateless": stateless, "calls": calls}))


anyio.run(main)
