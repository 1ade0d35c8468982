"""Listen through the gateway in the Python SDK's default (2026-07-28) mode: one
`subscriptions/listen` for a resource of each target (picked from the listing by the substrings
given), printing the honored URIs once acknowledged, then every `ResourceUpdated` until each
subscribed URI changed. With TOOL, calls that tool (no arguments) once acknowledged.
usage: listen_client.py URL SUBSTRING[,SUBSTRING...] [TOOL]"""

import json
import sys

import anyio
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated

URL, WANTED = sys.argv[1], sys.argv[2].split(",")
TOOL = sys.argv[3] if len(sys.argv) > 3 else None


async def main():
    async with Client(URL) as client:
        resources = (await client.list_resources()).resources
        uris = [next(str(r.uri) for r in resources if w in str(r.uri)) for w in WANTED]
        async with client.listen(resource_subscriptions=uris, tools_list_changed=True) as sub:
            honored = sorted(sub.honored.resource_subscriptions or [])
            print(json.dumps({"version": client.session.protocol_version, "asked": sorted(uris), "honored": honored}), flush=True)
            if TOOL:
                await client.call_tool(TOOL, {})
            updated = set()
            with anyio.fail_after(30):
                async for event in sub:
                    if isinstance(event, ResourceUpdated):
                        updated.add(event.uri)
                    if updated >= set(uris):
                        break
    print(json.dumps({"ok": True, "updated": sorted(updated)}), flush=True)


anyio.run(main)
