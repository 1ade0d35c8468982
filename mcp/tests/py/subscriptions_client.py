"""Subscribe through the gateway to one resource of each target and wait for each target's
`notifications/resources/updated`, which must carry the namespaced URI the client subscribed to.
usage: subscriptions_client.py URL TARGETS(comma separated)"""

import json
import sys

import anyio
import mcp_types as types
from mcp import Client

URL, TARGETS = sys.argv[1], sys.argv[2].split(",")
updated = set()
seen = anyio.Event()


async def on_message(message):
    if isinstance(message, types.ResourceUpdatedNotification):
        updated.add(str(message.params.uri))
        if wanted <= updated:
            seen.set()


wanted = set()


async def main():
    async with Client(URL, mode="legacy", message_handler=on_message) as client:
        resources = (await client.list_resources()).resources
        for t in TARGETS:
            uri = next(str(r.uri) for r in resources if f"/{t}/" in str(r.uri))
            wanted.add(uri)
            await client.subscribe_resource(uri)
            await client.call_tool(f"{t}__toggle-subscriber-updates", {})
        with anyio.fail_after(30):
            await seen.wait()
    print(json.dumps({"ok": True, "updated": sorted(updated)}))


anyio.run(main)
