"""Helpers for the workspace-flow tests: tool calls that must succeed or fail, slot files.

The tests using these (``test_workspace_*``, ``test_tool_errors``, ``test_orientation_tools``,
``test_project_config``) drive the server with an in-memory ``mcp.Client`` (both protocol eras,
see the ``client`` fixture) against a real project: plain files in slot folders, the hidden git
store and the SQLite database. Nothing is mocked. Every failure is checked against the error
contract (``check_error_shape``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mcp import Client
from mcp.types import TextResourceContents

from tests.conftest import LONG_REASON, call, structured

UPPER_SNAKE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured result."""
    result = await call(client, tool, **arguments)
    assert result["success"] is True, result
    return result


async def fail(client: Client, tool: str, code: str, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must fail with ``code``; check the error contract and return the error."""
    raw = await client.call_tool(tool, arguments)
    assert raw.is_error is True, raw
    error = check_error_shape(structured(raw))
    assert error["code"] == code, error
    return error


def check_error_shape(result: dict[str, Any]) -> dict[str, Any]:
    """The contract of every failure: success false plus code/message/details/remedy."""
    assert result["success"] is False
    error: dict[str, Any] = result["error"]
    assert set(error) == {"code", "message", "details", "remedy"}
    assert UPPER_SNAKE.fullmatch(error["code"]), error["code"]
    assert isinstance(error["message"], str)
    assert error["message"].strip()
    assert isinstance(error["details"], dict)
    assert isinstance(error["remedy"], str)
    assert error["remedy"].strip()
    assert "Traceback" not in error["message"]
    return error


async def create(
    client: Client, name: str, goal: str = "find a better model", **extra: Any
) -> dict[str, Any]:
    result = await ok(client, "create_workspace", name=name, goal=goal, reason=LONG_REASON, **extra)
    workspace: dict[str, Any] = result["workspace"]
    return workspace


async def mount(client: Client, workspace: str, slot: str = "w1") -> Path:
    result = await ok(client, "mount", workspace=workspace, slot=slot, reason=LONG_REASON)
    return Path(result["mount"]["slot_path"])


async def save(client: Client, slot: str = "w1", message: str = "a step forward") -> dict[str, Any]:
    result = await ok(client, "save_version", slot=slot, message=message)
    saved: dict[str, Any] = result["save"]
    return saved


async def hibernate(client: Client, slot: str = "w1") -> dict[str, Any]:
    result = await ok(client, "hibernate", slot=slot, reason=LONG_REASON)
    info: dict[str, Any] = result["hibernate"]
    return info


async def versions(client: Client, workspace: str, **extra: Any) -> dict[str, Any]:
    result = await ok(client, "manage_versions", workspace=workspace, action="list", **extra)
    page: dict[str, Any] = result["versions"]
    return page


async def version_names(client: Client, workspace: str, include_pruned: bool = False) -> list[str]:
    page = await versions(client, workspace, include_pruned=include_pruned, limit=200)
    return [v["version"] for v in page["versions"]]


async def manage(client: Client, workspace: str, action: str, **extra: Any) -> dict[str, Any]:
    result = await ok(
        client, "manage_versions", workspace=workspace, action=action, reason=LONG_REASON, **extra
    )
    page: dict[str, Any] = result["versions"]
    return page


async def diff(client: Client, target: str, against: str | None = None) -> dict[str, Any]:
    arguments: dict[str, Any] = {"target": target}
    if against is not None:
        arguments["against"] = against
    result = await ok(client, "diff", **arguments)
    info: dict[str, Any] = result["diff"]
    return info


def statuses(diff_info: dict[str, Any]) -> dict[str, str]:
    return {f["path"]: f["status"] for f in diff_info["files"]}


def write(folder: Path, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")


def tree(folder: Path) -> dict[str, str]:
    """Every regular file under ``folder`` (relative path → text); links shown as ``-> target``."""
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_symlink():
            found[rel] = "-> " + os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_text(encoding="utf-8")
    return found


async def audit(client: Client, **extra: Any) -> list[dict[str, Any]]:
    result = await ok(client, "get_audit_log", limit=200, **extra)
    entries: list[dict[str, Any]] = result["entries"]
    return entries


async def read_resource(client: Client, uri: str) -> str:
    result = await client.read_resource(uri)
    assert len(result.contents) == 1
    content = result.contents[0]
    assert isinstance(content, TextResourceContents)
    return content.text


def state_md(project_root: Path) -> str:
    return (project_root / "STATE.md").read_text(encoding="utf-8")


FILES_V1 = {
    "train.py": "lr = 0.1\nprint('train')\n",
    "README.md": "notes\n",
    "configs/train.yaml": "epochs: 1\n",
}


async def workspace_with_two_versions(client: Client, name: str = "baseline") -> Path:
    """A mounted workspace (slot w1) with v1 = FILES_V1 and v2 = lr changed, README removed."""
    await create(client, name)
    slot = await mount(client, name)
    write(slot, FILES_V1)
    assert (await save(client, message="first version"))["version"]["version"] == "v1"
    write(slot, {"train.py": "lr = 0.01\nprint('train')\n"})
    (slot / "README.md").unlink()
    assert (await save(client, message="lower the learning rate"))["version"]["version"] == "v2"
    return slot


# -- inspect ---------------------------------------------------------------------------------

PIPELINE = "name: demo\nstages:\n  - name: train\n    outputs:\n      model:\n        type: file\n"
