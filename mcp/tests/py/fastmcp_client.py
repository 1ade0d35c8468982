"""A `fastmcp.Client` in its default mode (`mode="auto"`: it discovers 2026-07-28 and sends
stateless requests) calls each TOOL and records, in arrival order, every progress and log
notification and then the result. Tools named `…confirm` are asked `elicitation/create` and
accept with `true`; the others are called with `steps` 3.
usage: fastmcp_client.py URL TOOL... ; prints one JSON line
{"stateless": bool, "calls": {TOOL: [["progress", p, total, message] | ["log", level, text]
| ["elicit", message] | ["result", text], ...]}}"""

import json
import sys

import anyio
from fastmcp import Client

URL, TOOLS = sys.argv[1], sys.argv[2:]


async def main():
    events = []

    async def on_log(m):
        data = m.data.get("msg") if isinstance(m.data, dict) else m.data
        events.append(["log", m.level, data])

    async def on_progress(progress, total, message):
        events.append(["progress", progress, total, message])

    async def on_elicit(message, response_type, params, context):
        events.append(["elicit", message])
        return response_type(value=True)

    calls = {}
    async with Client(URL, log_handler=on_log, progress_handler=on_progress,
                      elicitation_handler=on_elicit) as client:
        for tool in TOOLS:
            events.clear()
            args = {} if tool.endswith("confirm") else {"steps": 3}
            r = await client.call_tool(tool, args)
            events.append(["result", r.content[0].text])
            calls[tool] = list(events)
        stateless = client.session.discover_result is not None
    print(json.dumps({"stateless": stateless, "calls": calls}))


anyio.run(main)
