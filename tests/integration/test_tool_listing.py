"""tools/list as an agent receives it: small, typed, titled and with truthful annotations."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client
from mcp.types import Tool

from goldfish.states import StageState

LIST_GOAL_BYTES = 40_000
# The backup tools reach a bucket when backup.destination is gs://.
OPEN_WORLD = {
    "run",
    "resume_pipeline",
    "cancel",
    "logs",
    "warm_pool_cleanup",
    "manage_base_images",
    "create_backup",
    "list_backups",
    "restore_backup",
    "review_pipeline",
}
DESTRUCTIVE = {
    "delete_workspace",
    "rollback",
    "manage_versions",
    "cancel",
    "warm_pool_cleanup",
    "restore_backup",
    "manage_patterns",
}


async def listed(client: Client) -> dict[str, Tool]:
    return {tool.name: tool for tool in (await client.list_tools()).tools}


def nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every schema object inside ``schema`` (property names are not schemas)."""
    if isinstance(schema, list):
        for item in schema:
            yield from nodes(item)
    elif isinstance(schema, dict):
        yield schema
        for key, value in schema.items():
            if key == "properties":
                for prop in value.values():
                    yield from nodes(prop)
            else:
                yield from nodes(value)


@pytest.mark.anyio
async def test_tools_list_stays_under_40_kb_as_sent_with_every_tool(client: Client) -> None:
    result = await client.list_tools()
    sent = result.model_dump(by_alias=True, exclude_none=True, mode="json")

    assert len(json.dumps(sent, separators=(",", ":")).encode("utf-8")) < LIST_GOAL_BYTES
    assert len(result.tools) >= 44


@pytest.mark.anyio
async def test_every_tool_has_a_title_a_description_and_publishes_no_output_schema(client: Client) -> None:
    for name, tool in (await listed(client)).items():
        assert tool.title, name
        assert tool.description and not tool.description.startswith(" "), name
        assert "\n        " not in tool.description, name  # docstring indentation is not sent
        assert tool.output_schema is None, name


@pytest.mark.anyio
async def test_input_schemas_have_no_bare_objects_references_or_generated_titles(client: Client) -> None:
    for name, tool in (await listed(client)).items():
        schema = tool.input_schema
        assert "$defs" not in schema and "title" not in schema, name
        for node in nodes(schema):
            assert "$ref" not in node and "title" not in node, (name, node)
            if node.get("type") == "object" and node is not schema:
                shaped = "properties" in node or isinstance(node.get("additionalProperties"), dict | bool)
                assert shaped and node.get("additionalProperties") is not True, (name, node)


@pytest.mark.anyio
async def test_structured_parameters_show_the_shape_and_closed_sets_to_send(client: Client) -> None:
    tools = await listed(client)

    spec = tools["run"].input_schema["properties"]["results_spec"]
    assert spec["properties"]["direction"]["enum"] == ["maximize", "minimize"]
    assert spec["required"] == ["primary_metric", "direction"]
    assert tools["save_results_spec"].input_schema["properties"]["spec"]["properties"] == spec["properties"]
    results = tools["finalize_run"].input_schema["properties"]["results"]
    assert results["properties"]["ml_outcome"]["enum"] == ["success", "partial", "miss", "unknown"]
    reason = tools["run"].input_schema["properties"]["reason"]
    assert [branch["type"] for branch in reason["anyOf"]] == ["string", "object"]
    assert reason["anyOf"][1]["required"] == ["description"]
    state = tools["list_runs"].input_schema["properties"]["state"]
    assert state["enum"] == [s.value for s in StageState]
    for tool, parameter in (
        ("run", "config_override"),
        ("register_source", "metadata"),
        ("manage_sources", "metadata"),
        ("promote_artifact", "metadata"),
    ):
        values = tools[tool].input_schema["properties"][parameter]["additionalProperties"]
        assert "object" in values["type"] and "string" in values["type"], (tool, values)


@pytest.mark.anyio
async def test_annotations_say_what_each_tool_touches(client: Client) -> None:
    tools = await listed(client)

    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None, name
        assert hints.title is None, name  # the title is the tool's own
        assert hints.open_world_hint is (name in OPEN_WORLD), name
        assert hints.destructive_hint is (name in DESTRUCTIVE), name
        assert None not in (hints.read_only_hint, hints.idempotent_hint), name
        if hints.read_only_hint:
            assert hints.idempotent_hint is True, name
    assert tools["warm_pool_status"].annotations.read_only_hint is True  # type: ignore[union-attr]
