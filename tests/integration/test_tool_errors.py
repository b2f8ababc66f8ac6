"""The error contract of every tool through real MCP sessions: code, message, details, remedy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

from tests.conftest import LONG_REASON
from tests.integration.workspace_support import create, fail, mount, ok, save, version_names, write

# -- errors ----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("create_workspace", {"name": "bad name!", "goal": "g", "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "ok", "goal": "g", "reason": "too short"}, "REASON_REQUIRED"),
    ("create_workspace", {"name": "ok", "goal": "g"}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "ok", "goal": ["not", "text"], "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("create_workspace", {"name": "baseline", "goal": "g", "reason": LONG_REASON}, "WORKSPACE_EXISTS"),
    ("mount", {"workspace": "nope", "slot": "w2", "reason": LONG_REASON}, "WORKSPACE_NOT_FOUND"),
    ("mount", {"workspace": "baseline", "slot": "w9", "reason": LONG_REASON}, "SLOT_NOT_FOUND"),
    ("mount", {"workspace": "baseline", "slot": "../etc", "reason": LONG_REASON}, "INVALID_ARGUMENT"),
    ("save_version", {"slot": "w2", "message": "m"}, "SLOT_EMPTY"),
    ("save_version", {"slot": "w1", "message": ""}, "INVALID_ARGUMENT"),
    ("hibernate", {"slot": "w3", "reason": LONG_REASON}, "SLOT_EMPTY"),
    ("rollback", {"slot": "w1", "version": "v5", "reason": LONG_REASON}, "VERSION_NOT_FOUND"),
    ("diff", {"target": "nope@v1"}, "WORKSPACE_NOT_FOUND"),
    ("diff", {"target": "x" * 300, "against": "w1"}, "INVALID_ARGUMENT"),
    ("manage_versions", {"workspace": "baseline", "action": "explode"}, "INVALID_ARGUMENT"),
    (
        "manage_versions",
        {"workspace": "baseline", "action": "untag", "tag": "t", "reason": LONG_REASON},
        "TAG_NOT_FOUND",
    ),
    ("inspect_workspace", {"name": "nope"}, "WORKSPACE_NOT_FOUND"),
    ("list_workspaces", {"limit": 500}, "INVALID_ARGUMENT"),
    ("list_workspaces", {"offset": -1}, "INVALID_ARGUMENT"),
    ("delete_workspace", {"workspace": "baseline", "reason": LONG_REASON}, "WORKSPACE_MOUNTED"),
    ("get_audit_log", {"limit": "many"}, "INVALID_ARGUMENT"),
    ("log_thought", {"thought": "x" * 9000}, "INVALID_ARGUMENT"),
    ("validate_config", {"workspace": "nope"}, "WORKSPACE_NOT_FOUND"),
]


@pytest.mark.anyio
async def test_tool_error_result_has_code_message_details_remedy_and_is_error(client: Client) -> None:
    await create(client, "baseline")
    slot = await mount(client, "baseline")
    write(slot, {"a.py": "a\n"})
    await save(client)
    for tool, arguments, code in ERROR_CASES:
        try:
            await fail(client, tool, code, **arguments)
        except AssertionError as exc:
            raise AssertionError(f"{tool}({arguments}) should fail with {code}: {exc}") from None
    # The server keeps answering after every error, and nothing was changed by them.
    assert (await ok(client, "status"))["project"]["name"] == "testproj"
    assert await version_names(client, "baseline") == ["v1"]
    assert [w["name"] for w in (await ok(client, "list_workspaces"))["workspaces"]] == ["baseline"]


@pytest.mark.anyio
async def test_tool_error_when_input_is_huge_keeps_the_message_short(client: Client) -> None:
    huge = "x" * 50_000
    await create(client, "baseline")
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("create_workspace", "INVALID_ARGUMENT", {"name": huge, "goal": "g", "reason": LONG_REASON}),
        ("mount", "WORKSPACE_NOT_FOUND", {"workspace": huge, "slot": "w1", "reason": LONG_REASON}),
        ("mount", "INVALID_ARGUMENT", {"workspace": "baseline", "slot": huge, "reason": LONG_REASON}),
        ("log_thought", "WORKSPACE_NOT_FOUND", {"thought": "about a huge name", "workspace": huge}),
        ("inspect_workspace", "WORKSPACE_NOT_FOUND", {"name": huge}),
        ("manage_versions", "WORKSPACE_NOT_FOUND", {"workspace": huge, "action": "list"}),
    ]
    for tool, code, arguments in cases:
        error = await fail(client, tool, code, **arguments)
        assert len(error["message"]) < 1000, tool
        assert len(json.dumps(error["details"])) < 1000, tool
