#!/usr/bin/env python3
"""Drive Mnemo's MCP tools with the official Python MCP SDK (PyPI `mcp` 2.3.x).

Runs one scenario against either `mnemo-bridge` over stdio (the way Claude Desktop
starts it) or a server's `/mcp` over streamable HTTP, and checks every answer:

    mcp_client.py --mode legacy --bridge target/debug/mnemo-bridge
    mcp_client.py --mode 2026-07-28 --url http://127.0.0.1:8000 --api-key KEY
    mcp_client.py --scenario misconfigured --bridge target/debug/mnemo-bridge

The `misconfigured` scenario expects a bridge started with a setting it cannot read:
it must still initialize and list its tools, then answer every call with an error
result; the summary holds those texts for the test to judge.

The bridge inherits this process's environment (MCP_MEMORY_HTTP_ENDPOINT,
MCP_API_KEY, ...). Prints a JSON summary on success; exits 1 with the first failed
check otherwise. The server must start empty.
"""

import argparse
import asyncio
import json
import os
import sys

import httpx2
import jsonschema
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.client.streamable_http import streamable_http_client

TOOLS = {
    "memory_store",
    "memory_search",
    "memory_list",
    "memory_get",
    "memory_update",
    "memory_delete",
    "memory_health",
}
DOG = "My dog Rex loves long walks on the beach"
BUDGET = "The quarterly budget review is scheduled for Friday"


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


async def scenario(client):
    summary = {"protocol_version": str(client.session.protocol_version)}

    tools = {t.name: t for t in (await client.list_tools()).tools}
    check(set(tools) == TOOLS, f"tools/list names {sorted(tools)}, expected {sorted(TOOLS)}")
    for tool in tools.values():
        check(tool.input_schema.get("type") == "object", f"{tool.name}: no input schema")
        check(tool.output_schema and tool.output_schema.get("type") == "object",
              f"{tool.name}: no output schema")
    summary["tools"] = sorted(tools)

    async def call(name, args, schema_of=None):
        result = await client.call_tool(name, args)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        check(not result.is_error, f"{name}({args}) failed: {text}")
        check(text, f"{name}: no text block")
        structured = result.structured_content
        check(isinstance(structured, dict), f"{name}: no structuredContent")
        # The client validates listed tools itself; checking again here makes the
        # test independent of that behaviour, and covers the legacy aliases.
        jsonschema.validate(structured, tools[schema_of or name].output_schema)
        return structured

    dog = await call("memory_store", {"content": DOG, "tags": ["pets"], "memory_type": "note"})
    await call("memory_store", {"content": BUDGET, "tags": ["work"]})
    again = await call("memory_store", {"content": DOG})
    check(again["duplicate"] and again["content_hash"] == dog["content_hash"],
          f"storing the same text again: {again}")

    found = await call("memory_search", {"query": "puppy", "limit": 2})
    top = found["results"][0]["memory"]
    check(top["content_hash"] == dog["content_hash"], f"'puppy' found {top['content']!r} first")
    summary["puppy_score"] = found["results"][0]["score"]

    hybrid = await call("memory_search", {"query": "budget", "mode": "hybrid", "tags": ["work"]})
    check(hybrid["count"] == 1, f"hybrid search with a tag filter: {hybrid}")

    summary["resources"] = await resources(client, dog["content_hash"], summary["protocol_version"])

    listed = await call("memory_list", {"page_size": 1})
    check(listed["total"] == 2 and listed["has_more"], f"memory_list: {listed}")

    updated = await call("memory_update",
                         {"content_hash": dog["content_hash"], "tags": ["pets", "dogs"]})
    check(sorted(updated["memory"]["tags"]) == ["dogs", "pets"], f"memory_update: {updated}")
    check(updated["memory"]["memory_type"] == "note", f"memory_update kept the type: {updated}")

    full = await call("memory_get", {"content_hash": dog["content_hash"]})
    check(full["content"] == DOG, f"memory_get: {full}")

    legacy = await call("retrieve_memory", {"query": "puppy", "n_results": 1},
                        schema_of="memory_search")
    check(legacy["count"] == 1 and legacy["results"][0]["memory"]["content_hash"]
          == dog["content_hash"], f"retrieve_memory: {legacy}")

    missing = await client.call_tool("memory_get", {"content_hash": "0" * 64})
    check(missing.is_error, "memory_get of an unknown hash is not an error")

    deleted = await call("memory_delete", {"content_hash": dog["content_hash"]})
    check(deleted["content_hashes"] == [dog["content_hash"]], f"memory_delete: {deleted}")
    after = await call("memory_list", {})
    check(after["total"] == 1, f"after the delete: {after}")

    health = await call("memory_health", {})
    check(health["status"] == "healthy" and health["memories"] == 1, f"memory_health: {health}")
    summary["server_version"] = health["version"]
    return summary


