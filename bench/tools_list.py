"""tools_list: what the tools/list result costs an agent, in bytes, whole and per part.

One in-memory ``mcp.Client(server_for(None), mode="legacy")`` session lists the tools; the
result is measured as the compact JSON the server sends (``by_alias``, ``exclude_none``, no
spaces). Parts: each tool's ``name``, ``title``, ``description``, ``inputSchema``,
``outputSchema`` and ``annotations`` values, summed over tools (the JSON keys and punctuation
around them are only in the whole). Also the ten largest tools by their whole entry. Sizes
do not depend on timing, so ``--quick`` measures the same once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
from mcp import Client

from bench.harness import Figure

NAME = "tools_list"
PARTS = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
LARGEST = 10
GOAL_BYTES = 40_000


def size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (UTF-8)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


async def listed_tools() -> dict[str, Any]:
    """The tools/list result of a Goldfish server, as the JSON it travels as."""
    from goldfish.server.app import server_for

    async with Client(server_for(None), mode="legacy") as client:
        result = await client.list_tools()
    listed: dict[str, Any] = result.model_dump(by_alias=True, exclude_none=True, mode="json")
    return listed


def run(quick: bool) -> Iterator[Figure]:
    """Measure the tools/list result: whole, per part, and the largest tools."""
    del quick  # sizes are exact: one measurement is the figure
    listed = anyio.run(listed_tools)
    tools: list[dict[str, Any]] = listed["tools"]
    whole = size(listed)
    yield Figure(NAME, "tools", len(tools), "count", 1)
    yield Figure(NAME, "whole_bytes", whole, "bytes", 1)
    yield Figure(NAME, "under_40kb", whole < GOAL_BYTES, "bool", 1)
    for part in PARTS:
        yield Figure(NAME, f"{part}_bytes", sum(size(t[part]) for t in tools if part in t), "bytes", 1)
    yield Figure(NAME, "tools_with_output_schema", sum(1 for t in tools if "outputSchema" in t), "count", 1)
    for tool in sorted(tools, key=size, reverse=True)[:LARGEST]:
        yield Figure(NAME, f"tool_{tool['name']}_bytes", size(tool), "bytes", 1)
