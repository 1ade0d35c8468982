"""A session-era client (the Python SDK, mode="legacy") calling a 2026-07-28-only target through
the gateway: the target's input requests (input_required) must reach this client as ordinary
elicitation and sampling requests, and its answers must finish the call.

usage: input_rounds_client.py URL PREFIX   (PREFIX: the exposed name prefix, e.g. "modern__")
Prints one JSON summary line; exits non-zero on the first failed expectation.
"""

import json
import sys

import anyio
import mcp_types as types
from mcp import Client

URL, PREFIX = sys.argv[1], sys.argv[2]
asked = {"elicitation": 0, "sampling": 0}


async def elicitation(context, params):
    asked["elicitation"] += 1
    assert params.message.startswith("Deploy "), params
    return types.ElicitResult(action="accept", content={"ok": True})


async def sampling(context, params):
    asked["sampling"] += 1
    text = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"sampled<{text}>"),
        model="test-model",
        stop_reason="endTurn",
    )


def text_of(r):
    return r.content[0].text


async def main():
    summary = {}
    # No roots callback: the client does not declare roots.
    async with Client(URL, mode="legacy", sampling_callback=sampling, elicitation_callback=elicitation) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        locate = tools[PREFIX + "locate"]
        assert locate.input_schema["properties"]["region"]["x-mcp-header"] == "Region", locate.input_schema

        r = await client.call_tool(PREFIX + "deploy", {"item": "api"})
        assert not r.is_error, r
        assert text_of(r) == "action=accept sampled=sampled<summarize api>", text_of(r)
        assert asked == {"elicitation": 1, "sampling": 1}, asked
        summary["deploy"] = text_of(r)

        r = await client.call_tool(PREFIX + "locate", {"region": "eu-west1", "shard": 3, "note": "n"})
        assert not r.is_error, r
        summary["locate"] = text_of(r)

        try:
            r = await client.call_tool(PREFIX + "list_roots", {})
            raise AssertionError(f"roots without the capability succeeded: {r}")
        except AssertionError:
            raise
        except Exception as e:  # the gateway refuses: this client has no roots
            assert "does not support" in str(e), e
            summary["roots"] = str(e)

        before = asked["elicitation"]
        try:
            r = await client.call_tool(PREFIX + "insatiable", {})
            raise AssertionError(f"an endless input loop ended: {r}")
        except AssertionError:
            raise
        except Exception as e:
            assert "rounds" in str(e), e
            summary["insatiable"] = str(e)
        summary["insatiable_rounds"] = asked["elicitation"] - before
    summary["ok"] = True
    print(json.dumps(summary))


anyio.run(main)
