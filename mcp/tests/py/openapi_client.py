"""Drive an OpenAPI target (the pet store of examples/openapi/pets.yaml) through the gateway
with the official Python MCP SDK.

usage: openapi_client.py URL MODE(legacy|auto) PREFIX('' = unprefixed) [OTHER_TOOL]
With OTHER_TOOL (a tool of a second target, already prefixed) it is listed and called too, and
the pet store's delete tool must be hidden (the route denies it). Prints one JSON summary line;
exits non-zero on the first failed expectation.
"""

import json
import sys

import anyio
from mcp import Client

URL, MODE, PREFIX = sys.argv[1], sys.argv[2], sys.argv[3]
OTHER = sys.argv[4] if len(sys.argv) > 4 else None


def n(name):
    return f"{PREFIX}__{name}" if PREFIX else name


async def main():
    async with Client(URL, mode=MODE) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        pets = {k for k in tools if k.startswith(n(""))} if PREFIX else set(tools)
        expected = {n("listPets"), n("createPet"), n("showPetById")}
        if OTHER:
            assert OTHER in tools, tools.keys()
        else:
            # No operationId: a derived name. uploadPhoto (an image/png body) is skipped.
            expected.add(n("delete_pets_petId"))
        assert pets == expected, f"{sorted(pets)} != {sorted(expected)}"

        create = tools[n("createPet")]
        schema = create.input_schema
        assert schema["required"] == ["body"], schema
        body = schema["properties"]["body"]
        assert body["required"] == ["name"], body
        assert body["properties"]["tag"]["type"] == ["string", "null"], body  # nullable, via $ref
        assert schema["properties"]["X-Owner"]["description"] == "Who owns the new pet.", schema
        assert create.description == "Create a pet", create.description
        show = tools[n("showPetById")].input_schema
        assert show["required"] == ["petId"] and show["properties"]["petId"]["type"] == "string", show

        r = await client.call_tool(n("createPet"), {"body": {"name": "Rex", "tag": "dog"}, "X-Owner": "ann"})
        assert not r.is_error, r
        assert r.structured_content == {"id": "1", "name": "Rex", "tag": "dog", "owner": "ann"}, r
        assert json.loads(r.content[0].text) == r.structured_content, r
        r = await client.call_tool(n("createPet"), {"body": {"name": "Tom", "tag": "cat"}})
        assert not r.is_error and r.structured_content["id"] == "2", r

        r = await client.call_tool(n("listPets"), {"tag": "dog", "limit": 5})
        assert not r.is_error, r
        assert [p["name"] for p in json.loads(r.content[0].text)] == ["Rex"], r
        assert r.structured_content is None, r  # an array, not an object

        r = await client.call_tool(n("showPetById"), {"petId": "2"})
        assert r.structured_content["name"] == "Tom", r

        # The REST error response: a tool error with the status and the body.
        r = await client.call_tool(n("showPetById"), {"petId": "a b/c"})
        assert r.is_error, r
        text = r.content[0].text
        assert text.startswith("HTTP 404 Not Found: "), text
        assert json.loads(text.split(": ", 1)[1]) == {"code": 404, "message": "no pet a b/c"}, text
        r = await client.call_tool(n("createPet"), {"body": {"tag": "x"}})
        assert r.is_error and r.content[0].text.startswith("HTTP 400"), r

        # A missing required argument: a tool error naming it, no REST request.
        r = await client.call_tool(n("showPetById"), {})
        assert r.is_error and r.content[0].text == "missing required argument: petId", r

        if OTHER:
            r = await client.call_tool(OTHER, {})
            assert not r.is_error and r.content, r
        else:
            r = await client.call_tool(n("delete_pets_petId"), {"petId": "1"})
            assert not r.is_error, r
            r = await client.call_tool(n("listPets"), {})
            assert [p["name"] for p in json.loads(r.content[0].text)] == ["Tom"], r

        print(json.dumps({"ok": True, "tools": sorted(tools)}))


anyio.run(main)