async def resources(client, dog_hash, protocol_version):
    """The read-only resources a client can attach, with two memories stored."""
    listed = [str(r.uri) for r in (await client.list_resources()).resources]
    for uri in ["memory://stats", "memory://tags", "memory://recent/10", "memory://tag/pets"]:
        check(uri in listed, f"resources/list lacks {uri}: {listed}")
    templates = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
    check("memory://memory/{content_hash}" in templates, f"resource templates: {templates}")

    async def read(uri):
        result = await client.read_resource(uri, cache_mode="bypass")
        check(len(result.contents) == 1, f"{uri}: {result}")
        content = result.contents[0]
        check(content.mime_type == "application/json", f"{uri}: mime type {content.mime_type}")
        return json.loads(content.text)

    recent = await read("memory://recent/10")
    check(recent["count"] == 2, f"memory://recent/10: {recent}")
    tags = {t["tag"]: t["count"] for t in (await read("memory://tags"))["tags"]}
    check(tags == {"pets": 1, "work": 1}, f"memory://tags: {tags}")
    tagged = await read("memory://tag/pets")
    check([m["content_hash"] for m in tagged["memories"]] == [dog_hash], f"memory://tag/pets: {tagged}")
    one = await read(f"memory://memory/{dog_hash}")
    check(one["content"] == DOG, f"memory://memory/{{hash}}: {one}")
    found = await read("memory://search/a%20puppy")
    check(found["results"][0]["memory"]["content_hash"] == dog_hash, f"memory://search: {found}")
    stats = await read("memory://stats")
    check(stats["memories"] == 2, f"memory://stats: {stats}")
    try:
        await read("memory://nothing")
        check(False, "reading memory://nothing did not fail")
    except MCPError as e:
        # 2026-07-28 sends resource-not-found as invalid params; earlier eras as -32002.
        expected = -32602 if protocol_version >= "2026-07-28" else -32002
        check(e.code == expected and "memory://recent/{n}" in e.message
              and "content_hash with" not in e.message, f"memory://nothing: {e.code} {e.message}")
    return sorted(listed)


async def misconfigured(client):
    tools = {t.name for t in (await client.list_tools()).tools}
    check(tools == TOOLS, f"tools/list names {sorted(tools)}, expected {sorted(TOOLS)}")
    errors = {}
    for name, args in [("memory_health", {}), ("memory_store", {"content": DOG}),
                       ("memory_search", {"query": "puppy"}), ("store_memory", {"content": DOG})]:
        result = await client.call_tool(name, args)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        check(result.is_error, f"{name} succeeded despite a bad setting: {text}")
        errors[name] = text
    return {"tools": sorted(tools), "errors": errors}


async def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", default="legacy", help="legacy, auto or 2026-07-28")
    parser.add_argument("--bridge", help="path of mnemo-bridge (stdio)")
    parser.add_argument("--url", help="server base URL (streamable HTTP at /mcp)")
    parser.add_argument("--api-key", help="API key for --url")
    parser.add_argument("--scenario", default="tools", help="tools (default) or misconfigured")
    args = parser.parse_args()
    run = misconfigured if args.scenario == "misconfigured" else scenario

    if args.bridge:
        params = StdioServerParameters(command=args.bridge, args=[], env=dict(os.environ))
        async with Client(params, mode=args.mode) as client:
            summary = await run(client)
    elif args.url:
        headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
        async with httpx2.AsyncClient(headers=headers) as http:
            transport = streamable_http_client(f"{args.url}/mcp", http_client=http)
            async with Client(transport, mode=args.mode) as client:
                summary = await run(client)
    else:
        parser.error("give --bridge or --url")
    summary["mode"] = args.mode
    print(json.dumps(summary))


def first_failure(error):
    """The CheckFailed inside `error`, which the SDK's task groups may have wrapped."""
    if isinstance(error, CheckFailed):
        return error
    for inner in getattr(error, "exceptions", ()):
        found = first_failure(inner)
        if found:
            return found
    return None


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except BaseException as error:  # noqa: BLE001 - reported, then re-raised
        failed = first_failure(error)
        if failed is None:
            raise
        print(f"check failed: {failed}", file=sys.stderr)
        sys.exit(1)
