"""The tool boundary as any MCP client sees it: one error shape, never structured content on errors.

TypeScript clients check any structured content against the tool's output schema, error or not,
so an error result must travel as its JSON text block alone; these tests hold every way a call
can fail to that (user errors, argument errors, unknown tools and arguments, internal failures).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent

from goldfish.server.app import server_for
from goldfish.server.app_state import GoldfishApp
from goldfish.server.toolkit import ToolRegistry, ToolResult, reason_check
from goldfish.server.tools import register_all
from goldfish.workspaces.service import WorkspaceService
from tests.conftest import LONG_REASON, call


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The error of a failed call, read the way a TypeScript client must read it: from the text."""
    assert result.is_error is True, result
    assert result.structured_content is None, result.structured_content
    [block] = result.content
    assert isinstance(block, TextContent)
    payload = json.loads(block.text)
    assert payload["success"] is False
    error: dict[str, Any] = payload["error"]
    assert set(error) == {"code", "message", "details", "remedy"}
    assert error["remedy"].strip()
    assert "Traceback" not in block.text
    return error


@pytest.mark.anyio
async def test_user_error_result_carries_the_error_as_text_and_no_structured_content(client: Client) -> None:
    result = await client.call_tool(
        "create_workspace", {"name": "bad name", "goal": "g", "reason": LONG_REASON}
    )

    error = error_of(result)
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["details"]["field"] == "name"


@pytest.mark.anyio
async def test_argument_of_the_wrong_type_is_an_invalid_argument_error_without_structured_content(
    client: Client,
) -> None:
    error = error_of(await client.call_tool("list_workspaces", {"limit": "many"}))

    assert error["code"] == "INVALID_ARGUMENT"
    assert [p["field"] for p in error["details"]["problems"]] == ["limit"]


@pytest.mark.anyio
async def test_misspelt_argument_is_refused_with_a_suggestion_instead_of_being_ignored(
    client: Client,
) -> None:
    error = error_of(await client.call_tool("list_runs", {"workspce": "baseline"}))

    assert error["code"] == "INVALID_ARGUMENT"
    assert error["details"]["problems"] == [
        {"field": "workspce", "problem": "unknown argument (did you mean 'workspace'?)"}
    ]


@pytest.mark.anyio
async def test_unknown_tool_name_is_answered_with_unknown_tool_and_a_suggestion(client: Client) -> None:
    error = error_of(await client.call_tool("list_workspace", {}))

    assert error["code"] == "UNKNOWN_TOOL"
    assert error["details"]["did_you_mean"] == "list_workspaces"


@pytest.mark.anyio
async def test_unexpected_failure_is_internal_without_details_and_is_audited(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internal detail /etc/shadow")

    monkeypatch.setattr(WorkspaceService, "create", explode)

    result = await client.call_tool("create_workspace", {"name": "ws", "goal": "g", "reason": LONG_REASON})

    error = error_of(result)
    assert error["code"] == "INTERNAL"
    assert "secret" not in json.dumps(error)
    audit = await call(client, "get_audit_log")
    assert [(e["tool"], e["outcome"], e["error_code"]) for e in audit["entries"]] == [
        ("create_workspace", "error", "INTERNAL")
    ]


class Broken(ToolResult):
    """A result model the tool below does not honour."""

    count: int


@pytest.mark.anyio
async def test_result_that_fails_its_own_output_model_becomes_internal(tmp_path: Path) -> None:
    registry = ToolRegistry(GoldfishApp(None))

    @registry.tool(read_only=True, idempotent=True, title="Broken")
    def broken() -> Broken:
        """Returns something that is not a Broken."""
        return {"success": True, "count": "not a number"}  # type: ignore[return-value]

    server: MCPServer[Any] = MCPServer(
        name="boundary", tools=list(registry.tools.values()), middleware=[registry.call_middleware()]
    )
    async with Client(server, mode="legacy") as session:
        error = error_of(await session.call_tool("broken", {}))

    assert error["code"] == "INTERNAL"


@pytest.mark.anyio
async def test_error_outside_a_project_is_readable_text(tmp_path: Path) -> None:
    async with Client(server_for(None), mode="legacy") as session:
        error = error_of(await session.call_tool("status", {}))

    assert error["code"] == "PROJECT_NOT_INITIALIZED"


@pytest.mark.anyio
async def test_typed_arguments_are_audited_as_the_json_the_client_sent(client: Client) -> None:
    await call(client, "create_workspace", name="ws", goal="g", reason=LONG_REASON)
    reason = {"description": "does the typed reason reach the audit row", "goal": "a faithful audit"}
    spec = {"primary_metric": "loss", "direction": "minimize"}

    await call(client, "run", workspace="ws", reason=reason, results_spec=spec, dry_run=True)

    [entry] = [e for e in (await call(client, "get_audit_log"))["entries"] if e["tool"] == "run"]
    assert {k: v for k, v in entry["arguments"]["reason"].items() if v is not None} == reason
    assert entry["arguments"]["results_spec"]["primary_metric"] == "loss"
    assert json.loads(entry["reason"])["description"] == reason["description"]


# Tools whose reason is part of a request a service parses (the CLI sends those requests too).
REASONS_CHECKED_BY_SERVICES = {"run", "resume_pipeline", "finalize_run"}


def test_every_reason_argument_is_checked_at_the_boundary_or_by_the_service_that_keeps_it() -> None:
    registry = ToolRegistry(GoldfishApp(None))
    register_all(registry)

    taking_reason = {
        name for name, tool in registry.tools.items() if "reason" in tool.parameters["properties"]
    }
    declared = {name for name in taking_reason if reason_check(registry.tools[name].fn) is not None}

    assert taking_reason - declared == REASONS_CHECKED_BY_SERVICES


@pytest.mark.anyio
async def test_a_short_reason_is_refused_before_the_tool_runs_with_the_field_and_minimum(
    client: Client,
) -> None:
    await call(client, "create_workspace", name="ws", goal="g", reason=LONG_REASON)

    error = error_of(
        await client.call_tool("manage_versions", {"workspace": "ws", "action": "tag", "reason": " x "})
    )
    entries = (await call(client, "get_audit_log"))["entries"]

    assert error["code"] == "REASON_REQUIRED"
    assert error["details"] == {"field": "reason", "minimum_length": 15}
    [audited] = [entry for entry in entries if entry["tool"] == "manage_versions"]
    assert (audited["outcome"], audited["error_code"]) == ("error", "REASON_REQUIRED")


@pytest.mark.anyio
async def test_a_reading_action_needs_no_reason_and_a_given_optional_reason_is_checked(
    client: Client,
) -> None:
    listed = await call(client, "manage_sources", action="list", reason="short")
    refused = error_of(
        await client.call_tool("tag_record", {"ref": "rec-x", "tag": "best", "reason": "short"})
    )

    assert listed["success"] is True
    assert refused["code"] == "REASON_REQUIRED"
