"""A Python MCP SDK client that outlives the gateway replica it started on.

usage: session_failover.py URL_A URL_B TOOL

The SDK's own Streamable HTTP transport and session (`mcp.Client`, `mode="legacy"`: the
initialize handshake) run over an httpx2 client whose transport can switch the host:port it
sends to, so after the switch the SDK keeps its session id and simply talks to replica B,
as it would behind a load balancer that moved it. Protocol:

1. initialize on A, list tools, call TOOL; print {"phase": "on_a", "session": ID}
2. wait for a line on stdin (the test kills A meanwhile)
3. switch to B; call TOOL and list tools again with the same session
4. print {"ok": true, ...} with the session ids sent to each replica
"""

import json
import sys

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

URL_A, URL_B, TOOL = sys.argv[1], sys.argv[2], sys.argv[3]


class SwitchTransport(httpx2.AsyncBaseTransport):
    """Sends every request to the current target's host and port, leaving the rest as is."""

    def __init__(self, target: str):
        self.inner = httpx2.AsyncHTTPTransport()
        self.switch(target)
        self.sent = {}  # host:port -> set of Mcp-Session-Id values sent there

    def switch(self, url: str):
        u = httpx2.URL(url)
        self.host, self.port = u.host, u.port

    async def handle_async_request(self, request):
        request.url = request.url.copy_with(host=self.host, port=self.port)
        request.headers["host"] = f"{self.host}:{self.port}"
        sid = request.headers.get("mcp-session-id")
        if sid:
            self.sent.setdefault(f"{self.host}:{self.port}", set()).add(sid)
        return await self.inner.handle_async_request(request)

    async def aclose(self):
        await self.inner.aclose()


def out(obj):
    print(json.dumps(obj), flush=True)


async def call(client):
    r = await client.call_tool(TOOL, {})
    assert not r.is_error, r
    return r.content[0].text


async def main():
    transport = SwitchTransport(URL_A)
    timeout = httpx2.Timeout(30.0, read=300.0)
    async with httpx2.AsyncClient(transport=transport, timeout=timeout) as http:
        server = streamable_http_client(URL_A, http_client=http, terminate_on_close=False)
        async with Client(server, mode="legacy") as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            assert TOOL in tools, tools
            text_a = await call(client)
            a = f"{httpx2.URL(URL_A).host}:{httpx2.URL(URL_A).port}"
            sids = sorted(transport.sent.get(a, []))
            assert len(sids) == 1, sids
            out({"phase": "on_a", "session": sids[0]})
            await anyio.to_thread.run_sync(sys.stdin.readline)
            transport.switch(URL_B)
            text_b = await call(client)
            tools_b = [t.name for t in (await client.list_tools()).tools]
            assert tools_b == tools, (tools_b, tools)
            b = f"{httpx2.URL(URL_B).host}:{httpx2.URL(URL_B).port}"
            out(
                {
                    "ok": True,
                    "text_a": text_a,
                    "text_b": text_b,
                    "sent_to_a": sorted(transport.sent.get(a, [])),
                    "sent_to_b": sorted(transport.sent.get(b, [])),
                }
            )


anyio.run(main)
