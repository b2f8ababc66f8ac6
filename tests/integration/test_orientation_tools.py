"""Orientation through real MCP sessions: dashboard, version report, tool annotations."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import create, fail, mount, ok, save, write

# -- orientation -----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_dashboard_lists_failed_calls_as_alerts_and_workspaces_by_activity(client: Client) -> None:
    await create(client, "older")
    await create(client, "newer")
    slot = await mount(client, "newer")
    write(slot, {"a.py": "a\n"})
    await save(client)
    await fail(client, "hibernate", "SLOT_EMPTY", slot="w2", reason=LONG_REASON)
    dashboard = (await ok(client, "dashboard"))["dashboard"]
    assert dashboard["project"]["workspaces"] == 2
    assert [a["kind"] for a in dashboard["alerts"]] == ["failed_call"]
    assert "hibernate" in dashboard["alerts"][0]["message"]
    assert "SLOT_EMPTY" in dashboard["alerts"][0]["message"]
    assert dashboard["workspaces_by_activity"] == ["newer", "older"]
    assert dashboard["slots"][0]["workspace"] == "newer"


@pytest.mark.anyio
async def test_goldfish_version_reports_package_schema_and_project(
    client: Client, project_root: Path
) -> None:
    import goldfish

    info = await ok(client, "goldfish_version")
    assert info["package_version"] == goldfish.__version__
    assert info["schema_version"] >= 1
    assert isinstance(info["backends"], list)
    assert info["project_root"] == str(project_root.resolve())


@pytest.mark.anyio
async def test_list_tools_marks_read_only_and_destructive_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in (
        "status",
        "dashboard",
        "goldfish_version",
        "diff",
        "list_workspaces",
        "inspect_workspace",
        "get_workspace_thoughts",
        "get_audit_log",
        "validate_config",
    ):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is True, name
    for name in ("delete_workspace", "rollback", "manage_versions"):
        annotations = tools[name].annotations
        assert annotations is not None
        assert annotations.read_only_hint is False, name
        assert annotations.destructive_hint is True, name
    for name, tool in tools.items():
        properties = tool.input_schema.get("properties", {})
        if name in {"create_workspace", "mount", "hibernate", "rollback", "delete_workspace"}:
            assert "reason" in properties, name
            assert "reason" in tool.input_schema.get("required", []), name
